/**
 * Consumers riding on a broker session (Home Assistant discovery on the telemetry
 * connection): their subscriptions are made again on every connection (each connection is a
 * new mqtt.js client), and the messages on them are handed back.
 */
import type { MqttClient } from 'mqtt';
import type { Logger } from '../ops/logger.js';
import { describeError } from './connection-options.js';

/**
 * An optional consumer's use of a session: `subscriptions` are made on every connection,
 * `connected` runs after every connect, or at once when attached while connected.
 */
export interface ConnectionHooks {
  subscriptions: string[];
  connected(): void;
  message(topic: string, payload: Buffer, retained: boolean): void;
}

export class SessionHooks {
  private readonly hooks: ConnectionHooks[] = [];

  constructor(private readonly logger: Logger) {}

  /** Adds a consumer; `client` is the connection when it is up (the consumer starts at once). */
  attach(hooks: ConnectionHooks, client: MqttClient | undefined): void {
    this.hooks.push(hooks);
    if (client) this.run(client, [hooks]);
  }

  /** A connection is up: every consumer subscribes again and hears of it. */
  connected(client: MqttClient): void {
    this.run(client, this.hooks);
  }

  /** A message: to the consumers that subscribed to its topic. */
  message(topic: string, payload: Buffer, retained: boolean): void {
    for (const h of this.hooks) {
      if (h.subscriptions.some((t) => t === topic)) h.message(topic, payload, retained);
    }
  }

  private run(client: MqttClient, hooks: readonly ConnectionHooks[]): void {
    for (const h of hooks) {
      if (h.subscriptions.length > 0) {
        client.subscribe(h.subscriptions, { qos: 1 }, (err, granted) => {
          // A refusal is an error or a SUBACK code >= 0x80 for the topic.
          const refused = granted?.filter((g) => g.qos >= 0x80).map((g) => g.topic) ?? [];
          if (err || refused.length > 0) {
            this.logger.warn(
              {
                topics: refused.length > 0 ? refused : h.subscriptions,
                ...(err ? { err: describeError(err) } : {}),
              },
              'MQTT subscription refused (check the broker ACL)',
            );
          }
        });
      }
      h.connected();
    }
  }
}
