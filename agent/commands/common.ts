/** Shared bits of the subcommands: exit codes, usage errors, option parsing. */
import type { StopRequests } from './stop-requests.js';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** The service's configuration file: `run`'s default, and where `spool` finds the state dir. */
export const DEFAULT_CONFIG = '/etc/edge-agent/config.yaml';

/** Raised for a bad command line; the CLI prints it with the usage and exits 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export type OptionValues = Record<string, string | boolean | undefined>;

/** Where a command writes its own lines (the CLI passes the process's streams). */
export interface CommandOutput {
  stdout(text: string): void;
  stderr(text: string): void;
}

/** What the dispatcher hands every command besides its options. */
export interface CommandContext {
  output: CommandOutput;
  /** Signals caught since start-up (run and simulate only; see stop-requests.ts). */
  stops: StopRequests;
}

/** Parse a numeric option within [min, max], or throw a UsageError naming it and the range. */
export function numberOption(
  values: OptionValues,
  name: string,
  min: number,
  max: number,
): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (typeof raw !== 'string' || raw.trim() === '' || !Number.isFinite(n) || n < min || n > max) {
    throw new UsageError(
      `--${name} must be a number from ${min} to ${max}, got ${JSON.stringify(String(raw))}`,
    );
  }
  return n;
}

export function stringOption(values: OptionValues, name: string): string | undefined {
  const raw = values[name];
  return typeof raw === 'string' ? raw : undefined;
}
