/** TelemetryPublisher against a real mosquitto (and the embedded Aedes). */
import { describe, expect, it } from 'vitest';
import { startAedes } from '../../helpers/aedes.js';
import { missingSeqs } from '../../helpers/subscriber.js';
import { sleep, waitUntil } from '../../helpers/wait.js';
import { useTeardown } from '../../helpers/teardown.js';
import { windowBody } from './bodies.js';
import { schemaErrors, validateStatus, validateTelemetry } from './schemas.js';
import { makePublisher, type Harness } from './setup.js';

const t = useTeardown();

const broker = t.mosquitto;
const subscriber = t.subscriber;
const publisher = (options: Parameters<typeof makePublisher>[0]): Harness =>
  t.own(makePublisher(options), (h) => h.dispose());

/** Submit `count` batches, one every `everyMs`; returns their seqs. */
async function feed(h: Harness, count: number, everyMs: number, start = 0): Promise<number[]> {
  const seqs: number[] = [];
  for (let i = 0; i < count; i++) {
    seqs.push(await h.publisher.submit(windowBody(start + i)));
    await sleep(everyMs);
  }
  return seqs;
}

describe('TelemetryPublisher with mosquitto', () => {
  it('delivers every batch once in seq order, schema-valid, with a retained online status', async () => {
    const b = await broker();
    const sub = await subscriber({ url: b.url, topics: ['edge/+/telemetry', 'edge/+/status'] });
    const h = publisher({ mqtt: { url: b.url } });
    h.publisher.start();
    const submitted = [];
    // One turn: the 100 batches are committed in two transactions (COMMIT_MAX_BATCHES = 64).
    for (let i = 0; i < 100; i++)
      submitted.push(h.publisher.submit(windowBody(i, { readings: 3 })));
    const seqs = await Promise.all(submitted);
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
    expect(h.spool.stats().commits).toBeLessThanOrEqual(3);
    await sub.waitFor((s) => s.telemetrySeqs().length >= 100, 30_000, '100 batches');
    expect(sub.telemetrySeqs()).toEqual(seqs);
    for (const m of sub.on('/telemetry')) expect(schemaErrors(validateTelemetry, m.json)).toBe('');
    await waitUntil(() => h.publisher.stats().spool.depth === 0, { what: 'spool empty' });
    expect(h.publisher.stats()).toMatchObject({ connected: true, published: 100, inflight: 0 });

    // A late subscriber gets the retained online status.
    const late = await subscriber({ url: b.url, topics: ['edge/gw/status'] });
    await late.waitFor((s) => s.messages.length > 0, 10_000, 'retained status');
    const status = late.messages[0];
    expect(status.retain).toBe(true);
    expect(status.json).toMatchObject({ state: 'online', gateway: 'gw', version: '0.0.0-test' });
    expect(schemaErrors(validateStatus, status.json)).toBe('');
  });

  it('survives two broker outages: a persistent subscriber gets every seq, duplicates only as repeats', async () => {
    const b = await broker({ persistence: true });
    const sub = await subscriber({
      url: b.url,
      topics: ['edge/gw/telemetry'],
      clientId: 'outage-sub',
      clean: false,
    });
    const h = publisher({ mqtt: { url: b.url, inflight: 4 } });
    h.publisher.start();
    await waitUntil(() => h.publisher.stats().connected, { what: 'connected' });
    const all: number[] = [];
    for (let outage = 0; outage < 2; outage++) {
      all.push(...(await feed(h, 20, 20, all.length)));
      await b.stop();
      // Batches keep coming while the broker is away: they wait in the spool.
      all.push(...(await feed(h, 60, 60, all.length)));
      expect(h.publisher.stats().connected).toBe(false);
      expect(h.publisher.stats().spool.depth).toBeGreaterThanOrEqual(60);
      await b.restart();
      await waitUntil(() => h.publisher.stats().reconnects === outage + 1, {
        what: `reconnect ${outage + 1}`,
      });
    }
    all.push(...(await feed(h, 20, 10, all.length)));
    const last = all[all.length - 1];
    expect(all).toEqual(all.map((_, i) => i + 1));
    await sub.waitFor(
      (s) => missingSeqs(s.telemetrySeqs(), last).length === 0,
      45_000,
      'every seq',
    );
    const got = sub.telemetrySeqs();
    expect(missingSeqs(got, last)).toEqual([]);
    expect(got.every((s) => s >= 1 && s <= last)).toBe(true);
    const stats = h.publisher.stats();
    expect(stats.reconnects).toBe(2);
    expect(stats.spool.dropped).toBe(0);
    // A broker that goes away is not a broker that refuses: no refusal, split or alarm.
    expect(stats).toMatchObject({ refusals: 0, splits: 0, setAside: 0 });
    expect(h.log.records.filter((r) => r.level >= 50).map((r) => r.msg)).toEqual([]);
    await waitUntil(() => h.publisher.stats().spool.depth === 0, { what: 'spool drained' });
  });

  it('a broker that dies with batches in flight is not a broker that refuses: no refusal, split or alarm', async () => {
    const b = await broker();
    const h = publisher({ mqtt: { url: b.url } });
    h.publisher.start();
    await waitUntil(() => h.publisher.stats().connected, { what: 'connected' });
    // Hung, then killed: the batches are in flight when the connection closes.
    b.freeze();
    await feed(h, 3, 0);
    await waitUntil(() => h.publisher.stats().inflight === 3, { what: '3 in flight' });
    await b.kill();
    await waitUntil(() => !h.publisher.stats().connected, { what: 'disconnected' });
    await b.restart();
    await waitUntil(() => h.publisher.stats().spool.depth === 0, { what: 'replayed' });
    expect(h.publisher.stats()).toMatchObject({
      published: 3,
      refusals: 0,
      splits: 0,
      setAside: 0,
    });
    expect(h.log.records.filter((r) => r.level >= 50).map((r) => r.msg)).toEqual([]);
  });

  it('with a tiny spool and a long outage drops the oldest, and the drop count equals the missing seqs', async () => {
    const b = await broker({ persistence: true });
    const sub = await subscriber({
      url: b.url,
      topics: ['edge/gw/telemetry'],
      clientId: 'bound-sub',
      clean: false,
    });
    const body = windowBody(7); // same size every time, so the byte bound holds exactly 5
    const h = publisher({ mqtt: { url: b.url }, spool: { maxBytes: 5 * body.length } });
    h.publisher.start();
    await waitUntil(() => h.publisher.stats().connected, { what: 'connected' });
    for (let i = 0; i < 10; i++) {
      h.publisher.submit(body);
      await waitUntil(() => h.publisher.stats().spool.depth === 0, { what: 'acked' });
    }
    await sub.waitFor((s) => s.telemetrySeqs().length >= 10, 20_000, 'first 10');
    await b.stop();
    await waitUntil(() => !h.publisher.stats().connected, { what: 'disconnected' });
    for (let i = 0; i < 30; i++) {
      h.publisher.submit(body);
      await sleep(5);
    }
    expect(h.publisher.stats().spool).toMatchObject({ depth: 5, dropped: 25 });
    expect(h.log.records.some((r) => r.msg.includes('dropped the oldest'))).toBe(true);
    await b.restart();
    await waitUntil(() => h.publisher.stats().spool.depth === 0, { what: 'replayed' });
    for (let i = 0; i < 3; i++) h.publisher.submit(body);
    const last = 43;
    await sub.waitFor((s) => s.telemetrySeqs().includes(last), 30_000, 'last batch');
    // Everything the broker had for the subscriber is in once the marker is back.
    await sub.settle();
    const missing = missingSeqs(sub.telemetrySeqs(), last);
    const stats = h.publisher.stats();
    expect(stats.spool.lastSeq).toBe(last);
    expect(missing.length).toBe(stats.spool.dropped);
    // The oldest of the outage went: 11..35.
    expect(missing).toEqual(Array.from({ length: 25 }, (_, i) => 11 + i));
  });

  it('stop() delivers everything submitted before it, retains an offline status, and sends no Last Will', async () => {
    const b = await broker();
    const sub = await subscriber({ url: b.url, topics: ['edge/gw/telemetry', 'edge/gw/status'] });
    const h = publisher({ mqtt: { url: b.url, inflight: 8 } });
    h.publisher.start();
    await waitUntil(() => h.publisher.stats().connected, { what: 'connected' });
    const submitted: Promise<number>[] = [];
    for (let i = 0; i < 300; i++) submitted.push(h.publisher.submit(windowBody(i)));
    // Not awaited: stop() itself must wait for the queued commit and deliver all of them.
    await h.publisher.stop({ drainMs: 20_000 });
    const seqs = await Promise.all(submitted);
    expect(h.publisher.stats().spool.depth).toBe(0);
    await sub.waitFor((s) => s.telemetrySeqs().length >= 300, 20_000, 'all batches');
    expect(sub.telemetrySeqs()).toEqual(seqs);
    await sub.waitFor(
      (s) => s.on('/status').some((m) => m.json?.state === 'offline'),
      10_000,
      'offline status',
    );
    // No Will after the clean stop: none by the time the broker logged the DISCONNECT and a
    // marker published after it is back.
    await waitUntil(() => /Client \S+ disconnected/.test(b.log()), {
      timeoutMs: 10_000,
      what: "the broker's log of the publisher's DISCONNECT",
    });
    await sub.settle();
    const states = sub
      .on('/status')
      .map((m) => `${String(m.json?.state)}:${String(m.json?.reason)}`);
    expect(states).toEqual(['online:undefined', 'offline:shutdown']);
    const late = await subscriber({ url: b.url, topics: ['edge/gw/status'] });
    await late.waitFor((s) => s.messages.length > 0, 10_000, 'retained status');
    expect(late.messages[0]).toMatchObject({ retain: true });
    expect(late.messages[0].json).toMatchObject({ state: 'offline', reason: 'shutdown' });
  });

  it('stop() during an outage gives up after drainMs and leaves the batches for the next run', async () => {
    const b = await broker();
    const first = makePublisher({ mqtt: { url: b.url } });
    first.publisher.start();
    await waitUntil(() => first.publisher.stats().connected, { what: 'connected' });
    await b.stop();
    await waitUntil(() => !first.publisher.stats().connected, { what: 'disconnected' });
    const seqs = await Promise.all([0, 1, 2].map((i) => first.publisher.submit(windowBody(i))));
    // The broker stays down: stop() returning at all shows it gave up after drainMs.
    await first.publisher.stop({ drainMs: 500 });
    expect(first.spool.stats().depth).toBe(3);
    first.spool.close();

    await b.restart();
    const sub = await subscriber({ url: b.url, topics: ['edge/gw/telemetry'] });
    const next = publisher({ mqtt: { url: b.url }, dir: first.dir });
    next.publisher.start();
    await sub.waitFor((s) => s.telemetrySeqs().length >= 3, 20_000, 'spooled batches');
    expect(sub.telemetrySeqs()).toEqual(seqs);
    expect(await next.publisher.submit(windowBody(3))).toBe(4);
  });

  it('keeps retrying a wrong URL with a clear error and no crash', async () => {
    const h = publisher({
      mqtt: { url: 'mqtt://127.0.0.1:1', reconnectMinMs: 50, reconnectMaxMs: 200 },
    });
    h.publisher.start();
    h.publisher.submit(windowBody(0));
    await waitUntil(() => h.publisher.stats().connectFailures >= 3, { what: '3 failed attempts' });
    const stats = h.publisher.stats();
    expect(stats.connected).toBe(false);
    expect(stats.lastError).toMatch(/ECONNREFUSED/);
    expect(stats.spool.depth).toBe(1);
    expect(h.log.records.some((r) => r.msg.includes('MQTT connect failed; retrying'))).toBe(true);
  });

  it('logs a refused CONNACK loudly, retries slower, never logs the password, and connects with the right one', async () => {
    const b = await broker({ users: { agent: 'right-secret' } });
    const { writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const secrets = t.tempDir('secrets-');
    writeFileSync(join(secrets, 'pw'), 'wrong-secret\n');
    const bad = publisher({
      mqtt: {
        url: b.url,
        username: 'agent',
        passwordFile: join(secrets, 'pw'),
        reconnectMinMs: 50,
        reconnectMaxMs: 100,
      },
    });
    bad.publisher.start();
    await waitUntil(() => bad.publisher.stats().connectFailures >= 2, { what: 'refusals' });
    expect(bad.publisher.stats().connected).toBe(false);
    expect(bad.publisher.stats().lastError).toMatch(/Connection refused/i);
    const loud = bad.log.records.filter((r) => r.level >= 50 && r.msg.includes('REFUSED'));
    expect(loud.length).toBeGreaterThanOrEqual(2);
    // Slower backoff after refusals: the retry delay logged is at least 4x the minimum.
    const retries = bad.log.records.filter((r) => typeof r.retryInMs === 'number');
    expect(Math.min(...retries.map((r) => r.retryInMs as number))).toBeGreaterThanOrEqual(200);
    expect(bad.log.text()).not.toContain('wrong-secret');

    // The systemd credential route, with the right password.
    writeFileSync(join(secrets, 'mqtt-password'), 'right-secret\n');
    const saved = process.env.CREDENTIALS_DIRECTORY;
    process.env.CREDENTIALS_DIRECTORY = secrets;
    try {
      const good = publisher({
        mqtt: { url: b.url, username: 'agent', passwordCredential: 'mqtt-password' },
      });
      good.publisher.start();
      await waitUntil(() => good.publisher.stats().connected, {
        what: 'connected with the right password',
      });
      expect(good.log.text()).not.toContain('right-secret');
    } finally {
      if (saved === undefined) delete process.env.CREDENTIALS_DIRECTORY;
      else process.env.CREDENTIALS_DIRECTORY = saved;
    }
  });

  it('rejects a TLS broker whose CA is not trusted (retrying), and connects with the CA configured', async () => {
    const { makeTestPki } = await import('../../helpers/tls.js');
    const pkiDir = t.tempDir('pki-');
    const pki = makeTestPki(pkiDir);
    const b = await broker({ tls: pki });
    const untrusted = publisher({
      mqtt: { url: b.tlsUrl, caFile: pki.otherCaFile, reconnectMinMs: 50, reconnectMaxMs: 200 },
    });
    untrusted.publisher.start();
    await waitUntil(() => untrusted.publisher.stats().connectFailures >= 2, {
      what: 'TLS failures',
    });
    expect(untrusted.publisher.stats().connected).toBe(false);
    expect(untrusted.publisher.stats().lastError).toMatch(/certificate|self.signed|verify/i);

    const sub = await subscriber({ url: b.url, topics: ['edge/gw/telemetry'] });
    const trusted = publisher({ mqtt: { url: b.tlsUrl, caFile: pki.caFile } });
    trusted.publisher.start();
    const seq = await trusted.publisher.submit(windowBody(0));
    await sub.waitFor((s) => s.telemetrySeqs().includes(seq), 20_000, 'batch over TLS');
    expect(trusted.publisher.stats().connected).toBe(true);
  });

  it('publishes with MQTT 5 when configured', async () => {
    const b = await broker();
    const sub = await subscriber({ url: b.url, topics: ['edge/gw/telemetry'] });
    const h = publisher({ mqtt: { url: b.url, protocolVersion: 5 } });
    h.publisher.start();
    const seqs = await Promise.all([1, 2, 3].map((i) => h.publisher.submit(windowBody(i))));
    await sub.waitFor((s) => s.telemetrySeqs().length >= 3, 20_000, 'MQTT 5 batches');
    expect(sub.telemetrySeqs()).toEqual(seqs);
  });
});

describe('TelemetryPublisher with the embedded Aedes broker', () => {
  it('delivers every batch and the retained status', async () => {
    const aedes = await startAedes();
    t.add(() => aedes.close());
    const sub = await subscriber({ url: aedes.url, topics: ['edge/gw/#'] });
    const h = publisher({ mqtt: { url: aedes.url } });
    h.publisher.start();
    const seqs: number[] = [];
    for (let i = 0; i < 50; i++) seqs.push(await h.publisher.submit(windowBody(i)));
    await sub.waitFor((s) => s.telemetrySeqs().length >= 50, 20_000, '50 batches');
    expect(sub.telemetrySeqs()).toEqual(seqs);
    expect(sub.on('/status')[0]?.json).toMatchObject({ state: 'online' });
  });
});
