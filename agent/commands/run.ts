import { resolve } from 'node:path';
import {
  configWarnings,
  loadConfigFile,
  parseConfigText,
  readConfigText,
  validateConfig,
} from '../config/load.js';
import { resolveConfigPaths } from '../config/paths.js';
import type { Config } from '../config/schema.js';
import { recoverInterruptedApply } from '../fleet/recover.js';
import { RemoteConfig } from '../fleet/remote-config.js';
import { PipelineSupervisor } from '../fleet/supervisor.js';
import { configSetCommand } from '../fleet/config-set-command.js';
import { createLogger } from '../ops/logger.js';
import { Pipeline } from '../pipeline.js';
import { hardwareSeams } from '../../drivers/seams.js';
import {
  DEFAULT_CONFIG,
  EXIT_FAILURE,
  EXIT_OK,
  stringOption,
  type CommandContext,
  type OptionValues,
} from './common.js';
import { installCrashHandlers, runUntilStopped } from './lifecycle.js';
import { resolveStateDir } from './state-dir.js';

/**
 * `edge-agent run [--config FILE]`: the service. The pipeline runs under a supervisor, which
 * replaces it in this process when a remote config (agent/fleet) changes more than sensors.
 */
export async function runCommand(values: OptionValues, { stops }: CommandContext): Promise<number> {
  const file = stringOption(values, 'config') ?? DEFAULT_CONFIG;
  let text = readConfigText(file);
  let config = configFromText(text, file);
  const logger = createLogger(config.log.level);
  installCrashHandlers(logger);
  const stateDir = resolveStateDir(config.spool.dir, undefined);
  // A remote config that did not live through its probation: the previous file comes back.
  if (recoverInterruptedApply(file, stateDir, config.gateway.id, logger)) {
    text = readConfigText(file);
    config = configFromText(text, file);
  }
  for (const warning of configWarnings(config)) logger.warn(warning);
  if (stops.requested) {
    logger.info({ why: stops.requested }, 'stop requested during start-up; nothing started');
    return EXIT_OK;
  }
  const seams = await hardwareSeams(logger);
  const remote = new RemoteConfig({
    configFile: file,
    configText: text,
    stateDir,
    logger,
    credentialsDir: process.env.CREDENTIALS_DIRECTORY,
    // No pipeline runs and none will: the service manager restarts us on the previous file.
    onUnrecoverable: () => process.exit(EXIT_FAILURE),
  });
  const start = async (c: Config) => {
    const pipeline = await Pipeline.start({
      config: c,
      seams,
      stateDir,
      logger,
      configFile: resolve(file),
      configIdentity: () => remote.identity(),
    });
    // Every pipeline's transports (MQTT, control socket) carry config/set.
    pipeline.commands.add(configSetCommand(remote));
    return pipeline;
  };
  const supervisor = new PipelineSupervisor(await start(config), start, logger);
  remote.attach(supervisor);
  stops.onStop(() => remote.stop());
  return runUntilStopped(supervisor, {
    logger,
    stops,
    reloadConfig: () => {
      const next = loadConfigFile(file);
      warnRestartOnly(supervisor.currentConfig, next, logger);
      return next;
    },
    onStopped: () => seams.close(),
  });
}

/** Everything but the sensors needs a restart; say so instead of half-applying it. */
function warnRestartOnly(
  running: ReturnType<typeof loadConfigFile>,
  next: ReturnType<typeof loadConfigFile>,
  logger: ReturnType<typeof createLogger>,
): void {
  const { sensors: _a, ...restRunning } = running;
  const { sensors: _b, ...restNext } = next;
  for (const key of Object.keys(restNext) as Array<keyof typeof restNext>) {
    if (JSON.stringify(restRunning[key]) !== JSON.stringify(restNext[key])) {
      logger.warn(
        { section: key },
        'SIGHUP applies sensors only; this section changes at the next restart',
      );
    }
  }
}

/** loadConfigFile on text already read: the hash of remote configuration is of these bytes. */
function configFromText(text: string, file: string): Config {
  return resolveConfigPaths(validateConfig(parseConfigText(text, file), file), file);
}
