/**
 * Chaos: a broker cluster loses the node the agent is on (issue 12, part 3). A real 3-node
 * nats-server cluster (JetStream, MQTT streams replicated on every node), the publisher
 * given all three as mqtt.urls, a persistent QoS 1 subscriber on another node. The node the
 * publisher is connected to is SIGKILLed while batches flow: the publisher must move to a
 * surviving node by itself, and the subscriber must see every seq, with no gap.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { natsServerPath, spawnNatsCluster, type NatsCluster } from '../helpers/nats.js';
import { missingSeqs, startSubscriber, type TestSubscriber } from '../helpers/subscriber.js';
import { sleep, waitUntil } from '../helpers/wait.js';
import { windowBody } from '../agent/publish/bodies.js';
import { makePublisher, type Harness } from '../agent/publish/setup.js';

const nats = natsServerPath();
if (!nats)
  console.log('skipping the NATS cluster test: nats-server is not installed (.ci/run installs it)');

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** The cluster node a broker URL (as the publisher reports it) points at. */
function nodeOf(cluster: NatsCluster, broker: string) {
  const node = cluster.nodeByPort(Number(new URL(broker).port));
  if (!node) throw new Error(`${broker} is not a node of the cluster`);
  return node;
}

describe('chaos: a broker cluster loses a node', () => {
  it.skipIf(!nats)(
    'SIGKILL of the node the publisher is on: it moves to another node and a persistent QoS 1 subscriber sees every seq',
    async () => {
      const cluster = await spawnNatsCluster(3);
      cleanups.push(() => cluster.close());
      // The subscriber sits on the last node; the publisher starts on the first (mqtt.urls order).
      const sub: TestSubscriber = await startSubscriber({
        url: cluster.mqttUrls[2],
        topics: ['edge/gw/telemetry'],
        clientId: 'cluster-sub',
        clean: false,
      });
      cleanups.push(() => sub.close());
      const h: Harness = makePublisher({
        mqtt: { urls: cluster.mqttUrls, reconnectMinMs: 200, reconnectMaxMs: 2000 },
      });
      cleanups.push(() => h.dispose());
      h.publisher.start();
      await waitUntil(() => h.publisher.stats().connected, {
        timeoutMs: 30_000,
        what: 'the publisher connected to the cluster',
      });
      const first = nodeOf(cluster, h.publisher.stats().broker);
      expect(first.name).toBe('n1');

      // Batches keep coming while the node dies, as they would from the aggregation worker.
      let producing = true;
      let lastSeq = 0;
      const producer = (async () => {
        for (let i = 0; producing && i < 2000; i++) {
          lastSeq = await h.publisher.submit(windowBody(i));
          await sleep(50);
        }
      })();
      cleanups.push(async () => {
        producing = false;
        await producer;
      });

      await sub.waitFor(
        (s) => s.telemetrySeqs().length >= 10,
        30_000,
        '10 batches before the kill',
      );
      const publishedBefore = h.publisher.stats().published;
      await first.kill();
      const seqAtKill = lastSeq;

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
      await sub.waitFor(
        (s) => missingSeqs(s.telemetrySeqs(), lastSeq).length === 0,
        60_000,
        `every seq up to ${lastSeq}`,
      );
      expect(missingSeqs(sub.telemetrySeqs(), lastSeq)).toEqual([]);
      expect(h.publisher.stats().setAside).toBe(0);

      // The log says which broker was lost and which one the agent is on now.
      const lost = h.log.records.find((r) => r.msg === 'MQTT connection lost; reconnecting');
      expect(lost).toMatchObject({ broker: first.mqttUrl });
      const connects = h.log.records.filter((r) => r.msg === 'connected to the MQTT broker');
      expect(connects[0]).toMatchObject({ broker: first.mqttUrl, brokerIndex: 0 });
      expect(connects.at(-1)).toMatchObject({ broker: now.mqttUrl });
    },
    240_000,
  );
});
