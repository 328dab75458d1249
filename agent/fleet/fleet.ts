/**
 * The MQTT transport of the agent's operator commands (agent/control/agent-commands.ts):
 * startFleetCommands() answers them over MQTT when fleet.enabled.
 */
import type { Config } from '../config/schema.js';
import type { Logger } from '../ops/logger.js';
import type { CommandSet } from '../control/command.js';
import { CommandTransport, type CommandChannel } from './command-transport.js';

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
