/**
 * The one CommandSet a running agent answers (command.ts), whatever the transport (the local
 * control socket, MQTT fleet commands): `status`, `config/get`, `reload`, `read`, `announce`
 * over the running agent (agent-control.ts), and the spool's (spool-commands.ts).
 */
import type { AgentControl } from './agent-control.js';
import { arglessCommand, CommandSet } from './command.js';
import { configGetCommand } from './config-get-command.js';
import { readCommand } from './read-command.js';
import { spoolCommands, type SpoolCommandParts } from './spool-commands.js';

export function agentCommands(agent: AgentControl, spool: SpoolCommandParts): CommandSet {
  const set = new CommandSet()
    // As published on `<prefix>/<gw>/health`.
    .add(
      arglessCommand('status', 'the health report now (docs/payload.md)', () =>
        Promise.resolve(agent.health()),
      ),
    )
    .add(configGetCommand(agent))
    // As SIGHUP: re-read the file, validate it, apply it; refused with the problems.
    .add(
      arglessCommand(
        'reload',
        're-read, validate and apply the configuration file (as SIGHUP)',
        () => agent.reload(),
      ),
    )
    .add(readCommand(agent))
    .add(
      arglessCommand(
        'announce',
        'Home Assistant discovery and Sparkplug rebirth again, whichever are enabled',
        () => agent.announce(),
      ),
    );
  for (const c of spoolCommands(spool)) set.add(c);
  return set;
}
