/**
 * The commands a running agent answers (command.ts), whatever the transport: `status` (the
 * health report as published now) and the spool's (spool-commands.ts).
 */
import { z } from 'zod';
import type { HealthReport } from '../publish/health.js';
import { CommandSet } from './command.js';
import { command, spoolCommands, type SpoolCommandParts } from './spool-commands.js';

export interface AgentCommandParts extends SpoolCommandParts {
  health(): HealthReport;
}

export function agentCommands(parts: AgentCommandParts): CommandSet {
  const set = new CommandSet();
  set.add(
    command({
      name: 'status',
      summary: 'the health report, as published on the health topic, now',
      args: z.object({}).strict(),
      run: () => Promise.resolve(parts.health()),
    }),
  );
  for (const c of spoolCommands(parts)) set.add(c);
  return set;
}
