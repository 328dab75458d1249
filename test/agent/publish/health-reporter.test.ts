import { afterEach, describe, expect, it } from 'vitest';
import { HealthReporter } from '../../../agent/publish/health-reporter.js';
import { spawnMosquitto } from '../../helpers/mosquitto.js';
import { startSubscriber } from '../../helpers/subscriber.js';
import { schemaErrors, validateHealth } from './schemas.js';
import { capturingLogger, makePublisher } from './setup.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('HealthReporter', () => {
  it('publishes the provider’s counters on the health topic on its cron schedule', async () => {
    const broker = await spawnMosquitto();
    cleanups.push(() => broker.close());
    const sub = await startSubscriber({ url: broker.url, topics: ['edge/gw/health'] });
    cleanups.push(() => sub.close());
    const h = makePublisher({ mqtt: { url: broker.url } });
    cleanups.push(() => h.dispose());
    let calls = 0;
    const reporter = new HealthReporter(
      '* * * * * *',
      () => {
        calls++;
        const s = h.publisher.stats();
        return {
          readings: calls * 10,
          reconnects: s.reconnects,
          spool: { depth: s.spool.depth, bytes: s.spool.bytes, dropped: s.spool.dropped },
          faults: { 'dead-probe': 3 },
        };
      },
      h.publisher,
      h.log.logger,
    );
    cleanups.push(() => reporter.stop());
    h.publisher.start();
    reporter.start();
    await sub.waitFor((s) => s.messages.length >= 2, 15_000, 'two health reports');
    const [first, second] = sub.messages.map((m) => m.json!);
    expect(first).toMatchObject({
      schema: 'edge-agent/health/1',
      gateway: 'gw',
      faults: { 'dead-probe': 3 },
    });
    expect((second.readings as number) > (first.readings as number)).toBe(true);
    expect(schemaErrors(validateHealth, first)).toBe('');
    await reporter.stop();
    const after = sub.messages.length;
    await new Promise((r) => setTimeout(r, 2500));
    expect(sub.messages.length).toBe(after);
  });

  it('counts reports it could not send, survives a throwing provider, rejects a bad schedule', () => {
    const { logger, records } = capturingLogger();
    const sent: object[] = [];
    let online = false;
    let fail = false;
    const reporter = new HealthReporter(
      '*/30 * * * * *',
      () => {
        if (fail) throw new Error('provider broke');
        return { readings: 1 };
      },
      { publishHealth: (r) => (online ? (sent.push(r), true) : false) },
      logger,
    );
    expect(reporter.report()).toBe(false);
    expect(reporter.report()).toBe(false);
    online = true;
    expect(reporter.report()).toBe(true);
    expect(sent[0]).toEqual({ readings: 1, healthSkipped: 2 });
    fail = true;
    expect(reporter.report()).toBe(false);
    expect(records.some((r) => r.msg === 'health provider failed')).toBe(true);
    expect(
      () => new HealthReporter('not a cron', () => ({}), { publishHealth: () => true }, logger),
    ).toThrow(/health.schedule/);
  });
});
