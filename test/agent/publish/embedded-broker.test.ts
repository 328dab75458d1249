import { createServer, type Server } from 'node:net';
import mqtt from 'mqtt';
import { describe, expect, it } from 'vitest';
import { startEmbeddedBroker } from '../../../simulator/broker.js';
import { freePort, portAccepts } from '../../helpers/ports.js';
import { useTeardown } from '../../helpers/teardown.js';

const t = useTeardown();

async function roundTrip(url: string): Promise<string> {
  const sub = await mqtt.connectAsync(url);
  const pub = await mqtt.connectAsync(url);
  try {
    const got = new Promise<string>((resolve) =>
      sub.on('message', (_t, p) => resolve(p.toString())),
    );
    await sub.subscribeAsync('edge/+/telemetry', { qos: 1 });
    await pub.publishAsync('edge/gw/telemetry', 'hello', { qos: 1 });
    return await got;
  } finally {
    await sub.endAsync();
    await pub.endAsync();
  }
}

describe('startEmbeddedBroker', () => {
  it('serves MQTT on the port asked for', async () => {
    const port = await freePort();
    const b = t.own(await startEmbeddedBroker({ port }));
    expect(b).toMatchObject({ port, url: `mqtt://127.0.0.1:${port}` });
    expect(await roundTrip(b.url)).toBe('hello');
  });

  it('falls back to a free port when the port is taken, and frees it on close', async () => {
    const port = await freePort();
    const squatter = t.own(createServer(), (s: Server) => new Promise((r) => s.close(r)));
    await new Promise<void>((r) => squatter.listen(port, '127.0.0.1', r));
    const b = await startEmbeddedBroker({ port });
    expect(b.port).not.toBe(port);
    expect(b.url).toBe(`mqtt://127.0.0.1:${b.port}`);
    expect(await roundTrip(b.url)).toBe('hello');
    await b.close();
    expect(await portAccepts(b.port)).toBe(false);
  });

  it('uses 1883 by default, or a free port when 1883 is taken', async () => {
    const taken = await portAccepts(1883);
    const b = t.own(await startEmbeddedBroker());
    if (taken) expect(b.port).not.toBe(1883);
    else expect(b.port).toBe(1883);
    expect(await roundTrip(b.url)).toBe('hello');
  });
});
