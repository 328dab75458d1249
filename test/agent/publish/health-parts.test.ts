/**
 * Health fits the broker's packet limit (issue 22, item 5): a report larger than the broker
 * takes travels in parts, each a complete report of the gateway's own figures with a share of
 * the sensors, and never costs the connection — under MQTT 5 (the limit announced in CONNACK)
 * and under 3.1.1 (where a broker refuses by closing the connection).
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  HEALTH_FLOOR_BYTES,
  HealthSender,
  planHealth,
  type TelemetryTerms,
} from '../../../agent/publish/health-parts.js';
import { silentLogger } from '../../../agent/ops/logger.js';
import type { HealthReport } from '../../../agent/publish/health.js';
import { spawnMosquitto } from '../../helpers/mosquitto.js';
import { startSimPipeline, type SimPipeline } from '../../helpers/sim-pipeline.js';
import { startSubscriber } from '../../helpers/subscriber.js';
import { waitUntil } from '../../helpers/wait.js';
import { windowBody } from './bodies.js';
import { makePublisher } from './setup.js';
import type { ReceivedMessage } from '../../helpers/subscriber.js';
import { startTcpProxy } from '../../helpers/tcp-proxy.js';
import { useTeardown } from '../../helpers/teardown.js';
import { sampleHealth, sampleSensor } from './health-sample.js';
import { schemaErrors, validateHealth } from './schemas.js';

/** A report of `n` sensors, some with an error (the largest entries). */
function reportOf(n: number): HealthReport {
  const sensors = Array.from({ length: n }, (_, i) =>
    sampleSensor({
      id: `sensor-${i}`,
      readings: 1000 + i,
      faults: i % 3,
      ...(i % 5 === 0
        ? {
            lastError: {
              code: 'TIMEOUT',
              message: 'no answer within 500 ms',
              at: 1_764_287_999_000,
            },
          }
        : {}),
    }),
  );
  return sampleHealth({ sensors });
}

const parse = (b: Buffer) => JSON.parse(b.toString('utf8')) as Record<string, unknown>;
const { sensors: _s, faults: _f, part: _p, parts: _n, ...figures } = reportOf(0);
const gatewayFigures = (r: object) =>
  Object.fromEntries(Object.keys(figures).map((k) => [k, (r as Record<string, unknown>)[k]]));

describe('planHealth', () => {
  it('sends a report that fits whole, as part 1 of 1, and one with no limit whole whatever its size', () => {
    const small = planHealth('gw', reportOf(2), 7, 4000);
    expect(small.kind).toBe('send');
    const [only] = small.kind === 'send' ? small.payloads : [];
    expect(parse(only)).toMatchObject({ part: 1, parts: 1, t: 7 });
    expect(schemaErrors(validateHealth, parse(only))).toBe('');
    const big = planHealth('gw', reportOf(200), 7, undefined);
    expect(big.kind === 'send' && big.payloads.length).toBe(1);
  });

  it('splits a report over the limit into parts within it: each a valid report of the gateway figures, every sensor once, in order', () => {
    const report = reportOf(40);
    const limit = 2500 - 10 - 'edge/gw/health'.length;
    const plan = planHealth('gw', report, 7, limit);
    expect(plan.kind).toBe('send');
    const payloads = plan.kind === 'send' ? plan.payloads : [];
    expect(payloads.length).toBeGreaterThan(2);
    const parts = payloads.map(parse);
    for (const [i, p] of parts.entries()) {
      expect(payloads[i].length).toBeLessThanOrEqual(limit);
      expect(schemaErrors(validateHealth, p)).toBe('');
      expect(p).toMatchObject({ part: i + 1, parts: payloads.length, t: 7 });
      expect(gatewayFigures(p)).toEqual({ ...gatewayFigures(report), t: 7 });
      const ids = (p.sensors as Array<{ id: string }>).map((s) => s.id);
      expect(Object.keys(p.faults as object)).toEqual(ids);
    }
    const merged = parts.flatMap((p) => p.sensors as HealthReport['sensors']);
    expect(merged).toEqual(report.sensors);
    expect(Object.assign({}, ...parts.map((p) => p.faults))).toEqual(report.faults);
  });

  it('gives up, saying how many bytes one sensor with the gateway figures needs, when even that does not fit', () => {
    const plan = planHealth('gw', reportOf(40), 7, 600);
    expect(plan).toMatchObject({ kind: 'too-large', limit: 600 });
    expect(plan.kind === 'too-large' && plan.bytes).toBeGreaterThan(600);
  });
});

