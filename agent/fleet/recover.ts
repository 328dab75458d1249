/**
 * At start, before the config is used: finishes an apply that the process did not live to
 * finish (SIGKILL, power cut, crash during probation). The probation marker says one was
 * under way; whatever step it reached, the gateway goes back to the previous file:
 * - the file is the new one (killed during probation): `<file>.previous` is put back, atomically;
 * - the file is still the old one (killed before the rename): nothing to restore.
 * Either way the marker is removed and the state says rolled-back, with the reason.
 */
import { readFileSync, unlinkSync } from 'node:fs';
import type { Logger } from '../ops/logger.js';
import { tempPathOf, writeFileAtomic } from './atomic-file.js';
import { ConfigStore, hashOf, type ConfigState } from './config-store.js';

export function previousPathOf(configFile: string): string {
  return `${configFile}.previous`;
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Returns the new state when an interrupted apply was rolled back; undefined when none. */
export function recoverInterruptedApply(
  configFile: string,
  stateDir: string,
  gateway: string,
  logger: Logger,
): ConfigState | undefined {
  for (const leftover of [tempPathOf(configFile), tempPathOf(previousPathOf(configFile))]) {
    try {
      unlinkSync(leftover);
    } catch {
      // None: the usual case.
    }
  }
  const store = new ConfigStore(stateDir);
  const marker = store.marker();
  if (!marker) return undefined;
  const current = readText(configFile);
  const previous = readText(previousPathOf(configFile));
  let hash = current === undefined ? '' : hashOf(current);
  if (hash === marker.hash) {
    if (previous === undefined || hashOf(previous) !== marker.previousHash) {
      // Never put back a file other than the one this apply replaced.
      logger.error(
        { file: configFile, version: marker.version },
        'the agent stopped during probation, but the previous config file is missing or not the one replaced; keeping the new one',
      );
      store.endProbation();
      return undefined;
    }
    writeFileAtomic(configFile, previous);
    hash = marker.previousHash;
  }
  const reason = `the agent stopped before version ${marker.version} was confirmed; the previous config is back`;
  const state: ConfigState = {
    schema: 'edge-agent/config-state/1',
    gateway,
    version: marker.previousVersion,
    hash,
    appliedAt: store.state()?.appliedAt ?? null,
    status: 'rolled-back',
    reason,
    request: { version: marker.version, hash: marker.hash },
  };
  store.saveState(state);
  store.endProbation();
  logger.warn({ file: configFile, version: marker.version }, reason);
  return state;
}
