/**
 * sd_notify(3) for a Type=notify service: READY=1, STATUS=, WATCHDOG=1, STOPPING=1,
 * RELOADING=1, EXTEND_TIMEOUT_USEC=. The protocol is one datagram of `KEY=value` lines sent to
 * the AF_UNIX/SOCK_DGRAM socket named by $NOTIFY_SOCKET; systemd attributes it to the sender's
 * PID (SCM_CREDENTIALS), which with NotifyAccess=main must be the service's main PID.
 *
 * Why the `unix-dgram` package: Node's `dgram` has no AF_UNIX datagram sockets and `net` only
 * does streams. The alternatives are worse: spawning `systemd-notify` is racy, because systemd
 * attributes the message to the child's PID (rejected under NotifyAccess=main, and the child
 * may exit before systemd looks it up); the `sd-notify` npm package links libsystemd and so
 * needs libsystemd-dev on the Pi. unix-dgram is a small, maintained native addon with no
 * system library dependency (it builds like better-sqlite3 does), the one the Node
 * systemd-notify libraries use, and it sends from our own PID.
 *
 * Like libsystemd's sd_pid_notify(), every message opens a fresh socket, sends and closes it.
 * That costs three syscalls every few seconds and means no handle keeps the event loop alive
 * or leaks when a caller forgets close(). unix-dgram polls on libuv's default loop, so this
 * module belongs on the main thread, not in a worker.
 *
 * Abstract sockets (NOTIFY_SOCKET starting with '@') are NOT supported by unix-dgram 2.x: it
 * copies the path with strncpy (stopping at the leading NUL) and always passes
 * sizeof(sockaddr_un) as the address length. The notifier then logs one warning and does
 * nothing; under Type=notify systemd would time the start out, so such a set-up needs
 * Type=simple (systemd itself always uses the path /run/systemd/notify for services; abstract
 * names appear only in some containers and test harnesses). `vsock:` addresses likewise.
 */
import { createRequire } from 'node:module';
import type { Logger } from './logger.js';
import { silentLogger } from './logger.js';

/** The part of a unix-dgram socket this module uses. */
export interface DatagramSocket {
  send(
    buf: Buffer,
    offset: number,
    length: number,
    path: string,
    callback: (err?: Error) => void,
  ): void;
  on(event: 'error', listener: (err: Error) => void): unknown;
  close(): void;
}
export type DatagramSocketFactory = () => DatagramSocket;

interface UnixDgramModule {
  createSocket(type: 'unix_dgram'): DatagramSocket;
}

/** The real sockets, loaded lazily so a host without the addon still runs (as a no-op). */
export const unixDatagramSocket: DatagramSocketFactory = () => {
  const mod = createRequire(import.meta.url)('unix-dgram') as UnixDgramModule;
  return mod.createSocket('unix_dgram');
};

export interface NotifierOptions {
  /** Filesystem path of systemd's notify socket; undefined = not under systemd (no-op). */
  socketPath?: string;
  /** Watchdog period in µs (WATCHDOG_USEC), when it applies to this process. */
  watchdogUsec?: number;
  logger?: Logger;
  socketFactory?: DatagramSocketFactory;
}

/** Keep one line: systemd shows STATUS= verbatim and a newline would start a new field. */
function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ').trim();
}

/** CLOCK_MONOTONIC in µs, what systemd expects in MONOTONIC_USEC (libuv's hrtime is monotonic). */
function monotonicUsec(): bigint {
  return process.hrtime.bigint() / 1000n;
}

export class SystemdNotifier {
  private readonly socketPath: string | undefined;
  private readonly watchdogUsec: number | undefined;
  private readonly logger: Logger;
  private readonly socketFactory: DatagramSocketFactory;
  /** Error codes already logged: a failing socket is reported once, not every ping. */
  private readonly reported = new Set<string>();
  private closed = false;
  private lastStatus: string | undefined;

  constructor(options: NotifierOptions = {}) {
    this.socketPath = options.socketPath;
    this.watchdogUsec = options.watchdogUsec;
    this.logger = options.logger ?? silentLogger;
    this.socketFactory = options.socketFactory ?? unixDatagramSocket;
  }

