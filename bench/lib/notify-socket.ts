/**
 * A stand-in for systemd's notify socket: an AF_UNIX datagram socket (unix-dgram, as the
 * agent sends with) bound in a temp dir, recording when READY=1 arrived. Give its path to
 * the agent as NOTIFY_SOCKET.
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

export interface NotifySocket {
  path: string;
  /** Date.now() when the first datagram holding READY=1 arrived; undefined before. */
  readyAt(): number | undefined;
  close(): void;
}

export function listenNotifySocket(): NotifySocket {
  const dir = mkdtempSync(join(tmpdir(), 'bench-notify-'));
  const path = join(dir, 'notify');
  const unix = createRequire(import.meta.url)('unix-dgram') as {
    createSocket(type: 'unix_dgram'): ListeningSocket;
  };
  const socket = unix.createSocket('unix_dgram');
  let readyAt: number | undefined;
  let error: Error | undefined;
  socket.on('message', (buf) => {
    if (readyAt === undefined && buf.toString().split('\n').includes('READY=1'))
      readyAt = Date.now();
  });
  socket.on('error', (err) => {
    error = err;
  });
  socket.bind(path);
  if (error) throw error;
  let closed = false;
  return {
    path,
    readyAt: () => readyAt,
    close() {
      if (closed) return;
      closed = true;
      socket.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
