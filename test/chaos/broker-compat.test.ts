/**
 * The broker compatibility table (docs/brokers.md), one test per cell: mosquitto, nats-server's
 * MQTT listener, the embedded Aedes and RabbitMQ's MQTT plugin, each a real broker on a
 * loopback port, asked the same questions — which MQTT version the agent ends up speaking
 * (mqtt.protocolVersion unset) and whether the broker announces a Maximum Packet Size,
 * whether QoS 2 is kept, whether the status is retained, whether the Last Will is published
 * when the agent dies, whether a persistent session survives a broker restart, and whether
 * every seq reaches a persistent subscriber across one. Failover is in
 * publisher-failover.test.ts (mosquitto) and cluster.test.ts (NATS cluster).
 *
 * A RabbitMQ node takes seconds to start: it is started once for the file and each test uses
 * its own gateway id, so nothing one test leaves retained is seen by another.
 */
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../simulator/broker.js';
import { startAedes } from '../helpers/aedes.js';
import { spawnMosquitto } from '../helpers/mosquitto.js';
import { natsServerPath, spawnNats } from '../helpers/nats.js';
import { runTs } from '../helpers/process.js';
import { rabbitmqMissing, RabbitMqUnavailable, spawnRabbitMq } from '../helpers/rabbitmq.js';
import { missingSeqs, type TestSubscriber } from '../helpers/subscriber.js';
import { useTeardown } from '../helpers/teardown.js';
import { sleep, waitUntil } from '../helpers/wait.js';
import { windowBody } from '../agent/publish/bodies.js';
import { makePublisher, type Harness } from '../agent/publish/setup.js';

const publisherProcess = fileURLToPath(
  new URL('../agent/publish/fixtures/publisher-process.ts', import.meta.url),
);
const t = useTeardown();

/** The packet limit the mosquitto under test is given, to see whether CONNACK announces it. */
const MOSQUITTO_MAX_PACKET = 200_000;

interface Broker {
  url: string;
  /** What the test names the broker by in its messages (e.g. RabbitMQ's version). */
  version?: string;
  /** Stop and start again on the same port, keeping whatever the broker keeps on disk. */
  restart(): Promise<void>;
  close(): Promise<unknown>;
}

interface Expected {
  protocolVersion: 4 | 5;
  /** How the broker turns MQTT 5 down: refused in CONNACK, or the connection closed on it. */
  refuses5?: 'in CONNACK' | 'by closing';
  maxPacketBytes: number | undefined;
  /**
   * mqtt.qos: 2 — kept; refused (the agent publishes at QoS 1 and says so); or taken by the
   * broker at QoS 1 (acknowledged with a PUBACK, delivered at QoS 1: the agent cannot tell).
   */
  qos2: 'kept' | 'refused' | 'taken as QoS 1';
  sessionAfterRestart: boolean;
}

/** A broker started once for the file (several seconds to start): stopped after all tests. */
function oncePerFile(start: () => Promise<Broker>): () => Promise<Broker> {
  let broker: Promise<Broker> | undefined;
  afterAll(async () => {
    const b = await broker?.catch(() => undefined);
    await b?.close();
  });
  return async () => {
    broker ??= start();
    const b = await broker;
    // Closed after all tests, not after each.
    return { ...b, close: async () => undefined };
  };
}

