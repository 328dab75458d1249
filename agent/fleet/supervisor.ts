/**
 * Holds the running Pipeline and replaces it in the same process when a new config needs
 * more than the sensors' reload: the old pipeline drains and stops (its batches stay in the
 * spool, which closes), then a new one starts on the new config and reopens the same spool,
 * so seq numbering continues. `run` hands the supervisor to the lifecycle in place of the
 * pipeline; SIGHUP and SIGTERM reach whichever pipeline is current.
 */
import type { Config } from '../config/schema.js';
import type { Logger } from '../ops/logger.js';
import type { HealthReport } from '../publish/health.js';
import { DEFAULT_DRAIN_MS, type Pipeline } from '../pipeline.js';

/** Drain bound when a pipeline is replaced: what is not published by then stays spooled. */
export const REPLACE_DRAIN_MS = 5_000;

export type ApplyKind = 'reloaded' | 'restarted';

/** True when `a` and `b` differ in nothing but `sensors` (Pipeline.reload applies those). */
export function onlySensorsDiffer(a: Config, b: Config): boolean {
  const { sensors: _a, ...restA } = a;
  const { sensors: _b, ...restB } = b;
  return JSON.stringify(restA) === JSON.stringify(restB);
}

export class PipelineSupervisor {
  private pipeline: Pipeline;
  /** The current pipeline has been stopped (a replacement failed to start). */
  private down = false;
  private stopRequested = false;
  private busy: Promise<unknown> = Promise.resolve();
  private reloader: Parameters<Pipeline['useReloader']>[0] | undefined;

  constructor(
    first: Pipeline,
    private readonly startPipeline: (config: Config) => Promise<Pipeline>,
    private readonly logger: Logger,
  ) {
    this.pipeline = first;
  }

  get current(): Pipeline {
    return this.pipeline;
  }

  get currentConfig(): Config {
    return this.pipeline.currentConfig;
  }

  health(): HealthReport {
    return this.pipeline.health();
  }

  /** How the `reload` command reloads (lifecycle.ts), for this pipeline and every next one. */
  useReloader(reload: Parameters<Pipeline['useReloader']>[0]): void {
    this.reloader = reload;
    this.pipeline.useReloader(reload);
  }

  /** On the current pipeline's telemetry connection; false while none is connected. */
  publishRetained(topic: string, payload: string): Promise<boolean> {
    return this.down ? Promise.resolve(false) : this.pipeline.publishRetained(topic, payload);
  }

  /** One change at a time: a reload, a replacement and the final stop never overlap. */
  private serial<T>(work: () => Promise<T>): Promise<T> {
    const next = this.busy.then(work, work);
    this.busy = next.catch(() => undefined);
    return next;
  }

  /** SIGHUP: the sensors of `next`, on the running pipeline. */
  reload(next: Config): Promise<void> {
    return this.serial(() => this.pipeline.reload(next));
  }

  /**
   * Runs `next`: a reload when only the sensors change, else a new pipeline in place of the
   * old one. Throws when the new pipeline cannot start; the supervisor is then without a
   * running pipeline until the next apply (the caller's rollback) starts one.
   */
  apply(next: Config, drainMs = REPLACE_DRAIN_MS): Promise<ApplyKind> {
    return this.serial(async () => {
      if (this.stopRequested) throw new Error('the agent is stopping');
      if (!this.down && onlySensorsDiffer(this.pipeline.currentConfig, next)) {
        await this.pipeline.reload(next);
        return 'reloaded';
      }
      this.logger.info('configuration changes more than sensors: replacing the pipeline');
      await this.pipeline.stop(drainMs);
      this.down = true;
      this.pipeline = await this.startPipeline(next);
      if (this.reloader) this.pipeline.useReloader(this.reloader);
      this.down = false;
      return 'restarted';
    });
  }

  /** SIGTERM: drains the current pipeline after any change under way. */
  stop(drainMs = DEFAULT_DRAIN_MS): Promise<void> {
    this.stopRequested = true;
    return this.serial(() => (this.down ? Promise.resolve() : this.pipeline.stop(drainMs)));
  }
}
