/**
 * Baseline (b): the bare SharedArrayBuffer ring with no aggregation — the consumer only
 * reads every field (a checksum, so nothing is optimised away). The practical limit.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { RingBuffer } from '../../agent/queue/ring-buffer.js';

const { sab, expected } = workerData as { sab: SharedArrayBuffer; expected: number };
const ring = RingBuffer.attach(sab);
let received = 0;
let checksum = 0;
const visit = (s: number, q: number, t: number, v: number, st: number) => {
  checksum += s + q + st + v + t;
  received++;
};
parentPort!.postMessage('ready');
const deadline = Date.now() + 120_000;
while (received < expected && Date.now() < deadline) {
  if (ring.drain(4096, visit) === 0) ring.waitForData(50);
}
parentPort!.postMessage({ received, checksum });
