import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { waitUntil } from '../../helpers/wait.js';
import {
  startHttpSensorServer,
  type HttpSensorServer,
} from '../../../simulator/network/http-server.js';

let server: HttpSensorServer | undefined;
const agent = new http.Agent({ keepAlive: true, maxSockets: 100 });
afterEach(async () => {
  agent.destroy();
  await server?.close();
  server = undefined;
});

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent, timeout: 20_000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

describe('simulated HTTP JSON sensors', () => {
  it('serves plausible JSON per sensor after the delay, concurrently', async () => {
    server = await startHttpSensorServer({ delayMs: 100, sensors: 100 });
    const replies = await Promise.all(Array.from({ length: 50 }, (_, i) => get(server!.url(i))));
    replies.forEach((r, i) => {
      expect(r.status).toBe(200);
      const doc = JSON.parse(r.body) as {
        sensor: string;
        data: { temperature: number; humidity: number };
      };
      expect(doc.sensor).toBe(`sim-${i}`);
      expect(doc.data.temperature).toBeGreaterThan(10);
      expect(doc.data.temperature).toBeLessThan(35);
      expect(doc.data.humidity).toBeGreaterThan(30);
    });
    expect(server.stats()).toMatchObject({ requests: 50, responses: 50 });
    expect(server.requestsFor(3)).toBe(1);
    // Concurrently, not serialised: a server answering one request at a time never has more
    // than one waiting. (A count, not the elapsed time, which depends on the machine's speed.)
    expect(server.stats().peakWaiting).toBeGreaterThanOrEqual(10);
    expect(server.stats().waiting).toBe(0);
  });

  it('404s unknown sensors and paths', async () => {
    server = await startHttpSensorServer({ delayMs: 0, sensors: 10 });
    expect((await get(server.url(10))).status).toBe(404);
    expect((await get(server.url(0).replace('/sensors/0', '/nope'))).status).toBe(404);
  });

  it('keeps connections alive between requests', async () => {
    server = await startHttpSensorServer({ delayMs: 0 });
    for (let i = 0; i < 5; i++) expect((await get(server.url(1))).status).toBe(200);
    expect(server.stats().connections).toBe(1);
  });

  it('closes while a request hangs on the timeout fault', async () => {
    server = await startHttpSensorServer({ delayMs: 0 });
    server.inject(0, 'timeout');
    const pending = get(server.url(0)).catch((e: Error) => e);
    await waitUntil(() => server!.requestsFor(0) > 0, {
      timeoutMs: 10_000,
      what: 'the request hanging at the server',
    });
    await server.close();
    server = undefined;
    expect(await pending).toBeInstanceOf(Error);
  });
});
