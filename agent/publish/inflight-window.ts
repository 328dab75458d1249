/**
 * The telemetry in flight on one connection: batches are read from the spool oldest first,
 * planned into messages (whole, or in parts: part-planner.ts), and published at QoS 1 with at
 * most `mqtt.inflight` unanswered (or the broker's Receive Maximum). A batch leaves the spool
 * only when the broker has acknowledged every message of it — and, with mqtt.deliveryCheck
 * under MQTT 3.1.1, when the check saw it delivered (delivery-check.ts).
 *
 * When the connection closes, everything in flight counts as unsent: the next connection
 * replays the spool from its oldest unacknowledged seq, in order (a duplicate at worst, never
 * a gap). After a refusal (refusal-policy.ts) publishing pauses, then replays the same way.
 */
import type { MqttClient } from 'mqtt';
import type { Logger } from '../ops/logger.js';
import { Backoff } from './backoff.js';
import type { BrokerSession } from './broker-session.js';
import type { MqttConfig } from './connection-options.js';
import { DeliveryCheck } from './delivery-check.js';
import type { Outgoing, PartPlanner } from './part-planner.js';
import { keyOf, RefusalPolicy } from './refusal-policy.js';
import type { SpoolPort } from './spool/spool-port.js';

export interface InflightWindowOptions {
  mqtt: MqttConfig;
  spool: SpoolPort;
  session: BrokerSession;
  planner: PartPlanner;
  /** The telemetry topic. */
  topic: string;
  logger: Logger;
  /** A batch was delivered or the connection closed (wakes a draining stop). */
  progress(): void;
}

/** Room for the publisher's header fields (the worker's HEADER_RESERVE) in batch.maxBytes advice. */
const PART_HEADER_ROOM = 300;
/** The schema's minimum of batch.maxBytes. */
const MIN_BATCH_MAX_BYTES = 1024;

const UNVERIFIABLE =
  'mqtt.deliveryCheck cannot watch the telemetry topic: publishing as plain MQTT 3.1.1, where a publish the broker denies (ACL) is acknowledged as if delivered';

export class InflightWindow {
  readonly refusals: RefusalPolicy;
  /** Batches acknowledged by the broker since start. */
  published = 0;
  private size: number;
  private readonly inflight = new Map<string, Outgoing>();
  /** Messages planned for the current connection and not handed to mqtt.js yet, in order. */
  private queue: Outgoing[] = [];
  /** Highest seq planned on the current connection. */
  private cursor = 0;
  /** Pauses publishing after a refusal while the connection stays up. */
  private readonly holdBackoff: Backoff;
  private holdTimer: NodeJS.Timeout | undefined;
  /** After a refusal: once in-flight publishes are answered, replay from the oldest batch. */
  private rewindPending = false;
  /** The 3.1.1 delivery check of the current connection (mqtt.deliveryCheck). */
  private check: DeliveryCheck<Outgoing> | undefined;
  private readonly loggedOnce = new Set<string>();

  constructor(private readonly o: InflightWindowOptions) {
    this.size = o.mqtt.inflight;
    this.holdBackoff = new Backoff(o.mqtt.reconnectMinMs, o.mqtt.reconnectMaxMs);
    this.refusals = new RefusalPolicy({
      session: o.session,
      planner: o.planner,
      spool: o.spool,
      topic: o.topic,
      brokers: o.mqtt.urls.length,
      logger: o.logger,
      hold: (factor) => this.hold(factor),
    });
  }

  /** Messages handed to mqtt.js and not answered yet. */
  count(): number {
    return this.inflight.size;
  }

  /** A connection is up: start again from the oldest unacknowledged batch. */
  opened(client: MqttClient, receiveMaximum: number | undefined): void {
    this.cursor = 0;
    this.inflight.clear();
    this.queue = [];
    this.rewindPending = false;
    this.size = Math.min(this.o.mqtt.inflight, receiveMaximum ?? Infinity);
    this.startCheck(client);
  }

  /**
   * The connection closed: whatever was in flight is unsent until a PUBACK says otherwise.
   * Returns the message the broker was reading when it closed, if any.
   */
  closed(): Outgoing | undefined {
    // Map order is send order.
    const oldest = this.inflight.values().next().value;
    this.clear();
    this.rewindPending = false;
    clearTimeout(this.holdTimer);
    this.holdTimer = undefined;
    this.endCheck();
    return oldest;
  }

  /** Older batches are back in the spool (its disk readable again): publish them now. */
  rewound(fromSeq: number): void {
    this.cursor = Math.min(this.cursor, fromSeq - 1);
    this.pump();
  }

  /** No more publishing (stop): pending pauses and the delivery check end. */
  halt(): void {
    clearTimeout(this.holdTimer);
    this.endCheck();
  }

  clear(): void {
    this.inflight.clear();
    this.queue = [];
    this.cursor = 0;
  }

