/**
 * Does a broker port speak TLS? Asked only after a plain (mqtt://, ws://) connection was
 * reset before CONNACK: a TLS port does that to plain MQTT, and so does a broker going down
 * while it accepts, so the reset alone cannot say which. The probe opens its own TCP
 * connection, sends a TLS ClientHello (Node's own) and looks at the first bytes that come
 * back: a TLS record (a handshake or an alert) begins 0x16 or 0x15, then 0x03 and the minor
 * version. A plain MQTT broker closes without answering; nothing is ever sent but the hello,
 * and the connection is closed as soon as those bytes are in. The failed connection's own
 * bytes cannot tell: mosquitto's TLS listener (OpenSSL) reads a plain CONNECT's first bytes and
 * closes without a word, exactly as a broker that dies.
 */
import { connect as connectTcp, isIP } from 'node:net';
import { Duplex } from 'node:stream';
import { connect as connectTls } from 'node:tls';

/** How long a probe waits for the port's first bytes. */
const TLS_PROBE_TIMEOUT_MS = 3000;

/** The first bytes of a TLS record: handshake (0x16) or alert (0x15), version 3.x, x ≤ 4. */
export function looksLikeTls(bytes: Uint8Array): boolean {
  return (
    bytes.length >= 3 &&
    (bytes[0] === 0x16 || bytes[0] === 0x15) &&
    bytes[1] === 0x03 &&
    bytes[2] <= 0x04
  );
}

/** Host and port an mqtt:// or ws:// URL connects to (defaults 1883 and 80). */
export function probeTarget(url: string): { host: string; port: number } | undefined {
  if (!URL.canParse(url)) return undefined;
  const u = new URL(url);
  const port = u.port !== '' ? Number(u.port) : u.protocol === 'ws:' ? 80 : 1883;
  // URL keeps the brackets of an IPv6 literal.
  return { host: u.hostname.replace(/^\[(.*)\]$/, '$1'), port };
}

/** True when the port at host:port answers a ClientHello with a TLS record. Never rejects. */
export function probeTls(
  host: string,
  port: number,
  timeoutMs = TLS_PROBE_TIMEOUT_MS,
): Promise<boolean> {
  return new Promise((resolve) => {
    const raw = connectTcp({ host, port });
    // Node's TLS writes its hello through this; what the port answers is read off `raw` here
    // and never handed back, so no handshake goes further than the first record.
    const carrier = new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, callback) {
        raw.write(chunk, callback);
      },
    });
    const hello = connectTls({
      socket: carrier,
      rejectUnauthorized: false,
      ...(isIP(host) === 0 ? { servername: host } : {}),
    });
    let received = Buffer.alloc(0);
    let done = false;
    const finish = (tls: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      hello.destroy();
      carrier.destroy();
      raw.destroy();
      resolve(tls);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    raw.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (received.length >= 3) finish(looksLikeTls(received));
    });
    raw.on('error', () => finish(false));
    raw.on('close', () => finish(false));
    hello.on('error', () => finish(false));
    carrier.on('error', () => finish(false));
  });
}

/**
 * Which broker URLs were found to speak TLS, and one probe at a time: a publisher asks after
 * each plain reset before CONNACK, and forgets the answer once a plain CONNACK proves it wrong
 * (the broker was reconfigured).
 */
export class TlsPorts {
  private readonly tls = new Set<string>();
  private probing = false;

  /** true when the last probe of `url` found TLS; undefined when not known. */
  speaksTls(url: string): true | undefined {
    return this.tls.has(url) ? true : undefined;
  }

  connected(url: string): void {
    this.tls.delete(url);
  }

  /** Probe the port of `url` unless a probe is running; `done` gets the answer. */
  check(url: string, done: (tls: boolean) => void): void {
    const target = probeTarget(url);
    if (this.probing || target === undefined) return;
    this.probing = true;
    void probeTls(target.host, target.port).then((tls) => {
      this.probing = false;
      if (tls) this.tls.add(url);
      done(tls);
    });
  }
}
