/**
 * What the operator commands (status, config/get, reload, read, announce) need of the running
 * agent, so that each command is a small module over this and not over the pipeline's parts.
 * The pipeline provides it through pipelineControl() (pipeline-control.ts).
 */
import type { Config } from '../config/schema.js';
import type { HealthReport } from '../publish/health.js';
import type { Driver } from '../../drivers/types.js';

/** A sensor as `read` needs it: its running driver and its round timeout. */
export interface ReadableSensor {
  driver: Driver;
  timeoutMs: number;
}

/** What a reload applied; a reload refused throws CommandRefused with the problems. */
export interface ReloadOutcome {
  /** Enabled sensors after the reload. */
  sensors: number;
  /** Sections that changed in the file but take effect at the next restart only. */
  restartNeeded: string[];
}

export interface AnnounceOutcome {
  /** Home Assistant discovery announced again; null when homeassistant is off. */
  homeassistant: boolean | null;
  /** Sparkplug NBIRTH published again; null when sparkplug is off. */
  sparkplug: boolean | null;
}

export interface AgentControl {
  health(): HealthReport;
  /** The running configuration (after reloads). */
  config(): Config;
  /** The file the configuration was read from; undefined when built by the command line. */
  configFile(): string | undefined;
  /** The version of a remotely set configuration, when there is one; else null. */
  configVersion(): number | null;
  /** As SIGHUP: re-read the file, validate, apply. */
  reload(): Promise<ReloadOutcome>;
  sensor(id: string): ReadableSensor | undefined;
  announce(): Promise<AnnounceOutcome>;
}
