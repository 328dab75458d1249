/**
 * The Home Assistant bridge's figures in the health report (docs/payload.md, `homeassistant`):
 * the whole agent in-process against a real mosquitto, its reports checked against the closed
 * schema; a broker whose ACL refuses the discovery prefix shows as failed publishes.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startSimPipeline, type SimPipeline } from '../../../helpers/sim-pipeline.js';
import { useTeardown } from '../../../helpers/teardown.js';
import { sampleHealth } from '../../publish/health-sample.js';
import { schemaErrors, validateHealth } from '../../publish/schemas.js';

const t = useTeardown();

type Figures = Record<string, number | string | null>;
type Report = Record<string, unknown> & { homeassistant: Figures | null };

async function start(extraConfig: string[] = []): Promise<SimPipeline> {
  return t.own(
    await startSimPipeline({
      sensors: 2,
      config: {
        health: { schedule: '* * * * * *' },
        aggregation: { windowMs: 500 },
        homeassistant: { enabled: true },
      },
      sensor: { intervalMs: 100 },
      mosquitto: { extraConfig },
    }),
  );
}

const reports = (s: SimPipeline) => s.subscriber.on('/health').map((m) => m.json as Report);
const figures = (r: Report) => r.homeassistant ?? {};

describe('Home Assistant in the health report', () => {
  it('counts the discovery and state messages the broker acknowledged, and they move; null when off', async () => {
    const s = await start();
    const announced = (r: Report) =>
      Number(figures(r).discoveries) >= 1 && Number(figures(r).states) >= 2;
    await s.subscriber.waitFor(
      () => reports(s).some(announced),
      30_000,
      'a health report counting the discovery and a state per sensor',
    );
    for (const r of reports(s)) expect(schemaErrors(validateHealth, r)).toBe('');
    const first = reports(s).find(announced)!;
    expect(first.homeassistant).toEqual({
      discoveries: expect.any(Number),
      states: expect.any(Number),
      cleared: 0,
      failed: 0,
      lastError: null,
    });
    // Each batch brings a state per sensor: a later report counts more.
    await s.subscriber.waitFor(
      () => reports(s).some((r) => Number(figures(r).states) > Number(figures(first).states)),
      30_000,
      'a later report counting more states',
    );
    // Closed: an unknown or a missing field of the part fails the schema.
    expect(
      validateHealth({ ...first, homeassistant: { ...first.homeassistant, unexpected: 1 } }),
    ).toBe(false);
    const { failed: _failed, ...withoutFailed } = first.homeassistant!;
    expect(validateHealth({ ...first, homeassistant: withoutFailed })).toBe(false);
    // Without homeassistant.enabled the part is there, null.
    expect(sampleHealth().homeassistant).toBeNull();
  });

  it('counts a discovery the broker refuses (ACL, MQTT 5 PUBACK) as failed, with its error', async () => {
    const dir = t.tempDir('ha-acl-');
    const acl = join(dir, 'acl');
    // Anonymous clients: the gateway topics writable, the discovery prefix read-only.
    writeFileSync(acl, 'topic readwrite edge/#\ntopic read homeassistant/#\n');
    // mosquitto 2.0.11 closes an MQTT 5 connection after a denied QoS 1 publish while
    // max_queued_messages is 0 (unlimited, as the helper sets it): a bound keeps it open, so
    // that no reconnect is expected here (refused.test.ts covers the closing broker).
    const s = await start([`acl_file ${acl}`, 'max_queued_messages 1000']);
    const refused = (r: Report) => Number(figures(r).failed) >= 1 && Number(figures(r).states) >= 1;
    await s.subscriber.waitFor(
      () => reports(s).some(refused),
      30_000,
      'a health report counting the refused discovery',
    );
    const report = reports(s).find(refused)!;
    expect(schemaErrors(validateHealth, report)).toBe('');
    // The states on the gateway's own topics still pass; no discovery was acknowledged.
    expect(figures(report).discoveries).toBe(0);
    expect(figures(report).lastError).toBe('Publish error: Not authorized (135)');
    // A refused discovery does not cost the telemetry connection.
    expect(report.reconnects).toBe(0);
  });
});
