/**
 * The consumer examples in docs/examples/ against what the agent really publishes.
 *
 * Real batches come from the whole agent (Pipeline, HTTP sensors, one of them failing)
 * against a real mosquitto whose max_packet_size makes some batches travel in parts, with
 * raw readings on, so the batches include every shape a consumer meets: windows with
 * values, windows of a failing sensor (count 0, null statistics), batches in parts and parts
 * that carry only readings (windows: []).
 *
 * - telegraf.conf: every json_v2 path is checked against the telemetry JSON Schema and
 *   evaluated (test/consumers/json-v2.ts, Telegraf's json_v2 rules for the subset used) on
 *   those batches: one point per window with the documented tags, fields and time.
 * - node-red-flow.json: the function node's own code runs in a vm on the same batches,
 *   each delivered twice, as at-least-once delivery may.
 * - With a `telegraf` binary on PATH, Telegraf itself parses the batches (opt-in).
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { runInNewContext } from 'node:vm';
import mqtt from 'mqtt';
import { parse, stringify } from 'smol-toml';
import { beforeAll, describe, expect, it } from 'vitest';
import { schemaErrors, validateTelemetry } from '../agent/publish/schemas.js';
import { spawnMosquitto } from '../helpers/mosquitto.js';
import { startSimPipeline } from '../helpers/sim-pipeline.js';
import { waitUntil } from '../helpers/wait.js';
import { gjsonComponents, type Json } from './gjson.js';
import { jsonV2Config, jsonV2Metrics, type JsonV2Config, type Metric } from './json-v2.js';
import { schemaAt, schemaAtFlatKey, schemaTypes, type SchemaNode } from './schema-paths.js';

const docs = new URL('../../docs/', import.meta.url);
const telegrafText = readFileSync(new URL('examples/telegraf.conf', docs), 'utf8');
const flowText = readFileSync(new URL('examples/node-red-flow.json', docs), 'utf8');
const telemetrySchema = JSON.parse(
  readFileSync(new URL('schemas/telemetry-1.schema.json', docs), 'utf8'),
) as SchemaNode;

interface Window {
  sensor: string;
  quantity: string;
  unit: string;
  start: number;
  count: number;
  faults: number;
  state: string;
  flags?: Record<string, number>;
  [stat: string]: unknown;
}

interface Batch {
  gateway: string;
  seq: number;
  part?: number;
  windows: Window[];
  [key: string]: unknown;
}

interface Message {
  topic: string;
  text: string;
  batch: Batch;
}

const STATS = ['min', 'max', 'mean', 'stddev', 'last'] as const;

/** Messages in arrival order, as the subscriber received them (duplicates included). */
let messages: Message[] = [];