  /** Fill the window from the spool, oldest first. */
  pump(): void {
    const { session } = this.o;
    const client = session.connectedClient();
    if (!client || this.holdTimer) return;
    if (this.check?.state() === 'starting') return;
    if (this.rewindPending) {
      // Replay only once every publish of the refused round is answered: no overlap.
      if (this.inflight.size > 0 || this.waitingForEcho() > 0) return;
      this.rewindPending = false;
      this.cursor = 0;
      this.queue = [];
    }
    const gen = session.generation;
    while (this.inflight.size + this.waitingForEcho() < this.size) {
      if (this.queue.length === 0 && !this.planMore()) break;
      const message = this.queue.shift();
      if (!message) continue;
      this.inflight.set(keyOf(message), message);
      client.publish(this.o.topic, message.payload, { qos: session.terms.qos }, (err) => {
        if (gen === session.generation) this.onPublished(message, err);
      });
    }
  }

  /** Plans the next batches into the queue; false when the spool has nothing more. */
  private planMore(): boolean {
    const { planner } = this.o;
    const room = Math.max(1, this.size - this.inflight.size - this.waitingForEcho());
    const batches = this.o.spool.peek(this.cursor, room);
    if (batches.length === 0) return false;
    for (const batch of batches) {
      this.cursor = batch.seq;
      if (this.outstanding(batch.seq)) continue; // after a spool rewind: already on its way
      const plan = planner.plan(batch);
      if (plan.kind === 'set-aside') {
        this.refusals.setAside(batch.seq, plan.reason);
        continue;
      }
      const limit = planner.limit();
      if (plan.split && limit !== undefined) {
        const maxBytes = limit - PART_HEADER_ROOM;
        const advice =
          maxBytes >= MIN_BATCH_MAX_BYTES
            ? `set batch.maxBytes to at most ${maxBytes} to avoid splitting, or raise the broker's packet limit`
            : `raise the broker's packet limit (batch.maxBytes cannot go below ${MIN_BATCH_MAX_BYTES})`;
        this.logOnce(
          'split',
          'warn',
          { seq: batch.seq, bytes: batch.body.length, payloadLimitBytes: limit },
          `batches exceed what the broker takes in one message (${planner.describeLimit()}): sending them in parts; ${advice}`,
        );
      }
      this.queue.push(...plan.messages);
    }
    return true;
  }

  /** A message of this batch is queued, in flight, or waiting for the delivery check. */
  private outstanding(seq: number): boolean {
    const ofSeq = (m: Outgoing) => m.seq === seq;
    return (
      this.queue.some(ofSeq) ||
      [...this.inflight.values()].some(ofSeq) ||
      (this.check?.isWaiting(ofSeq) ?? false)
    );
  }

  private onPublished(message: Outgoing, err: Error | undefined): void {
    this.inflight.delete(keyOf(message));
    if (err) {
      this.refusals.publishFailed(message, err);
      this.pump();
      return;
    }
    this.o.session.terms.acknowledged();
    // 3.1.1 acknowledges what its ACL denies: with the check on, wait for the echo.
    if (this.check?.hold(message)) {
      this.pump();
      return;
    }
    this.delivered(message);
    this.pump();
    this.o.progress();
  }

  /** The broker has the message (PUBACK, confirmed by the delivery check when it runs). */
  private delivered(message: Outgoing): void {
    this.refusals.delivered();
    this.o.session.acknowledged();
    this.holdBackoff.reset();
    if (this.o.planner.acknowledged(message)) {
      this.o.spool.ack(message.seq);
      this.published++;
    }
  }

  /** Pause telemetry after a PUBACK refusal, then replay from the oldest unacknowledged batch. */
  private hold(factor: number): number | undefined {
    this.rewindPending = true;
    this.queue = [];
    if (this.holdTimer) return undefined;
    const delay = this.holdBackoff.next(factor);
    this.holdTimer = setTimeout(() => {
      this.holdTimer = undefined;
      this.pump();
    }, delay);
    return delay;
  }

  private startCheck(client: MqttClient): void {
    this.endCheck();
    const { session, mqtt } = this.o;
    const options = session.currentOptions();
    if (!mqtt.deliveryCheck || session.terms.protocolVersion !== 4 || !options) return;
    const gen = session.generation;
    const current = () => gen === session.generation && session.connectedClient() === client;
    this.check = new DeliveryCheck(session.brokerUrl(), options, this.o.topic, {
      ready: () => {
        if (current()) this.pump();
      },
      confirmed: (delivered) => {
        if (current()) this.release(delivered);
      },
      unverifiable: (why, released) => {
        if (!current()) return;
        this.logOnce('unverifiable', 'warn', { why }, UNVERIFIABLE);
        this.release(released);
      },
      notDelivered: (kept) => {
        if (!current()) return;
        this.refusals.notDelivered(kept.length);
        this.pump();
      },
    });
    this.check.start();
  }

  private endCheck(): void {
    this.check?.stop();
    this.check = undefined;
  }

  private waitingForEcho(): number {
    return this.check?.waitingCount() ?? 0;
  }

  /** The delivery check is settled: what the broker acknowledged leaves the spool. */
  private release(messages: Outgoing[]): void {
    for (const m of messages) this.delivered(m);
    this.pump();
    this.o.progress();
  }

  private logOnce(key: string, level: 'warn' | 'info', fields: object, msg: string): void {
    if (this.loggedOnce.has(key)) return;
    this.loggedOnce.add(key);
    this.o.logger[level](fields, msg);
  }
}
