/**
 * The agent as a Sparkplug B edge node (Sparkplug 3.0, docs/consumers.md "Sparkplug B").
 *
 * What it promises:
 * - Its own MQTT connection (same broker, credentials and TLS as `mqtt`), because the NDEATH
 *   must be that session's Will, made by the same code as the telemetry one
 *   (broker-session.ts): MQTT 5 unless the broker only speaks 3.1.1, failover across
 *   mqtt.urls, the same backoff. Clean session, so a host never sees a stale session's state.
 * - Every session — every CONNECT sent — gets a new bdSeq (bd-seq.ts); its Will (NDEATH) and
 *   its NBIRTHs carry it. An attempt that never reached the broker (refused at TCP level,
 *   unreachable) takes none, so NDEATH and the next NBIRTH differ by the sessions between them.
 * - Nothing is published before an NBIRTH of the current session; NBIRTH is seq 0 and every
 *   NDATA after it takes the next seq, 0-255 wrapping. An NCMD `Node Control/Rebirth` = true,
 *   a window naming a metric the last NBIRTH did not announce (a sensor added by a reload),
 *   and the primary host coming back online each give a new NBIRTH.
 * - With `primaryHostId`, every connection waits for the host's STATE to say online before
 *   its NBIRTH; an offline STATE (not older than the last one) ends the session with its
 *   NDEATH and connects again to wait (Sparkplug 3.0). Windows keep being stored meanwhile.
 * - A session ended on purpose still shows its NDEATH: published by hand before DISCONNECT
 *   under MQTT 3.1.1, the Will kept by DISCONNECT reason 0x04 under MQTT 5.
 * - Store-and-forward: every window batch goes into a spool of its own (the telemetry Spool,
 *   `<state>/sparkplug/`) before it is published and leaves it once written to the broker
 *   connection. Batches stored before the current NBIRTH (an outage, a host offline, a
 *   previous run) are published after it, in order, with `is_historical` on every metric.
 * - NBIRTH and NDATA are QoS 0 as the spec requires: a window in flight when the connection
 *   drops can be lost; a host sees the seq gap and may ask for a rebirth.
 */
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import type { Config } from '../../config/schema.js';
import type { Logger } from '../../ops/logger.js';
import { BrokerSession, type SessionStats } from '../../publish/broker-session.js';
import { describeError } from '../../publish/connection-options.js';
import { byPeriod, decodeWindows, type Output, type OutputBatch } from '../../publish/output.js';
import { SpoolClient } from '../../publish/spool/spool-client.js';
import type { SpooledBatch } from '../../publish/spool/store.js';
import { UNITS, type Quantity } from '../../../drivers/types.js';
import { BirthWatch } from './birth-watch.js';
import { BdSeqFile } from './bd-seq.js';
import { sparkplugGoodbye } from './goodbye.js';
import { readHostState } from './host-state.js';
import {
  encodeBirth,
  encodeData,
  encodeDeath,
  isRebirthRequest,
  metricName,
  type SeriesMetric,
} from './payload.js';
import { nodeTopics, type NodeTopics } from './topics.js';

export interface SparkplugNodeOptions {
  config: Pick<Config, 'gateway' | 'mqtt' | 'spool' | 'sparkplug'>;
  stateDir: string;
  logger: Logger;
  /** The series known at start: sensor id → its quantities. */
  series: ReadonlyMap<string, readonly Quantity[]>;
}

/** The node's figures, as the health report carries them (`sparkplug`). */
export interface SparkplugStats extends SessionStats {
  /** The bdSeq of the current session (or of the last attempt). */
  bdSeq: number;
  /** An NBIRTH of this session was published: NDATA may flow. */
  born: boolean;
  /** Whether the primary host is online (always true without sparkplug.primaryHostId). */
  hostOnline: boolean;
  /** Batches stored and not yet written to the broker connection. */
  stored: number;
  /** NDATA messages written to the broker connection since start (QoS 0: not acknowledged). */
  published: number;
  /** NBIRTHs published since start. */
  births: number;
}

