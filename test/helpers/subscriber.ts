/**
 * An MQTT test subscriber that records everything it receives. With `clean: false` and a
 * fixed clientId it keeps a persistent session (QoS 1), so it sees what was published
 * while it was reconnecting after a broker restart.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { waitUntil } from './wait.js';

export interface ReceivedMessage {
  topic: string;
  payload: Buffer;
  retain: boolean;
  /** The QoS it was delivered at. */
  qos: 0 | 1 | 2;
  /** The payload parsed as JSON, or undefined when it is not JSON. */
  json: Record<string, unknown> | undefined;
}

export interface TestSubscriber {
  client: MqttClient;
  messages: ReceivedMessage[];
  on(topicSuffix: string): ReceivedMessage[];
  /** seq of every telemetry message received, in arrival order (duplicates included). */
  telemetrySeqs(): number[];
  waitFor(
    condition: (s: TestSubscriber) => boolean,
    timeoutMs?: number,
    what?: string,
  ): Promise<void>;
  /**
   * Resolves once everything the broker sent this subscriber before the call has arrived: a
   * marker it publishes now comes back after those. The positive event to wait for before
   * asserting that something did not arrive (never a sleep).
   */
  settle(): Promise<void>;
  close(): Promise<void>;
}

export async function startSubscriber(options: {
  url: string;
  topics: string[];
  clientId?: string;
  /** false = persistent session (needs a clientId). Default true. */
  clean?: boolean;
  qos?: 0 | 1 | 2;
  username?: string;
  password?: string;
}): Promise<TestSubscriber> {
  const client = mqtt.connect(options.url, {
    clientId: options.clientId ?? `test-sub-${process.pid}-${Math.random().toString(16).slice(2)}`,
    clean: options.clean ?? true,
    reconnectPeriod: 200,
    connectTimeout: 5000,
    ...(options.username !== undefined ? { username: options.username } : {}),
    ...(options.password !== undefined ? { password: options.password } : {}),
  });
  client.on('error', () => {
    // Broker restarts in tests cause errors; mqtt.js reconnects by itself here.
  });
  const messages: ReceivedMessage[] = [];
  client.on('message', (topic, payload, packet) => {
    let json: Record<string, unknown> | undefined;
    try {
      json = JSON.parse(payload.toString('utf8')) as Record<string, unknown>;
    } catch {
      json = undefined;
    }
    messages.push({ topic, payload, retain: packet.retain, qos: packet.qos, json });
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`subscriber: cannot connect to ${options.url}`)),
      10_000,
    );
    client.once('connect', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  await client.subscribeAsync(options.topics, { qos: options.qos ?? 1 });
  let markers = 0;
  const self: TestSubscriber = {
    client,
    messages,
    on: (suffix) => messages.filter((m) => m.topic.endsWith(suffix)),
    telemetrySeqs: () =>
      messages
        .filter((m) => m.topic.endsWith('/telemetry') && typeof m.json?.seq === 'number')
        .map((m) => m.json!.seq as number),
    waitFor: (condition, timeoutMs = 30_000, what = 'subscriber condition') =>
      waitUntil(() => condition(self), { timeoutMs, what }),
    settle: async () => {
      const topic = `test-marker/${client.options.clientId ?? 'subscriber'}/${++markers}`;
      await client.subscribeAsync(topic, { qos: 1 });
      await client.publishAsync(topic, 'marker', { qos: 1 });
      await self.waitFor((s) => s.messages.some((m) => m.topic === topic), 10_000, 'marker');
    },
    close: async () => {
      await client.endAsync(true);
    },
  };
  return self;
}

/** Seqs from 1..last that never arrived. */
export function missingSeqs(seqs: number[], last: number): number[] {
  const seen = new Set(seqs);
  const missing: number[] = [];
  for (let s = 1; s <= last; s++) if (!seen.has(s)) missing.push(s);
  return missing;
}

/** A telemetry batch's `dropped` note (docs/payload.md). */
export interface SeenNote {
  count: number;
  firstSeq: number;
  lastSeq: number;
  reason: string;
}

/** The `dropped` notes of the telemetry batches received, in arrival order. */
export function droppedNotes(s: TestSubscriber): SeenNote[] {
  return s.on('/telemetry').flatMap((m) => (m.json?.dropped ? [m.json.dropped as SeenNote] : []));
}

/** The seqs first..last of a note, for comparing with missingSeqs(). */
export function seqsOf(note: SeenNote): number[] {
  return Array.from({ length: note.lastSeq - note.firstSeq + 1 }, (_, i) => note.firstSeq + i);
}
