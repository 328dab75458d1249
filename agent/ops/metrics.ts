/**
 * Optional Prometheus endpoint (GET /metrics, text exposition via prom-client). Off by
 * default: no port is opened unless config.metrics.enabled, and then only on the configured
 * host (127.0.0.1 by default: scrape it through an SSH tunnel or a local node exporter proxy).
 *
 * The figures are the ones the health topic carries (Pipeline.health()), read once per scrape,
 * so the endpoint adds no bookkeeping of its own. Missing fields are simply not exported.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { Logger } from './logger.js';
import { silentLogger } from './logger.js';

/** The health snapshot, as far as metrics use it (every field optional). */
export interface MetricsSnapshot {
  /** Readings written into the ring, ever. */
  readings?: number;
  drops?: { ring?: number; spool?: number };
  spool?: { depth?: number; bytes?: number; oldestAgeMs?: number; diskOk?: boolean };
  mqtt?: { connected?: boolean; reconnects?: number; inflight?: number; published?: number };
  eventLoopDelayMs?: { p50Ms?: number; p99Ms?: number; maxMs?: number; meanMs?: number };
  workerRestarts?: number;
  sensors?: Array<{ id: string; state?: string; readings?: number; faults?: number }>;
  uptimeSec?: number;
}

export interface MetricsServerOptions {
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  /** Pipeline.health() fits; called once per scrape. */
  collect: () => MetricsSnapshot | Record<string, unknown>;
  logger?: Logger;
  /** Node process metrics (CPU, memory, GC, handles) next to ours. Default true. */
  processMetrics?: boolean;
}

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

const num = (v: unknown): number | undefined =>
  typeof v === 'number' && Number.isFinite(v) ? v : undefined;
const obj = (v: unknown): Record<string, unknown> =>
  v !== null && typeof v === 'object' ? (v as Record<string, unknown>) : {};

/** The agent's metrics in one registry, refreshed from a snapshot. */
export class AgentMetrics {
  readonly registry = new Registry();
  private readonly r = [this.registry];
  private readonly readings = new Counter({
    name: 'edge_agent_readings_total',
    help: 'Readings written into the ring buffer',
    registers: this.r,
  });
  private readonly dropped = new Counter({
    name: 'edge_agent_dropped_total',
    help: 'Data dropped by a bound: ring (readings) or spool (batches)',
    labelNames: ['where'] as const,
    registers: this.r,
  });
  private readonly spoolDepth = new Gauge({
    name: 'edge_agent_spool_depth_batches',
    help: 'Batches in the spool awaiting a broker acknowledgement',
    registers: this.r,
  });
  private readonly spoolBytes = new Gauge({
    name: 'edge_agent_spool_bytes',
    help: 'Bytes in the spool',
    registers: this.r,
  });
  private readonly spoolAge = new Gauge({
    name: 'edge_agent_spool_oldest_age_seconds',
    help: 'Age of the oldest unacknowledged batch',
    registers: this.r,
  });
  private readonly spoolDiskOk = new Gauge({
    name: 'edge_agent_spool_disk_ok',
    help: '1 while the spool writes to disk, 0 while it holds batches in memory',
    registers: this.r,
  });
  private readonly sensorReadings = new Counter({
    name: 'edge_agent_sensor_readings_total',
    help: 'Readings with a usable value, per sensor',
    labelNames: ['sensor'] as const,
    registers: this.r,
  });
  private readonly sensorFaults = new Counter({
    name: 'edge_agent_sensor_faults_total',
    help: 'Failed sampling rounds (EIO, NACK, CRC, timeout, …), per sensor',
    labelNames: ['sensor'] as const,
    registers: this.r,
  });
  private readonly sensorUp = new Gauge({
    name: 'edge_agent_sensor_up',
    help: '1 when the sensor state is ok',
    labelNames: ['sensor'] as const,
    registers: this.r,
  });
  private readonly loopDelay = new Gauge({
    name: 'edge_agent_event_loop_delay_seconds',
    help: 'Main-thread event-loop delay',
    labelNames: ['stat'] as const,
    registers: this.r,
  });
  private readonly mqttConnected = new Gauge({
    name: 'edge_agent_mqtt_connected',
    help: '1 while connected to the broker',
    registers: this.r,
  });
  private readonly mqttReconnects = new Counter({
    name: 'edge_agent_mqtt_reconnects_total',
    help: 'Broker reconnects',
    registers: this.r,
  });
  private readonly mqttInflight = new Gauge({
    name: 'edge_agent_mqtt_inflight',
    help: 'Batches published and awaiting PUBACK',
    registers: this.r,
  });
  private readonly mqttPublished = new Counter({
    name: 'edge_agent_mqtt_published_total',
    help: 'Batches acknowledged by the broker',
    registers: this.r,
  });
  private readonly workerRestarts = new Counter({
    name: 'edge_agent_worker_restarts_total',
    help: 'Aggregation worker restarts',
    registers: this.r,
  });
  private readonly uptime = new Gauge({
    name: 'edge_agent_uptime_seconds',
    help: 'Seconds since the pipeline started',
    registers: this.r,
  });

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  /** Replace every figure with the snapshot's (totals, not increments). */
  update(snapshot: MetricsSnapshot | Record<string, unknown>): void {
    const s = obj(snapshot);
    setTotal(this.readings, num(s.readings));
    const drops = obj(s.drops);
    this.dropped.reset();
    for (const where of ['ring', 'spool'] as const) {
      const v = num(drops[where]);
      if (v !== undefined) this.dropped.inc({ where }, Math.max(0, v));
    }
    const spool = obj(s.spool);
    setGauge(this.spoolDepth, num(spool.depth));
    setGauge(this.spoolBytes, num(spool.bytes));
    const age = num(spool.oldestAgeMs);
    setGauge(this.spoolAge, age === undefined ? undefined : age / 1000);
    if (typeof spool.diskOk === 'boolean') this.spoolDiskOk.set(spool.diskOk ? 1 : 0);

    // Reset labelled series so a sensor removed by a reload disappears.
    this.sensorReadings.reset();
    this.sensorFaults.reset();
    this.sensorUp.reset();
    for (const raw of Array.isArray(s.sensors) ? (s.sensors as unknown[]) : []) {
      const sensor = obj(raw);
      if (typeof sensor.id !== 'string') continue;
      const labels = { sensor: sensor.id };
      const readings = num(sensor.readings);
      if (readings !== undefined) this.sensorReadings.inc(labels, Math.max(0, readings));
      const faults = num(sensor.faults);
      if (faults !== undefined) this.sensorFaults.inc(labels, Math.max(0, faults));
      if (typeof sensor.state === 'string')
        this.sensorUp.set(labels, sensor.state === 'ok' ? 1 : 0);
    }

    const loop = obj(s.eventLoopDelayMs);
    this.loopDelay.reset();
    for (const [stat, key] of [
      ['p50', 'p50Ms'],
      ['p99', 'p99Ms'],
      ['max', 'maxMs'],
      ['mean', 'meanMs'],
    ] as const) {
      const v = num(loop[key]);
      if (v !== undefined) this.loopDelay.set({ stat }, v / 1000);
    }

    const mqtt = obj(s.mqtt);
    if (typeof mqtt.connected === 'boolean') this.mqttConnected.set(mqtt.connected ? 1 : 0);
    setTotal(this.mqttReconnects, num(mqtt.reconnects));
    setGauge(this.mqttInflight, num(mqtt.inflight));
    setTotal(this.mqttPublished, num(mqtt.published));
    setTotal(this.workerRestarts, num(s.workerRestarts));
    setGauge(this.uptime, num(s.uptimeSec));
  }
}

