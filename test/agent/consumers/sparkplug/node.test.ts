/**
 * The Sparkplug B edge node against a real mosquitto: every message the broker delivers is
 * decoded with sparkplug-payload and checked against the spec's sequence rules.
 */
import { describe, expect, it } from 'vitest';
import { validateConfig, type ConfigInput } from '../../../../agent/config/load.js';
import type { Config } from '../../../../agent/config/schema.js';
import { silentLogger } from '../../../../agent/ops/logger.js';
import { SparkplugNode } from '../../../../agent/consumers/sparkplug/node.js';
import {
  databaseSavedAfter,
  spawnMosquitto,
  type MosquittoBroker,
} from '../../../helpers/mosquitto.js';
import { startSubscriber, type TestSubscriber } from '../../../helpers/subscriber.js';
import { waitUntil } from '../../../helpers/wait.js';
import { useTeardown } from '../../../helpers/teardown.js';
import {
  bdSeqOf,
  encodeRebirthCommand,
  nodeMessages,
  type SparkplugMessage,
} from './sparkplug-messages.js';

const WINDOW_MS = 1000;
const BASE = 1_764_288_000_000;

/** Window i's end: BASE + (i + 1) * WINDOW_MS. */
const endOf = (i: number) => BASE + (i + 1) * WINDOW_MS;

/** A telemetry batch body (docs/payload.md) with one period: window i of sensors a and b. */
function body(i: number): Uint8Array {
  const window = (sensor: string, quantity: string, unit: string, mean: number | null) => ({
    sensor,
    quantity,
    unit,
    start: endOf(i) - WINDOW_MS,
    end: endOf(i),
    count: mean === null ? 0 : 5,
    min: mean,
    max: mean,
    mean,
    stddev: mean === null ? null : 0,
    last: mean,
    faults: 0,
  });
  return Buffer.from(
    JSON.stringify({
      windows: [
        window('a', 'temperature', 'Cel', 20 + i / 100),
        window('b', 'humidity', '%RH', i % 7 === 0 ? null : 40),
      ],
    }),
  );
}

const t = useTeardown();

async function setup(
  sparkplug: NonNullable<ConfigInput['sparkplug']> = {},
  brokerOptions: Parameters<typeof spawnMosquitto>[0] = {},
  subscriberOptions: { clientId?: string; clean?: boolean } = {},
  protocolVersion?: 4 | 5,
) {
  const broker = await spawnMosquitto(brokerOptions);
  t.add(() => broker.close());
  const subscriber = await startSubscriber({
    url: broker.url,
    topics: ['spBv1.0/#'],
    ...subscriberOptions,
  });
  t.add(() => subscriber.close());
  const subscribedAt = Date.now();
  const stateDir = t.tempDir('sparkplug-');
  const config = validateConfig(
    {
      gateway: { id: 'gw' },
      mqtt: { url: broker.url, reconnectMinMs: 200, reconnectMaxMs: 1000, protocolVersion },
      sparkplug: { enabled: true, groupId: 'plant', ...sparkplug },
    },
    'test',
  );
  const start = () => startNode(config, stateDir);
  return { broker, subscriber, subscribedAt, stateDir, start };
}

/** The broker has handled the node's DISCONNECT (and so published or dropped its Will). */
async function nodeDisconnected(broker: MosquittoBroker): Promise<void> {
  await waitUntil(() => /Client \S+-sparkplug disconnected/.test(broker.log()), {
    timeoutMs: 30_000,
    what: "the broker's log of the node's DISCONNECT",
  });
}

/** A node for series a/temperature and b/humidity, stopped after the test. */
async function startNode(config: Config, stateDir: string): Promise<SparkplugNode> {
  const node = await SparkplugNode.start({
    config,
    stateDir,
    logger: silentLogger,
    series: new Map([
      ['a', ['temperature'] as const],
      ['b', ['humidity'] as const],
    ]),
  });
  t.add(() => node.stop());
  return node;
}

