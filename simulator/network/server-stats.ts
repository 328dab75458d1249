/**
 * Bookkeeping shared by the simulated sensor servers: connections, requests, responses and
 * how many requests are waiting out their delay at once — the proof, without a clock, that
 * answers overlap rather than queue.
 */
import type net from 'node:net';

/**
 * Listen on host:port (0 = ephemeral) with a deep backlog — 10,000 sensors connect in a
 * burst when a client does not pool — and resolve with the bound port.
 */
export function listenOn(server: net.Server, host: string, port: number): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, backlog: 4096 }, () => {
      server.off('error', reject);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

export interface SensorServerStats {
  requests: number;
  responses: number;
  /** Connections accepted since start, and open now. */
  connections: number;
  openConnections: number;
  /** Requests waiting out their delay right now, and the most there ever were at once. */
  waiting: number;
  peakWaiting: number;
}

export class ServerBookkeeping {
  private readonly sockets = new Set<net.Socket>();
  private readonly counts = { requests: 0, responses: 0, connections: 0 };
  private readonly load = { waiting: 0, peakWaiting: 0 };

  /** Count an accepted connection and forget it when it closes. */
  connected(socket: net.Socket): void {
    this.counts.connections++;
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
  }

  requested(): void {
    this.counts.requests++;
  }

  responded(): void {
    this.counts.responses++;
  }

  /** A request starts waiting out its delay. */
  startWaiting(): void {
    this.load.peakWaiting = Math.max(this.load.peakWaiting, ++this.load.waiting);
  }

  /** n requests stop waiting (answered, or their connection went away). */
  stopWaiting(n = 1): void {
    this.load.waiting -= n;
  }

  stats(): SensorServerStats {
    return { ...this.counts, ...this.load, openConnections: this.sockets.size };
  }

  destroyAll(): void {
    for (const s of this.sockets) s.destroy();
  }
}
