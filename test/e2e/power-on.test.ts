/**
 * A value the chip did not measure is not a measurement (issue 22, item 6). `edge-agent
 * simulate --homeassistant --sparkplug` as users run it (the built CLI) against mosquitto: the
 * simulator's DS18B20s read 85 °C at their first conversion after power-on, that is at every
 * start. The JSON telemetry counts it (`flags.powerOn`) and neither it, nor the Home Assistant
 * state topics, nor the Sparkplug NDATA (decoded) carry 85 as a value — while they do carry
 * the real temperatures read after it.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type TestSubscriber } from '../helpers/subscriber.js';
import { useTeardown } from '../helpers/teardown.js';
import { nodeMessages } from '../agent/consumers/sparkplug/sparkplug-messages.js';
import { startAgent, type TelemetryWindow } from './agent-process.js';

const t = useTeardown();

const GW = 'e2e-power-on';
type Window = TelemetryWindow & {
  end: number;
  last: number | null;
  flags: { powerOn: number };
};

const telemetryWindows = (sub: TestSubscriber): Window[] =>
  sub.on('/telemetry').flatMap((m) => (m.json?.windows as Window[] | undefined) ?? []);

const haStates = (sub: TestSubscriber, sensor: string) =>
  sub.on(`/${GW}/state/${sensor}`).map((m) => m.json as { temperature?: number | null });

const ndataValues = (sub: TestSubscriber, sensor: string) =>
  nodeMessages(sub.messages)
    .filter((m) => m.type === 'NDATA')
    .flatMap((m) => m.metrics.filter((x) => x.name === `${sensor}/temperature`))
    .map((x) => x.value);

describe('a DS18B20 power-on value (simulate, mosquitto)', () => {
  it('is flagged in the telemetry and never published as a value: JSON windows, Home Assistant state, Sparkplug NDATA', async () => {
    const broker = await t.mosquitto();
    const sub = await t.subscriber({
      url: broker.url,
      topics: [`edge/${GW}/telemetry`, `edge/${GW}/state/#`, 'spBv1.0/#'],
    });
    const dir = t.tempDir('e2e-power-on-');
    const agent = startAgent([
      'simulate',
      '--broker',
      broker.url,
      '--gateway',
      GW,
      '--state-dir',
      join(dir, 'state'),
      '--window',
      '1000',
      '--homeassistant',
      '--sparkplug',
      '--verbose',
    ]);
    t.add(async () => {
      agent.kill('SIGKILL');
      await agent.exited();
    });
    const running = await agent.waitForLog((l) => l.msg === 'sensors', 'the list of sensors');
    const ds18b20 = (running.sensors as Array<{ id: string; driver: string }>)
      .filter((s) => s.driver === 'ds18b20')
      .map((s) => s.id);
    expect(ds18b20.length).toBeGreaterThan(0);

    // Positive events: each DS18B20's power-on read was counted, and a real temperature after
    // it reached all three outputs.
    const seen = (id: string) => {
      const ws = telemetryWindows(sub).filter((w) => w.sensor === id);
      const powerOn = ws.find((w) => w.flags.powerOn > 0);
      return (
        powerOn !== undefined &&
        ws.some((w) => w.count > 0 && w.end > powerOn.end) &&
        haStates(sub, id).some((s) => typeof s.temperature === 'number') &&
        ndataValues(sub, id).some((v) => typeof v === 'number')
      );
    };
    await sub.waitFor(
      () => ds18b20.every(seen),
      45_000,
      'each DS18B20: a power-on window, then values in telemetry, Home Assistant and Sparkplug',
    );
    agent.kill('SIGTERM');
    const { code } = await agent.exited();
    expect(code, agent.stdout() + agent.stderr()).toBe(0);

    for (const id of ds18b20) {
      const ws = telemetryWindows(sub).filter((w) => w.sensor === id);
      for (const w of ws) {
        for (const v of [w.min, w.max, w.mean, w.last]) expect(v, JSON.stringify(w)).not.toBe(85);
        if (w.count === 0) expect(w.mean).toBeNull();
      }
      expect(ws.reduce((n, w) => n + w.flags.powerOn, 0)).toBeGreaterThanOrEqual(1);
      expect(haStates(sub, id).map((s) => s.temperature)).not.toContain(85);
      expect(ndataValues(sub, id)).not.toContain(85);
    }
  });
});
