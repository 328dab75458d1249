/**
 * The fleet tool's view of `<prefix>/<gw>/config/state` (retained): waits until a gateway
 * reports the outcome of one pushed version. This is the outcome that always arrives: the
 * answer to config/set is lost when the apply replaced the pipeline that received the request.
 * Subscribed before the request is sent, so only live messages count.
 */
import { randomBytes } from 'node:crypto';
import mqtt from 'mqtt';
import type { ConfigState } from './config-store.js';

export interface StateWatchOptions {
  url: string;
  prefix: string;
  gateways: readonly string[];
  version: number;
  protocolVersion: 4 | 5;
  username?: string;
  password?: string;
  caFile?: Buffer;
}

export interface StateWatch {
  /** Resolves with the gateway's state once it names `version`'s outcome. */
  outcome(gateway: string): Promise<ConfigState>;
  close(): Promise<void>;
}

function isConfigState(v: unknown): v is ConfigState {
  const s = v as Partial<ConfigState> | null;
  return (
    typeof s === 'object' &&
    s !== null &&
    s.schema === 'edge-agent/config-state/1' &&
    typeof s.status === 'string'
  );
}

export async function watchConfigState(o: StateWatchOptions): Promise<StateWatch> {
  const client = await mqtt.connectAsync(o.url, {
    protocolVersion: o.protocolVersion,
    clientId: `edge-agent-watch-${randomBytes(6).toString('hex')}`,
    clean: true,
    reconnectPeriod: 1000,
    ...(o.username !== undefined ? { username: o.username } : {}),
    ...(o.password !== undefined ? { password: o.password } : {}),
    ...(o.caFile !== undefined ? { ca: o.caFile } : {}),
  });
  const waiting = new Map<string, (state: ConfigState) => void>();
  const done = new Map<string, ConfigState>();
  const topicOf = (gw: string) => `${o.prefix}/${gw}/config/state`;
  const gatewayOf = new Map(o.gateways.map((gw) => [topicOf(gw), gw]));
  client.on('message', (topic, payload, packet) => {
    const gw = gatewayOf.get(topic);
    // A retained message is from before this push (the same version pushed again, a replay).
    if (gw === undefined || packet.retain) return;
    let state: unknown;
    try {
      state = JSON.parse(payload.toString('utf8'));
    } catch {
      return;
    }
    if (!isConfigState(state) || state.request?.version !== o.version) return;
    done.set(gw, state);
    waiting.get(gw)?.(state);
  });
  await client.subscribeAsync(o.gateways.map(topicOf), { qos: 1 });
  return {
    outcome: (gw) =>
      new Promise((resolve) => {
        const seen = done.get(gw);
        if (seen) resolve(seen);
        else waiting.set(gw, resolve);
      }),
    close: () => client.endAsync().catch(() => undefined),
  };
}
