import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../../agent/config/load.js';
import { MqttSetupError, readPassword } from '../../../agent/publish/connection-options.js';

describe('readPassword', () => {
  const dir = mkdtempSync(join(tmpdir(), 'edge-pw-'));
  const mqttWith = (mqtt: Record<string, unknown>) =>
    validateConfig({ gateway: { id: 'gw' }, mqtt }).mqtt;

  it('reads a password file without its trailing newline', () => {
    writeFileSync(join(dir, 'pw'), 's3cret\n');
    expect(readPassword(mqttWith({ passwordFile: join(dir, 'pw') }))).toBe('s3cret');
  });

  it('reads a systemd credential from $CREDENTIALS_DIRECTORY', () => {
    writeFileSync(join(dir, 'mqtt-password'), 'from-credential\n');
    const mqtt = mqttWith({ passwordCredential: 'mqtt-password' });
    expect(readPassword(mqtt, { CREDENTIALS_DIRECTORY: dir })).toBe('from-credential');
    expect(() => readPassword(mqtt, {})).toThrow(MqttSetupError);
  });

  it('treats an empty credential (as install.sh leaves it) as no password', () => {
    writeFileSync(join(dir, 'empty'), '\n');
    expect(
      readPassword(mqttWith({ passwordCredential: 'empty' }), { CREDENTIALS_DIRECTORY: dir }),
    ).toBeUndefined();
  });
});