describe('health under a broker packet limit (mosquitto max_packet_size 2500, 40 sensors)', () => {
  let sim: SimPipeline | undefined;
  afterEach(async () => {
    await sim?.close();
    sim = undefined;
  });

  const SENSORS = 40;
  const MAX_PACKET = 2500;

  /** Reports (by t) of which every part arrived, merged. */
  function completeReports(messages: ReceivedMessage[]) {
    const byT = new Map<number, Map<number, Record<string, unknown>>>();
    for (const m of messages) {
      const j = m.json!;
      const parts = byT.get(j.t as number) ?? new Map<number, Record<string, unknown>>();
      parts.set(j.part as number, j);
      byT.set(j.t as number, parts);
    }
    return [...byT.values()]
      .filter((ps) => {
        const of = [...ps.values()][0].parts as number;
        return ps.size === of;
      })
      .map((ps) => [...ps.values()].sort((a, b) => (a.part as number) - (b.part as number)));
  }

  /** Telemetry seqs up to the highest seen, each whole or in all its parts. */
  function telemetry(messages: ReceivedMessage[]) {
    const got = new Map<number, { of: number; parts: Set<number> }>();
    for (const m of messages) {
      const j = m.json!;
      const seq = j.seq as number;
      const e = got.get(seq) ?? { of: (j.parts as number | undefined) ?? 0, parts: new Set() };
      e.parts.add((j.part as number | undefined) ?? 0);
      got.set(seq, e);
    }
    const last = Math.max(0, ...got.keys());
    const incomplete: number[] = [];
    for (let seq = 1; seq <= last; seq++) {
      const e = got.get(seq);
      if (!e || (e.of === 0 ? !e.parts.has(0) : e.parts.size !== e.of)) incomplete.push(seq);
    }
    return { last, incomplete };
  }

  it.each([
    { version: 5 as const, mqtt: {}, batch: {} },
    // 3.1.1 without refusals: batches below the limit (as the agent's log advises), so any
    // close would be health's.
    { version: 4 as const, mqtt: { protocolVersion: 4 as const }, batch: { maxBytes: 2000 } },
  ])(
    'MQTT $version: every report arrives in parts within the limit, the connection is never dropped, telemetry complete',
    async ({ version, mqtt, batch }) => {
      sim = await startSimPipeline({
        sensors: SENSORS,
        config: {
          health: { schedule: '* * * * * *' },
          aggregation: { windowMs: 1000 },
          mqtt,
          batch,
        },
        sensor: { intervalMs: 1000, timeoutMs: 500 },
        mosquitto: { extraConfig: [`max_packet_size ${MAX_PACKET}`] },
      });
      const { subscriber, pipeline, broker } = sim;
      const health = () => subscriber.on('/health');
      // Positive events: three whole reports, each covering every sensor.
      await subscriber.waitFor(
        () => completeReports(health()).length >= 3,
        45_000,
        'three complete health reports',
      );
      for (const m of health()) {
        expect(m.payload.length + 'edge/gw/health'.length + 10).toBeLessThanOrEqual(MAX_PACKET);
        expect(schemaErrors(validateHealth, m.json)).toBe('');
      }
      const reports = completeReports(health());
      for (const parts of reports) {
        const ids = parts.flatMap((p) => (p.sensors as Array<{ id: string }>).map((s) => s.id));
        expect(ids.sort()).toEqual(Array.from({ length: SENSORS }, (_, i) => `http-${i}`).sort());
      }
      expect(reports.some((parts) => parts.length > 1)).toBe(true);
      // Not one reconnect, as the reports themselves say and the publisher counts.
      expect(reports.flat().map((p) => p.reconnects)).toEqual(reports.flat().map(() => 0));
      const stats = pipeline.health();
      expect(stats.reconnects).toBe(0);
      expect(stats.mqtt).toMatchObject({
        protocolVersion: version,
        refusals: 0,
        connectFailures: 0,
      });
      expect(broker.log()).not.toMatch(/oversize|exceeded/i);
      // Telemetry: every seq up to the latest whole or in all its parts.
      const upTo = telemetry(subscriber.on('/telemetry')).last;
      await subscriber.waitFor(
        () => telemetry(subscriber.on('/telemetry')).incomplete.every((s) => s > upTo),
        20_000,
        `every telemetry batch up to seq ${upTo} complete`,
      );
      const sensorsSeen = new Set(
        subscriber
          .on('/telemetry')
          .flatMap((m) => (m.json!.windows as Array<{ sensor: string }>).map((w) => w.sensor)),
      );
      expect(sensorsSeen.size).toBe(SENSORS);
    },
    90_000,
  );
});

