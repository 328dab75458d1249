/**
 * Which messages carry a spooled batch to the broker: the batch whole, or in parts when it
 * does not fit the broker's limit — the limit it announced (MQTT 5 Maximum Packet Size) or
 * the one learned from its refusals (a message refused twice in a row is split one size step
 * further down; a broker speaking 3.1.1 just closes the connection).
 *
 * Rules kept here:
 * - The parts of batch N all carry seq N and `part`/`parts`; the batch is done only when
 *   every part is acknowledged.
 * - Once a part of a batch is acknowledged its split is final: a subscriber deduping by
 *   (gateway, seq, part) must never get different data under a key it already stored. A part
 *   of such a batch that is refused again is not split further: the batch is set aside.
 * - A batch whose single item (one window or reading) still cannot pass is set aside.
 * - Parts are cut to a size step (SIZE_STEP_BYTES times a power of two), the largest below
 *   the limit, never to the limit itself: whatever order refusals came in, before or after
 *   a restart, a broker with a given limit gets the same parts of a batch.
 */
import { bodyItems, itemCount, splitToFit, type PartBody } from './batch-parts.js';
import { assembleTelemetry } from './payload.js';
import type { SpooledBatch } from './spool/store.js';

/** One MQTT message: a whole batch (part 0 of 0) or part `part` (1-based) of `parts`. */
export interface Outgoing {
  seq: number;
  part: number;
  parts: number;
  payload: Buffer;
}

export type Plan =
  { kind: 'send'; messages: Outgoing[]; split: boolean } | { kind: 'set-aside'; reason: string };

export type RefusalOutcome =
  | { kind: 'retry' }
  /** Closed on twice, yet no larger than what the broker took before: not about size. */
  | { kind: 'not-size' }
  | { kind: 'split'; limit: number }
  | { kind: 'set-aside'; reason: string };

/**
 * A close is read as "too large" only above this size: every broker takes a few KiB, and
 * below it a broker that keeps closing on us refuses something else (an ACL that disconnects,
 * a quota), which splitting cannot help and which must not set the whole stream aside.
 */
export const SIZE_FLOOR_BYTES = 1024;

/** Part sizes are this times a power of two. */
export const SIZE_STEP_BYTES = 256;

/** The largest size step at or below `bytes` (SIZE_STEP_BYTES at least). */
export function stepAtOrBelow(bytes: number): number {
  let step = SIZE_STEP_BYTES;
  while (step * 2 <= bytes) step *= 2;
  return step;
}

/** MQTT PUBLISH bytes besides topic and payload: fixed header, topic length, packet id, properties. */
const PUBLISH_OVERHEAD = 1 + 4 + 2 + 2 + 1;
/** The part header, with room for the largest part numbers. */
const LARGEST_PART = { part: 999_999, parts: 999_999 };
const PROBE_BODY = Buffer.from('{}');

interface BatchState {
  /** Payload limit this batch was split for, when it was split on a refusal. */
  limit?: number;
  /** The split, once made; undefined while the batch goes whole. */
  parts?: PartBody[];
  acked: Set<number>;
  /** Refusals in a row, reset by an acknowledged part. */
  refusals: number;
}

export class PartPlanner {
  private readonly batches = new Map<number, BatchState>();
  /** The broker's Maximum Packet Size (this connection), as announced. */
  private announcedPacket: number | undefined;
  /** Payload bytes the broker announced it takes in one message (this connection). */
  private announced: number | undefined;
  /** Payload bytes learned from refusals of size (kept until forgetLearned or restart). */
  private learned: number | undefined;
  /** The largest telemetry payload the broker acknowledged (sizes up to it do pass). */
  private largestAcked = 0;
  private splitCount = 0;

  constructor(
    private readonly gateway: string,
    private readonly topic: string,
  ) {}

  /** The broker's Maximum Packet Size from CONNACK, or undefined when it announced none. */
  setBrokerLimit(maxPacketSize: number | undefined): void {
    this.announcedPacket = maxPacketSize;
    this.announced =
      maxPacketSize === undefined
        ? undefined
        : maxPacketSize - PUBLISH_OVERHEAD - Buffer.byteLength(this.topic);
  }

  /** The payload limit in force, if any. */
  limit(): number | undefined {
    if (this.announced === undefined) return this.learned;
    if (this.learned === undefined) return this.announced;
    return Math.min(this.announced, this.learned);
  }

  /** The limit learned from refusals, if any (the announced one is not included). */
  learnedLimit(): number | undefined {
    return this.learned;
  }

  /**
   * Forget the limit learned from refusals (an operator raised the broker's limit): later
   * batches go whole again, up to the announced limit. Batches already split keep their parts.
   */
  forgetLearned(): void {
    this.learned = undefined;
  }

  /** What limits a message, in words for the log: the announced or the learned limit. */
  describeLimit(): string {
    const limit = this.limit();
    if (limit === undefined) return 'no known limit';
    if (this.announced !== undefined && limit === this.announced) {
      return `the broker's Maximum Packet Size of ${this.announcedPacket} bytes, ${limit} bytes of payload`;
    }
    return `about ${limit} bytes of payload, learned from the broker's refusals`;
  }

  /** The largest telemetry payload the broker acknowledged so far (0 before any). */
  largestAcknowledged(): number {
    return this.largestAcked;
  }

  /** Batches sent in parts since start. */
  splits(): number {
    return this.splitCount;
  }

