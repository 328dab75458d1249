/**
 * Optional Prometheus endpoint (GET /metrics, text exposition via prom-client). Off by
 * default: no port is opened unless config.metrics.enabled, and then only on the configured
 * host (127.0.0.1 by default: scrape it through an SSH tunnel or a local node exporter proxy).
 *
 * The figures are the ones the health topic carries (Pipeline.health(), a HealthReport),
 * read once per scrape, so the endpoint adds no bookkeeping of its own.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { HealthReport } from '../publish/health.js';
import type { Logger } from './logger.js';
import { silentLogger } from './logger.js';

export interface MetricsServerOptions {
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  /** Pipeline.health(); called once per scrape. */
  collect: () => HealthReport;
  logger?: Logger;
  /** Node process metrics (CPU, memory, GC, handles) next to ours. Default true. */
  processMetrics?: boolean;
}

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

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

  /** Replace every figure with the report's (totals, not increments). */
  update(h: HealthReport): void {
    setTotal(this.readings, h.readings);
    this.dropped.reset();
    this.dropped.inc({ where: 'ring' }, Math.max(0, h.drops.ring));
    this.dropped.inc({ where: 'spool' }, Math.max(0, h.drops.spool));
    this.spoolDepth.set(h.spool.depth);
    this.spoolBytes.set(h.spool.bytes);
    this.spoolAge.set(h.oldestUnsentAgeMs / 1000);
    this.spoolDiskOk.set(h.spool.diskOk ? 1 : 0);

    // Reset labelled series so a sensor removed by a reload disappears.
    this.sensorReadings.reset();
    this.sensorFaults.reset();
    this.sensorUp.reset();
    for (const sensor of h.sensors) {
      const labels = { sensor: sensor.id };
      this.sensorReadings.inc(labels, Math.max(0, sensor.readings));
      this.sensorFaults.inc(labels, Math.max(0, sensor.faults));
      this.sensorUp.set(labels, sensor.state === 'ok' ? 1 : 0);
    }

    this.loopDelay.reset();
    for (const stat of ['p50', 'p99', 'max', 'mean'] as const) {
      this.loopDelay.set({ stat }, h.eventLoopDelayMs[stat] / 1000);
    }

    this.mqttConnected.set(h.mqtt.connected ? 1 : 0);
    setTotal(this.mqttReconnects, h.reconnects);
    this.mqttInflight.set(h.mqtt.inflight);
    setTotal(this.mqttPublished, h.mqtt.published);
    setTotal(this.workerRestarts, h.workerRestarts);
    this.uptime.set(h.uptimeSec);
  }
}

/** Counters hold totals the pipeline already keeps; prom-client only has inc(), hence reset. */
function setTotal(counter: Counter, value: number): void {
  counter.reset();
  counter.inc(Math.max(0, value));
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