describe('HealthSender limit', () => {
  const terms = (over: Partial<TelemetryTerms> = {}): TelemetryTerms => ({
    protocolVersion: 4,
    limit: undefined,
    largestAcked: 0,
    ...over,
  });

  it('MQTT 5: the announced Maximum Packet Size less the PUBLISH overhead; none announced, none', () => {
    const h = new HealthSender('gw', 'edge/gw/health', silentLogger);
    expect(h.limit(terms({ protocolVersion: 5 }))).toBeUndefined();
    h.connected(2500);
    expect(h.limit(terms({ protocolVersion: 5 }))).toBe(2500 - 10 - 'edge/gw/health'.length);
  });

  it('MQTT 3.1.1: what telemetry learned, else the largest size acknowledged, at least 2 KiB', () => {
    const h = new HealthSender('gw', 'edge/gw/health', silentLogger);
    h.connected(undefined);
    expect(h.limit(terms())).toBe(HEALTH_FLOOR_BYTES);
    expect(h.limit(terms({ largestAcked: 1900 }))).toBe(HEALTH_FLOOR_BYTES);
    expect(h.limit(terms({ largestAcked: 3000 }))).toBe(3000);
    expect(h.limit(terms({ largestAcked: 3000, limit: 1536 }))).toBe(1536);
    // Nothing in flight: a close is not health's.
    expect(h.closed(terms())).toBe(false);
  });
});

