/**
 * Start-up recovery from each state an apply can be killed in (remote-config.ts writes, in
 * order: <file>.previous, the probation marker, the new file), and the atomic write itself.
 */
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempPathOf, writeFileAtomic } from '../../../agent/fleet/atomic-file.js';
import { ConfigStore, hashOf } from '../../../agent/fleet/config-store.js';
import { previousPathOf, recoverInterruptedApply } from '../../../agent/fleet/recover.js';
import { capturingLogger } from '../../helpers/logger.js';
import { useTeardown } from '../../helpers/teardown.js';

const t = useTeardown();
const OLD = 'gateway: { id: gw }\n';
const NEW = 'gateway: { id: gw }\nsensors: []\n';

function gateway(step: 'previous' | 'marker' | 'renamed') {
  const dir = t.tempDir('recover-');
  const file = join(dir, 'config.yaml');
  const stateDir = join(dir, 'state');
  writeFileSync(file, OLD);
  writeFileAtomic(previousPathOf(file), OLD);
  const store = new ConfigStore(stateDir);
  if (step !== 'previous') {
    store.startProbation({
      version: 3,
      hash: hashOf(NEW),
      previousHash: hashOf(OLD),
      previousVersion: null,
      startedAt: Date.now(),
    });
  }
  if (step === 'renamed') writeFileAtomic(file, NEW);
  return { file, stateDir, store };
}

describe('recovery of an interrupted apply', () => {
  it('does nothing when killed before the marker', () => {
    const g = gateway('previous');
    const log = capturingLogger();
    expect(recoverInterruptedApply(g.file, g.stateDir, 'gw', log.logger)).toBeUndefined();
    expect(readFileSync(g.file, 'utf8')).toBe(OLD);
  });

  it('keeps the old file and ends the probation when killed before the rename', () => {
    const g = gateway('marker');
    writeFileSync(tempPathOf(g.file), NEW.slice(0, 10));
    const state = recoverInterruptedApply(g.file, g.stateDir, 'gw', capturingLogger().logger);
    expect(state).toMatchObject({
      status: 'rolled-back',
      hash: hashOf(OLD),
      request: { version: 3 },
    });
    expect(readFileSync(g.file, 'utf8')).toBe(OLD);
    expect(existsSync(tempPathOf(g.file))).toBe(false);
    expect(g.store.marker()).toBeUndefined();
    expect(g.store.state()).toEqual(state);
  });

  it('puts the previous file back when killed during the probation', () => {
    const g = gateway('renamed');
    const state = recoverInterruptedApply(g.file, g.stateDir, 'gw', capturingLogger().logger);
    expect(state).toMatchObject({ status: 'rolled-back', version: null, hash: hashOf(OLD) });
    expect(state?.reason).toMatch(/stopped before version 3 was confirmed/);
    expect(readFileSync(g.file, 'utf8')).toBe(OLD);
    expect(g.store.marker()).toBeUndefined();
  });

  it('never puts back a previous file that is not the one replaced', () => {
    const g = gateway('renamed');
    writeFileSync(previousPathOf(g.file), 'gateway: { id: someone-else }\n');
    const log = capturingLogger();
    expect(recoverInterruptedApply(g.file, g.stateDir, 'gw', log.logger)).toBeUndefined();
    expect(readFileSync(g.file, 'utf8')).toBe(NEW);
    expect(log.text()).toMatch(/previous config file is missing or not the one replaced/);
  });
});

describe('writeFileAtomic', () => {
  it('replaces the text, keeps the mode, and clears a leftover temporary file', () => {
    const dir = t.tempDir('atomic-');
    const file = join(dir, 'config.yaml');
    writeFileSync(file, OLD, { mode: 0o640 });
    writeFileSync(tempPathOf(file), 'half a fi');
    writeFileAtomic(file, NEW);
    expect(readFileSync(file, 'utf8')).toBe(NEW);
    expect(statSync(file).mode & 0o777).toBe(0o640);
    expect(existsSync(tempPathOf(file))).toBe(false);
  });
});

describe('ConfigStore', () => {
  it('never lowers the highest version', () => {
    const store = new ConfigStore(t.tempDir('store-'));
    expect(store.highestVersion()).toBe(0);
    store.raiseHighestVersion(5);
    store.raiseHighestVersion(2);
    expect(store.highestVersion()).toBe(5);
  });
});
