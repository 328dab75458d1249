import http from 'node:http';
import type net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { KeepAliveHttpClient } from '../../../drivers/network/http-client.js';
import { createHttpJson, readingFromResponse } from '../../../drivers/network/http-json.js';
import { parseJsonPath } from '../../../drivers/network/json-path.js';
import { ReadingStatus, SensorError, type Reading } from '../../../drivers/types.js';
import {
  startHttpSensorServer,
  type HttpFault,
  type HttpSensorServer,
} from '../../../simulator/network/http-server.js';
import { rig, runDriver } from '../../helpers/run-driver.js';

let servers: HttpSensorServer[] = [];
let clients: KeepAliveHttpClient[] = [];
afterEach(async () => {
  for (const c of clients) c.destroy();
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
  clients = [];
});

async function setUp(delayMs: number, port = 0) {
  const server = await startHttpSensorServer({ delayMs, port, sensors: 1000 });
  servers.push(server);
  return server;
}
function newClient(maxSocketsPerHost?: number): KeepAliveHttpClient {
  const c = new KeepAliveHttpClient({ maxSocketsPerHost });
  clients.push(c);
  return c;
}
const config = (url: string, path = 'data.temperature') => ({
  url,
  path,
  quantity: 'temperature' as const,
});
const faultsOf = (rs: Reading[]) => rs.filter((r) => r.status === ReadingStatus.Fault);

describe('readingFromResponse', () => {
  const at = (body: string, status = 200, path = 'data.temperature') =>
    readingFromResponse({ status, body }, parseJsonPath(path), path, 'http://x/');
  const errorOf = (f: () => unknown): SensorError => {
    try {
      f();
    } catch (e) {
      return e as SensorError;
    }
    throw new Error('did not throw');
  };

  it('takes the number at the path', () => {
    expect(at('{"data":{"temperature":-4.25}}')).toBe(-4.25);
    expect(at('{"sensors":[{"t":"19.5"}]}', 200, 'sensors[0].t')).toBe(19.5);
    expect(at('{"data":{"temperature":21}}', 204)).toBe(21);
  });

  it.each([
    ['{"error":"boom"}', 500, /HTTP 500 from http:\/\/x\/: {"error":"boom"}/],
    ['', 404, /HTTP 404 from http:\/\/x\/$/],
    ['<html>oops</html>', 200, /not JSON/],
    ['{"data":{}}', 200, /path "data.temperature" not in body .*no "data.temperature"/],
    ['{"data":{"temperature":"n/a"}}', 200, /not a number: "n\/a"/],
    ['{"data":{"temperature":null}}', 200, /not a number: null/],
  ])('%s with status %i → PROTOCOL', (body, status, message) => {
    const e = errorOf(() => at(body, status));
    expect(e).toBeInstanceOf(SensorError);
    expect(e.code).toBe('PROTOCOL');
    expect(e.message).toMatch(message);
  });
});