/** Counters hold totals the pipeline already keeps; prom-client only has inc(), hence reset. */
function setTotal(counter: Counter, value: number | undefined): void {
  if (value === undefined) return;
  counter.reset();
  counter.inc(Math.max(0, value));
}
function setGauge(gauge: Gauge, value: number | undefined): void {
  if (value !== undefined) gauge.set(value);
}

/** The endpoint cannot listen: an operator's fix (another port or host), told in one line. */
export class MetricsListenError extends Error {
  override name = 'MetricsListenError';
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
  }
}

function listenError(
  err: NodeJS.ErrnoException,
  { host, port }: { host: string; port: number },
): MetricsListenError {
  const at = `${host}:${port}`;
  const why: Record<string, string> = {
    EADDRINUSE: `metrics.port ${port} on ${host} is already in use (EADDRINUSE); choose another metrics.port or stop the program that holds it`,
    EACCES: `metrics.port ${port} on ${host} needs privileges the agent does not have (EACCES); choose a port above 1023`,
    EADDRNOTAVAIL: `metrics.host ${host} is not an address of this machine (EADDRNOTAVAIL); use 127.0.0.1, or an address one of its interfaces has`,
    ENOTFOUND: `metrics.host ${host} does not resolve (ENOTFOUND); use an IP address such as 127.0.0.1`,
    EAI_AGAIN: `metrics.host ${host} could not be resolved (EAI_AGAIN); use an IP address such as 127.0.0.1`,
  };
  const code = err.code;
  return new MetricsListenError(
    (code && why[code]) ?? `metrics endpoint cannot listen on ${at}: ${err.message}`,
    code,
  );
}

/**
 * Serve GET /metrics on host:port. Resolves once listening; rejects with a MetricsListenError
 * naming the key to change if the bind fails.
 */
export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const logger = options.logger ?? silentLogger;
  const metrics = new AgentMetrics({ processMetrics: options.processMetrics });

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; try /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end();
      return;
    }
    try {
      metrics.update(options.collect());
      const body = await metrics.registry.metrics();
      res.writeHead(200, { 'content-type': metrics.registry.contentType });
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch (err) {
      logger.warn({ err }, 'metrics scrape failed');
      res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n');
    }
  };

  const server = createServer((req, res) => void handle(req, res));
  await new Promise<void>((resolve, reject) => {
    const fail = (err: NodeJS.ErrnoException) => reject(listenError(err, options));
    server.once('error', fail);
    server.listen({ host: options.host, port: options.port }, () => {
      server.off('error', fail);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/**
 * What the pipeline calls with config.metrics: a server only when enabled, else undefined and
 * no listening socket at all.
 */
export async function startMetricsIfEnabled(
  config: { enabled: boolean; host: string; port: number },
  collect: MetricsServerOptions['collect'],
  logger: Logger = silentLogger,
): Promise<MetricsServer | undefined> {
  if (!config.enabled) return undefined;
  const server = await startMetricsServer({
    host: config.host,
    port: config.port,
    collect,
    logger,
  });
  logger.info({ host: config.host, port: server.port }, 'metrics endpoint listening on /metrics');
  return server;
}
