/**
 * What remote configuration keeps in the state directory (`<stateDir>/remote-config/`), each
 * file replaced atomically:
 * - `highest-version`: the highest version ever accepted for apply. Raised before the new file
 *   is written and never lowered, not even by a rollback, so a replayed envelope is refused.
 * - `state.json`: the running config's version and hash and the outcome of the latest apply
 *   (refusals are only announced, never written: they come at the rate anyone may send).
 * - `probation.json`: present from before the new file is written until the new config is
 *   confirmed or rolled back; a process that starts and finds it died during an apply.
 */
import { createHash } from 'node:crypto';
import { readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { mkdirsPrivate } from '../ops/private-files.js';
import { fsyncDir, writeFileAtomic } from './atomic-file.js';

export type ConfigStatus = 'applied' | 'rolled-back' | 'rejected';

/** Retained on `<prefix>/<gw>/config/state` (docs/payload.md). */
export interface ConfigState {
  schema: 'edge-agent/config-state/1';
  gateway: string;
  /** Version of the running config; null when it never came by remote configuration. */
  version: number | null;
  /** sha256 (hex) of the running config file's text. */
  hash: string;
  /** When the running config was applied (ms since the epoch); null for the local file. */
  appliedAt: number | null;
  /** Outcome of the latest config/set; `applied` also for the local file at start. */
  status: ConfigStatus;
  /** Why it was rolled back or rejected; null when applied. */
  reason: string | null;
  /** The version and hash that request carried; null when there was no request. */
  request: { version: number; hash: string } | null;
}

const stateSchema: z.ZodType<ConfigState> = z.object({
  schema: z.literal('edge-agent/config-state/1'),
  gateway: z.string(),
  version: z.number().int().positive().nullable(),
  hash: z.string(),
  appliedAt: z.number().nullable(),
  status: z.enum(['applied', 'rolled-back', 'rejected']),
  reason: z.string().nullable(),
  request: z.object({ version: z.number(), hash: z.string() }).nullable(),
});

export interface ProbationMarker {
  version: number;
  /** Hash of the new file's text, and of the file it replaced (kept as `<file>.previous`). */
  hash: string;
  previousHash: string;
  /** The previous config's version (null: the local file). */
  previousVersion: number | null;
  startedAt: number;
}

const markerSchema: z.ZodType<ProbationMarker> = z.object({
  version: z.number().int().positive(),
  hash: z.string(),
  previousHash: z.string(),
  previousVersion: z.number().int().positive().nullable(),
  startedAt: z.number(),
});

export function hashOf(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

export class ConfigStore {
  readonly dir: string;

  constructor(stateDir: string) {
    this.dir = join(stateDir, 'remote-config');
  }

  private path(name: string): string {
    return join(this.dir, name);
  }

  private write(name: string, value: unknown): void {
    mkdirsPrivate(this.dir);
    writeFileAtomic(this.path(name), `${JSON.stringify(value)}\n`);
  }

  /** The file's JSON when it exists and matches; undefined when missing or unreadable. */
  private read<T>(name: string, schema: z.ZodType<T>): T | undefined {
    let text: string;
    try {
      text = readFileSync(this.path(name), 'utf8');
    } catch {
      return undefined;
    }
    try {
      const parsed = schema.safeParse(JSON.parse(text));
      return parsed.success ? parsed.data : undefined;
    } catch {
      return undefined;
    }
  }

  highestVersion(): number {
    return this.read('highest-version', z.object({ version: z.number().int() }))?.version ?? 0;
  }

  raiseHighestVersion(version: number): void {
    if (version > this.highestVersion()) this.write('highest-version', { version });
  }

  state(): ConfigState | undefined {
    return this.read('state.json', stateSchema);
  }

  saveState(state: ConfigState): void {
    this.write('state.json', state);
  }

  marker(): ProbationMarker | undefined {
    return this.read('probation.json', markerSchema);
  }

  startProbation(marker: ProbationMarker): void {
    this.write('probation.json', marker);
  }

  endProbation(): void {
    try {
      unlinkSync(this.path('probation.json'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      return;
    }
    fsyncDir(this.dir);
  }
}
