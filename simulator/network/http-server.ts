/**
 * An HTTP server on 127.0.0.1 serving many simulated JSON sensors, each answering after
 * `delayMs` after its request arrived (delay-line.ts; overlapping, never serialised),
 * keep-alive on.
 *
 *   GET /sensors/<i>  →  200 {"sensor":"sim-<i>","t":<ms>,"data":{"temperature":21.37,"humidity":48.2}}
 *
 * for 0 ≤ i < sensors; anything else is 404. The http-json path is "data.temperature"
 * (or "data.humidity").
 */
import http from 'node:http';
import type net from 'node:net';
import { DelayLine } from './delay-line.js';
import { listenOn, ServerBookkeeping, type SensorServerStats } from './server-stats.js';
import { SensorField } from './sensor-field.js';

/**
 * timeout: never answer. http-500: status 500. malformed: a body that is not JSON.
 * missing-path: JSON without data.temperature. non-numeric: "temperature": "n/a".
 * drop: close the connection without a response. stuck: the value freezes.
 */
export type HttpFault =
  'timeout' | 'http-500' | 'malformed' | 'missing-path' | 'non-numeric' | 'drop' | 'stuck';

export interface HttpSensorServerOptions {
  delayMs: number;
  host?: '127.0.0.1';
  /** 0 (default) for an ephemeral port; a fixed one to restart a server on the same port. */
  port?: number;
  /** Sensor indexes 0..sensors-1 exist. Default 10,000. */
  sensors?: number;
  /**
   * Serve these JSON documents instead of /sensors/<i>: the body for a request path at
   * wall-clock time t, undefined for 404.
   */
  documents?: (path: string, t: number) => unknown;
}

export type HttpSensorServerStats = SensorServerStats;

export interface HttpSensorServer {
  readonly port: number;
  /** URL of sensor index i. */
  url(sensorIndex: number): string;
  /** Inject a fault on one sensor, or clear it with null. */
  inject(sensorIndex: number, fault: HttpFault | null): void;
  /** Requests sensor i has received. */
  requestsFor(sensorIndex: number): number;
  stats(): HttpSensorServerStats;
  close(): Promise<void>;
}

const round = (v: number, digits: number) => Number(v.toFixed(digits));

export async function startHttpSensorServer(
  options: HttpSensorServerOptions,
): Promise<HttpSensorServer> {
  const host = options.host ?? '127.0.0.1';
  const sensors = options.sensors ?? 10_000;
  const field = new SensorField();
  const faults = new Map<number, HttpFault>();
  const requestsBy = new Map<number, number>();
  const book = new ServerBookkeeping();

  const respond = (res: http.ServerResponse, status: number, body: string) => {
    book.responded();
    res.writeHead(status, { 'content-type': 'application/json' }).end(body);
  };

  const line = new DelayLine(options.delayMs);
  const server = http.createServer((req, res) => {
    book.requested();
    if (options.documents) {
      const doc = options.documents(req.url ?? '/', Date.now());
      if (doc === undefined) return respond(res, 404, '{"error":"no such device"}');
      return respond(res, 200, JSON.stringify(doc));
    }
    const m = /^\/sensors\/(\d+)$/.exec(req.url ?? '');
    const index = m ? Number(m[1]) : -1;
    if (index < 0 || index >= sensors) return respond(res, 404, '{"error":"no such sensor"}');
    requestsBy.set(index, (requestsBy.get(index) ?? 0) + 1);
    book.startWaiting();
    let waiting = true;
    const stopWaiting = () => {
      if (waiting) book.stopWaiting();
      waiting = false;
    };
    const reply = line.add(() => {
      stopWaiting();
      const fault = faults.get(index);
      if (fault === 'timeout') return;
      if (fault === 'drop') return req.socket.destroy();
      if (fault === 'http-500') return respond(res, 500, '{"error":"sensor failure"}');
      if (fault === 'malformed')
        return respond(res, 200, '{"sensor":"sim-' + index + '","data":{"temp');
      const v = field.read(index);
      const data: Record<string, unknown> = {
        temperature: round(v.temperature, 2),
        humidity: round(v.humidity, 1),
      };
      if (fault === 'missing-path') delete data.temperature;
      if (fault === 'non-numeric') data.temperature = 'n/a';
      respond(res, 200, JSON.stringify({ sensor: `sim-${index}`, t: Date.now(), data }));
    });
    res.on('close', () => {
      line.cancel(reply);
      stopWaiting();
    });
  });
  // Idle keep-alive sockets between 1 Hz samples must survive; agents reuse them.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.requestTimeout = 0;
  server.on('connection', (socket: net.Socket) => {
    book.connected(socket);
  });
  const port = await listenOn(server, host, options.port ?? 0);

  return {
    port,
    url: (i) => `http://${host}:${port}/sensors/${i}`,
    inject(i, fault) {
      const wasStuck = faults.get(i) === 'stuck';
      if (fault) faults.set(i, fault);
      else faults.delete(i);
      if (fault === 'stuck') field.setStuck(i, true);
      else if (wasStuck) field.setStuck(i, false);
    },
    requestsFor: (i) => requestsBy.get(i) ?? 0,
    stats: () => book.stats(),
    close: () =>
      new Promise<void>((resolve) => {
        line.clear();
        server.close(() => resolve());
        server.closeAllConnections();
        book.destroyAll();
      }),
  };
}