  /**
   * From the environment systemd sets: NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID. A no-op
   * notifier when NOTIFY_SOCKET is unset (run by hand, in tests, under Type=simple).
   */
  static fromEnv(
    env: NodeJS.ProcessEnv = process.env,
    logger: Logger = silentLogger,
    socketFactory?: DatagramSocketFactory,
  ): SystemdNotifier {
    const raw = env.NOTIFY_SOCKET;
    let socketPath: string | undefined;
    if (raw !== undefined && raw !== '') {
      if (raw.startsWith('/')) socketPath = raw;
      else {
        logger.warn(
          { notifySocket: raw },
          'NOTIFY_SOCKET is not a filesystem path (abstract or vsock): sd_notify disabled',
        );
      }
    }
    return new SystemdNotifier({
      socketPath,
      watchdogUsec: parseWatchdogUsec(env),
      logger,
      socketFactory,
    });
  }

  /** True when messages go somewhere (NOTIFY_SOCKET was a usable path). */
  get enabled(): boolean {
    return this.socketPath !== undefined && !this.closed;
  }

  /** The watchdog period systemd expects pings within (WatchdogSec=), in ms; else undefined. */
  watchdogIntervalMs(): number | undefined {
    return this.watchdogUsec === undefined ? undefined : this.watchdogUsec / 1000;
  }

  /** The service is up: sensors started and the pipeline running. */
  ready(status?: string): boolean {
    const fields: Record<string, string> = { READY: '1' };
    if (status !== undefined) fields.STATUS = oneLine(status);
    return this.notify(fields);
  }

  /** A one-line summary shown by `systemctl status`. Unchanged lines are not re-sent. */
  status(line: string): boolean {
    const text = oneLine(line);
    if (text === this.lastStatus) return true;
    const sent = this.notify({ STATUS: text });
    if (sent) this.lastStatus = text;
    return sent;
  }

  /** Keep-alive; only the watchdog loop (agent/ops/watchdog.ts) should call this. */
  watchdog(): boolean {
    return this.notify({ WATCHDOG: '1' });
  }

  /** Shutdown has begun (the drain follows). */
  stopping(status?: string): boolean {
    const fields: Record<string, string> = { STOPPING: '1' };
    if (status !== undefined) fields.STATUS = oneLine(status);
    return this.notify(fields);
  }

  /**
   * A reload has begun; send ready() when it is done. MONOTONIC_USEC is required by
   * Type=notify-reload (systemd 253+) and harmless before.
   */
  reloading(): boolean {
    return this.notify({ RELOADING: '1', MONOTONIC_USEC: monotonicUsec().toString() });
  }

  /** Ask for more time for the current start/stop step (e.g. a long drain). */
  extendTimeout(ms: number): boolean {
    return this.notify({ EXTEND_TIMEOUT_USEC: String(Math.max(0, Math.round(ms * 1000))) });
  }

  /** Send raw fields; false when disabled or the send failed (logged once per error code). */
  notify(fields: Record<string, string>): boolean {
    if (this.socketPath === undefined || this.closed) return false;
    const message = Buffer.from(
      Object.entries(fields)
        .map(([k, v]) => `${k}=${v}`)
        .join('\n'),
    );
    let socket: DatagramSocket | undefined;
    let failure: Error | undefined;
    try {
      socket = this.socketFactory();
      socket.on('error', (err) => {
        failure ??= err;
      });
      // unix-dgram calls back synchronously, so `failure` is settled after send() returns.
      socket.send(message, 0, message.length, this.socketPath, (err) => {
        if (err) failure ??= err;
      });
    } catch (err) {
      failure = err as Error;
    } finally {
      try {
        socket?.close();
      } catch {
        // closing a socket that failed to open has nothing left to release
      }
    }
    if (failure) {
      const code = String((failure as NodeJS.ErrnoException).code ?? failure.message);
      if (!this.reported.has(code)) {
        this.reported.add(code);
        this.logger.warn(
          { err: failure, notifySocket: this.socketPath },
          'sd_notify failed; systemd will not see this state (further failures of this kind are not logged)',
        );
      }
      return false;
    }
    return true;
  }

  /** Stop sending; later calls are no-ops. */
  close(): void {
    this.closed = true;
  }
}

/** WATCHDOG_USEC applies to us only if WATCHDOG_PID is unset or names this process. */
function parseWatchdogUsec(env: NodeJS.ProcessEnv): number | undefined {
  const usec = Number(env.WATCHDOG_USEC);
  if (!Number.isInteger(usec) || usec <= 0) return undefined;
  const pid = env.WATCHDOG_PID;
  if (pid !== undefined && pid !== '' && Number(pid) !== process.pid) return undefined;
  return usec;
}
