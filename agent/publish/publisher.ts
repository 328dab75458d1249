/**
 * Telemetry publisher: spool first, then publish at QoS 1 with a bounded in-flight window;
 * a batch leaves the spool only on PUBACK.
 *
 * Why we drive the connection ourselves (reconnectPeriod 0, one mqtt.js client per
 * connection attempt): mqtt.js's offline queue is unbounded and a publish rejected while it
 * reconnects is lost. Here nothing is handed to mqtt.js unless we are connected, and when a
 * connection closes every in-flight batch counts as unsent: the next connection replays the
 * spool from its oldest unacknowledged seq, in order (a duplicate at worst, never a gap).
 */
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Logger } from '../ops/logger.js';
import { Backoff } from './backoff.js';
import {
  connectionOptions,
  describeError,
  isConnackRefusal,
  type MqttConfig,
} from './connection-options.js';
import {
  assembleTelemetry,
  healthPayload,
  offlineStatus,
  onlineStatus,
  type StatusInfo,
} from './payload.js';
import type { Spool, SpoolStats } from './spool.js';
import { gatewayTopics, type GatewayTopics } from './topics.js';

export interface PublisherOptions {
  gateway: string;
  mqtt: MqttConfig;
  spool: Spool;
  logger: Logger;
  status: { version: string; startedAt: number; sensors: string[] };
}

export interface PublisherStats {
  connected: boolean;
  /** Successful connects after the first one. */
  reconnects: number;
  /** Failed connection attempts (network, TLS, CONNACK refusal). */
  connectFailures: number;
  inflight: number;
  /** Batches acknowledged by the broker since start. */
  published: number;
  spool: SpoolStats;
  lastError?: string;
}

/** CONNACK refusals (bad password, not authorized) will not heal quickly: retry slower. */
const REFUSED_BACKOFF_FACTOR = 4;
/** Bound on waiting for the offline status' PUBACK and the DISCONNECT at stop. */
const GOODBYE_MS = 2000;

export class TelemetryPublisher {
  private readonly topics: GatewayTopics;
  private readonly info: StatusInfo;
  private readonly backoff: Backoff;
  private readonly window: number;
  private client: MqttClient | undefined;
  private clientOptions: IClientOptions | undefined;
  /** Bumped per connection attempt; callbacks of older clients are ignored. */
  private generation = 0;
  private connected = false;
  private readonly inflight = new Set<number>();
  /** Highest seq handed to the current connection. */
  private cursor = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private refusedLast = false;
  private stopped = false;
  private connects = 0;
  private connectFailures = 0;
  private published = 0;
  private lastError: string | undefined;
  private readonly progressWaiters = new Set<() => void>();

  constructor(private readonly options: PublisherOptions) {
    this.topics = gatewayTopics(options.mqtt.topicPrefix, options.gateway);
    this.info = { gateway: options.gateway, ...options.status };
    this.backoff = new Backoff(options.mqtt.reconnectMinMs, options.mqtt.reconnectMaxMs);
    this.window = options.mqtt.inflight;
    // Batches become publishable when their transaction committed, never before.
    options.spool.onCommitted(() => this.pump());
    // Older batches back in the spool (its disk readable again): publish them now.
    options.spool.onRewind((fromSeq) => {
      this.cursor = Math.min(this.cursor, fromSeq - 1);
      this.pump();
    });
  }

  /** Connect (and keep reconnecting). Throws MqttSetupError for unreadable credential/TLS files. */
  start(): void {
    this.clientOptions = connectionOptions(this.options.gateway, this.options.mqtt);
    this.connect();
  }

  /**
   * Spool a batch body and publish it once it is durable. Resolves with its seq when it is
   * stored: batches submitted within a few ms share one transaction (the spool's group commit).
   */
  submit(body: Uint8Array): Promise<number> {
    return this.options.spool.append(body, Date.now());
  }

  /** Health report (QoS 0 is not enough to be seen after a blip: QoS 1, not retained). */
  publishHealth(report: object): boolean {
    const client = this.client;
    if (!this.connected || !client) return false;
    client.publish(
      this.topics.health,
      healthPayload(this.options.gateway, report, Date.now()),
      { qos: 1 },
      (err) => {
        if (err) this.options.logger.debug({ err: describeError(err) }, 'health publish failed');
      },
    );
    return true;
  }

  stats(): PublisherStats {
    const s: PublisherStats = {
      connected: this.connected,
      reconnects: Math.max(0, this.connects - 1),
      connectFailures: this.connectFailures,
      inflight: this.inflight.size,
      published: this.published,
      spool: this.options.spool.stats(),
    };
    if (this.lastError !== undefined) s.lastError = this.lastError;
    return s;
  }

