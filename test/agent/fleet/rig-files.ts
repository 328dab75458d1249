/** Files of a gateway set up for remote configuration, in one temp dir, for the fleet tests. */
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  signConfig,
  type ConfigTarget,
  type SignedConfig,
} from '../../../agent/fleet/signed-config.js';

export interface OperatorKey {
  privatePem: string;
  publicPem: string;
}

export function operatorKey(): OperatorKey {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return {
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

export interface ConfigShape {
  brokerUrl: string;
  sensorUrls: string[];
  passwordFile?: string;
  windowMs?: number;
  probationMs?: number;
  /** fleet.group. */
  group?: string;
  /** fleet.enabled: commands over MQTT (config/set among them). */
  commands?: boolean;
  /** Extra top-level YAML, appended. */
  extra?: string;
}

/** A config file's text: user gw with a password file, the HTTP sensors, remote config on. */
export function configText(c: ConfigShape): string {
  const sensors = c.sensorUrls
    .map(
      (url, i) =>
        `  - { id: http-${i}, driver: http-json, url: "${url}", path: data.temperature, intervalMs: 100 }`,
    )
    .join('\n');
  return [
    'gateway: { id: gw }',
    'mqtt:',
    `  url: ${c.brokerUrl}`,
    '  username: gw',
    `  passwordFile: ${c.passwordFile ?? './mqtt-password'}`,
    '  reconnectMinMs: 100',
    '  reconnectMaxMs: 400',
    `aggregation: { windowMs: ${c.windowMs ?? 300} }`,
    'batch: { maxDelayMs: 300 }',
    'spool: { dir: ./state }',
    'log: { level: warn }',
    'fleet:',
    ...(c.commands ? ['  enabled: true'] : []),
    ...(c.group ? [`  group: ${c.group}`] : []),
    '  remoteConfig:',
    '    enabled: true',
    '    trustedKeysDir: ./trusted-keys',
    `    probationMs: ${c.probationMs ?? 6000}`,
    'sensors:',
    sensors,
    c.extra ?? '',
  ].join('\n');
}

/** config.yaml, mqtt-password and trusted-keys/operator.pem in `dir`; the config file's path. */
export function writeGatewayFiles(dir: string, key: OperatorKey, text: string): string {
  writeFileSync(join(dir, 'mqtt-password'), 'secret\n', { mode: 0o600 });
  mkdirSync(join(dir, 'trusted-keys'), { mode: 0o755 });
  writeFileSync(join(dir, 'trusted-keys', 'operator.pem'), key.publicPem, { mode: 0o644 });
  const file = join(dir, 'config.yaml');
  writeFileSync(file, text, { mode: 0o640 });
  return file;
}

export function signed(
  key: OperatorKey,
  version: number,
  document: string,
  target: ConfigTarget = { gateway: 'gw' },
): SignedConfig {
  return signConfig(target, version, document, key.privatePem);
}
