/**
 * The TLS probe asks a real port: mosquitto's TLS listener answers Node's ClientHello with a
 * TLS record; its plain listener, a closed port and a hung broker do not.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { looksLikeTls, probeTarget, probeTls } from '../../../agent/publish/tls-probe.js';
import { spawnMosquitto, type MosquittoBroker } from '../../helpers/mosquitto.js';
import { freePort } from '../../helpers/ports.js';
import { makeTestPki } from '../../helpers/tls.js';

describe('looksLikeTls / probeTarget', () => {
  it('reads a TLS record header: handshake or alert, version 3.0-3.4', () => {
    expect(looksLikeTls(Buffer.from([0x16, 0x03, 0x03, 0x00, 0x7a]))).toBe(true);
    expect(looksLikeTls(Buffer.from([0x15, 0x03, 0x01, 0x00, 0x02]))).toBe(true);
    // An MQTT CONNACK, an HTTP answer, too few bytes.
    expect(looksLikeTls(Buffer.from([0x20, 0x02, 0x00, 0x00]))).toBe(false);
    expect(looksLikeTls(Buffer.from('HTTP/1.1 400'))).toBe(false);
    expect(looksLikeTls(Buffer.from([0x16, 0x03]))).toBe(false);
  });

  it('takes host and port from mqtt:// and ws:// URLs, with their default ports', () => {
    expect(probeTarget('mqtt://broker.local')).toEqual({ host: 'broker.local', port: 1883 });
    expect(probeTarget('mqtt://127.0.0.1:8883')).toEqual({ host: '127.0.0.1', port: 8883 });
    expect(probeTarget('ws://[::1]/mqtt')).toEqual({ host: '::1', port: 80 });
  });
});

describe('probeTls against mosquitto', () => {
  let pkiDir: string;
  let broker: MosquittoBroker;
  beforeAll(async () => {
    pkiDir = mkdtempSync(join(tmpdir(), 'pki-'));
    broker = await spawnMosquitto({ tls: makeTestPki(pkiDir) });
  });
  afterAll(async () => {
    await broker.kill();
    await broker.close();
    rmSync(pkiDir, { recursive: true, force: true });
  });

  it('the TLS listener answers TLS, by address and by name', async () => {
    expect(await probeTls('127.0.0.1', broker.tlsPort!)).toBe(true);
    expect(await probeTls('localhost', broker.tlsPort!)).toBe(true);
  });

  it('the plain listener and a closed port do not', async () => {
    expect(await probeTls('127.0.0.1', broker.port)).toBe(false);
    expect(await probeTls('127.0.0.1', await freePort())).toBe(false);
  });

  it('a hung broker (SIGSTOP) does not, once the probe times out', async () => {
    broker.freeze();
    expect(await probeTls('127.0.0.1', broker.tlsPort!, 300)).toBe(false);
  });
});
