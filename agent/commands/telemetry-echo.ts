/**
 * `simulate` on a terminal: one line per telemetry batch as a subscriber receives it, in the
 * words of `tail` (gateway, seq, windows, the first few means, gaps and duplicates), so a
 * first run shows what the agent publishes instead of going quiet. Its own clean-session
 * connection subscribes to the gateway's telemetry topic on the broker the agent uses.
 */
import mqtt from 'mqtt';
import type { Config } from '../config/schema.js';
import { connectionOptions, describeError } from '../publish/connection-options.js';
import { SeqTracker } from '../publish/seq-tracker.js';
import { gatewayTopics } from '../publish/topics.js';
import { describeBatch, parseObject, partOf } from './tail.js';

export interface TelemetryEcho {
  stop(): Promise<void>;
}

const pad = (n: number, width = 2) => String(n).padStart(width, '0');

/** Local time of day to the millisecond, as the terminal's log lines show it. */
function localTime(d = new Date()): string {
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

export function startTelemetryEcho(config: Config, write: (line: string) => void): TelemetryEcho {
  const topic = gatewayTopics(config.mqtt.topicPrefix, config.gateway.id).telemetry;
  const base = connectionOptions(config.gateway.id, config.mqtt, config.mqtt.protocolVersion ?? 4);
  const client = mqtt.connect(config.mqtt.url, {
    ...base,
    clientId: `${String(base.clientId)}-echo`,
    clean: true,
    reconnectPeriod: 1000,
  });
  const tracker = new SeqTracker();
  let said = '';
  client.on('connect', () => client.subscribe(topic, { qos: 1 }));
  client.on('error', (err) => {
    // Said once per distinct error: the agent's own log tells the broker's story.
    const text = describeError(err);
    if (text !== said) write(`telemetry echo: ${text}`);
    said = text;
  });
  client.on('message', (_topic, payload) => {
    const msg = parseObject(payload);
    if (!msg || typeof msg.seq !== 'number') return;
    const check = tracker.observe(config.gateway.id, msg.seq, partOf(msg));
    write(`${localTime()} telemetry ${describeBatch(msg, check)}`);
  });
  return {
    stop: () => new Promise<void>((resolve) => client.end(true, {}, () => resolve())),
  };
}
