/**
 * Baseline (a): one postMessage per reading into a worker running the SAME Aggregator as
 * the ring pipeline. Replies with counts once it receives "end".
 */
import { parentPort, workerData } from 'node:worker_threads';
import {
  Aggregator,
  type AggregationSettings,
  type SensorSpec,
} from '../../agent/aggregation/aggregator.js';

interface Msg {
  s: number;
  q: number;
  t: number;
  v: number;
  st: number;
}
const { sensors, settings } = workerData as {
  sensors: SensorSpec[];
  settings: AggregationSettings;
};
const encoder = new TextEncoder();
let windows = 0;
let bytes = 0;
const agg = new Aggregator(sensors, settings, (b) => {
  bytes += encoder.encode(b.text).byteLength;
  windows += b.windows;
});
let lastTick = 0;
parentPort!.on('message', (m: Msg | 'end') => {
  if (m === 'end') {
    agg.flush();
    parentPort!.postMessage({ windows, bytes, readings: agg.stats().readings });
    return;
  }
  agg.add(m.s, m.q, m.t, m.v, m.st);
  const now = Date.now();
  if (now - lastTick >= 50) {
    agg.tick(now);
    lastTick = now;
  }
});
