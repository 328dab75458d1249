/**
 * `edge-agent tail [--broker URL] [--gateway ID] [--prefix P] [--json]`: subscribe to
 * telemetry and status, print one line per batch and per status change, and flag GAPS and
 * DUPLICATES by seq per gateway — the first tool a subscriber's developer reaches for.
 *
 * Broker unreachable: if the first connection does not succeed within 10 s, exit 1 with the
 * error. Once connected, a lost connection is reported on stderr and retried every second.
 * SIGINT/SIGTERM: exit 0.
 */
import mqtt from 'mqtt';
import { SeqTracker, type PartOf, type SeqCheck } from '../publish/seq-tracker.js';
import { parseGatewayTopic } from '../publish/topics.js';
import type { DroppedNote } from '../publish/payload.js';
import { EXIT_FAILURE, EXIT_OK, stringOption, UsageError, type OptionValues } from './common.js';

const FIRST_CONNECT_TIMEOUT_MS = 10_000;
const SHOWN_WINDOWS = 3;

type Json = Record<string, unknown>;

function checkText(check: SeqCheck): string {
  switch (check.kind) {
    case 'gap':
      return check.from === check.to
        ? `  GAP: seq ${check.from} missing`
        : `  GAP: seq ${check.from}..${check.to} missing (${check.to - check.from + 1})`;
    case 'duplicate':
      return '  DUPLICATE';
    case 'late':
      return '  LATE (fills an earlier gap)';
    case 'part':
      return '  (next part)';
    default:
      return '';
  }
}

function num(v: unknown): string {
  return typeof v === 'number' ? String(Math.round(v * 100) / 100) : '-';
}

/** One readable line for a batch: gateway, seq, windows, the first few means. */
export function describeBatch(msg: Json, check: SeqCheck): string {
  const windows = Array.isArray(msg.windows) ? (msg.windows as Json[]) : [];
  const readings = Array.isArray(msg.readings) ? msg.readings.length : 0;
  const shown = windows.slice(0, SHOWN_WINDOWS).map((w) => {
    const faults = typeof w.faults === 'number' && w.faults > 0 ? ` faults=${w.faults}` : '';
    // An empty window says why: failing, backoff or idle (docs/payload.md).
    const empty = typeof w.state === 'string' ? w.state : 'no data';
    const value = w.count === 0 ? empty : `${num(w.mean)} ${String(w.unit ?? '')}`.trim();
    return `${String(w.sensor)}=${value}${faults}`;
  });
  const more = windows.length > SHOWN_WINDOWS ? ` +${windows.length - SHOWN_WINDOWS} more` : '';
  const raw = readings > 0 ? ` readings=${readings}` : '';
  const part = partOf(msg);
  const partText = part ? ` part ${part.part}/${part.parts}` : '';
  const dropped = droppedOf(msg);
  const droppedText = dropped
    ? `  (agent dropped ${dropped.count}: seq ${dropped.firstSeq}..${dropped.lastSeq}, ${dropped.reason})`
    : '';
  return `${String(msg.gateway)} seq ${String(msg.seq)}${partText} windows=${windows.length}${raw} ${shown.join(' ')}${more}${checkText(check)}${droppedText}`;
}

/** The agent's note of the batches it dropped before this one, when the message has one. */
export function droppedOf(msg: Json): DroppedNote | undefined {
  const d = msg.dropped as Partial<DroppedNote> | undefined;
  return d &&
    typeof d.count === 'number' &&
    typeof d.firstSeq === 'number' &&
    typeof d.lastSeq === 'number' &&
    typeof d.reason === 'string'
    ? { count: d.count, firstSeq: d.firstSeq, lastSeq: d.lastSeq, reason: d.reason }
    : undefined;
}

/** The part fields of a split batch's message, when both are there. */
export function partOf(msg: Json): PartOf | undefined {
  return typeof msg.part === 'number' && typeof msg.parts === 'number'
    ? { part: msg.part, parts: msg.parts }
    : undefined;
}

export function describeStatus(gateway: string, msg: Json | undefined): string {
  if (!msg) return `${gateway} status cleared`;
  const extra =
    msg.state === 'online'
      ? ` version ${String(msg.version)} sensors ${Array.isArray(msg.sensors) ? msg.sensors.length : 0}`
      : ` (${String(msg.reason ?? 'unknown')})`;
  return `${gateway} status ${String(msg.state)}${extra}`;
}

