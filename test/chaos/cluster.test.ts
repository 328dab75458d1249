/**
 * A broker cluster (issue 12, part 3): a real 3-node nats-server cluster (JetStream, MQTT
 * streams replicated on every node). What one node is told, another node's subscriber gets
 * (telemetry, the retained status, the Last Will); QoS 2 is refused on every node. Last, the
 * node the publisher is on (given all three as mqtt.urls) is SIGKILLed while batches flow:
 * the publisher must move to a surviving node by itself, and a persistent QoS 1 subscriber
 * on another node must see every seq, with no gap.
 */
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { natsServerPath, spawnNatsCluster, type NatsCluster } from '../helpers/nats.js';
import { runTs } from '../helpers/process.js';
import { missingSeqs, type TestSubscriber } from '../helpers/subscriber.js';
import { sleep, waitUntil } from '../helpers/wait.js';
import { useTeardown } from '../helpers/teardown.js';
import { windowBody } from '../agent/publish/bodies.js';
import { makePublisher, type Harness } from '../agent/publish/setup.js';

const publisherProcess = fileURLToPath(
  new URL('../agent/publish/fixtures/publisher-process.ts', import.meta.url),
);
const nats = natsServerPath();
if (!nats)
  console.log('skipping the NATS cluster test: nats-server is not installed (.ci/run installs it)');

const t = useTeardown();
const publisher = (options: Parameters<typeof makePublisher>[0]): Harness =>
  t.own(makePublisher(options), (h) => h.dispose());

/** The cluster node a broker URL (as the publisher reports it) points at. */
function nodeOf(cluster: NatsCluster, broker: string) {
  const node = cluster.nodeByPort(Number(new URL(broker).port));
  if (!node) throw new Error(`${broker} is not a node of the cluster`);
  return node;
}

/**
 * A persistent (clean: false) QoS 1 subscriber of the telemetry topic; resolves once the
 * subscription is granted, with CONNACK's sessionPresent flag; rejects when the node closes
 * or refuses the connection or the subscription.
 */
function persistentSubscriber(
  url: string,
  clientId: string,
  seqs: number[],
): Promise<{ client: mqtt.MqttClient; sessionPresent: boolean }> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url, {
      clientId,
      clean: false,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
    });
    client.on('message', (_topic, payload) => {
      const seq = (JSON.parse(payload.toString()) as { seq?: unknown }).seq;
      if (typeof seq === 'number') seqs.push(seq);
    });
    client.on('error', () => undefined);
    client.once('close', () => reject(new Error(`${url} closed the connection`)));
    client.once('connect', (connack) => {
      // Resolved once the broker granted the subscription (NATS creates its consumer first).
      client.subscribe('edge/gw/telemetry', { qos: 1 }, (err, granted) => {
        if (err || granted?.[0]?.qos !== 1) {
          client.end(true);
          reject(err ?? new Error(`${url} did not grant the QoS 1 subscription`));
        } else resolve({ client, sessionPresent: connack.sessionPresent });
      });
    });
  });
}

