/**
 * The agent as a Sparkplug B edge node (Sparkplug 3.0, docs/consumers.md "Sparkplug B").
 *
 * What it promises:
 * - Its own MQTT connection (same broker, credentials and TLS as `mqtt`), because the NDEATH
 *   must be that session's Will. Clean session, so a host never sees a stale session's state.
 * - Every session gets a new bdSeq (bd-seq.ts); its Will (NDEATH) and its NBIRTHs carry it.
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
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Config } from '../../config/schema.js';
import type { Logger } from '../../ops/logger.js';
import { Backoff } from '../../publish/backoff.js';
import { brokerLabel, connectionOptions, describeError } from '../../publish/connection-options.js';
import { SpoolClient } from '../../publish/spool/spool-client.js';
import type { SpooledBatch } from '../../publish/spool/store.js';
import { UNITS, type Quantity } from '../../../drivers/types.js';
import { BdSeqFile } from './bd-seq.js';
import {
  encodeBirth,
  encodeData,
  encodeDeath,
  isRebirthRequest,
  metricName,
  windowsByPeriod,
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

/** Subdirectory of the state directory holding the Sparkplug spool and bdSeq. */
export const SPARKPLUG_DIR = 'sparkplug';
const sparkplugDir = (stateDir: string) => join(stateDir, SPARKPLUG_DIR);
/** MQTT 5 DISCONNECT reason: the broker publishes the Will all the same. */
const DISCONNECT_WITH_WILL = 0x04;
/** A clean stop waits this long for the backlog to be written and the NDEATH to go out. */
const STOP_DRAIN_MS = 2000;