const BROKERS: {
  name: string;
  skip: string | undefined;
  start: () => Promise<Broker>;
  /** Started once for the file (oncePerFile), before its first test. */
  startsOnce?: true;
  expected: Expected;
}[] = [
  {
    name: 'mosquitto',
    skip: undefined,
    start: () =>
      spawnMosquitto({
        persistence: true,
        extraConfig: [`max_packet_size ${MOSQUITTO_MAX_PACKET}`],
      }),
    expected: {
      protocolVersion: 5,
      maxPacketBytes: MOSQUITTO_MAX_PACKET,
      qos2: 'kept',
      sessionAfterRestart: true,
    },
  },
  {
    name: 'NATS',
    skip: natsServerPath() ? undefined : 'nats-server is not installed (.ci/run installs it)',
    start: async () => {
      const nats = await spawnNats();
      return { url: nats.mqttUrl, restart: nats.restart, close: nats.close };
    },
    expected: {
      protocolVersion: 4,
      refuses5: 'in CONNACK',
      maxPacketBytes: undefined,
      qos2: 'refused',
      sessionAfterRestart: true,
    },
  },
  {
    name: 'Aedes (embedded)',
    skip: undefined,
    start: async () => {
      let broker: EmbeddedBroker = await startAedes();
      return {
        url: broker.url,
        async restart() {
          await broker.close();
          broker = await startEmbeddedBroker({ host: '127.0.0.1', port: broker.port });
        },
        close: () => broker.close(),
      };
    },
    expected: {
      protocolVersion: 4,
      refuses5: 'in CONNACK',
      maxPacketBytes: undefined,
      qos2: 'kept',
      sessionAfterRestart: false,
    },
  },
  {
    name: 'RabbitMQ',
    skip: rabbitmqMissing(),
    startsOnce: true,
    start: oncePerFile(async () => {
      const rabbit = await spawnRabbitMq();
      return {
        url: rabbit.mqttUrl,
        version: rabbit.version,
        restart: rabbit.restart,
        close: rabbit.close,
      };
    }),
    expected: {
      protocolVersion: 4,
      refuses5: 'by closing',
      maxPacketBytes: undefined,
      qos2: 'taken as QoS 1',
      sessionAfterRestart: true,
    },
  },
];

const skipsSaid = new Set<string>();
/** The broker started (or the one of the file); skips the test where it cannot start here. */
async function started(start: () => Promise<Broker>, ctx: TestContext): Promise<Broker> {
  let b: Broker;
  try {
    b = await start();
  } catch (err) {
    if (!(err instanceof RabbitMqUnavailable)) throw err;
    if (!skipsSaid.has(err.message)) console.log(`skipping: ${err.message}`);
    skipsSaid.add(err.message);
    return ctx.skip(err.message);
  }
  t.add(() => b.close());
  return b;
}

/** A gateway id of its own per test: a broker shared by the file keeps what others retained. */
let gateways = 0;
const nextGateway = () => `gw${++gateways}`;
function publisher(options: Parameters<typeof makePublisher>[0]): Harness {
  const h = makePublisher(options);
  t.add(() => h.dispose());
  return h;
}

/** A persistent (clean: false) QoS 1 subscriber connection; resolves with CONNACK's sessionPresent. */
function connectPersistent(
  url: string,
  clientId: string,
  received: string[],
): Promise<{ client: mqtt.MqttClient; sessionPresent: boolean }> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url, {
      clientId,
      clean: false,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
    });
    client.on('message', (_topic, payload) => received.push(payload.toString()));
    client.once('connect', (connack) =>
      resolve({ client, sessionPresent: connack.sessionPresent }),
    );
    client.once('error', reject);
  });
}

/** The once-said line of a fallback to MQTT 3.1.1, by how the broker turned 5 down. */
const FALLBACK_SAID = {
  'in CONNACK': /^the broker does not speak MQTT 5: using MQTT 3\.1\.1/,
  'by closing':
    /^the broker closed the connection on our MQTT 5 CONNECT without answering, and accepts MQTT 3\.1\.1/,
};
const fallbackLines = (h: Harness) => h.log.records.filter((r) => /using MQTT 3\.1\.1/.test(r.msg));

