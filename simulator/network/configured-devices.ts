/**
 * Loopback stand-ins for the network devices a configuration names (`simulate --config`):
 * one Modbus TCP server on 127.0.0.1 per configured host and port, serving the registers
 * the sensors read (their unit ids, addresses, scale and signedness), and one HTTP server
 * answering each configured URL with a JSON body that holds a value at each configured
 * path. The enabled sensors come back pointed at these servers, so `simulate` never reaches
 * a device on the network; the drivers' own code (MBAP, PDU, HTTP, JSON path) runs unchanged.
 * A disabled sensor is never read, so it gets no stand-in.
 */
import type { SensorConfig, SensorConfigOf } from '../../drivers/registry.js';
import { registerRaw } from '../../drivers/modbus-pdu.js';
import { parseJsonPath, type JsonPath } from '../../drivers/network/json-path.js';
import type { Quantity } from '../../drivers/types.js';
import { Signal } from '../signal.js';
import { startHttpSensorServer } from './http-server.js';
import { startModbusTcpSensorServer } from './modbus-tcp-server.js';

export interface SimulatedNetworkDevices {
  /** The sensors, network ones pointed at the loopback servers; the others as given. */
  sensors: SensorConfig[];
  /** "host:port → 127.0.0.1:port" for each stand-in, for the start-up line. */
  replaced: string[];
  close(): Promise<void>;
}

/** Where each quantity's simulated value sits. */
const SET_POINTS: Record<Quantity, number> = {
  temperature: 21,
  humidity: 50,
  pressure: 101_325,
};

function signalFor(quantity: Quantity, seed: number): Signal {
  const setPoint = SET_POINTS[quantity] + (quantity === 'pressure' ? 0 : seed % 5);
  const noise = quantity === 'pressure' ? 5 : 0.05;
  return new Signal({ setPoint, noise, seed: 500 + seed });
}

type ModbusTcpSensor = SensorConfigOf<'modbus-tcp'>;
type HttpJsonSensor = SensorConfigOf<'http-json'>;

export async function simulateNetworkDevices(
  sensors: readonly SensorConfig[],
): Promise<SimulatedNetworkDevices> {
  const closers: Array<() => Promise<void>> = [];
  const replaced: string[] = [];
  const out = [...sensors];
  try {
    const modbus = await modbusStandIns(sensors, closers, replaced);
    const http = await httpStandIn(sensors, closers, replaced);
    for (let i = 0; i < out.length; i++) {
      const s = out[i];
      if (!s.enabled) continue;
      if (s.driver === 'modbus-tcp') out[i] = { ...s, host: '127.0.0.1', port: modbus(s) };
      if (s.driver === 'http-json') out[i] = { ...s, url: http(s) };
    }
  } catch (err) {
    await Promise.allSettled(closers.map((c) => c()));
    throw err;
  }
  return {
    sensors: out,
    replaced,
    close: async () => {
      await Promise.allSettled(closers.map((c) => c()));
    },
  };
}

const endpointOf = (s: ModbusTcpSensor) => `${s.host}:${s.port}`;

/** One server per configured endpoint; returns the port that stands in for a sensor's. */
async function modbusStandIns(
  sensors: readonly SensorConfig[],
  closers: Array<() => Promise<void>>,
  replaced: string[],
): Promise<(s: ModbusTcpSensor) => number> {
  const byEndpoint = new Map<string, ModbusTcpSensor[]>();
  for (const s of sensors) {
    if (s.driver !== 'modbus-tcp' || !s.enabled) continue;
    byEndpoint.set(endpointOf(s), [...(byEndpoint.get(endpointOf(s)) ?? []), s]);
  }
  const ports = new Map<string, number>();
  let seed = 0;
  for (const [endpoint, group] of byEndpoint) {
    const words = new Map<string, (t: number) => number>();
    for (const s of group) {
      for (const r of s.registers) {
        const signal = signalFor(r.quantity, seed++);
        words.set(`${s.unitId}/${r.address}`, (t) => registerRaw(signal.at(t), r));
      }
    }
    const server = await startModbusTcpSensorServer({
      delayMs: 0,
      registers: (unitId, address, t) => words.get(`${unitId}/${address}`)?.(t),
    });
    closers.push(() => server.close());
    ports.set(endpoint, server.port);
    replaced.push(`Modbus TCP ${endpoint} → 127.0.0.1:${server.port}`);
  }
  return (s) => ports.get(endpointOf(s))!;
}

/** One server for every configured URL; returns the URL that stands in for a sensor's. */
async function httpStandIn(
  sensors: readonly SensorConfig[],
  closers: Array<() => Promise<void>>,
  replaced: string[],
): Promise<(s: HttpJsonSensor) => string> {
  const byUrl = new Map<string, HttpJsonSensor[]>();
  for (const s of sensors) {
    if (s.driver === 'http-json' && s.enabled) byUrl.set(s.url, [...(byUrl.get(s.url) ?? []), s]);
  }
  if (byUrl.size === 0) return () => '';
  const documents = new Map<string, (t: number) => unknown>();
  const paths = new Map<string, string>();
  let seed = 100;
  for (const [url, group] of byUrl) {
    const path = `/device/${paths.size}`;
    paths.set(url, path);
    const values = group.map((s) => ({
      path: parseJsonPath(s.path),
      signal: signalFor(s.quantity, seed++),
    }));
    documents.set(path, (t) => {
      let doc: unknown = undefined;
      for (const v of values) doc = setAt(doc, v.path, Number(v.signal.at(t).toFixed(2)));
      return doc;
    });
  }
  const server = await startHttpSensorServer({
    delayMs: 0,
    documents: (path, t) => documents.get(path)?.(t),
  });
  closers.push(() => server.close());
  const base = `http://127.0.0.1:${server.port}`;
  for (const [url, path] of paths) replaced.push(`HTTP ${url} → ${base}${path}`);
  return (s) => `${base}${paths.get(s.url)!}`;
}

/** `doc` with `value` at `path`, creating the objects and arrays on the way. */
function setAt(doc: unknown, path: JsonPath, value: number): unknown {
  if (path.length === 0) return value;
  const [key, ...rest] = path;
  if (typeof key === 'number') {
    const arr = Array.isArray(doc) ? [...(doc as unknown[])] : [];
    while (arr.length <= key) arr.push(null);
    arr[key] = setAt(arr[key], rest, value);
    return arr;
  }
  const obj =
    doc !== null && typeof doc === 'object' && !Array.isArray(doc)
      ? { ...(doc as Record<string, unknown>) }
      : {};
  obj[key] = setAt(obj[key], rest, value);
  return obj;
}
