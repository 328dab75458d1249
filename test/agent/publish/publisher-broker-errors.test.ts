/**
 * What the publisher says when the broker will not talk to it: the protocol version it
 * refuses (with the automatic fallback to 3.1.1), TLS spoken to a plain port and the reverse.
 * Real brokers: mosquitto, the embedded Aedes (3.1.1 only) and nats-server (3.1.1 only).
 */
import { readFileSync } from 'node:fs';
import mqtt from 'mqtt';
import { describe, expect, it } from 'vitest';
import { startAedes } from '../../helpers/aedes.js';
import { natsServerPath, spawnNats } from '../../helpers/nats.js';
import { useTeardown } from '../../helpers/teardown.js';
import { makeTestPki } from '../../helpers/tls.js';
import { sleep, waitUntil } from '../../helpers/wait.js';
import { windowBody } from './bodies.js';
import { makePublisher, type Harness } from './setup.js';

const t = useTeardown();
function publisher(options: Parameters<typeof makePublisher>[0]): Harness {
  const h = makePublisher(options);
  t.add(() => h.dispose());
  return h;
}
const messages = (h: Harness) => h.log.records.map((r) => r.msg);

const nats = natsServerPath();
if (!nats)
  console.log('skipping the nats-server cases: nats-server is not installed (.ci/run installs it)');

describe('publisher: protocol version', () => {
  it('speaks MQTT 5 by default to a broker that does', async () => {
    const b = await t.mosquitto();
    const h = publisher({ mqtt: { url: b.url } });
    h.publisher.start();
    await waitUntil(() => h.publisher.stats().connected, { what: 'connected' });
    expect(h.publisher.stats().protocolVersion).toBe(5);
    expect(messages(h).some((m) => m.includes('3.1.1'))).toBe(false);
  });

  it('falls back to 3.1.1 when the broker refuses 5 (embedded Aedes), says so once, and delivers', async () => {
    const aedes = t.own(await startAedes());
    const sub = await t.subscriber({ url: aedes.url, topics: ['edge/gw/telemetry'] });
    const h = publisher({ mqtt: { url: aedes.url } });
    h.publisher.start();
    const seq = await h.publisher.submit(windowBody(0));
    await sub.waitFor((s) => s.telemetrySeqs().includes(seq), 20_000, 'batch over 3.1.1');
    const stats = h.publisher.stats();
    expect(stats).toMatchObject({ protocolVersion: 4, connected: true, connectFailures: 1 });
    const fallback = messages(h).filter((m) => m.includes('does not speak MQTT 5'));
    expect(fallback).toHaveLength(1);
    expect(fallback[0]).toMatch(/3\.1\.1.*ACL.*acknowledged as if delivered/);
    // The refused attempt is not a credentials problem and is retried at once, not backed off,
    // and the fallback line is the only warning about it.
    expect(messages(h).some((m) => m.includes('REFUSED'))).toBe(false);
    expect(h.log.records.filter((r) => r.level >= 40).map((r) => r.msg)).toEqual(fallback);
  });

  it('a broker that speaks 5 is back at 5 after closes before CONNACK (max_connections reached) and a restart', async () => {
    const b = await t.mosquitto({ extraConfig: ['max_connections 1'] });
    // Every connection slot taken: mosquitto then accepts each attempt and closes it before
    // any CONNACK, whatever the version, quietly or with a reset, as a broker going down does.
    const squatters = await fillConnectionSlots(b.url);
    const h = publisher({ mqtt: { url: b.url, reconnectMinMs: 50, reconnectMaxMs: 200 } });
    h.publisher.start();
    const tried311 = () => h.log.records.filter((r) => /trying MQTT 3\.1\.1$/.test(r.msg));
    await waitUntil(() => tried311().length >= 2, {
      timeoutMs: 30_000,
      what: 'quiet closes of MQTT 5 CONNECTs, each answered by trying 3.1.1',
    });
    for (const c of squatters) await c.endAsync(true);
    await waitUntil(() => h.publisher.stats().connected, { what: 'connected' });
    // The slot may free up while a 3.1.1 attempt is on its way: that one connection is then
    // 3.1.1 (a close before CONNACK cannot be told from a broker without 5), never the next.
    const connects = () => h.log.records.filter((r) => r.msg === 'connected to the MQTT broker');
    const first = connects()[0]?.protocolVersion;
    // Down (connection refused), then up again.
    await b.restart();
    await waitUntil(() => h.publisher.stats().reconnects >= 1, { what: 'reconnected' });
    expect(connects().map((r) => r.protocolVersion)).toEqual([first, 5]);
    expect(h.publisher.stats().protocolVersion).toBe(5);
    if (first === 5) {
      expect(messages(h).filter((m) => /using MQTT 3\.1\.1|may not speak/.test(m))).toEqual([]);
    }
  });

  it.skipIf(!nats)(
    'mqtt.protocolVersion: 5 against a 3.1.1-only broker (NATS) names the protocol version, not the password',
    async () => {
      const server = t.own(await spawnNats());
      const h = publisher({
        mqtt: { url: server.mqttUrl, protocolVersion: 5, reconnectMinMs: 50, reconnectMaxMs: 200 },
      });
      h.publisher.start();
      await waitUntil(() => h.publisher.stats().connectFailures >= 2, { what: 'refusals' });
      const refused = h.log.records.filter((r) => r.level >= 50 && r.msg.includes('REFUSED'));
      expect(refused.length).toBeGreaterThanOrEqual(1);
      expect(refused[0].msg).toMatch(/refuses MQTT 5 \(mqtt\.protocolVersion: 5\).*3\.1\.1/);
      expect(refused[0].msg).not.toMatch(/username|password/);
      expect(h.publisher.stats().lastError).toMatch(/mqtt\.protocolVersion/);
      expect(h.publisher.stats().protocolVersion).toBe(5);
    },
  );
});

