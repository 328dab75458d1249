/**
 * Telegraf's json_v2 parser (plugins/parsers/json_v2/parser.go), re-done for the subset
 * docs/examples/telegraf.conf uses, so the test can run the config on the batches the agent
 * really publishes and compare the metrics with the windows:
 *
 * - root `tag` / `field` tables: a gjson path to a single value (a missing path is an error
 *   for the whole message unless `optional`; an object is ignored);
 * - `object` tables: every element of the array at `path` becomes one metric; nested objects
 *   are flattened with `_` between the keys (disable_prepend_keys false); `included_keys`
 *   (plus `tags`) and `excluded_keys` select keys by their flattened name; a JSON null makes
 *   no field; `timestamp_key` (which must itself pass included_keys) sets the metric's time
 *   with `timestamp_format = "unix_ms"`; `fields` sets a key's type (int, float, string);
 * - every object metric gets the root tags and fields (parser.go's cartesian product);
 * - a metric with no fields is dropped, as Telegraf's RunningInput.MakeMetric does.
 *
 * Settings outside this subset make `jsonV2Config` throw, so a config change the emulation
 * does not cover fails the test instead of being checked wrongly.
 */
import { gjsonGet, type Json } from './gjson.js';

export interface JsonV2Path {
  path: string;
  rename?: string;
  type?: string;
  optional: boolean;
}

export interface JsonV2Object {
  path: string;
  optional: boolean;
  timestampKey?: string;
  timestampFormat?: string;
  tags: string[];
  includedKeys: string[];
  excludedKeys: string[];
  fieldTypes: Record<string, string>;
}

export interface JsonV2Config {
  measurementName: string;
  tags: JsonV2Path[];
  fields: JsonV2Path[];
  objects: JsonV2Object[];
}

export interface Metric {
  name: string;
  tags: Record<string, string>;
  fields: Record<string, number | string | boolean>;
  /** ms since the epoch; undefined = Telegraf would stamp it with the arrival time. */
  time: number | undefined;
}

type Table = Record<string, unknown>;

function isTable(v: unknown): v is Table {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function only(table: Table, allowed: string[], where: string): void {
  for (const key of Object.keys(table)) {
    if (!allowed.includes(key)) {
      throw new Error(
        `${where}.${key}: not in the json_v2 subset test/consumers/json-v2.ts emulates`,
      );
    }
  }
}

function stringList(v: unknown, where: string): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) {
    throw new Error(`${where}: expected a list of strings`);
  }
  return v as string[];
}

function str(v: unknown, where: string): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new Error(`${where}: expected a string`);
  return v;
}

function paths(v: unknown, where: string): JsonV2Path[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new Error(`${where}: expected [[…]] tables`);
  return v.map((t: unknown, i) => {
    const w = `${where}[${i}]`;
    if (!isTable(t)) throw new Error(`${w}: expected a table`);
    only(t, ['path', 'rename', 'type', 'optional'], w);
    const path = str(t.path, `${w}.path`);
    if (!path) throw new Error(`${w}.path: required`);
    return {
      path,
      rename: str(t.rename, `${w}.rename`),
      type: str(t.type, `${w}.type`),
      optional: t.optional === true,
    };
  });
}

/** One `[[….json_v2]]` table of a parsed TOML config, checked against the emulated subset. */
export function jsonV2Config(table: unknown, where: string): JsonV2Config {
  if (!isTable(table)) throw new Error(`${where}: expected a table`);
  only(table, ['measurement_name', 'tag', 'field', 'object'], where);
  const objects = (Array.isArray(table.object) ? table.object : []).map((o: unknown, i) => {
    const w = `${where}.object[${i}]`;
    if (!isTable(o)) throw new Error(`${w}: expected a table`);
    only(
      o,
      [
        'path',
        'optional',
        'timestamp_key',
        'timestamp_format',
        'tags',
        'included_keys',
        'excluded_keys',
        'fields',
      ],
      w,
    );
    const path = str(o.path, `${w}.path`);
    if (!path) throw new Error(`${w}.path: required`);
    const timestampFormat = str(o.timestamp_format, `${w}.timestamp_format`);
    if (o.timestamp_key !== undefined && timestampFormat !== 'unix_ms') {
      throw new Error(`${w}.timestamp_format: only "unix_ms" is emulated`);
    }
    const fieldTypes: Record<string, string> = {};
    if (o.fields !== undefined) {
      if (!isTable(o.fields)) throw new Error(`${w}.fields: expected a table`);
      for (const [k, t] of Object.entries(o.fields)) {
        if (t !== 'int' && t !== 'float' && t !== 'string') {
          throw new Error(`${w}.fields.${k}: only int, float and string are emulated`);
        }
        fieldTypes[k] = t;
      }
    }
    return {
      path,
      optional: o.optional === true,
      timestampKey: str(o.timestamp_key, `${w}.timestamp_key`),
      timestampFormat,
      tags: stringList(o.tags, `${w}.tags`),
      includedKeys: stringList(o.included_keys, `${w}.included_keys`),
      excludedKeys: stringList(o.excluded_keys, `${w}.excluded_keys`),
      fieldTypes,
    };
  });
  return {
    measurementName: str(table.measurement_name, `${where}.measurement_name`) ?? 'mqtt_consumer',
    tags: paths(table.tag, `${where}.tag`),
    fields: paths(table.field, `${where}.field`),
    objects,
  };
}

