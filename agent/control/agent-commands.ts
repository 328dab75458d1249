/**
 * The one CommandSet a running agent answers (command.ts), whatever the transport (the local
 * control socket, MQTT fleet commands): `status`, `config/get`, `reload`, `read`, `announce`
 * over the running agent (agent-control.ts), and the spool's (spool-commands.ts).
 */
import type { AgentControl } from './agent-control.js';
import { announceCommand } from './announce-command.js';
import { CommandSet } from './command.js';
import { configGetCommand } from './config-get-command.js';
import { readCommand } from './read-command.js';
import { reloadCommand } from './reload-command.js';
import { spoolCommands, type SpoolCommandParts } from './spool-commands.js';
import { statusCommand } from './status-command.js';

export function agentCommands(agent: AgentControl, spool: SpoolCommandParts): CommandSet {
  const set = new CommandSet()
    .add(statusCommand(agent))
    .add(configGetCommand(agent))
    .add(reloadCommand(agent))
    .add(readCommand(agent))
    .add(announceCommand(agent));
  for (const c of spoolCommands(spool)) set.add(c);
  return set;
}