describe('health under MQTT 3.1.1 and a limit below what the gateway assumes (mosquitto max_packet_size 1800)', () => {
  const teardown = useTeardown();

  it('two closes in a row on a health part teach the limit: later reports arrive in smaller parts, the closes are not held against telemetry', async () => {
    const broker = await spawnMosquitto({ extraConfig: ['max_packet_size 1800'] });
    teardown.add(() => broker.close());
    const sub = await startSubscriber({ url: broker.url, topics: ['edge/gw/#'] });
    teardown.add(() => sub.close());
    const h = makePublisher({ mqtt: { url: broker.url, protocolVersion: 4 } });
    teardown.add(() => h.dispose());
    h.publisher.start();
    await waitUntil(() => h.publisher.stats().connected, { what: 'connected' });
    // A telemetry batch the broker takes: 1.5 KB are known to pass.
    const seq = await h.publisher.submit(windowBody(0, { readings: 12 }));
    await sub.waitFor(() => sub.telemetrySeqs().includes(seq), 10_000, `batch ${seq}`);
    const report = reportOf(12);
    // Cut to the assumed 2 KiB, its parts are over the broker's limit: it closes on one.
    // One close is not proof (closes come for other reasons too); the second in a row is.
    for (const closes of [1, 2]) {
      await waitUntil(() => h.publisher.stats().connected, { what: 'connected' });
      expect(h.publisher.learnedLimits()).toEqual({});
      expect(h.publisher.publishHealth(report)).toBe(true);
      await waitUntil(() => h.publisher.stats().reconnects === closes, {
        what: `close ${closes} and the reconnect`,
      });
    }
    const learned = h.log.records.find((r) => r.msg.includes('health goes in parts of at most'));
    expect(learned?.payloadLimitBytes).toBeLessThan(1800);
    expect(h.publisher.learnedLimits().healthBytes).toBe(learned?.payloadLimitBytes);
    // Later reports: every part arrives.
    const t = (m: ReceivedMessage) => m.json!.t as number;
    const before = Math.max(0, ...sub.on('/health').map(t));
    await waitUntil(
      () => {
        h.publisher.publishHealth(report);
        const after = sub.on('/health').filter((m) => t(m) > before);
        const last = after.at(-1);
        return (
          last !== undefined && after.filter((m) => t(m) === t(last)).length === last.json!.parts
        );
      },
      { timeoutMs: 20_000, intervalMs: 500, what: 'a complete health report after the close' },
    );
    expect(h.publisher.stats()).toMatchObject({ reconnects: 2, refusals: 0, splits: 0 });
    // Forgotten on the operator's word (edge-agent spool forget-limit), and said in the log.
    expect(h.publisher.forgetLearnedLimits()).toEqual({
      healthBytes: learned?.payloadLimitBytes,
    });
    expect(h.publisher.learnedLimits()).toEqual({});
    expect(h.log.messages()).toContain(
      'learned packet limits forgotten: messages go at full size again',
    );
  }, 60_000);
});

describe('health under MQTT 3.1.1 when the broker closes for reasons other than size', () => {
  const teardown = useTeardown();

  it('a broker that takes the connection, answers no publish and closes it, twice with health in flight: no limit learned, reports go whole again', async () => {
    const broker = await teardown.mosquitto({});
    const proxy = teardown.own(await startTcpProxy(broker.port));
    const sub = await teardown.subscriber({ url: broker.url, topics: ['edge/gw/health'] });
    const h = makePublisher({ mqtt: { url: proxy.url, protocolVersion: 4 } });
    teardown.add(() => h.dispose());
    h.publisher.start();
    await waitUntil(() => h.publisher.stats().connected, { what: 'connected' });
    // Larger than every size known to pass (nothing of health acknowledged yet).
    const report = reportOf(12);
    const floorParts = planHealth('gw', report, Date.now(), HEALTH_FLOOR_BYTES);
    expect(floorParts.kind).toBe('send');
    // A cluster node without its quorum: new sessions get a CONNACK and no answer after it.
    proxy.answerConnackOnly(true);
    for (const closes of [1, 2]) {
      proxy.cut();
      await waitUntil(
        () => h.publisher.stats().connected && h.publisher.stats().reconnects === closes,
        { what: `reconnect ${closes}` },
      );
      expect(h.publisher.publishHealth(report)).toBe(true);
    }
    proxy.answerConnackOnly(false);
    proxy.cut();
    await waitUntil(() => h.publisher.stats().connected && h.publisher.stats().reconnects === 3, {
      what: 'reconnect 3, answered again',
    });
    expect(h.publisher.learnedLimits()).toEqual({});
    expect(h.log.messages().join('\n')).not.toContain('health goes in parts of at most');
    // Reports still go in the parts of the 2 KiB any broker takes, and arrive complete.
    const t = (m: ReceivedMessage) => m.json!.t as number;
    await waitUntil(
      () => {
        h.publisher.publishHealth(report);
        const last = sub.on('/health').at(-1);
        return (
          last !== undefined &&
          sub.on('/health').filter((m) => t(m) === t(last)).length === last.json!.parts
        );
      },
      { timeoutMs: 20_000, intervalMs: 500, what: 'a complete health report' },
    );
    const last = sub.on('/health').at(-1)!;
    expect(last.json!.parts).toBe(
      floorParts.kind === 'send' ? floorParts.payloads.length : Number.NaN,
    );
  }, 60_000);
});
