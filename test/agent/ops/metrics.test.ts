import { createServer, request, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { startMetricsIfEnabled, startMetricsServer } from '../../../agent/ops/metrics.js';
import type { HealthReport } from '../../../agent/publish/health.js';
import { sampleHealth, sampleSensor } from '../publish/health-sample.js';
import { capturingLogger } from '../../helpers/logger.js';
import { useTeardown } from '../../helpers/teardown.js';

const teardown = useTeardown();

function get(port: number, path: string, method = 'GET') {
  return new Promise<{ status: number; type: string; body: string }>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

/** Value of one sample line `name{labels} value` in Prometheus text. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

/** A port that was free a moment ago. */
async function freePort(): Promise<number> {
  const s: Server = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('metrics endpoint', () => {
  it('serves the health figures as Prometheus text on 127.0.0.1, fresh at each scrape', async () => {
    let snapshot: HealthReport = sampleHealth();
    snapshot.mqtt.connected = false;
    const server = await startMetricsServer({
      host: '127.0.0.1',
      port: 0,
      collect: () => snapshot,
      processMetrics: false,
    });
    teardown.own(server);
    const res = await get(server.port, '/metrics');
    expect(res.status).toBe(200);
    expect(res.type).toContain('text/plain');
    const t = res.body;
    expect(t).toContain('# TYPE edge_agent_readings_total counter');
    expect(sample(t, 'edge_agent_readings_total')).toBe(1200);
    expect(sample(t, 'edge_agent_dropped_total{where="ring"}')).toBe(3);
    expect(sample(t, 'edge_agent_dropped_total{where="spool"}')).toBe(1);
    expect(sample(t, 'edge_agent_spool_depth_batches')).toBe(7);
    expect(sample(t, 'edge_agent_spool_bytes')).toBe(4096);
    expect(sample(t, 'edge_agent_spool_oldest_age_seconds')).toBe(2.5);
    expect(sample(t, 'edge_agent_sensor_faults_total{sensor="boiler-out"}')).toBe(9);
    expect(sample(t, 'edge_agent_sensor_up{sensor="boiler-in"}')).toBe(1);
    expect(sample(t, 'edge_agent_sensor_up{sensor="boiler-out"}')).toBe(0);
    expect(sample(t, 'edge_agent_event_loop_delay_seconds{stat="p99"}')).toBe(0.012);
    expect(sample(t, 'edge_agent_mqtt_connected')).toBe(0);
    expect(sample(t, 'edge_agent_mqtt_reconnects_total')).toBe(2);
    expect(sample(t, 'edge_agent_worker_restarts_total')).toBe(1);
    expect(sample(t, 'edge_agent_uptime_seconds')).toBe(120);

    // Next scrape: totals move, a sensor removed by a reload disappears.
    snapshot = sampleHealth({
      ring: { ...snapshot.ring, written: 1300 },
      sensors: [sampleSensor({ id: 'boiler-in', readings: 650 })],
    });
    const t2 = (await get(server.port, '/metrics')).body;
    expect(sample(t2, 'edge_agent_readings_total')).toBe(1300);
    expect(sample(t2, 'edge_agent_mqtt_connected')).toBe(1);
    expect(t2).not.toContain('boiler-out');
  });

  it('includes the process metrics by default', async () => {
    const server = await startMetricsServer({ host: '127.0.0.1', port: 0, collect: sampleHealth });
    teardown.own(server);
    const t = (await get(server.port, '/metrics')).body;
    expect(sample(t, 'edge_agent_readings_total')).toBe(1200);
    expect(t).toContain('process_resident_memory_bytes');
  });

  it('answers 404 elsewhere, 405 for other methods and 500 when collecting fails', async () => {
    const log = capturingLogger();
    let fail = false;
    const server = await startMetricsServer({
      host: '127.0.0.1',
      port: 0,
      processMetrics: false,
      logger: log.logger,
      collect: () => {
        if (fail) throw new Error('spool closed');
        return sampleHealth();
      },
    });
    teardown.own(server);
    expect((await get(server.port, '/')).status).toBe(404);
    expect((await get(server.port, '/metrics', 'POST')).status).toBe(405);
    fail = true;
    expect((await get(server.port, '/metrics')).status).toBe(500);
    expect(log.messages()).toContain('metrics scrape failed');
  });

  it('binds only the configured host', async () => {
    const server = await startMetricsServer({ host: '127.0.0.1', port: 0, collect: sampleHealth });
    teardown.own(server);
    // Same port on another loopback address of this host is not served.
    const otherLoopback = await new Promise<boolean>((resolve) => {
      const s = connect({ host: '127.0.0.2', port: server.port });
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    expect(otherLoopback).toBe(false);
  });

  it('opens no port when disabled', async () => {
    const port = await freePort();
    const server = await startMetricsIfEnabled(
      { enabled: false, host: '127.0.0.1', port },
      sampleHealth,
    );
    expect(server).toBeUndefined();
    expect(await refused(port)).toBe(true);

    const enabled = await startMetricsIfEnabled(
      { enabled: true, host: '127.0.0.1', port },
      sampleHealth,
    );
    expect(enabled?.port).toBe(port);
    if (enabled) teardown.own(enabled);
    expect(await refused(port)).toBe(false);
  });

  it('rejects when the port is taken, instead of running without the endpoint silently', async () => {
    const first = await startMetricsServer({ host: '127.0.0.1', port: 0, collect: sampleHealth });
    teardown.own(first);
    await expect(
      startMetricsServer({ host: '127.0.0.1', port: first.port, collect: sampleHealth }),
    ).rejects.toThrow(/EADDRINUSE/);
  });
});