  /** The messages still to send for a batch (parts already acknowledged are left out). */
  plan(batch: SpooledBatch): Plan {
    const state = this.batches.get(batch.seq);
    const frozen = state !== undefined && state.acked.size > 0 && state.parts !== undefined;
    const limit = frozen ? undefined : this.limitFor(state);
    const whole = () =>
      assembleTelemetry(this.gateway, batch.seq, batch.createdAt, batch.body, batch.gapBefore);
    if (!frozen) {
      if (limit === undefined) {
        if (state) state.parts = undefined;
        return { kind: 'send', messages: [this.wholeMessage(batch.seq, whole())], split: false };
      }
      const payload = whole();
      if (payload.length <= limit) {
        if (state) state.parts = undefined;
        return { kind: 'send', messages: [this.wholeMessage(batch.seq, payload)], split: false };
      }
      const header =
        assembleTelemetry(
          this.gateway,
          batch.seq,
          batch.createdAt,
          PROBE_BODY,
          batch.gapBefore,
          LARGEST_PART,
        ).length - 1;
      let fitted = splitToFit(batch.body, stepAtOrBelow(limit) - header + 1);
      // An item between the step and the limit still passes: cut to the limit itself then.
      if (!fitted.fits) fitted = splitToFit(batch.body, limit - header + 1);
      if (!fitted.fits) {
        return {
          kind: 'set-aside',
          reason: `a single window or reading of the batch needs ${fitted.largest + header - 1} bytes; the broker takes at most ${limit} bytes of payload`,
        };
      }
      const s = state ?? this.newState(batch.seq);
      if (s.parts === undefined) this.splitCount++;
      s.parts = fitted.bodies;
    }
    const s = this.batches.get(batch.seq)!;
    const parts = s.parts!;
    const messages: Outgoing[] = [];
    parts.forEach((p, i) => {
      const part = i + 1;
      if (s.acked.has(part)) return;
      messages.push({
        seq: batch.seq,
        part,
        parts: parts.length,
        // Every part carries the batch's note of seqs dropped before it, if any.
        payload: assembleTelemetry(
          this.gateway,
          batch.seq,
          batch.createdAt,
          p.body,
          batch.gapBefore,
          {
            part,
            parts: parts.length,
          },
        ),
      });
    });
    return { kind: 'send', messages, split: true };
  }

  /** A message was acknowledged; true when that completes its batch. */
  acknowledged(message: Outgoing): boolean {
    this.largestAcked = Math.max(this.largestAcked, message.payload.length);
    if (message.parts === 0) {
      this.batches.delete(message.seq);
      return true;
    }
    const state = this.batches.get(message.seq);
    if (!state?.parts) return true;
    state.acked.add(message.part);
    state.refusals = 0;
    if (state.acked.size < state.parts.length) return false;
    this.batches.delete(message.seq);
    return true;
  }

  /**
   * The broker refused a message: `closed` — it closed the connection while the message was
   * the oldest in flight (how a 3.1.1 broker refuses a packet over its limit, among other
   * things); `too-large` — PUBACK or DISCONNECT said packet too large; `refused` — another
   * PUBACK reason about this batch. A size-related refusal teaches a limit for later batches.
   */
  refused(message: Outgoing, cause: 'closed' | 'too-large' | 'refused'): RefusalOutcome {
    const size = message.payload.length;
    const state = this.batches.get(message.seq) ?? this.newState(message.seq);
    // Once is not a pattern (a broker that dies with the message in flight closes on it too).
    state.refusals++;
    if (state.refusals < 2) return { kind: 'retry' };
    state.refusals = 0;
    if (cause === 'closed' && size <= Math.max(SIZE_FLOOR_BYTES, this.largestAcked)) {
      return { kind: 'not-size' };
    }
    const sizeRelated = cause !== 'refused';
    if (state.acked.size > 0) {
      return {
        kind: 'set-aside',
        reason: `part ${message.part} of ${message.parts} (${size} bytes) refused twice after other parts were delivered`,
      };
    }
    const items =
      message.parts === 0
        ? itemCount(bodyItems(this.bodyOf(message)))
        : (state.parts?.[message.part - 1]?.items ?? 1);
    if (items <= 1) {
      return {
        kind: 'set-aside',
        reason: `a single window or reading (${size} bytes) refused twice`,
      };
    }
    // One step below the refused size (a refused step is never tried again for this batch).
    const limit = Math.max(cause === 'closed' ? SIZE_FLOOR_BYTES : 1, stepAtOrBelow(size - 1));
    state.limit = limit;
    if (sizeRelated) this.learned = Math.min(this.learned ?? limit, limit);
    return { kind: 'split', limit };
  }

  /** The batch left the spool (set aside or dropped): forget its state. */
  forget(seq: number): void {
    this.batches.delete(seq);
  }

  private limitFor(state: BatchState | undefined): number | undefined {
    const general = this.limit();
    if (state?.limit === undefined) return general;
    return general === undefined ? state.limit : Math.min(general, state.limit);
  }

  private newState(seq: number): BatchState {
    const state: BatchState = { acked: new Set(), refusals: 0 };
    this.batches.set(seq, state);
    return state;
  }

  private wholeMessage(seq: number, payload: Buffer): Outgoing {
    return { seq, part: 0, parts: 0, payload };
  }

  /** The body of a whole-batch message: the payload after its header fields. */
  private bodyOf(message: Outgoing): Uint8Array {
    const text = message.payload.toString('utf8');
    const parsed = JSON.parse(text) as Record<string, unknown>;
    return Buffer.from(
      JSON.stringify({
        windows: parsed.windows,
        ...(parsed.readings !== undefined ? { readings: parsed.readings } : {}),
      }),
    );
  }
}
