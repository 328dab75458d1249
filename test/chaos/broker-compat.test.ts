/**
 * The broker compatibility table (docs/brokers.md), one test per cell: mosquitto, nats-server's
 * MQTT listener and the embedded Aedes, each a real broker on a loopback port, asked the same
 * questions — which MQTT version the agent ends up speaking and whether the broker announces
 * a Maximum Packet Size, whether QoS 2 is kept, whether the status is retained, whether the
 * Last Will is published when the agent dies, and whether a persistent session survives a
 * broker restart. Failover is in publisher-failover.test.ts (mosquitto) and cluster.test.ts
 * (NATS cluster).
 */
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { describe, expect, it } from 'vitest';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../simulator/broker.js';
import { startAedes } from '../helpers/aedes.js';
import { spawnMosquitto } from '../helpers/mosquitto.js';
import { natsServerPath, spawnNats } from '../helpers/nats.js';
import { runTs } from '../helpers/process.js';
import { waitUntil } from '../helpers/wait.js';
import { useTeardown } from '../helpers/teardown.js';
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
  /** Stop and start again on the same port, keeping whatever the broker keeps on disk. */
  restart(): Promise<void>;
  close(): Promise<unknown>;
}

interface Expected {
  protocolVersion: 4 | 5;
  maxPacketBytes: number | undefined;
  qos2: boolean;
  sessionAfterRestart: boolean;
}

const BROKERS: {
  name: string;
  skip: string | undefined;
  start: () => Promise<Broker>;
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
      qos2: true,
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
      maxPacketBytes: undefined,
      qos2: false,
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
      maxPacketBytes: undefined,
      qos2: true,
      sessionAfterRestart: false,
    },
  },
];

const started = async (start: () => Promise<Broker>): Promise<Broker> => t.own(await start());
const publisher = (options: Parameters<typeof makePublisher>[0]): Harness =>
  t.own(makePublisher(options), (h) => h.dispose());

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

for (const broker of BROKERS) {
  describe.skipIf(broker.skip !== undefined)(`broker compatibility: ${broker.name}`, () => {
    const { expected } = broker;

    it(`MQTT ${expected.protocolVersion === 5 ? '5' : '3.1.1'} (mqtt.protocolVersion unset), Maximum Packet Size ${expected.maxPacketBytes === undefined ? 'not announced' : 'announced'}`, async () => {
      const b = await started(broker.start);
      const h = publisher({ mqtt: { url: b.url } });
      h.publisher.start();
      await waitUntil(() => h.publisher.stats().connected, { what: 'connected' });
      expect(h.publisher.stats().protocolVersion).toBe(expected.protocolVersion);
      const connected = h.log.records.find((r) => r.msg === 'connected to the MQTT broker');
      expect(connected?.brokerMaxPacketBytes).toBe(expected.maxPacketBytes);
    });

    it(`QoS 2 ${expected.qos2 ? 'kept' : 'refused: said once naming the broker and mqtt.qos, then QoS 1'}`, async () => {
      const b = await started(broker.start);
      const sub = await t.subscriber({ url: b.url, topics: ['edge/gw/telemetry'] });
      const h = publisher({ mqtt: { url: b.url, qos: 2 } });
      h.publisher.start();
      const seqs: number[] = [];
      for (let i = 0; i < 3; i++) seqs.push(await h.publisher.submit(windowBody(i)));
      await sub.waitFor(
        (s) => seqs.every((q) => s.telemetrySeqs().includes(q)),
        30_000,
        '3 batches',
      );
      expect(h.publisher.stats().qos).toBe(expected.qos2 ? 2 : 1);
      const said = h.log.records.filter((r) => /refuses QoS 2/.test(r.msg));
      if (expected.qos2) expect(said).toEqual([]);
      else {
        expect(said).toHaveLength(1);
        expect(said[0].msg).toContain(b.url);
        expect(said[0].msg).toMatch(/Set mqtt\.qos: 1/);
      }
    });

    it('retained status: a subscriber that comes later gets "online"', async () => {
      const b = await started(broker.start);
      const h = publisher({ mqtt: { url: b.url } });
      h.publisher.start();
      await waitUntil(() => h.publisher.stats().connected, { what: 'connected' });
      const late = await t.subscriber({ url: b.url, topics: ['edge/gw/status'] });
      await late.waitFor((s) => s.messages.length > 0, 20_000, 'the retained status');
      expect(late.messages[0]).toMatchObject({ retain: true, json: { state: 'online' } });
    });

    it('Last Will: SIGKILL of the agent leaves a retained "offline, connection-lost"', async () => {
      const b = await started(broker.start);
      const stateDir = t.tempDir('compat-will-');
      const p = runTs(publisherProcess, [JSON.stringify({ url: b.url, stateDir, everyMs: 100 })]);
      t.add(() => p.kill());
      await p.waitForLine(/^connected$/, 30_000);
      expect(await p.kill('SIGKILL')).toBe('SIGKILL');
      const sub = await t.subscriber({ url: b.url, topics: ['edge/gw/status'] });
      await sub.waitFor(
        (s) => s.messages.some((m) => m.json?.state === 'offline'),
        30_000,
        'the Last Will',
      );
      const will = sub.messages.find((m) => m.json?.state === 'offline');
      expect(will).toMatchObject({
        retain: true,
        json: { state: 'offline', reason: 'connection-lost' },
      });
    });

    it(`persistent session across a broker restart: ${expected.sessionAfterRestart ? 'kept, with what was published meanwhile' : 'lost'}`, async () => {
      const b = await started(broker.start);
      const received: string[] = [];
      const first = await connectPersistent(b.url, 'compat-persistent', received);
      await first.client.subscribeAsync('edge/gw/telemetry', { qos: 1 });
      await first.client.endAsync();
      await b.restart();
      // Published while the subscriber is away, after the restart.
      const h = publisher({ mqtt: { url: b.url } });
      h.publisher.start();
      const seq = await h.publisher.submit(windowBody(0));
      await waitUntil(() => h.publisher.stats().published === 1, {
        what: 'the batch acknowledged',
      });
      const again = await connectPersistent(b.url, 'compat-persistent', received);
      t.add(() => again.client.endAsync(true));
      expect(again.sessionPresent).toBe(expected.sessionAfterRestart);
      if (expected.sessionAfterRestart) {
        await waitUntil(() => received.some((m) => m.includes(`"seq":${seq},`)), {
          timeoutMs: 20_000,
          what: 'the batch published while the subscriber was away',
        });
      }
    });
  });
}
