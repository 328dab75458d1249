/** Test helpers for agent/ops: a real unix datagram listener standing in for systemd, log capture. */
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';

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

export interface CapturedLog {
  logger: Logger;
  lines: Array<Record<string, unknown>>;
  messages(): string[];
}

/** A pino logger whose JSON lines are kept in memory. */
export function captureLogger(): CapturedLog {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino(
    { level: 'debug' },
    {
      write(chunk: string) {
        lines.push(JSON.parse(chunk) as Record<string, unknown>);
      },
    },
  );
  return { logger, lines, messages: () => lines.map((l) => String(l.msg)) };
}
