/**
 * What a remote config may change (docs/remote-config.md). A signed document is trusted to
 * describe sensors and settings, not to widen its own reach:
 * - `gateway.id` and the whole `fleet` section (group, trust directory, probation, allowed
 *   paths, and the command transport's settings) change only in the gateway's own file;
 * - `spool.dir` cannot move: the state directory (spool, seq, replay guard) stays where it is;
 * - a file the agent reads a secret or certificate from (mqtt.passwordFile, caFile, certFile,
 *   keyFile) is the one the running config names, or lies in the credentials directory
 *   ($CREDENTIALS_DIRECTORY) or in a directory of the local fleet.remoteConfig.allowPaths;
 * - a sensor's device path (serial port, 1-Wire root) is the running one, under /dev or
 *   /sys/bus/w1, or in an allowed directory.
 * Paths are compared after resolution against the config file's directory, lexically.
 */
import { isAbsolute, relative, resolve } from 'node:path';
import { pathKeysOf } from '../../drivers/registry.js';
import type { Config } from '../config/schema.js';
import { stateDirPath } from '../commands/state-dir.js';

const MQTT_FILE_KEYS = ['passwordFile', 'caFile', 'certFile', 'keyFile'] as const;
const DEVICE_ROOTS = ['/dev', '/sys/bus/w1'];

function inside(dir: string, path: string): boolean {
  const rel = relative(resolve(dir), resolve(path));
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

export interface RuleContext {
  /** systemd's $CREDENTIALS_DIRECTORY, when the agent runs with credentials. */
  credentialsDir: string | undefined;
}

/** One line per rule `next` breaks, `path: why`; empty when it may be applied remotely. */
export function remoteConfigProblems(next: Config, running: Config, ctx: RuleContext): string[] {
  const problems: string[] = [];
  const allowed = running.fleet.remoteConfig.allowPaths;
  if (next.gateway.id !== running.gateway.id) {
    problems.push(
      `gateway.id: ${next.gateway.id} differs from ${running.gateway.id}; the id changes only in the gateway's own file`,
    );
  }
  if (JSON.stringify(next.fleet) !== JSON.stringify(running.fleet)) {
    problems.push(
      "fleet: differs from the running config; group, trusted keys, probation and allowed paths change only in the gateway's own file",
    );
  }
  if (stateDirPath(next.spool.dir, undefined) !== stateDirPath(running.spool.dir, undefined)) {
    problems.push('spool.dir: a remote config cannot move the state directory');
  }
  for (const key of MQTT_FILE_KEYS) {
    const path = next.mqtt[key];
    if (path === undefined || path === running.mqtt[key]) continue;
    const dirs = [...(ctx.credentialsDir ? [ctx.credentialsDir] : []), ...allowed];
    if (!dirs.some((d) => inside(d, path))) {
      problems.push(
        `mqtt.${key}: ${path} is outside the credentials directory${allowed.length > 0 ? ' and fleet.remoteConfig.allowPaths' : ' (allow a directory with fleet.remoteConfig.allowPaths in the local file)'}`,
      );
    }
  }
  const runningPaths = new Set(
    running.sensors.flatMap((s) =>
      pathKeysOf(s.driver).map((k) => String((s as Record<string, unknown>)[k])),
    ),
  );
  next.sensors.forEach((sensor, i) => {
    for (const key of pathKeysOf(sensor.driver)) {
      const path = (sensor as Record<string, unknown>)[key];
      if (typeof path !== 'string' || runningPaths.has(path)) continue;
      if (![...DEVICE_ROOTS, ...allowed].some((d) => inside(d, path))) {
        problems.push(
          `sensors[${i}].${key}: ${path} is not a device path (under /dev or /sys/bus/w1)`,
        );
      }
    }
  });
  return problems;
}
