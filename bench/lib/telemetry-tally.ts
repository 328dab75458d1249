/**
 * One persistent QoS 1 subscriber (in a process of its own, subscriber-process.ts) that
 * records every telemetry message of every gateway under `edge/`: seq, createdAt, payload
 * bytes, readings (the sum of the windows' counts) and arrival time; plus the bytes of the
 * health and status topics. clean: false, so a broker restart with persistence loses none.
 * One real payload per gateway is kept in a file, for what-if measurements on real bodies.
 */
import { subscriberProcess } from './subscriber-process.js';

/** [seq, createdAt ms, payload bytes, readings, arrival Date.now()] */
export type TelemetryRecord = [number, number, number, number, number];

export interface GatewayTally {
  telemetry: TelemetryRecord[];
  /** Size of the kept sample body. */
  sampleBytes?: number;
  healthBytes: number;
  healthMessages: number;
  statusBytes: number;
}

export interface Tally {
  gateways: Record<string, GatewayTally>;
}

const SOURCE = `
import mqtt from 'mqtt';
import { writeFileSync } from 'node:fs';
const [url, sampleDir] = process.argv.slice(1);
const gateways = {};
let changed = false;
const client = await mqtt.connectAsync(url, { clientId: 'bench-footprint-tally', clean: false, reconnectPeriod: 200 });
client.on('error', () => undefined);
client.on('message', (topic, payload) => {
  const [, gw, kind] = topic.split('/');
  const g = (gateways[gw] ??= { telemetry: [], healthBytes: 0, healthMessages: 0, statusBytes: 0 });
  changed = true;
  if (kind === 'telemetry') {
    let seq = -1, createdAt = 0, readings = 0;
    try {
      const m = JSON.parse(payload.toString('utf8'));
      seq = m.seq; createdAt = m.createdAt;
      for (const w of m.windows ?? []) readings += w.count ?? 0;
    } catch {}
    g.telemetry.push([seq, createdAt, payload.length, readings, Date.now()]);
    // The largest of messages 3..8 of a gateway (past the partial first windows; a window
    // split into several batches has a small tail) as a sample body.
    const n = g.telemetry.length;
    if (sampleDir && n >= 3 && n <= 8 && payload.length > (g.sampleBytes ?? 0)) {
      g.sampleBytes = payload.length;
      writeFileSync(sampleDir + '/sample-' + gw + '.json', payload);
    }
  } else if (kind === 'health') {
    g.healthBytes += payload.length;
    g.healthMessages++;
  } else if (kind === 'status') g.statusBytes += payload.length;
});
await client.subscribeAsync(['edge/+/telemetry', 'edge/+/health', 'edge/+/status'], { qos: 1 });
process.stdout.write('ready\\n');
setInterval(() => {
  if (!changed) return;
  changed = false;
  process.stdout.write(JSON.stringify({ gateways }) + '\\n');
}, 100);
process.stdin.on('end', () => client.endAsync(true).then(() => process.exit(0)));
process.stdin.resume();
`;

/** sampleDir: where the fourth telemetry message of each gateway is kept, as sample-<gw>.json. */
export async function telemetryTally(url: string, sampleDir: string) {
  return subscriberProcess<Tally>(SOURCE, [url, sampleDir], { gateways: {} });
}

export function gatewayTally(t: Tally, gateway: string): GatewayTally {
  return (
    t.gateways[gateway] ?? { telemetry: [], healthBytes: 0, healthMessages: 0, statusBytes: 0 }
  );
}
