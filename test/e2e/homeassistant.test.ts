/**
 * `edge-agent simulate --homeassistant` as users run it (the built CLI) against the embedded
 * Aedes broker (MQTT 3.1.1): the default scenario's every sensor and quantity appears in one
 * schema-valid Home Assistant device, and the state topics carry the telemetry's window means.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EmbeddedBroker } from '../../simulator/broker.js';
import { startAedes } from '../helpers/aedes.js';
import { startSubscriber, type TestSubscriber } from '../helpers/subscriber.js';
import { discoveryErrors } from '../agent/consumers/homeassistant/ha-schema.js';
import { CLI, startAgent, type TelemetryWindow } from './agent-process.js';

let broker: EmbeddedBroker;
let sub: TestSubscriber;
const dir = mkdtempSync(join(tmpdir(), 'edge-ha-'));
const GW = 'e2e-ha';
type Window = TelemetryWindow & { end: number };

beforeAll(async () => {
  broker = await startAedes();
  sub = await startSubscriber({
    url: broker.url,
    topics: [`homeassistant/#`, `edge/${GW}/state/#`, `edge/${GW}/telemetry`],
  });
});
afterAll(async () => {
  await sub?.close();
  await broker?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('edge-agent simulate --homeassistant (Aedes)', () => {
  it('--help lists the option', () => {
    const r = spawnSync(process.execPath, [CLI, 'simulate', '--help'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('--homeassistant');
  });

  it('announces every sensor and quantity of the scenario and publishes their window means', async () => {
    const agent = startAgent([
      'simulate',
      '--broker',
      broker.url,
      '--gateway',
      GW,
      '--state-dir',
      join(dir, 'state'),
      '--homeassistant',
      '--window',
      '1000',
      '--duration',
      '8',
    ]);
    const { code } = await agent.exited();
    expect(code, agent.stdout() + agent.stderr()).toBe(0);
    expect(agent.stdout()).toContain(
      `Home Assistant discovery on homeassistant/device/${GW}/config`,
    );

    const configs = sub.on(`homeassistant/device/${GW}/config`).filter((m) => m.payload.length > 0);
    expect(configs.length).toBeGreaterThan(0);
    for (const m of configs) expect(discoveryErrors(m.json)).toBe('');
    const cmps = (configs.at(-1)!.json as { cmps: Record<string, { state_topic: string }> }).cmps;

    const windows = sub
      .on('/telemetry')
      .flatMap((m) => (m.json?.windows as Window[] | undefined) ?? []);
    const series = new Set(windows.map((w) => `${w.sensor}_${w.quantity}`));
    expect(series.size).toBeGreaterThan(3);
    expect(Object.keys(cmps).sort()).toEqual([...series].sort());

    const states = sub.messages.filter((m) => m.topic.startsWith(`edge/${GW}/state/`) && m.json);
    const sensors = new Set(windows.filter((w) => w.count > 0).map((w) => w.sensor));
    const withValue = new Set<string>();
    for (const m of states) {
      const sensor = m.topic.split('/').at(-1)!;
      for (const [quantity, value] of Object.entries(m.json!)) {
        if (quantity === 't') continue;
        const w = windows.find(
          (x) => x.sensor === sensor && x.quantity === quantity && x.end === m.json!.t,
        );
        // A state's window is in a batch the broker may not have delivered before the stop.
        if (!w) continue;
        expect(value, `${sensor} ${quantity}`).toBe(w.count > 0 ? w.mean : null);
        if (typeof value === 'number') withValue.add(sensor);
      }
    }
    expect([...withValue].sort()).toEqual([...sensors].sort());
  });
});