/** One message per (gateway, seq, part): what a consumer keeps. */
function unique(list: Message[]): Message[] {
  const seen = new Set<string>();
  return list.filter((m) => {
    const key = `${m.batch.gateway}/${m.batch.seq}/${m.batch.part ?? 0}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

beforeAll(async () => {
  const sim = await startSimPipeline({
    sensors: 3,
    // Batches of 3 sensors with raw readings outgrow 2 KiB: the agent sends them in parts.
    mosquitto: { extraConfig: ['max_packet_size 2048'] },
    config: {
      aggregation: { windowMs: 500 },
      batch: { raw: true },
      // Health reports are not telemetry and would not fit the packet limit.
      health: { schedule: '0 0 0 1 1 *' },
    },
    sensor: { intervalMs: 25 },
  });
  try {
    sim.http.inject(2, 'http-500');
    const got = () => sim.subscriber.on('/telemetry').map((m) => m.json as unknown as Batch);
    await waitUntil(
      () => {
        const b = got();
        const windows = b.flatMap((x) => x.windows);
        return (
          new Set(b.map((x) => x.seq)).size >= 4 &&
          b.some((x) => x.part !== undefined) &&
          b.some((x) => x.windows.length === 0) &&
          windows.some((w) => w.count === 0 && w.faults > 0) &&
          windows.some((w) => w.count > 0)
        );
      },
      { timeoutMs: 90_000, what: 'batches of every shape' },
    );
  } finally {
    await sim.close();
  }
  messages = sim.subscriber.on('/telemetry').map((m) => ({
    topic: m.topic,
    text: m.payload.toString('utf8'),
    batch: m.json as unknown as Batch,
  }));
}, 120_000);

// ---------------------------------------------------------------- Telegraf

type Table = Record<string, unknown>;

function telegrafInput(config: Table): Table {
  const inputs = (config.inputs as Table | undefined)?.mqtt_consumer;
  if (!Array.isArray(inputs) || inputs.length !== 1) {
    throw new Error('telegraf.conf: expected one [[inputs.mqtt_consumer]]');
  }
  return inputs[0] as Table;
}

function jsonV2Of(config: Table): JsonV2Config {
  const tables = telegrafInput(config).json_v2;
  if (!Array.isArray(tables) || tables.length !== 1) {
    throw new Error('telegraf.conf: expected one [[inputs.mqtt_consumer.json_v2]]');
  }
  return jsonV2Config(tables[0], 'inputs.mqtt_consumer.json_v2');
}

/** Every problem with the json_v2 paths as judged by the telemetry schema. */
function schemaProblems(cfg: JsonV2Config): string[] {
  const problems: string[] = [];
  for (const p of [...cfg.tags, ...cfg.fields]) {
    const hit = schemaAt(telemetrySchema, gjsonComponents(p.path));
    if (!hit) problems.push(`${p.path}: not in the telemetry schema`);
    else if (!hit.required && !p.optional) {
      problems.push(`${p.path}: optional in the schema, so a batch without it fails in Telegraf`);
    } else if (!schemaTypes(hit.schema).some((t) => ['string', 'number'].includes(t))) {
      problems.push(`${p.path}: not a single value`);
    }
  }
  for (const o of cfg.objects) {
    const hit = schemaAt(telemetrySchema, gjsonComponents(o.path));
    if (!hit || !schemaTypes(hit.schema).includes('array') || hit.schema.items === undefined) {
      problems.push(`${o.path}: not an array in the telemetry schema`);
      continue;
    }
    if (!hit.required && !o.optional) problems.push(`${o.path}: optional in the schema`);
    const element = hit.schema.items;
    const keys = new Set([
      ...o.includedKeys,
      ...o.tags,
      ...(o.timestampKey ? [o.timestampKey] : []),
    ]);
    for (const key of keys) {
      const k = schemaAtFlatKey(telemetrySchema, element, key);
      if (!k) {
        problems.push(`${o.path}: key ${key} is not in the schema's ${o.path} items`);
        continue;
      }
      if (o.tags.includes(key) && !(k.required && schemaTypes(k.schema).includes('string'))) {
        problems.push(`${o.path}: tag ${key} is not a required string`);
      }
      if (key === o.timestampKey && !(k.required && schemaTypes(k.schema).includes('integer'))) {
        problems.push(`${o.path}: timestamp ${key} is not a required integer`);
      }
    }
    if (o.timestampKey && !o.includedKeys.includes(o.timestampKey)) {
      problems.push(`${o.path}: timestamp_key ${o.timestampKey} is not in included_keys`);
    }
  }
  return problems;
}

/** Flattened json_v2 names (`flags_range`) of every key of a real object, nulls included. */
function flatKeys(value: Record<string, unknown>, prefix = ''): string[] {
  return Object.entries(value).flatMap(([k, v]) => {
    const name = prefix === '' ? k : `${prefix}_${k}`;
    return typeof v === 'object' && v !== null && !Array.isArray(v)
      ? flatKeys(v as Record<string, unknown>, name)
      : [name];
  });
}

/** Every problem with the json_v2 paths as judged by real batches. */
function payloadProblems(cfg: JsonV2Config, list: Message[]): string[] {
  const problems = new Set<string>();
  for (const m of list) {
    try {
      jsonV2Metrics(cfg, m.batch as unknown as Json);
    } catch (err) {
      problems.add(`seq ${m.batch.seq}: ${(err as Error).message}`);
    }
    for (const o of cfg.objects) {
      for (const w of m.batch.windows) {
        const present = flatKeys(w);
        for (const key of [...o.includedKeys, ...o.tags]) {
          if (!present.includes(key)) problems.add(`${o.path}: no window has key ${key}`);
        }
      }
    }
  }
  return [...problems];
}

/** The point docs/consumers.md promises for a window. */
function expectedPoint(gateway: string, w: Window): Metric {
  const fields: Metric['fields'] = { count: w.count, faults: w.faults, state: w.state };
  for (const s of STATS) if (w[s] !== null) fields[s] = w[s] as number;
  for (const [flag, n] of Object.entries(w.flags ?? {})) fields[`flags_${flag}`] = n;
  return {
    name: 'edge_window',
    tags: { gateway, sensor: w.sensor, quantity: w.quantity, unit: w.unit },
    fields,
    time: w.start,
  };
}

