/** `announce`: Home Assistant discovery and the Sparkplug NBIRTH again, whichever are on. */
import { z } from 'zod';
import type { Command } from './command.js';
import type { AgentControl, AnnounceOutcome } from './agent-control.js';

export function announceCommand(agent: AgentControl): Command<Record<string, never>> {
  return {
    name: 'announce',
    summary: 'Home Assistant discovery and Sparkplug rebirth again, whichever are enabled',
    args: z.strictObject({}),
    run: (): Promise<AnnounceOutcome> => agent.announce(),
  };
}
