import { readFileSync } from 'node:fs';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfigFile } from '../../agent/config/load.js';

const EXAMPLE = fileURLToPath(new URL('../../systemd/config.example.yaml', import.meta.url));
const UNIT = fileURLToPath(new URL('../../systemd/edge-agent.service', import.meta.url));
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function writeVariant(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'edge-example-'));
  dirs.push(dir);
  const file = join(dir, 'config.yaml');
  writeFileSync(file, text);
  return file;
}

describe('systemd/config.example.yaml', () => {
  it('is valid against the config schema', () => {
    const config = loadConfigFile(EXAMPLE);
    expect(config.gateway.id).toBe('boiler-room-1');
    const drivers = new Set(config.sensors.map((s) => s.driver));
    // Shows every bus kind a gateway has: I²C, 1-Wire, serial, network.
    for (const d of ['tmp102', 'ds18b20', 'modbus-rtu', 'modbus-tcp', 'http-json']) {
      expect(drivers.has(d as never), d).toBe(true);
    }
    expect(config.metrics.enabled).toBe(false);
    expect(config.metrics.host).toBe('127.0.0.1');
  });

  it('stays valid with the commented broker login enabled, naming the unit’s credential', () => {
    const text = readFileSync(EXAMPLE, 'utf8')
      .replace('# username:', 'username:')
      .replace('# passwordCredential:', 'passwordCredential:');
    const config = loadConfigFile(writeVariant(text));
    const credential = /^LoadCredential=([^:]+):/m.exec(readFileSync(UNIT, 'utf8'))?.[1];
    expect(config.mqtt.passwordCredential).toBe(credential);
  });

  it('would be caught by the loader if a key were wrong (the check above can fail)', () => {
    const text = readFileSync(EXAMPLE, 'utf8').replace('address: 0x48', 'address: 0x99');
    expect(() => loadConfigFile(writeVariant(text))).toThrow(ConfigError);
  });
});
