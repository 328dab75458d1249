/**
 * Home Assistant discovery and state topics from the whole agent (Pipeline.start) against a
 * real mosquitto: what Home Assistant would receive, checked against a JSON Schema written
 * from its documentation, and the state values against the telemetry windows they come from.
 */
import mqtt from 'mqtt';
import { describe, expect, it } from 'vitest';
import { validateConfig, type ConfigInput } from '../../../../agent/config/load.js';
import { silentLogger } from '../../../../agent/ops/logger.js';
import { Pipeline } from '../../../../agent/pipeline.js';
import { Seams } from '../../../../drivers/seams.js';
import { SimulatedSerialBinding } from '../../../../simulator/serial/binding.js';
import { startSimPipeline, type SimPipeline } from '../../../helpers/sim-pipeline.js';
import { type ReceivedMessage, type TestSubscriber } from '../../../helpers/subscriber.js';
import { useTeardown } from '../../../helpers/teardown.js';
import { discoveryErrors } from './ha-schema.js';

const DISCOVERY = 'homeassistant/device/gw/config';
const WINDOW_MS = 500;

const t = useTeardown();

async function start(homeassistant: boolean, sensors = 2): Promise<SimPipeline> {
  const sim = await startSimPipeline({
    sensors,
    config: {
      aggregation: { windowMs: WINDOW_MS },
      ...(homeassistant ? { homeassistant: { enabled: true } } : {}),
    },
    sensor: { intervalMs: 100, backoffMaxMs: 1000 },
  });
  return t.own(sim);
}

const watch = (s: SimPipeline, topics: string[]) => t.subscriber({ url: s.broker.url, topics });

interface Cmps {
  cmps: Record<string, Record<string, unknown>>;
}
const discoveries = (sub: TestSubscriber) =>
  sub.messages.filter((m) => m.topic === DISCOVERY && m.payload.length > 0);
const componentsOf = (m: ReceivedMessage) => (m.json as unknown as Cmps).cmps;

interface Window {
  sensor: string;
  quantity: string;
  end: number;
  count: number;
  mean: number | null;
}
function telemetryWindows(sub: TestSubscriber): Window[] {
  return sub.on('/telemetry').flatMap((m) => (m.json?.windows as Window[] | undefined) ?? []);
}

