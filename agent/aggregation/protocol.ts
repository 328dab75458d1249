/** Messages between the AggregationWorker host (main thread) and the worker thread. */
import type { MessagePort } from 'node:worker_threads';
import type { AggregationSettings, AggregatorStats, SensorSpec } from './aggregator.js';

export interface WorkerInit {
  ring: SharedArrayBuffer;
  sensors: Array<SensorSpec | null | undefined>;
  settings: AggregationSettings;
  /** Control messages arrive on this port, read synchronously between drains. */
  control: MessagePort;
  /** Longest sleep on an empty ring, so housekeeping and the heartbeat keep going. */
  idleMs: number;
  faultInjection: boolean;
}

/** Host → worker (on the control port). */
export type ControlMessage =
  | { type: 'flush'; id: number }
  | { type: 'stats'; id: number; collectGarbage?: boolean }
  | { type: 'sensors'; id: number; sensors: Array<SensorSpec | null | undefined> }
  | { type: 'stop'; id: number }
  /**
   * Test/diagnostic only (needs faultInjection): throw, or block the thread for ms. A hang
   * is acknowledged (done) just before the thread blocks.
   */
  | { type: 'fault'; id: number; kind: 'crash' | 'hang'; ms?: number };

/** Worker → host (on parentPort). */
export type WorkerMessage =
  | { type: 'batch'; body: ArrayBuffer; windows: number; readings: number }
  | { type: 'done'; id: number; stats?: AggregatorStats; heapUsedBytes?: number };