function setName(p: JsonV2Path): string {
  return (p.rename ?? p.path.split('.').at(-1) ?? p.path).replaceAll(' ', '_');
}

function convert(value: Json, type: string | undefined, name: string): number | string | boolean {
  if (typeof value === 'object') throw new Error(`${name}: not a scalar`);
  if (type === undefined) return value as number | string | boolean;
  if (type === 'string') return String(value);
  const n = typeof value === 'boolean' ? Number(value) : Number(value);
  if (Number.isNaN(n)) throw new Error(`unable to convert field "${name}" to type ${type}`);
  return type === 'int' ? Math.trunc(n) : n;
}

function isIncluded(o: JsonV2Object, key: string, value: Json): boolean {
  if (o.includedKeys.length === 0) return true;
  for (const k of [...o.includedKeys, ...o.tags]) {
    if (k === key) return true;
    if (typeof value === 'object' && value !== null && k.startsWith(key)) return true;
  }
  return false;
}

function objectMetric(o: JsonV2Object, element: Json, name: string): Metric {
  const metric: Metric = { name, tags: {}, fields: {}, time: undefined };
  const visit = (value: { [key: string]: Json }, prefix: string) => {
    for (const [key, v] of Object.entries(value)) {
      const flat =
        prefix === '' ? key.replaceAll(' ', '_') : `${prefix}_${key.replaceAll(' ', '_')}`;
      if (o.excludedKeys.includes(flat) || !isIncluded(o, flat, v)) continue;
      if (Array.isArray(v)) throw new Error(`${flat}: arrays inside objects are not emulated`);
      if (typeof v === 'object' && v !== null) {
        visit(v, flat);
      } else if (flat === o.timestampKey) {
        if (typeof v !== 'number') throw new Error(`timestamp ${flat}: not a number`);
        metric.time = v;
      } else if (v === null) {
        // json_v2 ignores JSON nulls: no field, no tag.
      } else if (o.tags.includes(flat)) {
        metric.tags[flat] = String(v);
      } else {
        metric.fields[flat] = convert(v, o.fieldTypes[flat], flat);
      }
    }
  };
  if (typeof element !== 'object' || element === null || Array.isArray(element)) {
    throw new Error(`object path ${o.path}: elements that are not objects are not emulated`);
  }
  visit(element, '');
  return metric;
}

/** The metrics Telegraf's json_v2 parser makes of one message (after dropping field-less ones). */
export function jsonV2Metrics(config: JsonV2Config, document: Json): Metric[] {
  const root: Metric = { name: config.measurementName, tags: {}, fields: {}, time: undefined };
  let rootMade = false;
  for (const [list, isTag] of [
    [config.tags, true],
    [config.fields, false],
  ] as const) {
    for (const p of list) {
      const r = gjsonGet(document, p.path);
      if (!r.exists) {
        if (p.optional) continue;
        throw new Error(`the path ${p.path} doesn't exist`);
      }
      if (Array.isArray(r.value)) throw new Error(`${p.path}: array results are not emulated`);
      if (typeof r.value === 'object' && r.value !== null) continue; // json_v2 ignores objects here
      if (r.value === null) continue;
      rootMade = true;
      if (isTag) root.tags[setName(p)] = String(r.value);
      else root.fields[setName(p)] = convert(r.value, p.type, setName(p));
    }
  }
  const objects: Metric[] = [];
  for (const o of config.objects) {
    const r = gjsonGet(document, o.path);
    if (!r.exists) {
      if (o.optional) continue;
      throw new Error(`the path ${o.path} doesn't exist`);
    }
    const elements = Array.isArray(r.value) ? r.value : [r.value];
    for (const element of elements) objects.push(objectMetric(o, element, config.measurementName));
  }
  const merged =
    objects.length === 0
      ? rootMade
        ? [root]
        : []
      : objects.map((m) => ({
          ...m,
          tags: { ...m.tags, ...(rootMade ? root.tags : {}) },
          fields: { ...m.fields, ...(rootMade ? root.fields : {}) },
        }));
  return merged.filter((m) => Object.keys(m.fields).length > 0);
}
