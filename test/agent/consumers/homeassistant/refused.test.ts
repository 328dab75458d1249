/**
 * A broker whose ACL makes the discovery prefix read-only for the gateway, and which closes
 * the connection after refusing a QoS 1 publish (mosquitto 2.0 with `max_queued_messages 0`,
 * as the helper sets it): the refused discovery is not announced again on every reconnect, so
 * the telemetry connection stays up; the refusal is logged once and shows in health; Home
 * Assistant's birth message, the `announce` command and a reload that changes the sensors
 * each try once more. MQTT 5 (a PUBACK
 * reason code) and MQTT 3.1.1 (acknowledged as if delivered, then the connection closed).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { validateConfig, type ConfigInput } from '../../../../agent/config/load.js';
import { capturingLogger, type CapturedLog } from '../../../helpers/logger.js';
import { startSimPipeline, type SimPipeline } from '../../../helpers/sim-pipeline.js';
import { useTeardown } from '../../../helpers/teardown.js';

const t = useTeardown();

/**
 * Batches to receive before each check: the positive event the bounds are read after. The
 * first wait is longer, so that a connection reconnecting after every discovery (with the
 * session's backoff of 0.5 s and more) would exceed the bound.
 */
const FIRST_BATCHES = 16;
const BATCHES = 6;
/** Reconnects caused by the discovery before it is held back: one (MQTT 5), two (3.1.1). */
const HOLD_AFTER = { 5: 1, 4: 2 } as const;
/** Allowance for one backoff retry (a minute after the refusal) on a slow run. */
const RETRY_ALLOWANCE = 1;

const warnings = (log: CapturedLog) =>
  log.records.filter((r) => r.level === 40 && r.msg.startsWith('Home Assistant discovery refused'));
const refusedAgain = (log: CapturedLog) =>
  log.records.filter((r) => r.msg === 'Home Assistant discovery refused again');

/** The agent's MQTT settings on the ACL'd broker. */
function mqttSettings(protocolVersion: 4 | 5) {
  const dir = t.tempDir('ha-refused-');
  const passwordFile = join(dir, 'pw');
  writeFileSync(passwordFile, 'gw-secret\n');
  return { protocolVersion, username: 'gw', passwordFile };
}

async function start(
  mqtt: ReturnType<typeof mqttSettings>,
  log: CapturedLog,
): Promise<SimPipeline> {
  return t.own(
    await startSimPipeline({
      sensors: 2,
      config: {
        aggregation: { windowMs: 500 },
        homeassistant: { enabled: true },
        mqtt,
      },
      sensor: { intervalMs: 100 },
      logger: log.logger,
      mosquitto: {
        users: { gw: 'gw-secret', ha: 'ha-secret' },
        // The test's own subscriber is anonymous; max_queued_messages stays 0 (the helper's).
        extraConfig: ['allow_anonymous true'],
        acl: [
          'topic readwrite #',
          'user gw',
          'topic readwrite edge/gw/#',
          'topic read homeassistant/#',
          'user ha',
          'topic readwrite homeassistant/#',
        ],
      },
    }),
  );
}

async function moreBatches(s: SimPipeline, what: string, batches = BATCHES): Promise<void> {
  const target = s.subscriber.on('/telemetry').length + batches;
  await s.subscriber.waitFor(
    () => s.subscriber.on('/telemetry').length >= target,
    60_000,
    `${batches} more telemetry batches ${what}`,
  );
}

describe.each([5, 4] as const)('a refused Home Assistant discovery, MQTT protocol %i', (pv) => {
  it('is held back on reconnect, logged once, in health; a birth, an announce and a reload each try once', async () => {
    const log = capturingLogger();
    const mqtt = mqttSettings(pv);
    const s = await start(mqtt, log);

    await moreBatches(s, 'with the discovery refused', FIRST_BATCHES);
    let health = s.pipeline.health();
    const bound = HOLD_AFTER[pv] + RETRY_ALLOWANCE;
    expect(health.reconnects, 'telemetry reconnects while refused').toBeLessThanOrEqual(bound);
    expect(warnings(log)).toHaveLength(1);
    expect(warnings(log)[0]).toMatchObject({ topic: 'homeassistant/device/gw/config' });
    expect(warnings(log)[0]!.msg).toMatch(/ACL/);
    expect(health.homeassistant?.failed).toBeGreaterThanOrEqual(1);
    expect(health.homeassistant?.lastError).toMatch(
      pv === 5 ? /Not authorized \(135\)/ : /closed the connection right after the discovery/,
    );
    if (pv === 5) expect(health.homeassistant?.discoveries).toBe(0);
    // The states on the gateway's own topics still pass.
    expect(health.homeassistant?.states).toBeGreaterThanOrEqual(2);

    // Home Assistant's birth message: one more try, refused again.
    const before = { again: refusedAgain(log).length, reconnects: health.reconnects };
    const ha = await t.subscriber({
      url: s.broker.url,
      topics: ['homeassistant/status'],
      username: 'ha',
      password: 'ha-secret',
    });
    await ha.client.publishAsync('homeassistant/status', 'online', { qos: 1 });
    await s.subscriber.waitFor(
      () => refusedAgain(log).length > before.again,
      30_000,
      'the discovery tried again after the birth message',
    );
    await moreBatches(s, 'after the birth message');
    health = s.pipeline.health();
    expect(refusedAgain(log)).toHaveLength(before.again + 1);
    expect(health.reconnects).toBeLessThanOrEqual(before.reconnects + 1 + RETRY_ALLOWANCE);

    // The announce command: one more try; under MQTT 5 it answers that it was not announced.
    const beforeAnnounce = { again: refusedAgain(log).length, reconnects: health.reconnects };
    const answer = await s.pipeline.commands.handle('announce', {}, { origin: 'local' });
    expect(answer).toMatchObject({ ok: true });
    if (pv === 5) expect(answer).toMatchObject({ result: { homeassistant: false } });
    await s.subscriber.waitFor(
      () => refusedAgain(log).length > beforeAnnounce.again,
      30_000,
      'the discovery tried again on the announce command',
    );
    await moreBatches(s, 'after the announce command');
    health = s.pipeline.health();
    expect(refusedAgain(log)).toHaveLength(beforeAnnounce.again + 1);
    expect(health.reconnects).toBeLessThanOrEqual(beforeAnnounce.reconnects + 1 + RETRY_ALLOWANCE);

    // A reload that removes a sensor: one more try (the removal, refused like the discovery).
    const beforeReload = { again: refusedAgain(log).length, reconnects: health.reconnects };
    const input: ConfigInput = {
      gateway: { id: 'gw' },
      mqtt: { ...mqtt, url: s.broker.url },
      aggregation: { windowMs: 500 },
      homeassistant: { enabled: true },
      sensors: [
        {
          id: s.sensorId(0),
          driver: 'http-json',
          url: s.http.url(0),
          path: 'data.temperature',
          intervalMs: 100,
        },
      ] as ConfigInput['sensors'],
    };
    await s.pipeline.reload(validateConfig(input, 'test'));
    await s.subscriber.waitFor(
      () => refusedAgain(log).length > beforeReload.again,
      30_000,
      'the discovery tried again after a reload that changed the sensors',
    );
    await moreBatches(s, 'after the reload');
    health = s.pipeline.health();
    expect(refusedAgain(log)).toHaveLength(beforeReload.again + 1);
    expect(health.reconnects).toBeLessThanOrEqual(beforeReload.reconnects + 1 + RETRY_ALLOWANCE);
    expect(warnings(log)).toHaveLength(1);
  });
});