describe('http-json driver against the simulated server', () => {
  it('reads plausible temperatures through sensorReadings, over one kept-alive connection', async () => {
    const server = await setUp(5);
    const client = newClient();
    // Made as the agent makes it: from the entry, over seams with this client.
    const driver = rig({ http: client }).driver({
      id: 'h',
      driver: 'http-json',
      ...config(server.url(4)),
    });
    expect(driver.resource).toBeUndefined();
    const readings = await runDriver(driver, { ticks: 5, intervalMs: 10 }).then((r) => r.readings);
    expect(readings).toHaveLength(5);
    for (const r of readings) {
      expect(r).toMatchObject({ sensor: 's', quantity: 'temperature', status: ReadingStatus.Ok });
      expect(r.value).toBeGreaterThan(10);
      expect(r.value).toBeLessThan(35);
    }
    expect(new Set(readings.map((r) => r.value)).size).toBeGreaterThan(1);
    expect(server.requestsFor(4)).toBe(5);
    expect(server.stats().connections).toBe(1);
    expect(client.stats()).toEqual({ requests: 5, newConnections: 1, retries: 0 });
  });

  it('reads another quantity at another path', async () => {
    const server = await setUp(1);
    const driver = createHttpJson(
      { url: server.url(0), path: 'data.humidity', quantity: 'humidity' },
      newClient(),
    );
    const [m] = await driver.measure(AbortSignal.timeout(5000));
    expect(m.quantity).toBe('humidity');
    expect(m.value).toBeGreaterThan(30);
  });

  it.each<[HttpFault, string, RegExp]>([
    ['http-500', 'PROTOCOL', /HTTP 500/],
    ['malformed', 'PROTOCOL', /not JSON/],
    ['missing-path', 'PROTOCOL', /not in body/],
    ['non-numeric', 'PROTOCOL', /not a number/],
    ['timeout', 'TIMEOUT', /no answer/],
    ['drop', 'DISCONNECTED', /ECONNRESET|socket hang up/],
  ])(
    'injected %s → %s fault readings without the URL’s password, then recovery, nothing thrown',
    async (fault, code, message) => {
      const server = await setUp(5);
      // Credentials in the URL reach the device, never a message (health, answers, logs).
      const url = server.url(7).replace('http://', 'http://reader:hunter2@');
      const { readings, faults: seen } = await runDriver(createHttpJson(config(url), newClient()), {
        timeoutMs: 750,
        ticks: 6,
        intervalMs: 20,
        beforeTick: (i) => server.inject(7, i < 3 ? fault : null),
      });
      expect(readings.map((r) => r.status)).toEqual([
        ...Array(3).fill(ReadingStatus.Fault),
        ...Array(3).fill(ReadingStatus.Ok),
      ]);
      expect(faultsOf(readings).every((r) => Number.isNaN(r.value))).toBe(true);
      expect(seen).toHaveLength(3);
      for (const e of seen) {
        expect(e.code).toBe(code);
        expect(e.message).toMatch(message);
        expect(e.message).not.toContain('hunter2');
      }
    },
  );

  it('stuck value: the same value round after round', async () => {
    const server = await setUp(1);
    server.inject(2, 'stuck');
    const readings = await runDriver(createHttpJson(config(server.url(2)), newClient()), {
      ticks: 4,
      intervalMs: 5,
    }).then((r) => r.readings);
    expect(readings).toHaveLength(4);
    expect(new Set(readings.map((r) => r.value)).size).toBe(1);
  });

  it('an invalid path in the config is a PROTOCOL fault naming it, not a crash', async () => {
    const server = await setUp(1);
    const driver = createHttpJson(config(server.url(0), 'data..t'), newClient());
    await expect(driver.measure(AbortSignal.timeout(5000))).rejects.toMatchObject({
      code: 'PROTOCOL',
      message: expect.stringMatching(/invalid JSON path "data..t"/),
    });
    expect(server.stats().requests).toBe(0);
  });

  it('connection refused → DISCONNECTED', async () => {
    const server = await setUp(1);
    const url = server.url(0);
    await server.close();
    servers = [];
    await expect(
      createHttpJson(config(url), newClient()).measure(AbortSignal.timeout(5000)),
    ).rejects.toMatchObject({
      code: 'DISCONNECTED',
      message: expect.stringMatching(/ECONNREFUSED/),
    });
  });

  it('200 sensors × 100 ms answer concurrently, and the second round reuses the sockets', async () => {
    const server = await setUp(100);
    const client = newClient();
    const drivers = Array.from({ length: 200 }, (_, i) =>
      createHttpJson(config(server.url(i)), client),
    );
    const round = () =>
      Promise.all(
        drivers.map((d) =>
          runDriver(d, { timeoutMs: 10_000, ticks: 1, intervalMs: 0 }).then((r) => r.readings),
        ),
      );
    const first = await round();
    expect(first.flat().map((r) => r.status)).toEqual(Array(200).fill(ReadingStatus.Ok));
    // A serialising client would never have more than 1 waiting; connection set-up spreads
    // the first round's arrivals, so the bound is loose. (A count, not the elapsed time, which
    // depends on the machine's speed.)
    expect(server.stats().peakWaiting).toBeGreaterThanOrEqual(50);
    const afterFirst = server.stats().connections;
    expect(afterFirst).toBeLessThanOrEqual(200);
    const second = await round();
    expect(second.flat().every((r) => r.status === ReadingStatus.Ok)).toBe(true);
    expect(server.stats().requests).toBe(400);
    expect(server.stats().connections).toBe(afterFirst);
  });

  it('maxSocketsPerHost bounds the connections; the rest queue and still get answered', async () => {
    const server = await setUp(20);
    const client = newClient(4);
    const values = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        createHttpJson(config(server.url(i)), client).measure(AbortSignal.timeout(20_000)),
      ),
    );
    expect(values).toHaveLength(40);
    expect(server.stats().connections).toBe(4);
  });

  it('server down → DISCONNECTED faults; server back on the same port → recovers', async () => {
    const first = await setUp(5);
    const port = first.port;
    const { readings, faults } = await runDriver(
      createHttpJson(config(first.url(0)), newClient()),
      {
        timeoutMs: 1000,
        ticks: 8,
        intervalMs: 20,
        beforeTick: async (i) => {
          if (i === 2) await first.close();
          if (i === 5) await setUp(5, port);
        },
      },
    );
    const seen = faults.map((e) => e.code);
    expect(readings.map((r) => r.status)).toEqual([
      ReadingStatus.Ok,
      ReadingStatus.Ok,
      ...Array(3).fill(ReadingStatus.Fault),
      ...Array(3).fill(ReadingStatus.Ok),
    ]);
    expect(seen).toEqual(['DISCONNECTED', 'DISCONNECTED', 'DISCONNECTED']);
  });

  it('retries once on a fresh socket when the server closed the idle kept-alive one', async () => {
    // A server we can reach inside: close its end of the idle socket in the same tick as the
    // next request goes out, so the client reuses a socket that is already dead.
    const sockets = new Set<net.Socket>();
    const srv = http.createServer((_req, res) => {
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end('{"data":{"temperature":20.5}}');
    });
    srv.on('connection', (s: net.Socket) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    try {
      const { port } = srv.address() as net.AddressInfo;
      let connections = 0;
      srv.on('connection', () => connections++);
      const client = newClient();
      const driver = createHttpJson(config(`http://127.0.0.1:${port}/t`), client);
      await driver.measure(AbortSignal.timeout(5000));
      expect(sockets.size).toBe(1);
      for (const s of sockets) s.destroy();
      const [m] = await driver.measure(AbortSignal.timeout(5000));
      expect(m.value).toBe(20.5);
      expect(connections).toBe(2);
      expect(client.stats()).toEqual({ requests: 3, newConnections: 2, retries: 1 });
    } finally {
      srv.closeAllConnections();
      await new Promise((r) => srv.close(r));
    }
  });

  it('times out a reply whose body stalls half-way, and an oversized body is PROTOCOL', async () => {
    const srv = http.createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      if (req.url === '/big') return res.end(`{"pad":"${'x'.repeat(2048)}","t":1}`);
      res.write('{"data":{"temper'); // …and nothing more
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    try {
      const { port } = srv.address() as net.AddressInfo;
      const client = new KeepAliveHttpClient({ maxBodyBytes: 1024 });
      clients.push(client);
      await expect(
        createHttpJson(config(`http://127.0.0.1:${port}/stall`), client).measure(
          AbortSignal.timeout(200),
        ),
      ).rejects.toMatchObject({ code: 'TIMEOUT' });
      await expect(
        createHttpJson(config(`http://127.0.0.1:${port}/big`, 't'), client).measure(
          AbortSignal.timeout(5000),
        ),
      ).rejects.toMatchObject({
        code: 'PROTOCOL',
        message: expect.stringMatching(/exceeds 1024 bytes/),
      });
    } finally {
      srv.closeAllConnections();
      await new Promise((r) => srv.close(r));
    }
  });
});