describe('publisher: TLS and plain ports mixed up', () => {
  async function tlsBroker() {
    const pkiDir = t.tempDir('pki-');
    const pki = makeTestPki(pkiDir);
    const b = await t.mosquitto({ tls: pki });
    return { b, pki };
  }

  it('mqtts:// to the plain port: says the port likely speaks plain MQTT', async () => {
    const { b, pki } = await tlsBroker();
    const h = publisher({
      mqtt: {
        url: `mqtts://localhost:${b.port}`,
        caFile: pki.caFile,
        reconnectMinMs: 50,
        reconnectMaxMs: 200,
      },
    });
    h.publisher.start();
    await waitUntil(() => h.publisher.stats().connectFailures >= 2, { what: 'failures' });
    expect(h.publisher.stats().lastError).toMatch(/plain MQTT, not TLS.*use mqtt:\/\//);
    expect(messages(h).some((m) => /mqtts:\/\/ to a plain port/.test(m))).toBe(true);
  });

  it('mqtt:// to the TLS port: the port answers a TLS hello, and the log says it expects TLS', async () => {
    const { b } = await tlsBroker();
    const h = publisher({
      mqtt: { url: `mqtt://127.0.0.1:${b.tlsPort}`, reconnectMinMs: 50, reconnectMaxMs: 200 },
    });
    h.publisher.start();
    await waitUntil(() => /expects TLS/.test(h.publisher.stats().lastError ?? ''), {
      what: 'the TLS hint',
    });
    expect(h.publisher.stats().lastError).toMatch(/expects TLS.*use mqtts:\/\//);
    expect(messages(h).some((m) => /mqtt:\/\/ to a TLS port/.test(m))).toBe(true);
    expect(probes(h)).toContain(true);
    // Known from then on: later failures say it at once.
    const failures = h.publisher.stats().connectFailures;
    await waitUntil(() => h.publisher.stats().connectFailures >= failures + 2, {
      what: 'two more failures',
    });
    expect(h.publisher.stats().lastError).toMatch(/expects TLS/);
  });

  it('a plain broker that dies while our CONNECT waits in its accept queue (a restart): no TLS hint', async () => {
    const b = await t.mosquitto();
    // Stopped, the broker's kernel still completes TCP handshakes: the attempt below is
    // accepted and its CONNECT sent, and no CONNACK comes, as while a broker shuts down.
    b.freeze();
    const h = publisher({ mqtt: { url: b.url, reconnectMinMs: 50, reconnectMaxMs: 200 } });
    h.publisher.start();
    await waitUntil(() => establishedTo(b.port), { what: 'a connection in the accept queue' });
    // Killed, the broker's listening socket goes and the kernel resets that connection.
    await b.kill();
    await waitUntil(() => /ECONNRESET/.test(h.publisher.stats().lastError ?? ''), {
      what: 'the reset',
    });
    const tlsSaid = () => [
      ...messages(h).filter((m) => /expects TLS|TLS port/.test(m)),
      ...h.log.records.filter((r) => /TLS/.test(String(r.error))).map((r) => String(r.error)),
    ];
    await b.restart();
    await waitUntil(() => h.publisher.stats().connected, { what: 'reconnected' });
    expect(tlsSaid()).toEqual([]);
    // The probe's answer, whenever it came, said no TLS, and nothing was said after it.
    await waitUntil(() => probes(h).length > 0, { what: 'the port probed' });
    expect(probes(h)).toEqual([false]);
    expect(tlsSaid()).toEqual([]);
  });
});

/**
 * Connects clients to `url` until the broker turns three in a row away (mosquitto counts a
 * connection it is still closing, such as its helper's port probe, for a moment); resolves
 * with those it took.
 */
async function fillConnectionSlots(url: string): Promise<mqtt.MqttClient[]> {
  const taken: mqtt.MqttClient[] = [];
  let refused = 0;
  for (let i = 0; i < 20 && refused < 3; i++) {
    const client = await new Promise<mqtt.MqttClient | undefined>((resolve) => {
      const c = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000 });
      c.on('error', () => undefined);
      c.once('connect', () => resolve(c));
      c.once('close', () => resolve(undefined));
    });
    if (client) {
      refused = 0;
      taken.push(client);
      t.add(() => client.endAsync(true));
    } else {
      refused++;
      await sleep(100);
    }
  }
  if (refused < 3) throw new Error(`${url} took every connection: max_connections not in force`);
  return taken;
}

