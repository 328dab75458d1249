/** `reload`: as SIGHUP — re-read the file, validate it, apply it; refused with the problems. */
import { z } from 'zod';
import type { Command } from './command.js';
import type { AgentControl, ReloadOutcome } from './agent-control.js';

export function reloadCommand(agent: AgentControl): Command<Record<string, never>> {
  return {
    name: 'reload',
    summary: 're-read, validate and apply the configuration file (as SIGHUP)',
    args: z.strictObject({}),
    run: (): Promise<ReloadOutcome> => agent.reload(),
  };
}
