import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { HealthReporter } from '../../../agent/publish/health-reporter.js';
import type { HealthReport } from '../../../agent/publish/health.js';
import { spawnMosquitto } from '../../helpers/mosquitto.js';
import { startSimPipeline, type SimPipeline } from '../../helpers/sim-pipeline.js';
import { startSubscriber } from '../../helpers/subscriber.js';
import { sampleHealth } from './health-sample.js';
import { schemaErrors, validateHealth } from './schemas.js';
import { capturingLogger } from '../../helpers/logger.js';
import { useTeardown } from '../../helpers/teardown.js';
import { makePublisher } from './setup.js';

const t = useTeardown();

describe('HealthReporter', () => {
  it('publishes the provider’s report on the health topic on its cron schedule', async () => {
    const broker = await spawnMosquitto();
    t.add(() => broker.close());
    const sub = await startSubscriber({ url: broker.url, topics: ['edge/gw/health'] });
    t.add(() => sub.close());
    const h = makePublisher({ mqtt: { url: broker.url } });
    t.add(() => h.dispose());
    let calls = 0;
    const reporter = new HealthReporter(
      '* * * * * *',
      () => {
        calls++;
        const report = sampleHealth({ publisher: h.publisher.stats(), now: Date.now() });
        return { ...report, readings: calls * 10 };
      },
      h.publisher,
      h.log.logger,
    );
    t.add(() => reporter.stop());
    h.publisher.start();
    reporter.start();
    await sub.waitFor((s) => s.messages.length >= 2, 15_000, 'two health reports');
    const [first, second] = sub.messages.map((m) => m.json!);
    expect(first).toMatchObject({
      schema: 'edge-agent/health/1',
      gateway: 'gw',
      faults: { 'boiler-in': 0, 'boiler-out': 9 },
    });
    expect((second.readings as number) > (first.readings as number)).toBe(true);
    expect(schemaErrors(validateHealth, first)).toBe('');
    await reporter.stop();
    const after = sub.messages.length;
    // A second reporter on the same schedule and connection, started after the stop, fires on
    // the same seconds and its reports come through the same connection in order: a stopped
    // reporter still firing would show between its first and third report. (Before the
    // first, a report sent just before the stop may still be on its way.)
    const marker = new HealthReporter(
      '* * * * * *',
      () => ({
        ...sampleHealth({ publisher: h.publisher.stats(), now: Date.now() }),
        readings: -1,
      }),
      h.publisher,
      h.log.logger,
    );
    t.add(() => marker.stop());
    marker.start();
    const since = () => sub.messages.slice(after).map((m) => m.json?.readings);
    await sub.waitFor(
      () => since().filter((r) => r === -1).length >= 3,
      15_000,
      'three reports of the second reporter',
    );
    const got = since();
    const firstMarker = got.indexOf(-1);
    const thirdMarker = got.indexOf(-1, got.indexOf(-1, firstMarker + 1) + 1);
    expect(got.slice(firstMarker, thirdMarker + 1)).toEqual([-1, -1, -1]);
  });

  it('counts reports it could not send, survives a throwing provider, rejects a bad schedule', () => {
    const { logger, records } = capturingLogger();
    const sent: HealthReport[] = [];
    let online = false;
    let fail = false;
    const reporter: HealthReporter = new HealthReporter(
      '*/30 * * * * *',
      () => {
        if (fail) throw new Error('provider broke');
        return sampleHealth({ healthSkipped: reporter.skipped });
      },
      { publishHealth: (r) => (online ? (sent.push(r), true) : false) },
      logger,
    );
    expect(reporter.report()).toBe(false);
    expect(reporter.report()).toBe(false);
    online = true;
    expect(reporter.report()).toBe(true);
    expect(sent[0].healthSkipped).toBe(2);
    fail = true;
    expect(reporter.report()).toBe(false);
    expect(records.some((r) => r.msg === 'health provider failed')).toBe(true);
    expect(
      () => new HealthReporter('not a cron', sampleHealth, { publishHealth: () => true }, logger),
    ).toThrow(/health.schedule/);
  });
});