describe('docs/examples/telegraf.conf', () => {
  const config = parse(telegrafText) as Table;

  it('reads edge/+/telemetry at QoS 1 in a persistent session with json_v2 and writes to InfluxDB 2', () => {
    const input = telegrafInput(config);
    expect(input).toMatchObject({
      topics: ['edge/+/telemetry'],
      qos: 1,
      persistent_session: true,
      data_format: 'json_v2',
    });
    // Telegraf refuses persistent_session without a client id.
    expect(input.client_id).toEqual(expect.stringMatching(/\S/));
    expect((config.outputs as Table).influxdb_v2).toHaveLength(1);
  });

  it('every json_v2 path names a field of the telemetry schema', () => {
    const cfg = jsonV2Of(config);
    expect(cfg.objects.map((o) => o.path)).toEqual(['windows']);
    expect(schemaProblems(cfg)).toEqual([]);
  });

  it('the real batches all validate, and every json_v2 path finds its field in them', () => {
    expect(messages.length).toBeGreaterThan(0);
    for (const m of messages) {
      expect(validateTelemetry(m.batch), schemaErrors(validateTelemetry, m.batch)).toBe(true);
    }
    expect(payloadProblems(jsonV2Of(config), messages)).toEqual([]);
  });

  it('makes one point per window: tags gateway/sensor/quantity/unit, the statistics as fields, the window start as time', () => {
    const cfg = jsonV2Of(config);
    const points = new Map<string, Metric>();
    let windows = 0;
    let emptyParts = 0;
    let failing = 0;
    for (const m of unique(messages)) {
      const metrics = jsonV2Metrics(cfg, m.batch as unknown as Json);
      const expected = m.batch.windows.map((w) => expectedPoint(m.batch.gateway, w));
      expect(metrics, `seq ${m.batch.seq} part ${m.batch.part ?? '-'}`).toEqual(expected);
      windows += m.batch.windows.length;
      if (m.batch.windows.length === 0) emptyParts++;
      for (const p of metrics) {
        if (p.fields.count === 0) {
          failing++;
          // A window without readings: no statistics at all rather than zeros.
          for (const s of STATS) expect(p.fields).not.toHaveProperty(s);
        }
        points.set(JSON.stringify([p.tags, p.time]), p);
      }
    }
    expect(emptyParts).toBeGreaterThan(0);
    expect(failing).toBeGreaterThan(0);
    // InfluxDB keeps one point per series and time: distinct windows never overwrite each other.
    expect(points.size).toBe(windows);
  });

  it('the checks fail for a path the payload does not have', () => {
    const wrong = structuredClone(config);
    const table = (telegrafInput(wrong).json_v2 as Table[])[0];
    const object = (table.object as Table[])[0];
    object.included_keys = [...(object.included_keys as string[]), 'avg'];
    table.tag = [{ path: 'gw' }];
    const cfg = jsonV2Of(wrong);
    expect(schemaProblems(cfg)).toEqual([
      'gw: not in the telemetry schema',
      "windows: key avg is not in the schema's windows items",
    ]);
    const problems = payloadProblems(cfg, messages);
    expect(problems).toContain("seq 1: the path gw doesn't exist");
    expect(problems).toContain('windows: no window has key avg');
  });

  const telegraf = findOnPath('telegraf');
  it.skipIf(!telegraf)(
    `Telegraf itself turns the batches into the same points${telegraf ? '' : ' (skipped: no telegraf binary on PATH; Debian has no package)'}`,
    async () => {
      await runTelegraf(telegraf as string, config, jsonV2Of(config));
    },
  );
});

function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * Telegraf with the example's input section against a real mosquitto, writing JSON lines to
 * a file instead of InfluxDB; the recorded batches are published again, byte for byte.
 */