/**
 * A broker whose SIGKILL the subscriber's session survives, and which queues QoS 0 messages
 * (NBIRTH, NDATA) for it while it reconnects: the test sees everything the node sent.
 */
const PERSISTENT_BROKER = { persistence: true, extraConfig: ['queue_qos0_messages true'] };
const PERSISTENT_SUBSCRIBER = { clientId: 'sparkplug-test-sub', clean: false };
const received = (s: TestSubscriber) => nodeMessages(s.messages);
const ofType = (s: TestSubscriber, type: string) => received(s).filter((m) => m.type === type);

/** The end of each NDATA's (single period's) windows. */
const ends = (ms: SparkplugMessage[]) => ms.map((m) => m.metrics[0].timestamp);

describe('Sparkplug B edge node', () => {
  it('births first with every metric, then one NDATA per window with seq 1..255 wrapping to 0, in order; a clean stop sends NDEATH with the birth bdSeq', async () => {
    const { broker, subscriber, start } = await setup();
    const node = await start();
    await subscriber.waitFor((s) => ofType(s, 'NBIRTH').length === 1, 30_000, 'NBIRTH');
    const count = 300;
    for (let i = 0; i < count; i++) node.submit(body(i));
    await subscriber.waitFor((s) => ofType(s, 'NDATA').length >= count, 60_000, `${count} NDATA`);

    const all = received(subscriber);
    expect(all[0].type).toBe('NBIRTH');
    const birth = all[0];
    expect(birth.seq).toBe(0);
    expect(birth.metrics.map((m) => m.name).sort()).toEqual(
      ['Node Control/Rebirth', 'a/temperature', 'b/humidity', 'bdSeq'].sort(),
    );
    expect(birth.metrics.find((m) => m.name === 'a/temperature')).toMatchObject({
      type: 'Double',
      unit: 'Cel',
    });
    expect(birth.metrics.find((m) => m.name === 'b/humidity')?.unit).toBe('%RH');
    expect(birth.metrics.find((m) => m.name === 'Node Control/Rebirth')).toMatchObject({
      type: 'Boolean',
      value: false,
    });

    const data = ofType(subscriber, 'NDATA');
    expect(data.map((m) => m.seq)).toEqual(Array.from({ length: count }, (_, i) => (i + 1) % 256));
    expect(ends(data)).toEqual(Array.from({ length: count }, (_, i) => endOf(i)));
    expect(data.every((m) => m.metrics.every((x) => !x.historical))).toBe(true);
    expect(data[5].metrics).toEqual([
      expect.objectContaining({ name: 'a/temperature', type: 'Double', value: 20.05 }),
      expect.objectContaining({ name: 'b/humidity', value: 40 }),
    ]);
    // A window without readings: the metric is null, not a made-up number.
    expect(data[7].metrics[1]).toMatchObject({ name: 'b/humidity', value: null });

    await node.stop();
    await subscriber.waitFor((s) => ofType(s, 'NDEATH').length === 1, 30_000, 'NDEATH');
    expect(bdSeqOf(ofType(subscriber, 'NDEATH')[0])).toBe(bdSeqOf(birth));
    // The stop ended with DISCONNECT, so the broker dropped the Will: no second NDEATH by the
    // time the broker has handled the disconnect and a marker published after it is back.
    await nodeDisconnected(broker);
    await subscriber.settle();
    expect(ofType(subscriber, 'NDEATH')).toHaveLength(1);
  });

  it('under MQTT 5 a clean stop disconnects with reason 0x04 and the broker publishes the NDEATH (once, with the birth bdSeq)', async () => {
    const { broker, subscriber, start } = await setup({}, {}, {}, 5);
    const node = await start();
    await subscriber.waitFor((s) => ofType(s, 'NBIRTH').length === 1, 30_000, 'NBIRTH');
    node.submit(body(0));
    await subscriber.waitFor((s) => ofType(s, 'NDATA').length === 1, 30_000, 'NDATA');
    await node.stop();
    await subscriber.waitFor((s) => ofType(s, 'NDEATH').length === 1, 30_000, 'NDEATH');
    await nodeDisconnected(broker);
    await subscriber.settle();
    const all = received(subscriber);
    expect(all.map((m) => m.type)).toEqual(['NBIRTH', 'NDATA', 'NDEATH']);
    expect(bdSeqOf(all[2])).toBe(bdSeqOf(all[0]));
  });

  it('answers a Node Control/Rebirth NCMD with a new NBIRTH (seq 0, same bdSeq); NDATA continues at seq 1', async () => {
    const { subscriber, start } = await setup();
    const node = await start();
    await subscriber.waitFor((s) => ofType(s, 'NBIRTH').length === 1, 30_000, 'NBIRTH');
    node.submit(body(0));
    node.submit(body(1));
    await subscriber.waitFor((s) => ofType(s, 'NDATA').length === 2, 30_000, 'two NDATA');

    subscriber.client.publish('spBv1.0/plant/NCMD/gw', encodeRebirthCommand(), { qos: 0 });
    await subscriber.waitFor((s) => ofType(s, 'NBIRTH').length === 2, 30_000, 'the rebirth');
    node.submit(body(2));
    await subscriber.waitFor((s) => ofType(s, 'NDATA').length === 3, 30_000, 'NDATA after it');

    const all = received(subscriber);
    expect(all.map((m) => `${m.type}:${m.seq}`)).toEqual([
      'NBIRTH:0',
      'NDATA:1',
      'NDATA:2',
      'NBIRTH:0',
      'NDATA:1',
    ]);
    expect(bdSeqOf(all[3])).toBe(bdSeqOf(all[0]));
    expect(all[3].metrics.map((m) => m.name)).toContain('a/temperature');
  });

  it('with primaryHostId publishes nothing until STATE says online; offline ends the session with NDEATH; online again gives an NBIRTH with the stored windows flagged historical', async () => {
    const { subscriber, start } = await setup({ primaryHostId: 'scada' });
    const node = await start();
    const state = (online: boolean, timestamp: number) =>
      subscriber.client.publishAsync('spBv1.0/STATE/scada', JSON.stringify({ online, timestamp }), {
        qos: 1,
        retain: true,
      });
    await waitUntil(() => node.status().connected, { timeoutMs: 30_000, what: 'node connected' });
    for (let i = 0; i < 3; i++) node.submit(body(i));
    await waitUntil(() => node.status().stored === 3, { timeoutMs: 30_000, what: '3 stored' });
    // No host yet: nothing, by the time a marker published after the node connected is back.
    await subscriber.settle();
    expect(received(subscriber)).toEqual([]);

    await state(true, 1000);
    await subscriber.waitFor((s) => ofType(s, 'NDATA').length === 3, 30_000, 'backlog');
    node.submit(body(3));
    await subscriber.waitFor((s) => ofType(s, 'NDATA').length === 4, 30_000, 'live NDATA');
    let all = received(subscriber);
    expect(all.map((m) => `${m.type}:${m.seq}`)).toEqual([
      'NBIRTH:0',
      'NDATA:1',
      'NDATA:2',
      'NDATA:3',
      'NDATA:4',
    ]);
    expect(all.slice(1, 4).every((m) => m.metrics.every((x) => x.historical))).toBe(true);
    expect(all[4].metrics.some((x) => x.historical)).toBe(false);

    // A STATE older than the last one seen is stale (Sparkplug 3.0): ignored, as are STATEs
    // that are not JSON or not an object. The NCMD sent after them shows the session still
    // up: its answer is an NBIRTH with the same bdSeq.
    for (const stale of [JSON.stringify({ online: false, timestamp: 500 }), 'null', 'offline']) {
      await subscriber.client.publishAsync('spBv1.0/STATE/scada', stale, { qos: 1 });
    }
    await subscriber.client.publishAsync('spBv1.0/plant/NCMD/gw', encodeRebirthCommand(), {
      qos: 1,
    });
    await subscriber.waitFor((s) => ofType(s, 'NBIRTH').length === 2, 30_000, 'the rebirth');
    all = received(subscriber);
    expect(all.slice(5).map((m) => m.type)).toEqual(['NBIRTH']);
    expect(bdSeqOf(all[5])).toBe(bdSeqOf(all[0]));

    await state(false, 2000);
    await waitUntil(() => !node.status().hostOnline, { timeoutMs: 30_000, what: 'host offline' });
    node.submit(body(4));
    node.submit(body(5));
    await waitUntil(() => node.status().stored === 2, { timeoutMs: 30_000, what: '2 stored' });
    // Sparkplug 3.0: the session ended with its NDEATH; the node connects again and waits.
    await subscriber.waitFor((s) => ofType(s, 'NDEATH').length === 1, 30_000, 'NDEATH');
    // Connected again and told the host is offline: no NBIRTH, no NDATA by the time a marker
    // published after that is back.
    await waitUntil(() => node.status().connected, { timeoutMs: 30_000, what: 'reconnected' });
    await subscriber.settle();
    all = received(subscriber);
    expect(all.slice(6).map((m) => m.type)).toEqual(['NDEATH']);
    expect(bdSeqOf(all[6])).toBe(bdSeqOf(all[0]));

    await state(true, 3000);
    await subscriber.waitFor((s) => ofType(s, 'NDATA').length === 6, 30_000, 'second backlog');
    all = received(subscriber);
    expect(all.slice(7).map((m) => `${m.type}:${m.seq}`)).toEqual([
      'NBIRTH:0',
      'NDATA:1',
      'NDATA:2',
    ]);
    expect(bdSeqOf(all[7])).not.toBe(bdSeqOf(all[0]));
    expect(ends(all.slice(8))).toEqual([endOf(4), endOf(5)]);
    expect(all.slice(8).every((m) => m.metrics.every((x) => x.historical))).toBe(true);
    expect(node.status().stored).toBe(0);
  });

  it('stores windows while the broker is killed and publishes them after the new NBIRTH, historical, in order, none missing', async () => {
    const { broker, subscriber, subscribedAt, start } = await setup(
      {},
      PERSISTENT_BROKER,
      PERSISTENT_SUBSCRIBER,
    );
    const node = await start();
    await subscriber.waitFor((s) => ofType(s, 'NBIRTH').length === 1, 30_000, 'NBIRTH');
    node.submit(body(0));
    await subscriber.waitFor((s) => ofType(s, 'NDATA').length === 1, 30_000, 'live NDATA');
    await databaseSavedAfter(broker, subscribedAt);

    await broker.kill();
    await waitUntil(() => !node.status().connected, { timeoutMs: 30_000, what: 'node sees it' });
    for (let i = 1; i <= 3; i++) node.submit(body(i));
    await waitUntil(() => node.status().stored === 3, { timeoutMs: 30_000, what: '3 stored' });
    await broker.restart();
    await subscriber.waitFor((s) => ofType(s, 'NDATA').length === 4, 60_000, 'the backlog');
    node.submit(body(4));
    await subscriber.waitFor((s) => ofType(s, 'NDATA').length === 5, 30_000, 'live again');

    const all = received(subscriber);
    expect(all.map((m) => `${m.type}:${m.seq}`)).toEqual([
      'NBIRTH:0',
      'NDATA:1',
      'NBIRTH:0',
      'NDATA:1',
      'NDATA:2',
      'NDATA:3',
      'NDATA:4',
    ]);
    expect(bdSeqOf(all[2])).not.toBe(bdSeqOf(all[0]));
    expect(ends(ofType(subscriber, 'NDATA'))).toEqual([0, 1, 2, 3, 4].map(endOf));
    expect(all.slice(3, 6).every((m) => m.metrics.every((x) => x.historical))).toBe(true);
    expect(all[6].metrics.some((x) => x.historical)).toBe(false);
  });

  it('with mqtt.urls moves to the next broker when its broker is killed: a new NBIRTH there, then the windows stored meanwhile, historical', async () => {
    const [first, second] = [await spawnMosquitto(), await spawnMosquitto()];
    t.add(
      () => first.close(),
      () => second.close(),
    );
    const [onFirst, onSecond] = [
      await startSubscriber({ url: first.url, topics: ['spBv1.0/#'] }),
      await startSubscriber({ url: second.url, topics: ['spBv1.0/#'] }),
    ];
    t.add(
      () => onFirst.close(),
      () => onSecond.close(),
    );
    const stateDir = t.tempDir('sparkplug-');
    const config = validateConfig(
      {
        gateway: { id: 'gw' },
        mqtt: { urls: [first.url, second.url], reconnectMinMs: 200, reconnectMaxMs: 1000 },
        sparkplug: { enabled: true, groupId: 'plant' },
      },
      'test',
    );
    const node = await startNode(config, stateDir);
    await onFirst.waitFor((s) => ofType(s, 'NBIRTH').length === 1, 30_000, 'NBIRTH on the first');
    node.submit(body(0));
    await onFirst.waitFor((s) => ofType(s, 'NDATA').length === 1, 30_000, 'NDATA on the first');

    await first.kill();
    await waitUntil(() => !node.status().connected, { timeoutMs: 30_000, what: 'node sees it' });
    for (let i = 1; i <= 3; i++) node.submit(body(i));
    await onSecond.waitFor(
      (s) => ofType(s, 'NDATA').length === 3,
      60_000,
      'the backlog, on the second',
    );
    expect(node.status().broker).toBe(second.url);

    const there = received(onSecond);
    expect(there.map((m) => `${m.type}:${m.seq}`)).toEqual([
      'NBIRTH:0',
      'NDATA:1',
      'NDATA:2',
      'NDATA:3',
    ]);
    expect(bdSeqOf(there[0])).not.toBe(bdSeqOf(ofType(onFirst, 'NBIRTH')[0]));
    expect(ends(there.slice(1))).toEqual([1, 2, 3].map(endOf));
    expect(there.slice(1).every((m) => m.metrics.every((x) => x.historical))).toBe(true);
  });

  it('keeps stored windows across a restart of the node and publishes them historical after its NBIRTH', async () => {
    const { broker, subscriber, subscribedAt, start } = await setup(
      {},
      PERSISTENT_BROKER,
      PERSISTENT_SUBSCRIBER,
    );
    const first = await start();
    await subscriber.waitFor((s) => ofType(s, 'NBIRTH').length === 1, 30_000, 'NBIRTH');
    await databaseSavedAfter(broker, subscribedAt);
    await broker.kill();
    await waitUntil(() => !first.status().connected, { timeoutMs: 30_000, what: 'disconnect' });
    for (let i = 0; i < 3; i++) first.submit(body(i));
    await first.stop();
    await broker.restart();
    const second = await start();
    await subscriber.waitFor((s) => ofType(s, 'NDATA').length === 3, 60_000, 'stored windows');
    const all = received(subscriber);
    const after = all.slice(all.findLastIndex((m) => m.type === 'NBIRTH'));
    expect(after.map((m) => `${m.type}:${m.seq}`)).toEqual([
      'NBIRTH:0',
      'NDATA:1',
      'NDATA:2',
      'NDATA:3',
    ]);
    expect(ends(after.slice(1))).toEqual([0, 1, 2].map(endOf));
    expect(after.slice(1).every((m) => m.metrics.every((x) => x.historical))).toBe(true);
    expect(second.status().stored).toBe(0);
  });
});
