/**
 * Relative paths in a config file are relative to that file's directory, whatever the
 * working directory of the process that reads it.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfigFile } from '../../../agent/config/load.js';

describe('paths in the config file', () => {
  const root = mkdtempSync(join(tmpdir(), 'edge-config-paths-'));
  const etc = join(root, 'etc', 'edge-agent');
  mkdirSync(etc, { recursive: true });
  const file = join(etc, 'config.yaml');
  writeFileSync(
    file,
    [
      'gateway: { id: gw }',
      'mqtt:',
      '  url: mqtts://127.0.0.1:8883',
      '  passwordFile: secrets/password',
      '  caFile: ./ca.pem',
      '  certFile: ../pki/cert.pem',
      '  keyFile: /abs/key.pem',
      'spool: { dir: ../../var/state }',
      'sensors:',
      '  - { id: rtu, driver: modbus-rtu, port: ./ttyRS485, unitId: 1 }',
      '  - { id: line, driver: ascii-line, port: /dev/ttyUSB1 }',
      '  - { id: w1, driver: ds18b20, deviceId: 28-0316a2795aff, w1Root: w1 }',
      '  - { id: tcp, driver: modbus-tcp, host: 127.0.0.1, port: 5020 }',
      '',
    ].join('\n'),
  );

  it('resolves every relative path key against the directory of the file, not the working directory', () => {
    const elsewhere = mkdtempSync(join(tmpdir(), 'edge-cwd-'));
    const before = process.cwd();
    process.chdir(elsewhere);
    try {
      const config = loadConfigFile(file);
      expect(config.spool.dir).toBe(join(root, 'var', 'state'));
      expect(config.mqtt).toMatchObject({
        passwordFile: join(etc, 'secrets', 'password'),
        caFile: join(etc, 'ca.pem'),
        certFile: join(root, 'etc', 'pki', 'cert.pem'),
        keyFile: '/abs/key.pem',
      });
      expect(
        config.sensors.map((s) => ('port' in s ? s.port : 'w1Root' in s ? s.w1Root : s.id)),
      ).toEqual([
        join(etc, 'ttyRS485'),
        '/dev/ttyUSB1',
        join(etc, 'w1'),
        // A TCP port is a number, not a path.
        5020,
      ]);
    } finally {
      process.chdir(before);
    }
  });

  it('a relative path to the config file itself gives the same result', () => {
    const before = process.cwd();
    process.chdir(join(root, 'etc'));
    try {
      expect(loadConfigFile('edge-agent/config.yaml').spool.dir).toBe(join(root, 'var', 'state'));
    } finally {
      process.chdir(before);
    }
  });
});