describe('health payload of a running agent', () => {
  let sim: SimPipeline | undefined;
  afterEach(async () => {
    await sim?.close();
    sim = undefined;
  });

  it('matches docs/payload.md and its strict JSON Schema, field for field', async () => {
    sim = await startSimPipeline({
      sensors: 2,
      config: { health: { schedule: '* * * * * *' }, aggregation: { windowMs: 1000 } },
      sensor: { intervalMs: 100, timeoutMs: 500 },
    });
    const { subscriber, http } = sim;
    http.inject(1, 'http-500');
    const failing = sim.sensorId(1);
    const health = () => subscriber.on('/health').map((m) => m.json!);
    const knowsFailure = (h: Record<string, unknown>) =>
      (h.sensors as Array<{ id: string; faults: number }>).some(
        (s) => s.id === failing && s.faults > 0,
      );
    // A report that already knows the failing sensor's error.
    await subscriber.waitFor(
      () => health().some(knowsFailure),
      20_000,
      'a health report counting the failing sensor',
    );
    const report = health().find(knowsFailure)!;

    for (const h of health()) expect(schemaErrors(validateHealth, h)).toBe('');
    // The documented names: top-level faults, reconnects and oldestUnsentAgeMs; p50/p99/max.
    expect(report).toMatchObject({
      schema: 'edge-agent/health/1',
      gateway: 'gw',
      drops: { ring: 0, spool: 0 },
      reconnects: 0,
      // A report due before the first connect is skipped and counted; how many depends on
      // how fast the machine connects (counting itself is the test above).
      healthSkipped: expect.any(Number),
    });
    expect(Object.keys(report.faults as object).sort()).toEqual([sim.sensorId(0), failing]);
    expect(Object.keys(report.eventLoopDelayMs as object).sort()).toEqual([
      'max',
      'mean',
      'p50',
      'p99',
    ]);
    expect(typeof report.oldestUnsentAgeMs).toBe('number');
    const sensors = report.sensors as Array<Record<string, unknown>>;
    expect(sensors.find((s) => s.id === failing)!.lastError).toMatchObject({ code: 'PROTOCOL' });
    // A sensor without an error says so with null: the field is never left out.
    expect(sensors.every((s) => s.lastError === null || typeof s.lastError === 'object')).toBe(
      true,
    );

    // The schema is closed at every level: an unknown or a missing field fails it.
    const objects = (v: unknown, path: string[] = []): string[][] =>
      v !== null && typeof v === 'object' && !Array.isArray(v)
        ? [path, ...Object.entries(v).flatMap(([k, x]) => objects(x, [...path, k]))]
        : Array.isArray(v)
          ? v.flatMap((x, i) => objects(x, [...path, String(i)]))
          : [];
    const at = (root: Record<string, unknown>, path: string[]) =>
      path.reduce<Record<string, unknown>>((o, k) => o[k] as Record<string, unknown>, root);
    const closed = objects(report).filter((p) => p[0] !== 'faults'); // faults: keys are sensor ids
    expect(closed.length).toBeGreaterThan(8);
    for (const path of closed) {
      const copy = structuredClone(report);
      at(copy, path).unexpected = 1;
      expect(validateHealth(copy), `unknown field under ${path.join('.') || '(top)'}`).toBe(false);
      for (const key of Object.keys(at(report, path))) {
        const without = structuredClone(report);
        delete at(without, path)[key];
        expect(validateHealth(without), `missing ${[...path, key].join('.')}`).toBe(false);
      }
    }
  });
});

describe('health contract documents', () => {
  it('docs/payload.md lists exactly the schema’s fields', () => {
    const doc = readFileSync(new URL('../../../docs/payload.md', import.meta.url), 'utf8');
    const section = /## Health[^\n]*\n([\s\S]*?)\n## /.exec(doc)![1];
    const documented = section
      .split('\n')
      .filter((l) => l.startsWith('| `'))
      .flatMap((l) => [...l.split('|')[1].matchAll(/`([A-Za-z0-9]+)`/g)].map((m) => m[1]));
    const schema = JSON.parse(
      readFileSync(new URL('../../../docs/schemas/health.schema.json', import.meta.url), 'utf8'),
    ) as { required: string[]; properties: Record<string, unknown> };
    expect(documented.sort()).toEqual(Object.keys(schema.properties).sort());
    expect([...schema.required].sort()).toEqual(Object.keys(schema.properties).sort());
    expect(Object.keys(sampleHealth()).sort()).toEqual(Object.keys(schema.properties).sort());
  });
});
