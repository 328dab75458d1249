/**
 * What the telemetry publisher does when the broker refuses (docs/operations.md, "When the
 * broker refuses"): a refused publish (PUBACK reason >= 0x80, or the connection closed on
 * it) is never taken as delivered, and it must not stall the spool. A batch refused twice is
 * split (part-planner.ts) and one that cannot pass at all is set aside, so the batches after
 * it flow on; a refusal of the topic (ACL) keeps every batch and pauses with a slower backoff.
 *
 * With a cluster (mqtt.urls) a close is held against the batch in flight only once the same
 * node has closed on it before: a node losing its quorum closes connections whatever they
 * carry, and the next node takes the batch.
 */
import type { Logger } from '../ops/logger.js';
import { publishRefusal, RefusalPattern } from './broker-errors.js';
import type { BrokerSession } from './broker-session.js';
import { REFUSED_BACKOFF_FACTOR } from './broker-session.js';
import { brokerLabel, describeError } from './connection-options.js';
import { ECHO_MS } from './delivery-check.js';
import type { Outgoing, PartPlanner } from './part-planner.js';
import type { SpoolPort } from './spool/spool-port.js';

export interface RefusalPolicyOptions {
  session: BrokerSession;
  planner: PartPlanner;
  spool: SpoolPort;
  /** The telemetry topic. */
  topic: string;
  /** The number of brokers in mqtt.urls. */
  brokers: number;
  logger: Logger;
  /**
   * Pause telemetry, then replay from the oldest unacknowledged batch; the delay, or
   * undefined when a pause is running already.
   */
  hold(factor: number): number | undefined;
}

export const keyOf = (m: Outgoing): string => `${m.seq}/${m.part}`;

export function describeMessage(m: Outgoing): string {
  return m.parts === 0 ? `batch ${m.seq}` : `batch ${m.seq} part ${m.part}/${m.parts}`;
}

export class RefusalPolicy {
  /** Telemetry publishes the broker refused since start. */
  refusals = 0;
  /** Batches set aside (dead letters) since start. */
  setAsideCount = 0;
  /**
   * The broker refused the telemetry topic (ACL, topic name, quota) and nothing was
   * acknowledged since: a close now is that refusal again (some brokers drop the connection
   * after refusing), not a sign that one batch is too large.
   */
  topicRefused = false;
  private readonly pattern = new RefusalPattern();
  /**
   * With several brokers: the message that was oldest in flight when connections closed,
   * and the brokers (indexes in mqtt.urls) that closed on it.
   */
  private closeWitness: { key: string; brokers: Set<number> } | undefined;

  constructor(private readonly o: RefusalPolicyOptions) {}

  /** The broker has a message: whatever was refused before, the stream flows. */
  delivered(): void {
    this.topicRefused = false;
    this.pattern.acknowledged();
  }

  /** A publish failed: a refusal by the broker, or the connection going. */
  publishFailed(message: Outgoing, err: Error): void {
    const { logger: log, session, topic } = this.o;
    const error = describeError(err);
    session.noteError(error);
    const refusal = publishRefusal(err, topic);
    if (!refusal) {
      // Not an answer from the broker (e.g. the connection is going): replay after a pause.
      log.debug({ seq: message.seq, error }, 'publish failed');
      this.o.hold(1);
      return;
    }
    this.refusals++;
    session.noteError(`${error}: ${refusal.hint}`);
    const streamLevel =
      refusal.topicLevel || (!refusal.tooLarge && this.pattern.refused(message.seq));
    if (streamLevel) {
      // Not this batch's fault: keep every batch and retry slowly until the broker is fixed.
      this.topicRefused = true;
      const retryInMs = this.o.hold(REFUSED_BACKOFF_FACTOR);
      if (retryInMs !== undefined) {
        log.error(
          {
            topic,
            reasonCode: refusal.code,
            retryInMs,
            refusals: this.refusals,
            backlog: this.o.spool.stats().depth,
          },
          `MQTT BROKER REFUSES TELEMETRY: ${refusal.hint}${refusal.topicLevel ? '' : ' for every batch, not one'}. The batches stay in the spool`,
        );
      }
      return;
    }
    this.refused(message, refusal.tooLarge ? 'too-large' : 'refused', refusal.hint);
    this.o.hold(1);
  }