/** Subdirectory of the state directory holding the Sparkplug spool and bdSeq. */
export const SPARKPLUG_DIR = 'sparkplug';
const sparkplugDir = (stateDir: string) => join(stateDir, SPARKPLUG_DIR);
/** A clean stop waits this long for the backlog to be written. */
const STOP_DRAIN_MS = 2000;

export class SparkplugNode implements Output {
  readonly name = 'sparkplug';
  private readonly topics: NodeTopics;
  private readonly spool: SpoolClient;
  private readonly session: BrokerSession;
  private readonly bdSeqFile: BdSeqFile;
  private readonly series = new Map<string, string>();
  private readonly pendingAppends = new Set<Promise<unknown>>();
  private readonly maxInflight: number;
  /** The bdSeq of the current session, or of the attempt being made. */
  private bdSeq: number;
  /** The bdSeq the next CONNECT carries. */
  private nextBdSeq: number;
  /** Whether the primary host is online (always true without one). */
  private hostOnline: boolean;
  private lastStateAt = -Infinity;
  /** An NBIRTH of this session was published and data may flow. */
  private born = false;
  private readonly birthWatch: BirthWatch;
  private birthAt = 0;
  /** Seq of the next NDATA. */
  private seq = 0;
  /** The highest spool seq handed to the connection since the session started. */
  private cursor = 0;
  private inflight = 0;
  private pumping = false;
  private stopping = false;
  private published = 0;
  private births = 0;
  private readonly unsubscribe: () => void;

  private constructor(
    private readonly options: SparkplugNodeOptions,
    spool: SpoolClient,
  ) {
    const { config, logger } = options;
    const sp = config.sparkplug;
    if (sp.groupId === undefined) throw new Error('sparkplug.groupId is required');
    this.topics = nodeTopics(sp.groupId, sp.edgeNodeId ?? config.gateway.id, sp.primaryHostId);
    this.hostOnline = sp.primaryHostId === undefined;
    this.spool = spool;
    this.bdSeqFile = new BdSeqFile(sparkplugDir(options.stateDir), logger);
    this.nextBdSeq = this.bdSeqFile.read();
    this.bdSeq = this.nextBdSeq;
    this.session = new BrokerSession({
      gateway: config.gateway.id,
      mqtt: config.mqtt,
      logger,
      name: 'sparkplug',
    });
    this.birthWatch = new BirthWatch({
      topic: this.topics.nbirth,
      logger,
      settled: () => this.session.acknowledged(),
      refused: (error) => this.session.noteError(error),
    });
    this.maxInflight = config.mqtt.inflight;
    for (const [sensor, quantities] of options.series) {
      for (const q of quantities) this.series.set(metricName(sensor, q), UNITS[q]);
    }
    this.unsubscribe = this.spool.onCommitted(() => this.pump());
  }

  /** Opens the Sparkplug spool and connects. Throws like `connectionOptions` on unreadable files. */
  static async start(options: SparkplugNodeOptions): Promise<SparkplugNode> {
    const dir = sparkplugDir(options.stateDir);
    // The spool makes the directory (or runs in memory, retrying, when the disk fails); its
    // disk work runs in a thread of its own, like the telemetry spool's.
    const spool = await SpoolClient.open(dir, options.config.spool, options.logger);
    let node: SparkplugNode | undefined;
    try {
      node = new SparkplugNode(options, spool);
      node.start();
    } catch (err) {
      node?.unsubscribe();
      await spool.close();
      throw err;
    }
    return node;
  }

