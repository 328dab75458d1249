/**
 * Consumers riding on a broker session (Home Assistant discovery, fleet commands on the
 * telemetry connection): their subscriptions are made again on every connection (each
 * connection is a new mqtt.js client), and the messages on them are handed back, with the
 * packet (its MQTT 5 properties) to those who want it.
 */
import type { IPublishPacket, MqttClient } from 'mqtt';
import type { Logger } from '../ops/logger.js';
import { describeError } from './connection-options.js';

/** The connection a consumer is told of: its client and what the broker announced. */
export interface ConnectionLink {
  client: MqttClient;
  protocolVersion: 4 | 5;
  /** The broker's MQTT 5 Maximum Packet Size (bytes of a whole packet), when announced. */
  maximumPacketSize?: number;
}

/**
 * An optional consumer's use of a session: `subscriptions` (topic filters, wildcards allowed)
 * are made on every connection, `connected` runs after every connect, or at once when
 * attached while connected.
 */
export interface ConnectionHooks {
  subscriptions: string[];
  connected(link: ConnectionLink): void;
  message(topic: string, payload: Buffer, retained: boolean, packet: IPublishPacket): void;
}

/** Whether an MQTT topic filter (with + and #) matches a topic name. */
export function topicMatches(filter: string, topic: string): boolean {
  if (filter === topic) return true;
  const f = filter.split('/');
  const t = topic.split('/');
  // Wildcards do not match topics starting with '$' (MQTT 4.7.2).
  if (t[0]?.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return i === f.length - 1;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

export class SessionHooks {
  private readonly hooks: ConnectionHooks[] = [];

  constructor(private readonly logger: Logger) {}

  /** Adds a consumer; `link` is the connection when it is up (the consumer starts at once). */
  attach(hooks: ConnectionHooks, link: ConnectionLink | undefined): void {
    this.hooks.push(hooks);
    if (link) this.run(link, [hooks]);
  }

  /** A connection is up: every consumer subscribes again and hears of it. */
  connected(link: ConnectionLink): void {
    this.run(link, this.hooks);
  }

  /** A message: to the consumers with a subscription matching its topic. */
  message(topic: string, payload: Buffer, packet: IPublishPacket): void {
    for (const h of this.hooks) {
      if (h.subscriptions.some((f) => topicMatches(f, topic))) {
        h.message(topic, payload, packet.retain, packet);
      }
    }
  }

  private run(link: ConnectionLink, hooks: readonly ConnectionHooks[]): void {
    const { client } = link;
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
      h.connected(link);
    }
  }
}
