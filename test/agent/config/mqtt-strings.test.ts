/**
 * Strings the agent sends to the broker in CONNECT are bounded at check-config time: past
 * MQTT's 65,535 bytes mqtt.js cannot even encode them, and `run` used to die on them with a
 * Node internal error.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readPassword } from '../../../agent/publish/connection-options.js';
import { mqttConfig } from '../publish/setup.js';
import { configProblems as problems } from './problems.js';

const withMqtt = (mqtt: Record<string, unknown>) => ({ gateway: { id: 'gw' }, mqtt });

describe('MQTT strings in the config', () => {
  it('mqtt.clientId: at most 128 bytes of UTF-8, counted in bytes', () => {
    expect(problems(withMqtt({ clientId: 'x'.repeat(70_000) }))).toEqual([
      'mqtt.clientId: must be at most 128 bytes of UTF-8, got 70000 bytes',
    ]);
    expect(problems(withMqtt({ clientId: 'x'.repeat(128) }))).toEqual([]);
    // 43 characters, 129 bytes.
    expect(problems(withMqtt({ clientId: '€'.repeat(43) }))).toEqual([
      'mqtt.clientId: must be at most 128 bytes of UTF-8, got 129 bytes',
    ]);
    expect(problems(withMqtt({ clientId: 'a\u0000b' }))).toEqual([
      expect.stringMatching(/^mqtt\.clientId: must not contain control characters/),
    ]);
    expect(problems(withMqtt({ clientId: '' }))).toEqual(['mqtt.clientId: must not be empty']);
  });

  it('mqtt.username: at most 4096 bytes, no control characters', () => {
    expect(problems(withMqtt({ username: 'u'.repeat(70_000) }))).toEqual([
      'mqtt.username: must be at most 4096 bytes of UTF-8, got 70000 bytes',
    ]);
    expect(problems(withMqtt({ username: 'u'.repeat(4096) }))).toEqual([]);
    expect(problems(withMqtt({ username: 'line\nbreak' }))).toEqual([
      expect.stringMatching(/^mqtt\.username: must not contain control characters/),
    ]);
  });

  it('topic levels (mqtt.topicPrefix, gateway.id) were already bounded to 64 characters', () => {
    const long = 'a'.repeat(70_000);
    expect(problems(withMqtt({ topicPrefix: long }))).toEqual([
      'mqtt.topicPrefix: topic prefix must be at most 64 characters',
    ]);
    expect(problems({ gateway: { id: long } })).toEqual([
      'gateway.id: gateway id must be at most 64 characters',
    ]);
  });

  it('a password file over MQTT’s 65,535 bytes is refused by name, without its content', () => {
    const dir = mkdtempSync(join(tmpdir(), 'edge-pw-'));
    const file = join(dir, 'password');
    writeFileSync(file, 's3cret'.repeat(20_000));
    expect(() => readPassword(mqttConfig({ passwordFile: file }))).toThrow(
      new RegExp(`^the MQTT password in ${file} is 120000 bytes, more than MQTT's 65535`),
    );
    try {
      readPassword(mqttConfig({ passwordFile: file }));
    } catch (err) {
      expect((err as Error).message).not.toContain('s3cret');
    }
    writeFileSync(file, 'p'.repeat(65_535) + '\n');
    expect(readPassword(mqttConfig({ passwordFile: file }))).toHaveLength(65_535);
  });
});