describe.skipIf(!nats)('a 3-node NATS cluster', () => {
  // One cluster for the file: starting one takes seconds. The node-loss test runs last.
  let cluster: NatsCluster;
  beforeAll(async () => {
    cluster = await spawnNatsCluster(3);
  }, 240_000);
  afterAll(async () => {
    await cluster?.close();
  });

  it('MQTT 3.1.1, no Maximum Packet Size, no QoS 2: with qos: 2 it says so once, naming the node, and publishes at QoS 1', async () => {
    const sub = await t.subscriber({
      url: cluster.mqttUrls[2],
      topics: ['edge/gw-qos/telemetry'],
    });
    const h = publisher({ gateway: 'gw-qos', mqtt: { urls: cluster.mqttUrls, qos: 2 } });
    h.publisher.start();
    const seqs: number[] = [];
    for (let i = 0; i < 3; i++) seqs.push(await h.publisher.submit(windowBody(i)));
    await sub.waitFor(
      (s) => seqs.every((q) => s.telemetrySeqs().includes(q)),
      60_000,
      '3 batches on another node',
    );
    expect(h.publisher.stats()).toMatchObject({ protocolVersion: 4, qos: 1, setAside: 0 });
    const connected = h.log.records.find((r) => r.msg === 'connected to the MQTT broker');
    expect(connected).toBeDefined();
    expect(connected?.brokerMaxPacketBytes).toBeUndefined();
    const said = h.log.records.filter((r) => /refuses QoS 2/.test(r.msg));
    expect(said).toHaveLength(1);
    expect(cluster.mqttUrls.some((url) => said[0].msg.includes(url))).toBe(true);
  });

  it('the retained status published on one node is what a later subscriber on another node gets', async () => {
    const h = publisher({ gateway: 'gw-status', mqtt: { url: cluster.mqttUrls[0] } });
    h.publisher.start();
    await waitUntil(() => h.publisher.stats().connected, { timeoutMs: 30_000, what: 'connected' });
    const late = await t.subscriber({
      url: cluster.mqttUrls[2],
      topics: ['edge/gw-status/status'],
    });
    await late.waitFor((s) => s.messages.length > 0, 30_000, 'the retained status');
    expect(late.messages[0]).toMatchObject({ retain: true, json: { state: 'online' } });
  });

  it('SIGKILL of an agent connected to one node: a subscriber on another node gets the retained Last Will', async () => {
    const stateDir = t.tempDir('cluster-will-');
    const args = { url: cluster.mqttUrls[0], stateDir, gateway: 'gw-will', everyMs: 100 };
    const p = runTs(publisherProcess, [JSON.stringify(args)]);
    t.add(() => p.kill());
    await p.waitForLine(/^connected$/, 30_000);
    expect(await p.kill('SIGKILL')).toBe('SIGKILL');
    const sub = await t.subscriber({
      url: cluster.mqttUrls[1],
      topics: ['edge/gw-will/status'],
    });
    await sub.waitFor(
      (s) => s.messages.some((m) => m.json?.state === 'offline'),
      30_000,
      'the Last Will',
    );
    expect(sub.messages.find((m) => m.json?.state === 'offline')).toMatchObject({
      retain: true,
      json: { state: 'offline', reason: 'connection-lost' },
    });
  });

  it('SIGKILL of the node the publisher is on: it moves to another node; persistent QoS 1 subscribers, on another node and on the lost one (back on another), see every seq', async () => {
    // The subscriber sits on the last node; the publisher starts on the first (mqtt.urls order).
    const sub: TestSubscriber = await t.subscriber({
      url: cluster.mqttUrls[2],
      topics: ['edge/gw/telemetry'],
      clientId: 'cluster-sub',
      clean: false,
    });
    const h = publisher({
      mqtt: { urls: cluster.mqttUrls, reconnectMinMs: 200, reconnectMaxMs: 2000 },
    });
    h.publisher.start();
    await waitUntil(() => h.publisher.stats().connected, {
      timeoutMs: 30_000,
      what: 'the publisher connected to the cluster',
    });
    const first = nodeOf(cluster, h.publisher.stats().broker);
    expect(first.name).toBe('n1');
    // A second persistent subscriber sits on the node that will die.
    const onLostNode: number[] = [];
    const lostSub = await persistentSubscriber(first.mqttUrl, 'cluster-sub-lost-node', onLostNode);
    t.add(() => lostSub.client.endAsync(true));

    // Batches keep coming while the node dies, as they would from the aggregation worker.
    let producing = true;
    let lastSeq = 0;
    const producer = (async () => {
      for (let i = 0; producing && i < 2000; i++) {
        lastSeq = await h.publisher.submit(windowBody(i));
        await sleep(50);
      }
    })();
    t.add(async () => {
      producing = false;
      await producer;
    });

    await sub.waitFor((s) => s.telemetrySeqs().length >= 10, 30_000, '10 batches before the kill');
    const publishedBefore = h.publisher.stats().published;
    await first.kill();
    const seqAtKill = lastSeq;
    lostSub.client.end(true);
    const seenBeforeMove = [...onLostNode];
    // Its session lives on in the cluster: back on another node, nothing is missing.
    let moved: Awaited<ReturnType<typeof persistentSubscriber>> | undefined;
    await waitUntil(
      async () => {
        moved = await persistentSubscriber(
          cluster.mqttUrls[1],
          'cluster-sub-lost-node',
          onLostNode,
        ).catch(() => undefined);
        return moved !== undefined;
      },
      { timeoutMs: 90_000, intervalMs: 1000, what: "the lost node's subscriber back on n2" },
    );
    t.add(() => moved!.client.endAsync(true));
    expect(moved?.sessionPresent).toBe(true);

    await waitUntil(
      () => {
        const s = h.publisher.stats();
        return s.connected && s.published > publishedBefore + 5;
      },
      { timeoutMs: 90_000, intervalMs: 200, what: 'the publisher publishing on another node' },
    );
    const now = nodeOf(cluster, h.publisher.stats().broker);
    expect(now.name).not.toBe(first.name);
    expect(now.running()).toBe(true);
    await sub.waitFor(
      (s) => Math.max(0, ...s.telemetrySeqs()) >= seqAtKill + 10,
      60_000,
      '10 batches made after the kill',
    );
    producing = false;
    await producer;
    await waitUntil(() => h.publisher.stats().spool.depth === 0, {
      timeoutMs: 60_000,
      what: 'the spool drained',
    });
    await sub
      .waitFor(
        (s) => missingSeqs(s.telemetrySeqs(), lastSeq).length === 0,
        60_000,
        `every seq up to ${lastSeq}`,
      )
      .catch((err: Error) => {
        throw new Error(
          `${err.message}: missing ${JSON.stringify(missingSeqs(sub.telemetrySeqs(), lastSeq))}, at the kill ${seqAtKill}`,
        );
      });
    expect(missingSeqs(sub.telemetrySeqs(), lastSeq)).toEqual([]);
    await waitUntil(() => missingSeqs(onLostNode, lastSeq).length === 0, {
      timeoutMs: 60_000,
      what: `every seq up to ${lastSeq} for the subscriber that was on the lost node`,
    }).catch((err: Error) => {
      throw new Error(
        `${err.message}: missing ${JSON.stringify(missingSeqs(onLostNode, lastSeq))}, at the kill ${seqAtKill}, seen before the move ${JSON.stringify(seenBeforeMove)}`,
      );
    });
    expect(h.publisher.stats().setAside).toBe(0);

    // The log says which broker was lost and which one the agent is on now.
    const lost = h.log.records.find((r) => r.msg === 'MQTT connection lost; reconnecting');
    expect(lost).toMatchObject({ broker: first.mqttUrl });
    const connects = h.log.records.filter((r) => r.msg === 'connected to the MQTT broker');
    expect(connects[0]).toMatchObject({ broker: first.mqttUrl, brokerIndex: 0 });
    expect(connects.at(-1)).toMatchObject({ broker: now.mqttUrl });
  }, 240_000);
});