export class SparkplugNode {
  private readonly topics: NodeTopics;
  private readonly spool: SpoolClient;
  private readonly bdSeqFile: BdSeqFile;
  private readonly backoff: Backoff;
  private readonly series = new Map<string, string>();
  private readonly pendingAppends = new Set<Promise<unknown>>();
  private readonly maxInflight: number;
  private readonly protocolVersion: 4 | 5;
  private client: MqttClient | undefined;
  private connected = false;
  /** Index in mqtt.urls of the broker in use or being tried: every close moves to the next. */
  private brokerIndex = 0;
  private bdSeq = 0;
  /** Whether the primary host is online (always true without one). */
  private hostOnline: boolean;
  private lastStateAt = -Infinity;
  /** An NBIRTH of this session was published and data may flow. */
  private born = false;
  private birthAt = 0;
  /** Seq of the next NDATA. */
  private seq = 0;
  /** The highest spool seq handed to the connection since the session started. */
  private cursor = 0;
  private inflight = 0;
  private pumping = false;
  private stopping = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
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
    this.backoff = new Backoff(config.mqtt.reconnectMinMs, config.mqtt.reconnectMaxMs);
    this.maxInflight = config.mqtt.inflight;
    this.protocolVersion = config.mqtt.protocolVersion ?? 4;
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
      node.connect();
    } catch (err) {
      node?.unsubscribe();
      await spool.close();
      throw err;
    }
    return node;
  }

  /** A telemetry batch body (docs/payload.md) from the aggregation worker: stored, then published. */
  submit(body: Uint8Array): void {
    if (this.stopping) return;
    const appended = this.spool.append(body, Date.now());
    this.pendingAppends.add(appended);
    void appended.finally(() => this.pendingAppends.delete(appended));
  }

  /** Where the node is: connection, birth, primary host, and windows stored but not yet written. */
  status(): {
    connected: boolean;
    /** The broker in use or being tried, without credentials. */
    broker: string;
    born: boolean;
    hostOnline: boolean;
    bdSeq: number;
    stored: number;
  } {
    return {
      connected: this.connected,
      broker: brokerLabel(this.brokerUrl()),
      born: this.born,
      hostOnline: this.hostOnline,
      bdSeq: this.bdSeq,
      stored: this.spool.stats().depth,
    };
  }

  /** Stores what was submitted, writes the backlog within a bound, publishes NDEATH, disconnects. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    clearTimeout(this.reconnectTimer);
    await Promise.all([...this.pendingAppends]);
    this.spool.commit();
    const client = this.client;
    if (client && this.connected) {
      const deadline = performance.now() + STOP_DRAIN_MS;
      while (
        this.born &&
        this.connected &&
        performance.now() < deadline &&
        (this.inflight > 0 || this.spool.peek(this.cursor, 1).length > 0 || this.spool.reading)
      ) {
        this.pump();
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
    if (client) await this.endSession(client);
    this.unsubscribe();
    await this.spool.close();
  }

  /**
   * Ends an MQTT session on purpose, so that hosts still see its NDEATH: under MQTT 3.1.1 it is
   * published by hand before DISCONNECT (which makes the broker drop the Will); under MQTT 5
   * DISCONNECT carries reason 0x04 (disconnect with Will message) and the broker publishes it.
   * A connection that is not up is just closed (the broker publishes the Will, if it had one).
   */
  private async endSession(client: MqttClient): Promise<void> {
    const { logger } = this.options;
    const wasConnected = this.connected;
    this.client = undefined;
    this.connected = false;
    this.born = false;
    this.inflight = 0;
    if (!wasConnected) {
      await client.endAsync(true).catch(() => undefined);
      return;
    }
    if (this.protocolVersion === 5) {
      await disconnect(client, { reasonCode: DISCONNECT_WITH_WILL });
      logger.info(
        { bdSeq: this.bdSeq },
        'sparkplug session ended; the broker publishes its NDEATH',
      );
      return;
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, STOP_DRAIN_MS);
      client.publish(
        this.topics.ndeath,
        Buffer.from(encodeDeath(this.bdSeq, Date.now())),
        { qos: 1, retain: false },
        (err) => {
          clearTimeout(timer);
          if (err) logger.warn({ err: describeError(err) }, 'sparkplug NDEATH not published');
          else logger.info({ bdSeq: this.bdSeq }, 'sparkplug NDEATH published; session ended');
          resolve();
        },
      );
    });
    await disconnect(client);
  }

  private connect(): void {
    const { config, logger } = this.options;
    // Session state is not Sparkplug's: clean session (3.1.1) or clean start without expiry (5).
    const { properties: _sessionExpiry, ...base } = connectionOptions(
      config.gateway.id,
      config.mqtt,
      this.protocolVersion,
    );
    this.bdSeq = this.bdSeqFile.take();
    const options: IClientOptions = {
      ...base,
      clientId: `${String(base.clientId)}-sparkplug`,
      clean: true,
      will: {
        topic: this.topics.ndeath,
        payload: Buffer.from(encodeDeath(this.bdSeq, Date.now())),
        qos: 1,
        retain: false,
      },
    };
    const client = mqtt.connect(this.brokerUrl(), options);
    this.client = client;
    client.on('connect', () => {
      if (this.client !== client) return;
      this.connected = true;
      this.cursor = 0;
      // Sparkplug 3.0: on every new connection, wait for the primary host's (retained) STATE.
      if (this.topics.state) this.hostOnline = false;
      logger.info(
        { bdSeq: this.bdSeq, topic: this.topics.nbirth, broker: brokerLabel(this.brokerUrl()) },
        'sparkplug connected',
      );
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
    });
    client.on('message', (topic, payload) => this.onMessage(topic, payload));
    client.on('error', (err) => {
      logger.warn({ err: describeError(err) }, 'sparkplug connection error');
    });
    client.on('close', () => {
      if (this.client !== client) return;
      if (this.connected) logger.warn('sparkplug connection lost; windows are stored meanwhile');
      this.client = undefined;
      this.connected = false;
      this.born = false;
      this.inflight = 0;
      client.end(true);
      // Like the telemetry publisher: with a cluster (mqtt.urls), the next attempt is the next node.
      this.brokerIndex = (this.brokerIndex + 1) % config.mqtt.urls.length;
      if (!this.stopping) this.scheduleReconnect();
    });
  }

  private brokerUrl(): string {
    const { urls } = this.options.config.mqtt;
    return urls[this.brokerIndex % urls.length] ?? this.options.config.mqtt.url;
  }

  private scheduleReconnect(): void {
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => {
      if (this.stopping) return;
      try {
        this.connect();
      } catch (err) {
        this.options.logger.error({ err: describeError(err) }, 'sparkplug reconnect failed');
      }
    }, this.backoff.next());
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
      let state: { online?: unknown; timestamp?: unknown };
      try {
        state = JSON.parse(payload.toString('utf8')) as typeof state;
      } catch {
        logger.warn({ topic }, 'sparkplug STATE is not JSON; ignored');
        return;
      }
      if (typeof state.online !== 'boolean') return;
      // Sparkplug 3.0: a STATE older than the last one seen is stale (an old Will, late).
      const at = typeof state.timestamp === 'number' ? state.timestamp : -Infinity;
      if (at < this.lastStateAt) return;
      this.lastStateAt = at;
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
        const client = this.client;
        if (client) {
          void this.endSession(client).then(() => {
            if (this.stopping) return;
            this.backoff.reset();
            this.scheduleReconnect();
          });
        }
      }
    }
  }

  /** NBIRTH, then the stored backlog (historical, being older than this NBIRTH) and live data. */
  private birth(): void {
    if (!this.publishBirth()) return;
    this.birthAt = Date.now();
    this.pump();
  }

  /** NBIRTH (seq 0) with every metric; false when no NBIRTH may be published now. */
  private publishBirth(): boolean {
    const client = this.client;
    if (!client || !this.connected || !this.hostOnline || this.stopping) return false;
    const now = Date.now();
    const series: SeriesMetric[] = [...this.series].map(([name, unit]) => ({ name, unit }));
    client.publish(this.topics.nbirth, Buffer.from(encodeBirth(this.bdSeq, series, now)), {
      qos: 0,
      retain: false,
    });
    this.seq = 1;
    this.born = true;
    this.backoff.reset();
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
      while (this.born && this.client && this.inflight < this.maxInflight) {
        const [batch] = this.spool.peek(this.cursor, 1);
        if (!batch) break;
        this.cursor = batch.seq;
        this.publishBatch(this.client, batch);
      }
    } finally {
      this.pumping = false;
    }
  }

  private publishBatch(client: MqttClient, batch: SpooledBatch): void {
    let periods;
    try {
      periods = windowsByPeriod(batch.body);
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
          if (--left > 0) return;
          if (this.client === client) this.inflight--;
          // Unwritten: it stays stored and goes out after the next NBIRTH.
          if (!failed) this.spool.ack(batch.seq);
          setImmediate(() => this.pump());
        },
      );
    }
  }
}

/** DISCONNECT (with `packet`'s reason code under MQTT 5), forced when it takes over STOP_DRAIN_MS. */
async function disconnect(client: MqttClient, packet?: { reasonCode: number }): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const graceful = client.endAsync(false, packet).then(
    () => true,
    () => false,
  );
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), STOP_DRAIN_MS);
  });
  const clean = await Promise.race([graceful, timedOut]);
  clearTimeout(timer);
  if (!clean) await client.endAsync(true).catch(() => undefined);
}
