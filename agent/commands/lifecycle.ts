/**
 * What `run` and `simulate` share once the pipeline is up: signals (SIGTERM/SIGINT drain,
 * SIGHUP reload), an optional duration, and a loud, non-zero end for anything uncaught —
 * never a silent zombie (systemd restarts us).
 */
import type { Logger } from '../ops/logger.js';
import { describeError } from '../publish/connection-options.js';
import { DEFAULT_DRAIN_MS, type Pipeline } from '../pipeline.js';
import { ConfigError } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { CommandRefused } from '../control/command.js';
import type { ReloadOutcome } from '../control/agent-control.js';
import { EXIT_FAILURE, EXIT_OK } from './common.js';
import type { StopRequests } from './stop-requests.js';

export interface LifecycleOptions {
  logger: Logger;
  /** Caught since start-up; a stop requested before the pipeline ran is carried out at once. */
  stops: StopRequests;
  /** Stop gracefully after this many seconds. */
  durationSec?: number;
  drainMs?: number;
  /** Produce the config to apply on SIGHUP; throw ConfigError to keep the running one. */
  reloadConfig?: () => Config;
  /** Runs after the pipeline stopped (embedded broker, simulator). */
  onStopped?: () => Promise<void>;
}

export function installCrashHandlers(logger: Logger): void {
  const die = (kind: string) => (err: unknown) => {
    logger.fatal({ err }, `${kind}: ending the process so the service manager restarts it`);
    // pino writes synchronously to stdout by default; exit right after.
    process.exit(EXIT_FAILURE);
  };
  process.on('uncaughtException', die('uncaught exception'));
  process.on('unhandledRejection', die('unhandled promise rejection'));
}

/** What the lifecycle drives: a Pipeline, or the supervisor that replaces pipelines (run). */
export type RunningAgent = Pick<Pipeline, 'stop' | 'reload' | 'useReloader' | 'currentConfig'>;

export function runUntilStopped(pipeline: RunningAgent, opts: LifecycleOptions): Promise<number> {
  const { logger, stops } = opts;
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (why: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ why }, 'stopping: draining the pipeline');
      pipeline
        .stop(opts.drainMs ?? DEFAULT_DRAIN_MS)
        .then(() => opts.onStopped?.())
        .then(
          () => resolve(EXIT_OK),
          (err: unknown) => {
            logger.error({ err }, 'stop failed');
            resolve(EXIT_FAILURE);
          },
        )
        .finally(() => {
          stops.release();
          if (timer) clearTimeout(timer);
        });
    };
    const onHup = () => {
      if (!opts.reloadConfig) {
        logger.warn('SIGHUP: nothing to reload');
        return;
      }
      reload(pipeline, opts.reloadConfig, logger, 'SIGHUP').catch(() => undefined);
    };
    const reloadConfig = opts.reloadConfig;
    if (reloadConfig) {
      pipeline.useReloader(() => reload(pipeline, reloadConfig, logger, 'reload command'));
    }
    stops.onStop(stop);
    stops.onReload(onHup);
    const timer =
      opts.durationSec !== undefined
        ? setTimeout(
            () => stops.request(`duration ${opts.durationSec}s elapsed`),
            opts.durationSec * 1000,
          )
        : undefined;
  });
}

/**
 * Re-read, validate and apply the configuration, as SIGHUP and the `reload` command do;
 * logged either way. Rejects with CommandRefused naming the problems when the new
 * configuration is refused (the running one is kept).
 */
async function reload(
  pipeline: RunningAgent,
  reloadConfig: () => Config,
  logger: Logger,
  why: string,
): Promise<ReloadOutcome> {
  const running = pipeline.currentConfig;
  let next: Config;
  try {
    next = reloadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      logger.error(
        { problems: err.problems, file: err.source },
        `${why}: new configuration rejected; keeping the running one`,
      );
      throw new CommandRefused(
        `new configuration rejected; keeping the running one: ${err.problems.join('; ')}`,
      );
    }
    // A missing or unreadable file is the environment's: one line, no stack.
    const error = describeError(err);
    logger.error({ error }, `${why}: cannot read the new configuration; keeping the running one`);
    throw new CommandRefused(
      `cannot read the new configuration; keeping the running one: ${error}`,
    );
  }
  try {
    await pipeline.reload(next);
  } catch (err) {
    logger.error({ err }, `${why}: reload failed`);
    throw err;
  }
  return {
    sensors: next.sensors.filter((s) => s.enabled).length,
    restartNeeded: changedSections(running, next),
  };
}

/** Sections besides the sensors that differ: a reload applies them only at the next restart. */
function changedSections(running: Config, next: Config): string[] {
  const { sensors: _a, ...restRunning } = running;
  const { sensors: _b, ...restNext } = next;
  return (Object.keys(restNext) as Array<keyof typeof restNext>).filter(
    (key) => JSON.stringify(restRunning[key]) !== JSON.stringify(restNext[key]),
  );
}