  /**
   * Publish what we can within drainMs, then a retained offline status (a clean DISCONNECT
   * does not fire the Last Will), then disconnect. What is left stays in the spool.
   */
  async stop(options: { drainMs: number }): Promise<void> {
    if (this.stopped) return;
    const deadline = Date.now() + options.drainMs;
    // Keep reconnecting during the drain: the broker may be back in time.
    while (Date.now() < deadline && !this.drained()) {
      await this.waitForProgress(deadline - Date.now());
    }
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    const client = this.client;
    const log = this.options.logger;
    // Batches held in memory (failing disk) do not stay: the spool counts them as dropped at close.
    const { depth, memoryDepth, unnumbered } = this.options.spool.stats();
    const left = depth - memoryDepth - unnumbered;
    if (client && this.connected) {
      const sent = await this.publishWithin(
        client,
        this.topics.status,
        offlineStatus(this.info, 'shutdown', Date.now()),
        GOODBYE_MS,
      );
      if (!sent) log.warn('offline status not acknowledged before disconnect');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          client.end(true);
          resolve();
        }, GOODBYE_MS);
        client.end(false, {}, () => {
          clearTimeout(timer);
          resolve();
        });
      });
    } else {
      client?.end(true);
    }
    this.generation++;
    this.client = undefined;
    this.connected = false;
    this.inflight.clear();
    this.options.spool.retainRecent(false);
    log.info(
      { published: this.published, leftInSpool: left },
      left > 0 ? 'publisher stopped; unsent batches stay in the spool' : 'publisher stopped',
    );
  }

  private drained(): boolean {
    return this.options.spool.stats().depth === 0 && this.inflight.size === 0;
  }

  private waitForProgress(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.progressWaiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, Math.min(ms, 250)));
      this.progressWaiters.add(done);
    });
  }

  private notifyProgress(): void {
    for (const w of [...this.progressWaiters]) w();
  }

  private publishWithin(
    client: MqttClient,
    topic: string,
    payload: Buffer,
    ms: number,
  ): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), ms);
      client.publish(topic, payload, { qos: 1, retain: true }, (err) => {
        clearTimeout(timer);
        resolve(!err);
      });
    });
  }

  private connect(): void {
    if (this.stopped || !this.clientOptions) return;
    const gen = ++this.generation;
    const client = mqtt.connect(this.options.mqtt.url, {
      ...this.clientOptions,
      will: {
        topic: this.topics.status,
        payload: offlineStatus(this.info, 'connection-lost', Date.now()),
        qos: 1,
        retain: true,
      },
    });
    this.client = client;
    client.on('connect', () => {
      if (gen === this.generation) this.onConnect(client);
    });
    // Always listen: an 'error' without a listener would crash the process.
    client.on('error', (err) => {
      if (gen === this.generation) this.onError(err);
    });
    client.on('close', () => {
      if (gen === this.generation) this.onClose(client);
    });
  }

  private onConnect(client: MqttClient): void {
    this.connected = true;
    this.refusedLast = false;
    this.backoff.reset();
    this.connects++;
    this.cursor = 0;
    this.inflight.clear();
    // While connected, new batches are handed out from memory instead of read back.
    this.options.spool.retainRecent(true);
    const spool = this.options.spool.stats();
    this.options.logger.info(
      { url: this.options.mqtt.url, reconnects: this.connects - 1, backlog: spool.depth },
      'connected to the MQTT broker',
    );
    client.publish(
      this.topics.status,
      onlineStatus(this.info, Date.now()),
      { qos: 1, retain: true },
      (err) => {
        if (err) this.options.logger.warn({ err: describeError(err) }, 'online status not sent');
      },
    );
    this.pump();
  }

  private onError(err: Error): void {
    this.lastError = describeError(err);
    if (isConnackRefusal(err)) {
      this.refusedLast = true;
      this.options.logger.error(
        {
          url: this.options.mqtt.url,
          error: this.lastError,
          clientId: this.clientOptions?.clientId,
        },
        'MQTT BROKER REFUSED THE CONNECTION (check mqtt.username and the password); retrying with a slower backoff',
      );
    } else {
      this.options.logger.warn(
        { url: this.options.mqtt.url, error: this.lastError },
        'MQTT connection error',
      );
    }
  }

  private onClose(client: MqttClient): void {
    const wasConnected = this.connected;
    this.connected = false;
    // Whatever was in flight is unsent until a PUBACK says otherwise: replay from the spool.
    this.inflight.clear();
    this.cursor = 0;
    // During the outage batches wait on disk only: memory stays flat.
    this.options.spool.retainRecent(false);
    this.generation++;
    client.removeAllListeners('close');
    client.end(true);
    this.client = undefined;
    if (!wasConnected) this.connectFailures++;
    if (this.stopped) return;
    const delay = this.backoff.next(this.refusedLast ? REFUSED_BACKOFF_FACTOR : 1);
    this.options.logger.warn(
      {
        url: this.options.mqtt.url,
        retryInMs: delay,
        backlog: this.options.spool.stats().depth,
        error: this.lastError,
      },
      wasConnected ? 'MQTT connection lost; reconnecting' : 'MQTT connect failed; retrying',
    );
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
    this.notifyProgress();
  }

  /** Fill the in-flight window from the spool, oldest first. */
  private pump(): void {
    const client = this.client;
    if (!this.connected || !client) return;
    const room = this.window - this.inflight.size;
    if (room <= 0) return;
    const gen = this.generation;
    const qos = this.options.mqtt.qos;
    for (const batch of this.options.spool.peek(this.cursor, room)) {
      this.cursor = batch.seq;
      if (this.inflight.has(batch.seq)) continue; // after a rewind: already on its way
      this.inflight.add(batch.seq);
      const payload = assembleTelemetry(
        this.options.gateway,
        batch.seq,
        batch.createdAt,
        batch.body,
        batch.gapBefore,
      );
      client.publish(this.topics.telemetry, payload, { qos }, (err) => {
        if (gen === this.generation) this.onPublished(client, batch.seq, err);
      });
    }
  }

  private onPublished(client: MqttClient, seq: number, err: Error | undefined): void {
    this.inflight.delete(seq);
    if (err) {
      // Rejected (e.g. MQTT 5 PUBACK reason code): unsent. Start over on a new connection.
      this.lastError = describeError(err);
      this.options.logger.warn({ seq, error: this.lastError }, 'publish rejected; reconnecting');
      client.end(true);
      return;
    }
    this.options.spool.ack(seq);
    this.published++;
    this.pump();
    this.notifyProgress();
  }
}