  /** Acknowledged but never delivered (kept in the spool): how a 3.1.1 ACL denial looks. */
  notDelivered(count: number): void {
    const { topic } = this.o;
    this.refusals += count;
    this.topicRefused = true;
    const retryInMs = this.o.hold(REFUSED_BACKOFF_FACTOR);
    this.o.session.noteError(`${count} acknowledged batches not delivered on ${topic}`);
    this.o.logger.error(
      {
        topic,
        notDelivered: count,
        refusals: this.refusals,
        retryInMs,
        backlog: this.o.spool.stats().depth,
      },
      `MQTT BROKER REFUSES TELEMETRY: it acknowledged ${count} publishes to ${topic} but delivered none within ${ECHO_MS / 1000} s (under MQTT 3.1.1 this is how an ACL denial looks): grant this client write access to ${topic}, or use MQTT 5. The batches stay in the spool`,
    );
  }

  /** The broker closed the connection while `message` was the oldest publish in flight. */
  closedOn(message: Outgoing): void {
    const { session } = this.o;
    // Already refused for the topic and nothing passed since: it is that refusal again.
    if (this.topicRefused || session.terms.closedOnPublish(brokerLabel(session.brokerUrl()))) {
      this.refusals++;
      return;
    }
    if (!this.sameBrokerClosedOn(message)) {
      this.o.logger.debug(
        { seq: message.seq, ...session.brokerFields() },
        `${describeMessage(message)} was in flight when this broker closed the connection (a cluster node may be losing its quorum): not held against the batch yet`,
      );
      return;
    }
    this.refused(
      message,
      'closed',
      'the broker closed the connection while it was the oldest publish in flight',
    );
  }

  /** Sets a batch aside as a dead letter: it is not published, the ones after it flow on. */
  setAside(seq: number, reason: string): void {
    const { planner, logger } = this.o;
    planner.forget(seq);
    const limit = planner.limit();
    if (!this.o.spool.setAside(seq, reason)) {
      // Acked or dropped meanwhile, or not committed yet: it is skipped on this connection only.
      logger.warn({ seq, reason }, `batch ${seq} could not be set aside: ${reason}`);
      return;
    }
    this.setAsideCount++;
    logger.error(
      { seq, reason, ...(limit !== undefined ? { payloadLimitBytes: limit } : {}) },
      `BATCH ${seq} SET ASIDE (kept in the spool's dead letters, not published): ${reason}. Raise the broker's packet limit (mosquitto: max_packet_size) above that size; the batches after it flow on`,
    );
  }

  /**
   * Whether a close on `message` (the oldest in flight) is held against it. With one broker,
   * always. With a cluster, only once the same node has closed on it before: a node that
   * closes the connection may be losing its quorum (nats-server closes an MQTT connection
   * whose JetStream request timed out while the cluster elects a new leader), and the next
   * node takes the same batch; a batch the broker cannot take is closed on by every node.
   */
  private sameBrokerClosedOn(message: Outgoing): boolean {
    if (this.o.brokers === 1) return true;
    const key = keyOf(message);
    if (this.closeWitness?.key !== key) this.closeWitness = { key, brokers: new Set() };
    const { brokers } = this.closeWitness;
    const index = this.o.session.brokerIndex;
    if (brokers.has(index)) return true;
    brokers.add(index);
    return false;
  }

  /** A refusal of one message: retried once, then its batch is split, then set aside. */
  private refused(message: Outgoing, cause: 'closed' | 'too-large' | 'refused', why: string): void {
    const log = this.o.logger;
    const what = describeMessage(message);
    const bytes = message.payload.length;
    const outcome = this.o.planner.refused(message, cause);
    // A single close may be an outage; a PUBACK refusal was counted when it came.
    if (cause === 'closed' && outcome.kind !== 'retry') this.refusals++;
    if (outcome.kind === 'not-size') {
      // Keep everything and retry slowly: this is not one batch's fault.
      this.topicRefused = true;
      log.error(
        { seq: message.seq, bytes, topic: this.o.topic },
        `MQTT BROKER REFUSES TELEMETRY: it closed the connection on ${what} of only ${bytes} bytes, so not for its size. Check the broker's log (an ACL that disconnects? a quota?) for ${this.o.topic}. The batches stay in the spool`,
      );
    } else if (outcome.kind === 'retry') {
      if (cause === 'closed') {
        log.debug({ seq: message.seq, bytes }, `${what} was in flight when the connection closed`);
      } else log.warn({ seq: message.seq, bytes, why }, `${what} refused; retrying it once`);
    } else if (outcome.kind === 'split') {
      log.warn(
        { seq: message.seq, bytes, partLimitBytes: outcome.limit, why },
        `${what} (${bytes} bytes) refused twice: sending it in parts of at most ${outcome.limit} bytes. If the broker limits packet size, lower batch.maxBytes below its limit or raise the limit (mosquitto: max_packet_size)`,
      );
    } else {
      this.setAside(message.seq, `${outcome.reason} (${why})`);
    }
  }
}
