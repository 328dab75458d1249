/**
 * One persistent QoS 1 subscriber (in a process of its own, subscriber-process.ts) that
 * counts, per gateway under `edge/`, the readings delivered per aggregation window start
 * (the sum of the windows' counts of the first arrival of each seq), and the seqs seen.
 * So a benchmark can ask "how many readings sampled between A and B reached a subscriber".
 */
import { subscriberProcess } from './subscriber-process.js';

export interface WindowTally {
  messages: number;
  distinctSeqs: number;
  duplicates: number;
  minSeq: number;
  maxSeq: number;
  /** Window start (ms) → readings delivered in windows starting then. */
  windows: Record<string, number>;
}

export interface WindowTallies {
  gateways: Record<string, WindowTally>;
}

const SOURCE = `
import mqtt from 'mqtt';
const [url] = process.argv.slice(1);
const gateways = {};
const seen = new Map();
let changed = false;
const client = await mqtt.connectAsync(url, { clientId: 'bench-slow-disk-tally', clean: false, reconnectPeriod: 200 });
client.on('error', () => undefined);
client.on('message', (topic, payload) => {
  const gw = topic.split('/')[1];
  const g = (gateways[gw] ??= { messages: 0, distinctSeqs: 0, duplicates: 0, minSeq: 0, maxSeq: 0, windows: {} });
  const seqs = seen.get(gw) ?? new Set();
  seen.set(gw, seqs);
  g.messages++;
  changed = true;
  let m;
  try { m = JSON.parse(payload.toString('utf8')); } catch { return; }
  if (seqs.has(m.seq)) { g.duplicates++; return; }
  seqs.add(m.seq);
  g.distinctSeqs = seqs.size;
  g.minSeq = g.minSeq === 0 ? m.seq : Math.min(g.minSeq, m.seq);
  g.maxSeq = Math.max(g.maxSeq, m.seq);
  for (const w of m.windows ?? []) g.windows[w.start] = (g.windows[w.start] ?? 0) + (w.count ?? 0);
});
await client.subscribeAsync('edge/+/telemetry', { qos: 1 });
process.stdout.write('ready\\n');
setInterval(() => {
  if (!changed) return;
  changed = false;
  process.stdout.write(JSON.stringify({ gateways }) + '\\n');
}, 100);
process.stdin.on('end', () => client.endAsync(true).then(() => process.exit(0)));
process.stdin.resume();
`;

export async function windowTally(url: string) {
  return subscriberProcess<WindowTallies>(SOURCE, [url], { gateways: {} });
}

/** Readings delivered in windows starting within [from, to) (ms). */
export function readingsBetween(t: WindowTally | undefined, from: number, to: number): number {
  let sum = 0;
  for (const [start, count] of Object.entries(t?.windows ?? {}))
    if (Number(start) >= from && Number(start) < to) sum += count;
  return sum;
}
