/** `status`: the health report now, as published on `<prefix>/<gw>/health`. */
import { z } from 'zod';
import type { Command } from './command.js';
import type { AgentControl } from './agent-control.js';

export function statusCommand(agent: AgentControl): Command<Record<string, never>> {
  return {
    name: 'status',
    summary: 'the health report now (docs/payload.md)',
    args: z.strictObject({}),
    run: () => Promise.resolve(agent.health()),
  };
}