/** A JSON object payload, or undefined. */
export function parseObject(payload: Buffer): Json | undefined {
  try {
    const v = JSON.parse(payload.toString('utf8')) as unknown;
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : undefined;
  } catch {
    return undefined;
  }
}

function time(): string {
  return new Date().toISOString().slice(11, 23);
}

export async function tailCommand(values: OptionValues): Promise<number> {
  const url = stringOption(values, 'broker') ?? 'mqtt://127.0.0.1:1883';
  const gateway = stringOption(values, 'gateway') ?? '+';
  const prefix = stringOption(values, 'prefix') ?? 'edge';
  const json = values.json === true;
  if (!/^(mqtts?|wss?):\/\//.test(url)) {
    throw new UsageError(
      `--broker must be an mqtt://, mqtts://, ws:// or wss:// URL, got "${url}"`,
    );
  }
  if (gateway.includes('/') || gateway.includes('#') || prefix.includes('/')) {
    throw new UsageError('--gateway and --prefix are single topic levels');
  }
  const out = (line: string) => process.stdout.write(line + '\n');
  const event = (e: Json) => out(JSON.stringify(e));
  const tracker = new SeqTracker();
  const client = mqtt.connect(url, { reconnectPeriod: 1000, connectTimeout: 5000, clean: true });

  return new Promise<number>((resolve) => {
    let everConnected = false;
    let lastError = '';
    const finish = (code: number) => {
      clearTimeout(firstTimer);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      client.end(true, {}, () => resolve(code));
    };
    const onSignal = () => finish(EXIT_OK);
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    const firstTimer = setTimeout(() => {
      if (everConnected) return;
      process.stderr.write(
        `edge-agent tail: cannot reach the broker at ${url} within ${FIRST_CONNECT_TIMEOUT_MS / 1000} s: ${lastError || 'no answer'}\n`,
      );
      finish(EXIT_FAILURE);
    }, FIRST_CONNECT_TIMEOUT_MS);

    client.on('error', (err) => {
      lastError = err.message;
      if (everConnected) process.stderr.write(`edge-agent tail: ${err.message}\n`);
    });
    client.on('close', () => {
      if (everConnected && !client.disconnecting)
        process.stderr.write(`edge-agent tail: connection to ${url} lost, reconnecting\n`);
    });
    client.on('connect', () => {
      const first = !everConnected;
      everConnected = true;
      client.subscribe(
        [`${prefix}/${gateway}/telemetry`, `${prefix}/${gateway}/status`],
        { qos: 1 },
        (err) => {
          if (err) process.stderr.write(`edge-agent tail: subscribe failed: ${err.message}\n`);
          // Said once the broker has granted the subscription: from here on nothing published
          // for the gateway is missed (a message published before this line may be).
          else if (first)
            process.stderr.write(`edge-agent tail: connected to ${url}, gateway ${gateway}\n`);
        },
      );
    });
    client.on('message', (topic, payload) => {
      const where = parseGatewayTopic(prefix, topic);
      if (!where) return;
      const msg = payload.length > 0 ? parseObject(payload) : undefined;
      if (where.kind === 'status') {
        if (json) event({ event: 'status', gateway: where.gateway, ...(msg ?? { state: null }) });
        else out(`${time()} ${describeStatus(where.gateway, msg)}`);
        return;
      }
      if (!msg || typeof msg.seq !== 'number') {
        if (json) event({ event: 'invalid', gateway: where.gateway, bytes: payload.length });
        else out(`${time()} ${where.gateway} INVALID telemetry payload (${payload.length} bytes)`);
        return;
      }
      const part = partOf(msg);
      const check = tracker.observe(where.gateway, msg.seq, part);
      if (json) {
        event({
          event: 'telemetry',
          gateway: where.gateway,
          seq: msg.seq,
          ...(part ?? {}),
          createdAt: msg.createdAt,
          windows: Array.isArray(msg.windows) ? msg.windows.length : 0,
          readings: Array.isArray(msg.readings) ? msg.readings.length : 0,
          check: check.kind,
          ...(check.kind === 'gap' ? { missing: [check.from, check.to] } : {}),
          ...(msg.dropped !== undefined ? { dropped: droppedOf(msg) ?? null } : {}),
        });
      } else out(`${time()} ${describeBatch(msg, check)}`);
    });
  });
}