for (const broker of BROKERS) {
  if (broker.skip) console.log(`skipping the ${broker.name} compatibility tests: ${broker.skip}`);
  describe.skipIf(broker.skip !== undefined)(`broker compatibility: ${broker.name}`, () => {
    const { expected } = broker;
    // Its start (tens of seconds on a loaded machine) outside any test's time; a failure
    // to start comes back to each test from started().
    if (broker.startsOnce)
      beforeAll(
        () =>
          broker.start().then(
            () => undefined,
            () => undefined,
          ),
        180_000,
      );

    it(`MQTT ${expected.protocolVersion === 5 ? '5' : `3.1.1 (5 refused ${expected.refuses5})`} with mqtt.protocolVersion unset, Maximum Packet Size ${expected.maxPacketBytes === undefined ? 'not announced' : 'announced'}`, async (ctx) => {
      const b = await started(broker.start, ctx);
      const h = publisher({ gateway: nextGateway(), mqtt: { url: b.url } });
      h.publisher.start();
      await waitUntil(() => h.publisher.stats().connected, {
        timeoutMs: 30_000,
        what: 'connected',
      });
      expect(h.publisher.stats().protocolVersion).toBe(expected.protocolVersion);
      const connected = h.log.records.find((r) => r.msg === 'connected to the MQTT broker');
      expect(connected?.brokerMaxPacketBytes).toBe(expected.maxPacketBytes);
      const said = fallbackLines(h).map((r) => r.msg);
      if (expected.refuses5 === undefined) expect(said).toEqual([]);
      else {
        expect(said).toHaveLength(1);
        expect(said[0]).toMatch(FALLBACK_SAID[expected.refuses5]);
      }
    });

    it.skipIf(expected.refuses5 !== 'by closing')(
      'mqtt.protocolVersion: 5 where the broker closes on MQTT 5: said once, naming the setting',
      async (ctx) => {
        const b = await started(broker.start, ctx);
        const h = publisher({
          gateway: nextGateway(),
          mqtt: { url: b.url, protocolVersion: 5, reconnectMinMs: 50, reconnectMaxMs: 200 },
        });
        h.publisher.start();
        await waitUntil(() => h.publisher.stats().connectFailures >= 3, {
          timeoutMs: 30_000,
          what: 'three closed attempts',
        });
        const said = h.log.records.filter((r) => /may not speak MQTT 5/.test(r.msg));
        expect(said).toHaveLength(1);
        expect(said[0].msg).toMatch(/Set mqtt\.protocolVersion: 4, or leave it unset/);
        expect(h.publisher.stats()).toMatchObject({ connected: false, protocolVersion: 5 });
      },
    );

    it(`QoS 2: ${expected.qos2 === 'refused' ? 'refused: said once naming the broker and mqtt.qos, then QoS 1' : expected.qos2}`, async (ctx) => {
      const b = await started(broker.start, ctx);
      const gateway = nextGateway();
      const sub = await t.subscriber({
        url: b.url,
        topics: [`edge/${gateway}/telemetry`],
        qos: 2,
      });
      const h = publisher({ gateway, mqtt: { url: b.url, qos: 2 } });
      h.publisher.start();
      const seqs: number[] = [];
      for (let i = 0; i < 3; i++) seqs.push(await h.publisher.submit(windowBody(i)));
      await sub.waitFor(
        (s) => seqs.every((q) => s.telemetrySeqs().includes(q)),
        30_000,
        '3 batches',
      );
      expect(h.publisher.stats().qos).toBe(expected.qos2 === 'refused' ? 1 : 2);
      const delivered = new Set(sub.messages.map((m) => m.qos));
      expect([...delivered]).toEqual([expected.qos2 === 'kept' ? 2 : 1]);
      const said = h.log.records.filter((r) => /refuses QoS 2/.test(r.msg));
      if (expected.qos2 !== 'refused') expect(said).toEqual([]);
      else {
        expect(said).toHaveLength(1);
        expect(said[0].msg).toContain(b.url);
        expect(said[0].msg).toMatch(/Set mqtt\.qos: 1/);
      }
    });

    it('retained status: a subscriber that comes later gets "online"', async (ctx) => {
      const b = await started(broker.start, ctx);
      const gateway = nextGateway();
      const h = publisher({ gateway, mqtt: { url: b.url } });
      h.publisher.start();
      await waitUntil(() => h.publisher.stats().connected, {
        timeoutMs: 30_000,
        what: 'connected',
      });
      const late = await t.subscriber({ url: b.url, topics: [`edge/${gateway}/status`] });
      await late.waitFor((s) => s.messages.length > 0, 20_000, 'the retained status');
      expect(late.messages[0]).toMatchObject({ retain: true, json: { state: 'online' } });
    });

    it('Last Will: SIGKILL of the agent leaves a retained "offline, connection-lost"', async (ctx) => {
      const b = await started(broker.start, ctx);
      const gateway = nextGateway();
      const stateDir = t.tempDir('compat-will-');
      const p = runTs(publisherProcess, [
        JSON.stringify({ url: b.url, stateDir, gateway, everyMs: 100 }),
      ]);
      t.add(() => p.kill());
      await p.waitForLine(/^connected$/, 30_000);
      expect(await p.kill('SIGKILL')).toBe('SIGKILL');
      const offline = (s: TestSubscriber) => s.messages.some((m) => m.json?.state === 'offline');
      // This one may subscribe before the broker notices the close and hear the Will live;
      // once it has, a subscriber that comes later must get it retained.
      const first = await t.subscriber({ url: b.url, topics: [`edge/${gateway}/status`] });
      await first.waitFor(offline, 30_000, 'the Last Will');
      const sub = await t.subscriber({ url: b.url, topics: [`edge/${gateway}/status`] });
      await sub.waitFor(offline, 30_000, 'the retained Last Will');
      const will = sub.messages.find((m) => m.json?.state === 'offline');
      expect(will).toMatchObject({
        retain: true,
        json: { state: 'offline', reason: 'connection-lost' },
      });
    });

    it(`persistent session across a broker restart: ${expected.sessionAfterRestart ? 'kept, with what was published meanwhile' : 'lost'}`, async (ctx) => {
      const b = await started(broker.start, ctx);
      const gateway = nextGateway();
      const received: string[] = [];
      const first = await connectPersistent(b.url, `compat-persistent-${gateway}`, received);
      await first.client.subscribeAsync(`edge/${gateway}/telemetry`, { qos: 1 });
      await first.client.endAsync();
      await b.restart();
      // Published while the subscriber is away, after the restart.
      const h = publisher({ gateway, mqtt: { url: b.url } });
      h.publisher.start();
      const seq = await h.publisher.submit(windowBody(0));
      await waitUntil(() => h.publisher.stats().published === 1, {
        timeoutMs: 30_000,
        what: 'the batch acknowledged',
      });
      const again = await connectPersistent(b.url, `compat-persistent-${gateway}`, received);
      t.add(() => again.client.endAsync(true));
      expect(again.sessionPresent).toBe(expected.sessionAfterRestart);
      if (expected.sessionAfterRestart) {
        await waitUntil(() => received.some((m) => m.includes(`"seq":${seq},`)), {
          timeoutMs: 20_000,
          what: 'the batch published while the subscriber was away',
        });
      }
    });

    it.skipIf(!expected.sessionAfterRestart)(
      `every seq to a persistent subscriber across a broker restart, mqtt.protocolVersion unset (MQTT ${expected.protocolVersion === 5 ? '5' : '3.1.1'} again after it)`,
      async (ctx) => {
        const b = await started(broker.start, ctx);
        const gateway = nextGateway();
        const sub = await t.subscriber({
          url: b.url,
          topics: [`edge/${gateway}/telemetry`],
          clientId: `compat-restart-${gateway}`,
          clean: false,
        });
        const h = publisher({ gateway, mqtt: { url: b.url } });
        h.publisher.start();
        await waitUntil(() => h.publisher.stats().connected, {
          timeoutMs: 30_000,
          what: 'connected',
        });
        // Batches before, during and after the restart.
        let last = 0;
        let stop = false;
        const submitting = (async () => {
          for (let i = 0; i < 2000 && !stop; i++) {
            last = await h.publisher.submit(windowBody(i));
            await sleep(50);
          }
        })();
        try {
          await b.restart();
          await waitUntil(() => h.publisher.stats().reconnects >= 1, {
            timeoutMs: 60_000,
            what: 'reconnected after the restart',
          });
        } finally {
          stop = true;
          await submitting;
        }
        for (let i = 0; i < 3; i++) last = await h.publisher.submit(windowBody(i));
        await sub.waitFor(
          (s) => missingSeqs(s.telemetrySeqs(), last).length === 0,
          60_000,
          `every seq up to ${last}`,
        );
        const stats = h.publisher.stats();
        expect(stats.reconnects).toBeGreaterThanOrEqual(1);
        expect(stats.protocolVersion).toBe(expected.protocolVersion);
        expect(missingSeqs(sub.telemetrySeqs(), last)).toEqual([]);
        // Said once, however many connections it took.
        expect(fallbackLines(h)).toHaveLength(expected.refuses5 === undefined ? 0 : 1);
        if (expected.refuses5 === 'by closing') {
          // MQTT 5 asked again on the connection after the restart, not given up for good.
          const tried = h.log.records.filter((r) => /trying MQTT 3\.1\.1$/.test(r.msg));
          expect(tried.length).toBeGreaterThanOrEqual(2);
        }
      },
    );
  });
}
