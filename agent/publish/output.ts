/**
 * What the pipeline feeds: every output (telemetry, Home Assistant, Sparkplug) has one shape,
 * after Telegraf's RunningOutput — started once, handed each batch the aggregation worker
 * closes, stopped within a drain bound, and asked for its figures — so the pipeline holds a
 * list of outputs instead of wiring each by hand.
 *
 * A batch reaches the outputs as its encoded body (what telemetry spools and publishes as
 * it is) and its windows, decoded and checked once, on first use, whichever output asks.
 */
import { QUANTITIES, type Quantity } from '../../drivers/types.js';
import type { WindowState } from '../aggregation/aggregator.js';

/** A window of a telemetry batch (docs/payload.md, docs/schemas/telemetry-1.schema.json). */
export interface TelemetryWindow {
  sensor: string;
  quantity: Quantity;
  unit: string;
  start: number;
  end: number;
  count: number;
  min: number | null;
  max: number | null;
  mean: number | null;
  stddev: number | null;
  last: number | null;
  faults: number;
  state?: WindowState;
  flags?: Partial<Record<string, number>>;
  clockStep?: true;
}

export interface OutputBatch {
  /** The encoded batch body (docs/payload.md), as the aggregation worker made it. */
  readonly body: Uint8Array;
  /** Its windows; malformed ones are left out. Throws when the body is not JSON. */
  windows(): readonly TelemetryWindow[];
}

export interface Output {
  /** How logs and the health report name it. */
  readonly name: string;
  /** Connects (or attaches to a connection). Throws on unreadable credential or TLS files. */
  start(): void;
  /** A batch closed by the aggregation worker. */
  take(batch: OutputBatch): void;
  /** Sends what it can within `drainMs`, says goodbye, disconnects. */
  stop(options: { drainMs: number }): Promise<void>;
  stats(): object;
}

/** A batch for the outputs; its windows are decoded at most once. */
export function outputBatch(body: Uint8Array): OutputBatch {
  let windows: TelemetryWindow[] | undefined;
  return {
    body,
    windows: () => (windows ??= decodeWindows(body)),
  };
}

/** The windows of a batch body (`{"windows":[...], ...}`); malformed entries are left out. */
export function decodeWindows(body: Uint8Array): TelemetryWindow[] {
  const parsed: unknown = JSON.parse(
    Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'),
  );
  const windows = (parsed as { windows?: unknown } | null)?.windows;
  return Array.isArray(windows) ? windows.filter(isTelemetryWindow) : [];
}

const STATES: readonly string[] = ['ok', 'degraded', 'failing', 'backoff', 'idle'];
const isStat = (v: unknown) => v === null || typeof v === 'number';

function isTelemetryWindow(w: unknown): w is TelemetryWindow {
  if (w === null || typeof w !== 'object') return false;
  const o = w as Record<string, unknown>;
  return (
    typeof o.sensor === 'string' &&
    typeof o.quantity === 'string' &&
    (QUANTITIES as readonly string[]).includes(o.quantity) &&
    typeof o.unit === 'string' &&
    typeof o.start === 'number' &&
    typeof o.end === 'number' &&
    typeof o.count === 'number' &&
    typeof o.faults === 'number' &&
    ['min', 'max', 'mean', 'stddev', 'last'].every((k) => isStat(o[k])) &&
    (o.state === undefined || (typeof o.state === 'string' && STATES.includes(o.state))) &&
    (o.flags === undefined || (typeof o.flags === 'object' && o.flags !== null))
  );
}

/** Windows grouped by period (window end), oldest first, each group in the order given. */
export function byPeriod<W extends { end: number }>(windows: readonly W[]): W[][] {
  const byEnd = new Map<number, W[]>();
  for (const w of windows) {
    const list = byEnd.get(w.end);
    if (list) list.push(w);
    else byEnd.set(w.end, [w]);
  }
  return [...byEnd.entries()].sort((a, b) => a[0] - b[0]).map(([, ws]) => ws);
}