async function runTelegraf(binary: string, config: Table, cfg: JsonV2Config): Promise<void> {
  const broker = await spawnMosquitto();
  const dir = mkdtempSync(join(tmpdir(), 'telegraf-'));
  const out = join(dir, 'metrics.json');
  const input = { ...telegrafInput(config), servers: [`tcp://127.0.0.1:${broker.port}`] };
  const conf = {
    agent: { interval: '1s', flush_interval: '200ms', omit_hostname: true },
    inputs: { mqtt_consumer: [input] },
    outputs: { file: [{ files: [out], data_format: 'json', json_timestamp_units: '1ms' }] },
  };
  writeFileSync(join(dir, 'telegraf.conf'), stringify(conf));
  const child = spawn(binary, ['--config', join(dir, 'telegraf.conf')], { stdio: 'ignore' });
  const publisher = await mqtt.connectAsync(broker.url, { reconnectPeriod: 200 });
  try {
    const batches = unique(messages);
    const expected = new Map<string, Metric>();
    for (const m of batches) {
      for (const p of jsonV2Metrics(cfg, m.batch as unknown as Json)) {
        expected.set(JSON.stringify([p.tags, p.time]), p);
      }
    }
    const written = () => {
      let text = '';
      try {
        text = readFileSync(out, 'utf8');
      } catch {
        return new Map<string, Metric>();
      }
      const got = new Map<string, Metric>();
      for (const line of text.split('\n').filter(Boolean)) {
        const j = JSON.parse(line) as {
          name: string;
          tags: Record<string, string>;
          fields: Metric['fields'];
          timestamp: number;
        };
        const p: Metric = { name: j.name, tags: j.tags, fields: j.fields, time: j.timestamp };
        got.set(JSON.stringify([p.tags, p.time]), p);
      }
      return got;
    };
    // Telegraf subscribes some time after it starts: publish the first batch until a point of
    // it arrives (a repeat is a duplicate, which changes nothing), then all of them.
    await waitUntil(
      async () => {
        await publisher.publishAsync(batches[0].topic, batches[0].text, { qos: 1 });
        return written().size > 0;
      },
      { timeoutMs: 60_000, intervalMs: 500, what: 'telegraf writing its first point' },
    );
    for (const m of batches) await publisher.publishAsync(m.topic, m.text, { qos: 1 });
    await waitUntil(() => written().size >= expected.size, {
      timeoutMs: 60_000,
      what: 'telegraf writing every window',
    });
    expect(Object.fromEntries(written())).toEqual(Object.fromEntries(expected));
  } finally {
    await publisher.endAsync();
    child.kill('SIGTERM');
    await broker.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- Node-RED

interface FlowNode {
  id: string;
  type: string;
  wires?: string[][];
  [key: string]: unknown;
}

const flow = JSON.parse(flowText) as FlowNode[];

function nodeOf(type: string): FlowNode {
  const found = flow.filter((n) => n.type === type);
  if (found.length !== 1) throw new Error(`node-red-flow.json: expected one ${type} node`);
  return found[0];
}

interface FunctionRun {
  outputs: unknown[];
  warnings: string[];
}

/**
 * The function node's code as Node-RED runs it: the body of a function of msg, with node
 * and a per-node memory context. One instance keeps its context across messages.
 */
function functionNode(): (msg: { topic: string; payload: unknown }) => FunctionRun {
  const code = nodeOf('function').func as string;
  const store = new Map<string, unknown>();
  let warnings: string[] = [];
  const sandbox = {
    node: {
      warn: (text: unknown) => warnings.push(String(text)),
      error: (text: unknown) => warnings.push(`error: ${String(text)}`),
      status: () => undefined,
      log: () => undefined,
    },
    context: {
      get: (key: string) => store.get(key),
      set: (key: string, value: unknown) => void store.set(key, value),
    },
  };
  const run = runInNewContext(`(function (msg) {\n${code}\n})`, sandbox) as (
    msg: unknown,
  ) => unknown;
  return (msg) => {
    warnings = [];
    // JSON round trip: plain host objects (Dates become ISO strings) for the assertions.
    const result = run(msg);
    return {
      outputs:
        result === null || result === undefined
          ? []
          : (JSON.parse(JSON.stringify(result)) as unknown[]),
      warnings,
    };
  };
}

describe('docs/examples/node-red-flow.json', () => {
  it('is importable: mqtt in (edge/+/telemetry, QoS 1, persistent session) → json → the function, two outputs wired', () => {
    const ids = new Set(flow.map((n) => n.id));
    expect(ids.size).toBe(flow.length);
    for (const n of flow) {
      for (const target of (n.wires ?? []).flat())
        expect(ids.has(target), `${n.id} → ${target}`).toBe(true);
    }
    const broker = nodeOf('mqtt-broker');
    expect(broker).toMatchObject({ cleansession: false });
    expect(broker.clientid).toEqual(expect.stringMatching(/\S/));
    const input = nodeOf('mqtt in');
    expect(input).toMatchObject({ topic: 'edge/+/telemetry', qos: '1', broker: broker.id });
    const json = nodeOf('json');
    const fn = nodeOf('function');
    expect(input.wires).toEqual([[json.id]]);
    expect(json.wires).toEqual([[fn.id]]);
    expect(fn.outputs).toBe(2);
    expect(fn.wires).toHaveLength(2);
  });

  it('runs on the real batches, each delivered twice: every window once, as a chart point and an InfluxDB point', () => {
    const run = functionNode();
    const chart: Array<{
      topic: string;
      payload: number;
      timestamp: number;
      quantity: string;
      unit: string;
    }> = [];
    const points: Array<{
      measurement: string;
      tags: Record<string, string>;
      fields: Record<string, unknown>;
      timestamp: string;
    }> = [];
    let duplicates = 0;
    for (const m of messages) {
      for (let delivery = 0; delivery < 2; delivery++) {
        const { outputs } = run({ topic: m.topic, payload: JSON.parse(m.text) });
        if (outputs.length === 0) {
          duplicates++;
          continue;
        }
        const [toChart, toInflux] = outputs as [typeof chart, { payload: typeof points } | null];
        chart.push(...toChart);
        if (toInflux) points.push(...toInflux.payload);
      }
    }
    const kept = unique(messages);
    expect(duplicates).toBe(messages.length * 2 - kept.length);
    const windows = kept.flatMap((m) =>
      m.batch.windows.map((w) => ({ gateway: m.batch.gateway, w })),
    );
    expect(points).toEqual(
      windows.map(({ gateway, w }) => {
        const p = expectedPoint(gateway, w);
        return {
          measurement: p.name,
          tags: p.tags,
          fields: p.fields,
          timestamp: new Date(w.start).toISOString(),
        };
      }),
    );
    expect(chart).toEqual(
      windows
        .filter(({ w }) => w.count > 0)
        .map(({ gateway, w }) => ({
          topic: `${gateway}/${w.sensor}/${w.quantity}`,
          payload: w.mean,
          timestamp: w.start,
          quantity: w.quantity,
          unit: w.unit,
        })),
    );
    for (const c of chart) expect(typeof c.payload).toBe('number');
  });

  it('warns of a seq gap once, and takes the late batch that fills it without a warning', () => {
    const run = functionNode();
    const whole = unique(messages).filter((m) => m.batch.part === undefined || m.batch.part === 1);
    const seqs = [...new Set(whole.map((m) => m.batch.seq))];
    expect(seqs.length).toBeGreaterThanOrEqual(3);
    const first = whole.find((m) => m.batch.seq === seqs[0]) as Message;
    const second = whole.find((m) => m.batch.seq === seqs[1]) as Message;
    const third = whole.find((m) => m.batch.seq === seqs[2]) as Message;
    const deliver = (m: Message) => run({ topic: m.topic, payload: JSON.parse(m.text) });
    expect(deliver(first).warnings).toEqual([]);
    expect(deliver(third).warnings).toEqual([
      `gw: seq ${seqs[0] + 1}..${seqs[2] - 1} not received (yet)`,
    ]);
    const late = deliver(second);
    expect(late.warnings).toEqual([]);
    expect(late.outputs).toHaveLength(2);
  });

  it("passes on the gateway's dropped note as a warning", () => {
    const run = functionNode();
    const batch = JSON.parse(unique(messages)[0].text) as Batch;
    // As after a long outage: the spool's bound dropped 118..120, the next batch says so.
    batch.seq = 121;
    batch.dropped = { count: 3, firstSeq: 118, lastSeq: 120, reason: 'spool-bound' };
    expect(validateTelemetry(batch)).toBe(true);
    expect(run({ topic: 'edge/gw/telemetry', payload: batch }).warnings).toEqual([
      'gw: the gateway dropped 3 batch(es), seq 118..120 (spool-bound)',
    ]);
  });

  it('warns and passes nothing on for a message that is not a telemetry batch', () => {
    const run = functionNode();
    const r = run({ topic: 'edge/gw/telemetry', payload: { state: 'online' } });
    expect(r.outputs).toEqual([]);
    expect(r.warnings).toEqual(['not an edge-agent telemetry batch on edge/gw/telemetry']);
  });
});

describe('docs/consumers.md', () => {
  const guide = readFileSync(new URL('consumers.md', docs), 'utf8');

  it('links only files that exist, and README and payload.md link it', () => {
    const targets = [...guide.matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)]
      .map((m) => m[1])
      .filter((t) => !/^[a-z]+:/.test(t));
    expect(targets).toContain('examples/telegraf.conf');
    expect(targets).toContain('examples/node-red-flow.json');
    for (const t of targets) expect(() => accessSync(new URL(t, docs)), t).not.toThrow();
    expect(readFileSync(new URL('../README.md', docs), 'utf8')).toContain('(docs/consumers.md)');
    expect(readFileSync(new URL('payload.md', docs), 'utf8')).toContain('(consumers.md)');
  });

  it('has a section for each consumer, in the order of the table', () => {
    const headings = [...guide.matchAll(/^## (.+)$/gm)].map((m) => m[1]);
    const order = ['Home Assistant', 'Node-RED', 'Telegraf → InfluxDB', 'Sparkplug B'].map((h) =>
      headings.indexOf(h),
    );
    expect(order.every((i) => i >= 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
  });
});
