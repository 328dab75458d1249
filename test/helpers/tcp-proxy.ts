/**
 * A TCP proxy on 127.0.0.1 in front of a real broker, to inject connection faults the broker
 * itself cannot be made to show: `cut()` drops every connection at once (as a broker or a
 * network does), and `answerConnackOnly(true)` makes later connections get their CONNACK and
 * then nothing more (as a cluster node that lost its quorum: it takes sessions, answers no
 * publish, and closes them later).
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  url: string;
  port: number;
  /** Connections made from now on: the broker's first packet passes, the rest is dropped. */
  answerConnackOnly(on: boolean): void;
  /** Close every connection through the proxy (both sides). */
  cut(): void;
  close(): Promise<void>;
}

/** Bytes of the first MQTT packet in `buf` (fixed header + remaining length), if complete. */
function firstPacketLength(buf: Buffer): number | undefined {
  let length = 0;
  for (let i = 1, shift = 0; i <= 4 && i < buf.length; i++, shift += 7) {
    length += (buf[i] & 0x7f) << shift;
    if ((buf[i] & 0x80) === 0) return i + 1 + length;
  }
  return undefined;
}

export async function startTcpProxy(upstreamPort: number): Promise<TcpProxy> {
  const pairs = new Set<[Socket, Socket]>();
  let connackOnly = false;
  const server: Server = createServer((client) => {
    const upstream = createConnection({ host: '127.0.0.1', port: upstreamPort });
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const s of pair) {
      s.on('error', end);
      s.on('close', end);
    }
    client.pipe(upstream);
    if (!connackOnly) {
      upstream.pipe(client);
      return;
    }
    let head = Buffer.alloc(0);
    let passed = false;
    upstream.on('data', (chunk: Buffer) => {
      if (passed) return;
      head = Buffer.concat([head, chunk]);
      const length = firstPacketLength(head);
      if (length === undefined || head.length < length) return;
      passed = true;
      client.write(head.subarray(0, length));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const cut = () => {
    for (const [a, b] of [...pairs]) {
      a.destroy();
      b.destroy();
    }
    pairs.clear();
  };
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    answerConnackOnly(on) {
      connackOnly = on;
    },
    cut,
    close() {
      cut();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
