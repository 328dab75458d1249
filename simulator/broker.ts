/**
 * Embedded MQTT broker for `edge-agent simulate` and tests: Aedes v1 (MQTT 3.1.1 only,
 * in-memory persistence) on 127.0.0.1:1883, or on a free port when 1883 is taken (e.g. by
 * a system mosquitto), so the demo never fails for want of a broker.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { Aedes } from 'aedes';

export interface EmbeddedBroker {
  url: string;
  port: number;
  close(): Promise<void>;
}

export const DEFAULT_MQTT_PORT = 1883;

function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => {
      server.off('listening', onListening);
      reject(err);
    };
    const onListening = () => {
      server.off('error', onError);
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : port);
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, host);
  });
}

export async function startEmbeddedBroker(
  options: { host?: string; port?: number } = {},
): Promise<EmbeddedBroker> {
  const host = options.host ?? '127.0.0.1';
  const wanted = options.port ?? DEFAULT_MQTT_PORT;
  const broker = await Aedes.createBroker();
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    broker.handle(socket);
  });
  let port: number;
  try {
    port = await listen(server, host, wanted);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || wanted === 0) {
      await new Promise<void>((r) => broker.close(() => r()));
      throw err;
    }
    port = await listen(server, host, 0);
  }
  let closed: Promise<void> | undefined;
  return {
    url: `mqtt://${host}:${port}`,
    port,
    close() {
      closed ??= (async () => {
        // Close the listener first, then the clients, so nothing reconnects mid-close.
        const serverClosed = new Promise<void>((r) => server.close(() => r()));
        for (const s of sockets) s.destroy();
        await new Promise<void>((r) => broker.close(() => r()));
        await serverClosed;
      })();
      return closed;
    },
  };
}
