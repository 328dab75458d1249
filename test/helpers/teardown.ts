/**
 * What a test starts — brokers, subscribers, agents, temporary dirs, mounts — is registered
 * here as it is made and undone after the test, newest first. Every step runs even when an
 * earlier one throws (a broker or a mount left behind would leak into the next test); the
 * errors are thrown after the last step, so a teardown that fails is reported, not hidden.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach } from 'vitest';
import { spawnMosquitto, type MosquittoBroker, type MosquittoOptions } from './mosquitto.js';
import { startSubscriber, type TestSubscriber } from './subscriber.js';

export interface Teardown {
  /** Runs each of `fns` at teardown (the last one first, as if added one by one). */
  add(...fns: Array<() => unknown>): void;
  /** `value`, closed at teardown by `close` (by default its own `close()`). */
  own<T extends { close(): unknown }>(value: T): T;
  own<T>(value: T, close: (value: T) => unknown): T;
  /** A real mosquitto (mosquitto.ts), closed at teardown. */
  mosquitto(options?: MosquittoOptions): Promise<MosquittoBroker>;
  /** A recording subscriber (subscriber.ts), closed at teardown. */
  subscriber(options: Parameters<typeof startSubscriber>[0]): Promise<TestSubscriber>;
  /** A new directory under the system's temp dir, deleted at teardown. */
  tempDir(prefix?: string): string;
  /** Runs every step registered so far, newest first, and empties the list. */
  run(): Promise<void>;
}

/** A teardown list run by hand (`run()`), for helpers that own what they start. */
export function teardownList(): Teardown {
  const steps: Array<() => unknown> = [];
  const own = <T>(value: T, close?: (value: T) => unknown): T => {
    steps.push(() => (close ? close(value) : (value as unknown as { close(): unknown }).close()));
    return value;
  };
  const t: Teardown = {
    add: (...fns) => {
      steps.push(...fns);
    },
    own,
    mosquitto: async (options) => own(await spawnMosquitto(options)),
    subscriber: async (options) => own(await startSubscriber(options)),
    tempDir: (prefix = 'edge-agent-test-') => {
      const dir = mkdtempSync(join(tmpdir(), prefix));
      steps.push(() => rmSync(dir, { recursive: true, force: true }));
      return dir;
    },
    run: async () => {
      const errors: unknown[] = [];
      for (const step of steps.splice(0).reverse()) {
        try {
          await step();
        } catch (err) {
          errors.push(err);
        }
      }
      if (errors.length === 1) throw errors[0];
      if (errors.length > 1)
        throw new AggregateError(errors, `${errors.length} teardown steps failed`);
    },
  };
  return t;
}

/**
 * The teardown list of a test file (call at the top) or of a `describe` (call in it): run after
 * each test, or with `{ after: 'all' }` once after its last test, for what its tests share
 * (started in `beforeAll`).
 */
export function useTeardown(o: { after?: 'each' | 'all' } = {}): Teardown {
  const t = teardownList();
  if (o.after === 'all') afterAll(() => t.run());
  else afterEach(() => t.run());
  return t;
}
