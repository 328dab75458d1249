/** Both spool stores pass the same suite; SQLite runs it with its read-back cache on and off. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../../../agent/ops/logger.js';
import { MemoryStore } from '../../../../agent/publish/spool/memory-store.js';
import { SqliteStore } from '../../../../agent/publish/spool/sqlite-store.js';
import { storeSuite, type StoreUnderTest } from './store-suite.js';

/** A SQLite store in a fresh directory; a disk failure fails the test. */
function sqliteStore(retainRecent: boolean): StoreUnderTest {
  const dir = mkdtempSync(join(tmpdir(), 'sqlite-store-'));
  const store = new SqliteStore(dir, {
    logger: silentLogger,
    failed: (err) => {
      throw err;
    },
  });
  if (store.open() !== 'ok') throw new Error(`could not open a store in ${dir}`);
  store.load();
  store.retainRecent(retainRecent);
  return {
    store,
    dispose: () => {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

storeSuite('MemoryStore', () => ({ store: new MemoryStore(), dispose: () => {} }));
storeSuite('SqliteStore, read back from SQLite', () => sqliteStore(false));
storeSuite('SqliteStore, with the read-back cache', () => sqliteStore(true));
