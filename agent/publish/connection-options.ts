/**
 * mqtt.js connect options from the config: clientId, session, TLS files, credentials.
 * The password comes from a file or a systemd credential ($CREDENTIALS_DIRECTORY/<name>),
 * is never logged, and an unreadable file is a clear error naming the file, not the secret.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { IClientOptions } from 'mqtt';
import type { Config } from '../config/load.js';

export type MqttConfig = Config['mqtt'];

export class MqttSetupError extends Error {
  override name = 'MqttSetupError';
}

/** Seven days: an MQTT 5 broker keeps our session (and its QoS 1 state) across outages. */
const SESSION_EXPIRY_SEC = 7 * 24 * 3600;
/** Give up on one TCP/TLS/CONNECT attempt after this, then back off and retry. */
const CONNECT_TIMEOUT_MS = 10_000;
/** MQTT carries a password in a field with a two-byte length. */
export const MAX_PASSWORD_BYTES = 65_535;

function readText(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new MqttSetupError(`cannot read the MQTT ${what} file ${file}: ${code}`);
  }
}

/** The broker password, or undefined when none is configured. Trailing newline dropped. */
export function readPassword(
  mqtt: MqttConfig,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  let text: string | undefined;
  let file: string | undefined;
  if (mqtt.passwordFile !== undefined) {
    file = mqtt.passwordFile;
    text = readText(file, 'password');
  } else if (mqtt.passwordCredential !== undefined) {
    const dir = env.CREDENTIALS_DIRECTORY;
    if (!dir) {
      throw new MqttSetupError(
        `mqtt.passwordCredential "${mqtt.passwordCredential}" is set but $CREDENTIALS_DIRECTORY is not (use LoadCredential= in the systemd unit)`,
      );
    }
    file = join(dir, mqtt.passwordCredential);
    text = readText(file, 'password credential');
  }
  // install.sh creates an empty credential until the operator sets one: no password then.
  const password = text?.replace(/\r?\n$/, '');
  if (password !== undefined && Buffer.byteLength(password, 'utf8') > MAX_PASSWORD_BYTES) {
    throw new MqttSetupError(
      `the MQTT password in ${file} is ${Buffer.byteLength(password, 'utf8')} bytes, more than MQTT's ${MAX_PASSWORD_BYTES} (is it the right file?)`,
    );
  }
  return password === '' ? undefined : password;
}

export function defaultClientId(gateway: string): string {
  return `edge-agent-${gateway}`;
}

/**
 * Everything except the Last Will and the reconnect policy, which the publisher owns.
 * `protocolVersion` is the one to try now: mqtt.protocolVersion, or the negotiated one
 * when it is unset (see publisher.ts).
 */
export function connectionOptions(
  gateway: string,
  mqtt: MqttConfig,
  protocolVersion: 4 | 5,
): IClientOptions {
  const password = readPassword(mqtt);
  const options: IClientOptions = {
    clientId: mqtt.clientId ?? defaultClientId(gateway),
    clean: false,
    keepalive: mqtt.keepaliveSec,
    protocolVersion,
    connectTimeout: CONNECT_TIMEOUT_MS,
    // We drive reconnects ourselves (our backoff, our replay); see publisher.ts.
    reconnectPeriod: 0,
    // A publish while disconnected must fail, not wait in mqtt.js's unbounded queue.
    queueQoSZero: false,
    rejectUnauthorized: mqtt.rejectUnauthorized,
  };
  if (protocolVersion === 5) options.properties = v5Properties();
  if (mqtt.username !== undefined) options.username = mqtt.username;
  if (password !== undefined) options.password = password;
  if (mqtt.caFile !== undefined) options.ca = readText(mqtt.caFile, 'CA');
  if (mqtt.certFile !== undefined) options.cert = readText(mqtt.certFile, 'client certificate');
  if (mqtt.keyFile !== undefined) options.key = readText(mqtt.keyFile, 'client key');
  return options;
}

/** The same options for another MQTT version: the MQTT 5 CONNECT properties only under 5. */
export function withProtocolVersion(
  options: IClientOptions,
  protocolVersion: 4 | 5,
): IClientOptions {
  if (options.protocolVersion === protocolVersion) return options;
  const { properties: _v5only, ...rest } = options;
  return protocolVersion === 5
    ? { ...rest, protocolVersion, properties: v5Properties() }
    : { ...rest, protocolVersion };
}

const v5Properties = () => ({ sessionExpiryInterval: SESSION_EXPIRY_SEC });

/**
 * A broker URL as logs and the health report show it: user name and password (which an
 * `mqtt://user:secret@host` URL may carry) are left out.
 */
export function brokerLabel(url: string): string {
  if (!URL.canParse(url)) return url;
  const u = new URL(url);
  if (u.username === '' && u.password === '') return url;
  u.username = '';
  u.password = '';
  return u.toString();
}

/** One line for logs and stats; never includes options (they hold the password). */
export function describeError(err: unknown): string {
  const e = err as { message?: string; code?: unknown };
  const code = e.code !== undefined ? ` (${String(e.code)})` : '';
  return `${e.message ?? String(err)}${code}`;
}