  /** Connects, and keeps reconnecting until stopped. */
  start(): void {
    this.session.start({
      will: () => {
        this.bdSeq = this.nextBdSeq;
        return {
          topic: this.topics.ndeath,
          payload: Buffer.from(encodeDeath(this.bdSeq, Date.now())),
          qos: 1,
          retain: false,
        };
      },
      // The CONNECT (with this bdSeq in its Will) reached the broker: the next one takes the next.
      connectSent: () => {
        this.nextBdSeq = (this.bdSeq + 1) % 256;
        this.bdSeqFile.write(this.nextBdSeq);
      },
      connected: (client) => this.onConnect(client),
      closed: () => {
        this.birthWatch.closed();
        this.born = false;
        this.inflight = 0;
        return { slower: false };
      },
      message: (topic, payload) => this.onMessage(topic, payload),
      logFields: () => ({ bdSeq: this.bdSeq, stored: this.spool.stats().depth }),
    });
  }

  take(batch: OutputBatch): void {
    this.submit(batch.body);
  }

  /** A telemetry batch body (docs/payload.md) from the aggregation worker: stored, then published. */
  submit(body: Uint8Array): void {
    if (this.stopping) return;
    const appended = this.spool.append(body, Date.now());
    this.pendingAppends.add(appended);
    void appended.finally(() => this.pendingAppends.delete(appended));
  }

  stats(): SparkplugStats {
    return {
      ...this.session.stats(),
      bdSeq: this.bdSeq,
      born: this.born,
      hostOnline: this.hostOnline,
      stored: this.spool.stats().depth,
      published: this.published,
      births: this.births,
    };
  }

  /** Where the node is: connection, birth, primary host, and windows stored but not yet written. */
  status(): SparkplugStats {
    return this.stats();
  }

  /** Stores what was submitted, writes the backlog within a bound, publishes NDEATH, disconnects. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    await Promise.all([...this.pendingAppends]);
    this.spool.commit();
    const deadline = performance.now() + STOP_DRAIN_MS;
    while (
      this.born &&
      this.session.connected &&
      performance.now() < deadline &&
      (this.inflight > 0 || this.spool.peek(this.cursor, 1).length > 0 || this.spool.reading)
    ) {
      this.pump();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    this.birthWatch.stop();
    await this.session.end((client, version) => this.goodbye(client, version));
    this.born = false;
    this.inflight = 0;
    this.unsubscribe();
    await this.spool.close();
  }

  /** Ends the session on purpose, NDEATH included (goodbye.ts). */
  private goodbye(client: MqttClient, version: 4 | 5): Promise<{ reasonCode: number } | undefined> {
    this.born = false;
    this.inflight = 0;
    return sparkplugGoodbye(client, version, {
      ndeathTopic: this.topics.ndeath,
      bdSeq: this.bdSeq,
      logger: this.options.logger,
    });
  }

  private onConnect(client: MqttClient): void {
    const { logger } = this.options;
    this.cursor = 0;
    // Sparkplug 3.0: on every new connection, wait for the primary host's (retained) STATE.
    if (this.topics.state) this.hostOnline = false;
    const subscriptions = [this.topics.ncmd, ...(this.topics.state ? [this.topics.state] : [])];
    // NCMD (and STATE) are subscribed before the NBIRTH, so a rebirth request is never missed.
    client.subscribe(subscriptions, { qos: 1 }, (err) => {
      if (err) {
        logger.warn({ err: describeError(err) }, 'sparkplug subscribe failed; reconnecting');
        client.end(true);
        return;
      }
      if (this.hostOnline) this.birth();
    });
  }

  private onMessage(topic: string, payload: Buffer): void {
    const { logger } = this.options;
    if (topic === this.topics.ncmd) {
      if (isRebirthRequest(payload)) {
        logger.info('sparkplug rebirth requested');
        if (this.hostOnline) this.birth();
      }
      return;
    }
    if (topic === this.topics.state) {
      const state = readHostState(payload, this.lastStateAt);
      if (state.kind === 'not-json') logger.warn({ topic }, 'sparkplug STATE is not JSON; ignored');
      if (state.kind !== 'state') return;
      this.lastStateAt = state.at;
      if (state.online && !this.hostOnline) {
        this.hostOnline = true;
        logger.info(
          { host: this.options.config.sparkplug.primaryHostId },
          'sparkplug primary host online',
        );
        this.birth();
      } else if (!state.online && this.hostOnline) {
        this.hostOnline = false;
        logger.warn(
          { host: this.options.config.sparkplug.primaryHostId },
          'sparkplug primary host offline: ending the session (NDEATH) and waiting for it; windows are stored meanwhile',
        );
        // Sparkplug 3.0: NDEATH, disconnect, connect again and wait for the host's STATE.
        void this.session.restart((client, version) => this.goodbye(client, version));
      }
    }
  }

