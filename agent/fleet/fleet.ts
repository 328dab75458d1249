/**
 * The agent's operator commands and their MQTT transport: agentCommands() is the one
 * CommandSet every transport serves (other modules add theirs to it, e.g. the spool
 * commands), startFleetCommands() answers it over MQTT when fleet.enabled.
 */
import type { Config } from '../config/schema.js';
import type { Logger } from '../ops/logger.js';
import { CommandSet } from '../control/command.js';
import type { AgentControl } from '../control/agent-control.js';
import { announceCommand } from '../control/announce-command.js';
import { configGetCommand } from '../control/config-get-command.js';
import { readCommand } from '../control/read-command.js';
import { reloadCommand } from '../control/reload-command.js';
import { statusCommand } from '../control/status-command.js';
import { CommandTransport, type CommandChannel } from './command-transport.js';

export function agentCommands(agent: AgentControl): CommandSet {
  return new CommandSet()
    .add(statusCommand(agent))
    .add(configGetCommand(agent))
    .add(reloadCommand(agent))
    .add(readCommand(agent))
    .add(announceCommand(agent));
}

/** The MQTT transport of `commands`, started, when fleet.enabled; else undefined. */
export function startFleetCommands(o: {
  config: Config;
  commands: CommandSet;
  channel: CommandChannel;
  logger: Logger;
}): CommandTransport | undefined {
  const { config } = o;
  if (!config.fleet.enabled) return undefined;
  const transport = new CommandTransport({
    prefix: config.mqtt.topicPrefix,
    gateway: config.gateway.id,
    commands: o.commands,
    channel: o.channel,
    rateLimit: config.fleet.rateLimit,
    logger: o.logger,
  });
  transport.start();
  return transport;
}
