/**
 * A real unix datagram listener standing in for systemd's $NOTIFY_SOCKET: every datagram
 * with its arrival time. Shared by the tests and the footprint bench.
 */
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

interface ListeningSocket {
  bind(path: string): void;
  on(event: 'message', listener: (buf: Buffer) => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  close(): void;
}
interface UnixDgram {
  createSocket(type: 'unix_dgram'): ListeningSocket;
}

/** What systemd would receive: every datagram, with its arrival time (performance.now()). */
export interface NotifyListener {
  path: string;
  messages: { text: string; at: number }[];
  /** Resolves once `count` messages arrived; rejects after `timeoutMs`. */
  waitFor(count: number, timeoutMs?: number): Promise<string[]>;
  close(): void;
}

export function listenNotifySocket(): NotifyListener {
  const dir = mkdtempSync(join(tmpdir(), 'edge-notify-'));
  const path = join(dir, 'notify');
  const unix = createRequire(import.meta.url)('unix-dgram') as UnixDgram;
  const socket = unix.createSocket('unix_dgram');
  const messages: { text: string; at: number }[] = [];
  let error: Error | undefined;
  socket.on('message', (buf) => messages.push({ text: buf.toString(), at: performance.now() }));
  socket.on('error', (err) => {
    error = err;
  });
  socket.bind(path);
  if (error) throw error;
  let closed = false;
  return {
    path,
    messages,
    async waitFor(count, timeoutMs = 10_000) {
      const deadline = performance.now() + timeoutMs;
      while (messages.length < count) {
        if (performance.now() > deadline) {
          throw new Error(`expected ${count} notify messages, got ${messages.length}`);
        }
        await new Promise((r) => setTimeout(r, 10));
      }
      return messages.map((m) => m.text);
    },
    close() {
      if (closed) return;
      closed = true;
      socket.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** When the first READY=1 arrived, ms since the epoch; undefined before. */
export function readyAt(listener: NotifyListener): number | undefined {
  const ready = listener.messages.find((m) => m.text.split('\n').includes('READY=1'));
  return ready === undefined ? undefined : performance.timeOrigin + ready.at;
}
