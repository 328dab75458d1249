/**
 * Relative paths in a configuration file are relative to the directory of that file, not to
 * the directory the agent was started from: the same file means the same files whether it is
 * read by systemd, by `check-config` from a shell, or after a SIGHUP. Absolute paths are
 * left as they are.
 */
import { dirname, isAbsolute, resolve } from 'node:path';
import { pathKeysOf } from '../../drivers/registry.js';
import type { Config } from './schema.js';

/** The keys of `mqtt` that name files. */
const MQTT_FILE_KEYS = ['passwordFile', 'caFile', 'certFile', 'keyFile'] as const;

/** `config` with every relative path key resolved against the directory of `configFile`. */
export function resolveConfigPaths(config: Config, configFile: string): Config {
  const base = dirname(resolve(configFile));
  const at = (path: string) => (isAbsolute(path) ? path : resolve(base, path));
  const mqtt = { ...config.mqtt };
  for (const key of MQTT_FILE_KEYS) {
    const value = mqtt[key];
    if (value !== undefined) mqtt[key] = at(value);
  }
  const sensors = config.sensors.map((sensor) => {
    const keys = pathKeysOf(sensor.driver);
    if (keys.length === 0) return sensor;
    const entry: Record<string, unknown> = { ...sensor };
    for (const key of keys) {
      const value = entry[key];
      if (typeof value === 'string') entry[key] = at(value);
    }
    return entry as typeof sensor;
  });
  return {
    ...config,
    mqtt,
    spool:
      config.spool.dir === undefined
        ? config.spool
        : { ...config.spool, dir: at(config.spool.dir) },
    fleet: {
      ...config.fleet,
      remoteConfig: {
        ...config.fleet.remoteConfig,
        trustedKeysDir: at(config.fleet.remoteConfig.trustedKeysDir),
        allowPaths: config.fleet.remoteConfig.allowPaths.map(at),
      },
    },
    sensors,
  };
}