/** What the publisher's TLS probes answered, in order. */
const probes = (h: Harness) =>
  h.log.records
    .filter((r) => r.msg === 'broker port probed for TLS after a reset')
    .map((r) => r.tls);

/** A TCP connection to 127.0.0.1:port is established (here, waiting in the accept queue). */
function establishedTo(port: number): boolean {
  const hexPort = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  return readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .slice(1)
    .some((line) => {
      const [, , remote, state] = line.trim().split(/\s+/);
      return remote?.endsWith(hexPort) && state === '01';
    });
}

describe('publisher: QoS the broker announces', () => {
  it('mqtt.qos: 2 with a broker announcing maximum QoS 1 (MQTT 5): publishes at QoS 1, says so once, no refusal', async () => {
    const b = await t.mosquitto({ extraConfig: ['max_qos 1'] });
    const sub = await t.subscriber({ url: b.url, topics: ['edge/gw/telemetry'] });
    const h = publisher({ mqtt: { url: b.url, qos: 2 } });
    h.publisher.start();
    const seqs = await Promise.all([0, 1, 2].map((i) => h.publisher.submit(windowBody(i))));
    await sub.waitFor((s) => seqs.every((q) => s.telemetrySeqs().includes(q)), 20_000, 'batches');
    expect(h.publisher.stats()).toMatchObject({ qos: 1, refusals: 0, reconnects: 0 });
    const said = messages(h).filter((m) => /refuses QoS 2 \(mqtt\.qos: 2\)/.test(m));
    expect(said).toHaveLength(1);
  });
});
