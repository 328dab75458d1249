/**
 * The fleet tool's side of commands over MQTT (`edge-agent remote`): one connection, one
 * request per gateway, and each gateway's answer — or that none came within the timeout.
 * Requests carry an id (and under MQTT 5 a response topic and correlation data); answers are
 * read on each gateway's reply topic and matched by id or correlation data.
 */
import { randomBytes } from 'node:crypto';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { answerMessage, replyTopic, requestTopic, type AnswerMessage } from './command-protocol.js';

export interface RemoteOptions {
  url: string;
  prefix: string;
  gateways: readonly string[];
  protocolVersion: 4 | 5;
  username?: string;
  password?: string;
  caFile?: Buffer;
  timeoutMs: number;
  name: string;
  args: Record<string, unknown>;
  /** Each gateway's outcome as it comes (answers first, as they arrive; then the silent ones). */
  onOutcome?: (outcome: GatewayOutcome) => void;
}

/** One gateway's outcome: its answer, or why there is none. */
export type GatewayOutcome =
  | { gateway: string; answer: AnswerMessage }
  | { gateway: string; problem: 'timeout' | 'not-sent'; message: string };

/** Raised when the broker cannot be reached or refuses us; its message says which. */
export class RemoteConnectError extends Error {
  override name = 'RemoteConnectError';
}

export async function sendCommand(o: RemoteOptions): Promise<GatewayOutcome[]> {
  const client = await connect(o);
  try {
    return await exchange(client, o);
  } finally {
    await client.endAsync().catch(() => undefined);
  }
}

async function connect(o: RemoteOptions): Promise<MqttClient> {
  const options: IClientOptions = {
    protocolVersion: o.protocolVersion,
    clientId: `edge-agent-remote-${randomBytes(6).toString('hex')}`,
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: Math.max(1000, o.timeoutMs),
    ...(o.username !== undefined ? { username: o.username } : {}),
    ...(o.password !== undefined ? { password: o.password } : {}),
    ...(o.caFile !== undefined ? { ca: o.caFile } : {}),
  };
  try {
    return await mqtt.connectAsync(o.url, options, false);
  } catch (err) {
    const e = err as Error & { code?: unknown };
    const code = e.code !== undefined ? ` (${String(e.code)})` : '';
    throw new RemoteConnectError(`cannot connect to ${safeUrl(o.url)}: ${e.message}${code}`);
  }
}

async function exchange(client: MqttClient, o: RemoteOptions): Promise<GatewayOutcome[]> {
  const run = randomBytes(6).toString('hex');
  const idOf = (gw: string) => `${run}-${gw}`;
  const pending = new Map(o.gateways.map((gw) => [idOf(gw), gw]));
  const outcomes = new Map<string, GatewayOutcome>();
  const settle = (outcome: GatewayOutcome) => {
    outcomes.set(outcome.gateway, outcome);
    o.onOutcome?.(outcome);
  };
  let finish: () => void = () => undefined;
  const allIn = new Promise<void>((resolve) => (finish = resolve));

  client.on('message', (_topic, payload, packet) => {
    let json: unknown;
    try {
      json = JSON.parse(payload.toString('utf8'));
    } catch {
      return;
    }
    const parsed = answerMessage.safeParse(json);
    if (!parsed.success) return;
    const correlation = packet.properties?.correlationData?.toString('utf8');
    const id = typeof parsed.data.id === 'string' ? parsed.data.id : correlation;
    const gw = id !== undefined ? pending.get(id) : undefined;
    if (gw === undefined) return;
    pending.delete(id!);
    settle({ gateway: gw, answer: parsed.data as AnswerMessage });
    if (pending.size === 0) finish();
  });

  const replies = o.gateways.map((gw) => replyTopic(o.prefix, gw, o.name));
  const granted = await client.subscribeAsync(replies, { qos: 1 });
  const refused = granted.filter((g) => g.qos >= 0x80).map((g) => g.topic);
  if (refused.length > 0) {
    throw new RemoteConnectError(
      `the broker refused the subscription to ${refused.join(', ')} (check its ACL: the operator reads <prefix>/+/reply/#)`,
    );
  }

  const timer = setTimeout(() => finish(), o.timeoutMs);
  for (const gw of o.gateways) {
    const id = idOf(gw);
    const payload = JSON.stringify({ id, args: o.args });
    const properties =
      o.protocolVersion === 5
        ? {
            responseTopic: replyTopic(o.prefix, gw, o.name),
            correlationData: Buffer.from(id, 'utf8'),
          }
        : undefined;
    client
      .publishAsync(requestTopic(o.prefix, gw, o.name), payload, {
        qos: 1,
        ...(properties ? { properties } : {}),
      })
      .catch((err: unknown) => {
        if (!pending.delete(id)) return;
        settle({
          gateway: gw,
          problem: 'not-sent',
          message: `request not accepted by the broker: ${(err as Error).message} (check its ACL: the operator writes <prefix>/+/cmd/#)`,
        });
        if (pending.size === 0) finish();
      });
  }
  await allIn;
  clearTimeout(timer);
  // Taken out of pending: an answer that comes late is not printed after its NO ANSWER.
  for (const [id, gw] of pending) {
    pending.delete(id);
    settle({
      gateway: gw,
      problem: 'timeout',
      message: `no answer within ${o.timeoutMs / 1000} s (gateway offline, fleet.enabled off, or its ACL does not let it read ${requestTopic(o.prefix, gw, o.name)})`,
    });
  }
  return o.gateways.map((gw) => outcomes.get(gw)!);
}

/** The URL without user name or password. */
function safeUrl(url: string): string {
  if (!URL.canParse(url)) return url;
  const u = new URL(url);
  u.username = '';
  u.password = '';
  return u.toString();
}
