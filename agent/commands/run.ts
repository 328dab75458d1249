import { resolve } from 'node:path';
import { configWarnings, loadConfigFile } from '../config/load.js';
import { createLogger } from '../ops/logger.js';
import { Pipeline } from '../pipeline.js';
import { hardwareSeams } from '../../drivers/seams.js';
import {
  DEFAULT_CONFIG,
  EXIT_OK,
  stringOption,
  type CommandContext,
  type OptionValues,
} from './common.js';
import { installCrashHandlers, runUntilStopped } from './lifecycle.js';
import { resolveStateDir } from './state-dir.js';

/** `edge-agent run [--config FILE]`: the service. */
export async function runCommand(values: OptionValues, { stops }: CommandContext): Promise<number> {
  const file = stringOption(values, 'config') ?? DEFAULT_CONFIG;
  const config = loadConfigFile(file);
  const logger = createLogger(config.log.level);
  installCrashHandlers(logger);
  for (const warning of configWarnings(config)) logger.warn(warning);
  const stateDir = resolveStateDir(config.spool.dir, undefined);
  if (stops.requested) {
    logger.info({ why: stops.requested }, 'stop requested during start-up; nothing started');
    return EXIT_OK;
  }
  const seams = await hardwareSeams(logger);
  const pipeline = await Pipeline.start({
    config,
    seams,
    stateDir,
    logger,
    configFile: resolve(file),
  });
  return runUntilStopped(pipeline, {
    logger,
    stops,
    reloadConfig: () => {
      const next = loadConfigFile(file);
      warnRestartOnly(config, next, logger);
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