describe('Home Assistant discovery (homeassistant.enabled) against mosquitto', () => {
  it('announces one retained, schema-valid device; state topics carry each window mean, null while failing', async () => {
    const s = await start(true);
    const sub = await watch(s, ['homeassistant/#', 'edge/gw/state/#', 'edge/gw/telemetry']);
    await sub.waitFor((x) => discoveries(x).length > 0, 30_000, 'the discovery message');
    // A subscriber arriving after the announcement gets it from the broker: it is retained.
    const late = await watch(s, [DISCOVERY]);
    await late.waitFor((x) => discoveries(x).length > 0, 30_000, 'the retained discovery');
    const first = discoveries(late)[0];
    expect(first.retain).toBe(true);
    expect(discoveryErrors(first.json)).toBe('');
    const cmps = componentsOf(first);
    expect(Object.keys(cmps).sort()).toEqual(['http-0_temperature', 'http-1_temperature']);
    expect(cmps['http-1_temperature']).toMatchObject({
      unique_id: 'gw_http-1_temperature',
      state_topic: 'edge/gw/state/http-1',
      expire_after: Math.ceil((3 * WINDOW_MS) / 1000),
    });
    expect(first.json?.availability).toEqual([
      expect.objectContaining({
        topic: 'edge/gw/status',
        value_template: '{{ value_json.state }}',
      }),
    ]);

    // Every live state update equals the mean of the telemetry window that ended at its t.
    const states = (sensor: string) =>
      sub.on(`/state/${sensor}`).filter((m) => !m.retain && m.json !== undefined);
    await sub.waitFor(
      (x) =>
        states('http-0').length >= 3 &&
        states('http-1').length >= 3 &&
        telemetryWindows(x).length > 0,
      30_000,
      'three state updates per sensor',
    );
    const matchWindows = async (sensor: string, n: number) => {
      // A state is published when the worker hands the batch over, before the broker has the
      // telemetry batch itself: wait for the windows of the states seen so far.
      const seen = states(sensor).slice(0, n);
      await sub.waitFor(
        (x) =>
          seen.every((m) =>
            telemetryWindows(x).some((w) => w.sensor === sensor && w.end === m.json!.t),
          ),
        30_000,
        `telemetry windows of ${sensor}'s states`,
      );
      for (const m of seen) {
        const win = telemetryWindows(sub).find((w) => w.sensor === sensor && w.end === m.json!.t)!;
        expect(m.json!.temperature, `${sensor} at ${String(m.json!.t)}`).toBe(
          win.count > 0 ? win.mean : null,
        );
      }
      return seen;
    };
    for (const m of await matchWindows('http-0', 3))
      expect(typeof m.json!.temperature).toBe('number');
    await matchWindows('http-1', 3);

    // A failing sensor: its state goes null (Home Assistant shows "unknown"), not stale.
    s.http.inject(1, 'http-500');
    await sub.waitFor(
      () => states('http-1').some((m) => m.json!.temperature === null),
      30_000,
      'a null state for the failing sensor',
    );
    const nulled = states('http-1').find((m) => m.json!.temperature === null)!;
    await sub.waitFor(
      (x) => telemetryWindows(x).some((w) => w.sensor === 'http-1' && w.end === nulled.json!.t),
      30_000,
      'the failing window',
    );
    const failing = telemetryWindows(sub).find(
      (w) => w.sensor === 'http-1' && w.end === nulled.json!.t,
    )!;
    expect(failing.count).toBe(0);
    s.http.inject(1, null);
    await sub.waitFor(
      () =>
        states('http-1')
          .slice(states('http-1').indexOf(nulled))
          .some((m) => typeof m.json!.temperature === 'number'),
      30_000,
      'a value again after the sensor recovers',
    );
  });

  it('announces again when Home Assistant says online on homeassistant/status', async () => {
    const s = await start(true);
    const sub = await watch(s, ['homeassistant/device/#', 'edge/gw/state/#']);
    await sub.waitFor(
      (x) => discoveries(x).length > 0 && x.on('/state/http-0').length > 0,
      30_000,
      'discovery and a state',
    );
    const before = discoveries(sub).length;
    const ha = await mqtt.connectAsync(s.broker.url, { clientId: 'home-assistant-test' });
    t.add(() => ha.endAsync(true));
    const statesBefore = sub.on('/state/http-1').length;
    // Home Assistant's birth message (not retained).
    await ha.publishAsync('homeassistant/status', 'online', { qos: 1 });
    await sub.waitFor((x) => discoveries(x).length > before, 30_000, 'a second announcement');
    const again = discoveries(sub).at(-1)!;
    expect(again.retain).toBe(false);
    expect(discoveryErrors(again.json)).toBe('');
    expect(Object.keys(componentsOf(again)).sort()).toEqual([
      'http-0_temperature',
      'http-1_temperature',
    ]);
    // The states follow the config again.
    await sub.waitFor((x) => x.on('/state/http-1').length > statesBefore, 30_000, 'states again');
  });

  it('a reload that removes and adds sensors deletes the removed components and state topics', async () => {
    const s = await start(true, 3);
    const sub = await watch(s, ['homeassistant/device/#', 'edge/gw/state/#']);
    await sub.waitFor(
      (x) =>
        discoveries(x).length > 0 &&
        ['http-0', 'http-1', 'http-2'].every((id) => x.on(`/state/${id}`).length > 0),
      30_000,
      'discovery and states of three sensors',
    );
    const input: ConfigInput = {
      gateway: { id: 'gw' },
      mqtt: { url: s.broker.url },
      aggregation: { windowMs: WINDOW_MS },
      homeassistant: { enabled: true },
      sensors: [
        {
          id: 'http-0',
          driver: 'http-json',
          url: s.http.url(0),
          path: 'data.temperature',
          intervalMs: 100,
        },
        {
          id: 'extra',
          driver: 'http-json',
          url: s.http.url(2),
          path: 'data.temperature',
          intervalMs: 100,
        },
      ] as ConfigInput['sensors'],
    };
    const announced = discoveries(sub).length;
    await s.pipeline.reload(validateConfig(input, 'test'));
    await sub.waitFor(
      (x) =>
        discoveries(x)
          .slice(announced)
          .some(
            (m) =>
              'extra_temperature' in componentsOf(m) && !('http-1_temperature' in componentsOf(m)),
          ),
      30_000,
      'the discovery after the reload',
    );
    const after = discoveries(sub).slice(announced);
    for (const m of after) expect(discoveryErrors(m.json)).toBe('');
    // First the documented removal (only `p`), then the config without the removed components.
    const removal = after.find((m) => componentsOf(m)['http-1_temperature'] !== undefined)!;
    expect(componentsOf(removal)['http-1_temperature']).toEqual({ p: 'sensor' });
    expect(componentsOf(removal)['http-2_temperature']).toEqual({ p: 'sensor' });
    expect(after.indexOf(removal)).toBeLessThan(after.length - 1);
    expect(Object.keys(componentsOf(after.at(-1)!)).sort()).toEqual([
      'extra_temperature',
      'http-0_temperature',
    ]);
    await sub.waitFor(
      (x) =>
        ['http-1', 'http-2'].every((id) =>
          x.on(`/state/${id}`).some((m) => m.payload.length === 0),
        ),
      30_000,
      'the removed sensors’ state topics cleared',
    );

    // What a Home Assistant starting now would get from the broker.
    await sub.waitFor((x) => x.on('/state/extra').length > 0, 30_000, 'a state for the new sensor');
    const fresh = await watch(s, [DISCOVERY, 'edge/gw/state/#']);
    await fresh.waitFor(
      (x) =>
        discoveries(x).length > 0 &&
        x.on('/state/http-0').length > 0 &&
        x.on('/state/extra').length > 0,
      30_000,
      'the retained discovery and states',
    );
    expect(Object.keys(componentsOf(discoveries(fresh).at(-1)!)).sort()).toEqual([
      'extra_temperature',
      'http-0_temperature',
    ]);
    // Retained messages of one subscription come in one burst: the removed ones are not there.
    expect(fresh.on('/state/http-1')).toEqual([]);
    expect(fresh.on('/state/http-2')).toEqual([]);
  });

  it('a restart with fewer sensors deletes the components and clears the states the previous run left retained', async () => {
    const s = await start(true);
    const sub = await watch(s, ['homeassistant/device/#', 'edge/gw/state/#']);
    await sub.waitFor(
      (x) =>
        discoveries(x).length > 0 &&
        ['http-0', 'http-1'].every((id) => x.on(`/state/${id}`).length > 0),
      30_000,
      'the first run’s discovery and states',
    );
    await s.pipeline.stop(2000);
    const announced = discoveries(sub).length;

    const stateDir = t.tempDir('ha-restart-');
    const seams = new Seams(
      {
        openI2C: () => Promise.reject(new Error('no I²C in this test')),
        serialBinding: new SimulatedSerialBinding(),
      },
      silentLogger,
    );
    t.own(seams);
    const config = validateConfig(
      {
        gateway: { id: 'gw' },
        mqtt: { url: s.broker.url },
        aggregation: { windowMs: WINDOW_MS },
        homeassistant: { enabled: true },
        sensors: [
          { id: 'http-0', driver: 'http-json', url: s.http.url(0), path: 'data.temperature' },
        ] as ConfigInput['sensors'],
      },
      'test',
    );
    const second = await Pipeline.start({ config, seams, stateDir, logger: silentLogger });
    t.add(() => second.stop(2000));
    const removed = (m: ReceivedMessage) =>
      componentsOf(m)['http-1_temperature']?.p === 'sensor' &&
      Object.keys(componentsOf(m)['http-1_temperature']).length === 1;
    await sub.waitFor(
      (x) => {
        const news = discoveries(x).slice(announced);
        const at = news.findIndex(removed);
        return (
          at >= 0 && news.slice(at + 1).some((m) => !('http-1_temperature' in componentsOf(m)))
        );
      },
      30_000,
      'the removal of http-1, then a discovery without it',
    );
    const after = discoveries(sub).slice(announced);
    for (const m of after) expect(discoveryErrors(m.json)).toBe('');
    expect(Object.keys(componentsOf(after.at(-1)!))).toEqual(['http-0_temperature']);

    // What a subscriber arriving now gets: the state of http-0, none of http-1 (the marker
    // comes back after every retained message of its subscription).
    const fresh = await watch(s, ['edge/gw/state/#']);
    await fresh.waitFor((x) => x.on('/state/http-0').length > 0, 30_000, 'the state of http-0');
    await fresh.settle();
    expect(fresh.on('/state/http-1')).toEqual([]);
  });

  it('disabled (the default): nothing retained under homeassistant/ nor on state topics', async () => {
    const s = await start(false);
    await s.subscriber.waitFor((x) => x.on('/telemetry').length >= 3, 30_000, 'three batches');
    const sub = await watch(s, ['homeassistant/#', 'edge/gw/state/#', 'edge/gw/status']);
    // The status is retained and comes in the same burst as any other retained message.
    await sub.waitFor((x) => x.on('/status').length > 0, 30_000, 'the retained status');
    expect(sub.messages.filter((m) => !m.topic.endsWith('/status'))).toEqual([]);
  });
});