  /**
   * A rebirth asked by the operator (the `announce` command), as an NCMD Node
   * Control/Rebirth would: true when the NBIRTH went out, false when none may be published
   * now (not connected, or waiting for the primary host).
   */
  rebirth(): boolean {
    const before = this.births;
    this.birth();
    return this.births > before;
  }

  /** NBIRTH, then the stored backlog (historical, being older than this NBIRTH) and live data. */
  private birth(): void {
    if (!this.publishBirth()) return;
    this.birthAt = Date.now();
    this.pump();
  }

  /** NBIRTH (seq 0) with every metric; false when no NBIRTH may be published now. */
  private publishBirth(): boolean {
    const client = this.session.connectedClient();
    if (!client || !this.hostOnline || this.stopping) return false;
    const now = Date.now();
    const series: SeriesMetric[] = [...this.series].map(([name, unit]) => ({ name, unit }));
    client.publish(this.topics.nbirth, Buffer.from(encodeBirth(this.bdSeq, series, now)), {
      qos: 0,
      retain: false,
    });
    this.seq = 1;
    this.born = true;
    this.births++;
    // Not acknowledged (QoS 0): the backoff starts over once the session outlives it.
    this.birthWatch.born();
    this.options.logger.info(
      { bdSeq: this.bdSeq, metrics: series.length },
      'sparkplug NBIRTH published',
    );
    return true;
  }

  /** Hands stored batches to the connection in order, at most `mqtt.inflight` unwritten. */
  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      const client = this.session.connectedClient();
      while (this.born && client && this.inflight < this.maxInflight) {
        const [batch] = this.spool.peek(this.cursor, 1);
        if (!batch) break;
        this.cursor = batch.seq;
        this.publishBatch(client, batch);
      }
    } finally {
      this.pumping = false;
    }
  }

  private publishBatch(client: MqttClient, batch: SpooledBatch): void {
    let periods;
    try {
      periods = byPeriod(decodeWindows(batch.body));
    } catch (err) {
      this.options.logger.error(
        { seq: batch.seq, err: describeError(err) },
        'sparkplug: a stored batch is not telemetry JSON; skipped',
      );
      this.spool.ack(batch.seq);
      return;
    }
    const historical = batch.createdAt < this.birthAt;
    const unknown = periods
      .flat()
      .filter((w) => !this.series.has(metricName(w.sensor, w.quantity)));
    if (unknown.length > 0) {
      for (const w of unknown) this.series.set(metricName(w.sensor, w.quantity), w.unit);
      // NDATA may only carry metrics the NBIRTH announced: announce the new ones first.
      this.publishBirth();
    }
    if (periods.length === 0) {
      this.spool.ack(batch.seq);
      return;
    }
    this.inflight++;
    let left = periods.length;
    let failed = false;
    const now = Date.now();
    for (const windows of periods) {
      const seq = this.seq;
      this.seq = (this.seq + 1) % 256;
      client.publish(
        this.topics.ndata,
        Buffer.from(encodeData(windows, seq, historical, now)),
        { qos: 0, retain: false },
        (err) => {
          if (err) failed = true;
          else this.published++;
          if (--left > 0) return;
          if (this.session.connectedClient() === client) this.inflight--;
          // Unwritten: it stays stored and goes out after the next NBIRTH.
          if (!failed) this.spool.ack(batch.seq);
          setImmediate(() => this.pump());
        },
      );
    }
  }
}
