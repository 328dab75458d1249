/**
 * A real mosquitto on an ephemeral 127.0.0.1 port with its own config in a temp dir.
 * stop() (SIGTERM: mosquitto saves persistence), kill() (SIGKILL) and restart() keep the
 * same port and data dir, so clients reconnect to "the same broker" after an outage.
 *
 *   const broker = await spawnMosquitto({ persistence: true });
 *   ... broker.url ...
 *   await broker.close(); // in afterEach/afterAll
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, portAccepts } from './ports.js';
import { waitUntil } from './wait.js';

export interface MosquittoOptions {
  /** Keep retained messages and sessions on disk across restarts (autosave every second). */
  persistence?: boolean;
  /** username → password; turns anonymous access off (password_file via mosquitto_passwd). */
  users?: Record<string, string>;
  /** An extra TLS listener with these PEM files. */
  tls?: { caFile: string; certFile: string; keyFile: string };
  /**
   * ACL file lines (`user NAME`, `topic read|write|readwrite FILTER`, `pattern …`); without
   * it every client may read and write everything.
   */
  acl?: string[];
  /** Extra config lines. */
  extraConfig?: string[];
}

export interface MosquittoBroker {
  port: number;
  url: string;
  tlsPort?: number;
  /** mqtts://localhost:<tlsPort> (the test certificates name localhost and 127.0.0.1). */
  tlsUrl?: string;
  dir: string;
  running(): boolean;
  /** Everything mosquitto wrote to stderr, for assertions and failure messages. */
  log(): string;
  stop(): Promise<void>;
  kill(): Promise<void>;
  /** SIGSTOP: a hung broker — connections stay open, nothing is answered (kill() still works). */
  freeze(): void;
  restart(): Promise<void>;
  /** Stop and delete the temp dir. Safe to call twice. */
  close(): Promise<void>;
}

export async function spawnMosquitto(options: MosquittoOptions = {}): Promise<MosquittoBroker> {
  const dir = mkdtempSync(join(tmpdir(), 'mosquitto-'));
  const port = await freePort();
  const tlsPort = options.tls ? await freePort() : undefined;
  const lines = [
    'per_listener_settings false',
    // As root mosquitto would switch to the "mosquitto" user, who cannot read our temp dir.
    'user root',
    `listener ${port} 127.0.0.1`,
    `allow_anonymous ${options.users ? 'false' : 'true'}`,
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    'log_type notice',
    'log_type information',
    'connection_messages true',
    // Our tests' subscribers may be away during a whole outage: do not cap their queue.
    'max_queued_messages 0',
    'max_inflight_messages 100',
  ];
  if (options.persistence) {
    lines.push('persistence true', `persistence_location ${dir}/`, 'autosave_interval 1');
  }
  if (options.users) {
    const file = join(dir, 'passwords');
    let first = true;
    for (const [user, password] of Object.entries(options.users)) {
      execFileSync('mosquitto_passwd', [...(first ? ['-c'] : []), '-b', file, user, password]);
      first = false;
    }
    lines.push(`password_file ${file}`);
  }
  if (options.acl) {
    const file = join(dir, 'acl');
    writeFileSync(file, options.acl.join('\n') + '\n');
    lines.push(`acl_file ${file}`);
  }
  if (options.tls && tlsPort) {
    lines.push(
      `listener ${tlsPort} 127.0.0.1`,
      `cafile ${options.tls.caFile}`,
      `certfile ${options.tls.certFile}`,
      `keyfile ${options.tls.keyFile}`,
    );
  }
  lines.push(...(options.extraConfig ?? []));
  const confFile = join(dir, 'mosquitto.conf');
  writeFileSync(confFile, lines.join('\n') + '\n');

  let child: ChildProcess | undefined;
  let output = '';
  let closed = false;

  const exited = (p: ChildProcess) => p.exitCode !== null || p.signalCode !== null;

  async function start(): Promise<void> {
    const p = spawn('mosquitto', ['-c', confFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = p;
    p.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    p.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    await waitUntil(
      async () => {
        if (exited(p)) throw new Error(`mosquitto exited (${String(p.exitCode)}):\n${output}`);
        return (await portAccepts(port)) && (tlsPort === undefined || (await portAccepts(tlsPort)));
      },
      { timeoutMs: 15_000, what: `mosquitto on port ${port}` },
    );
  }

  async function signal(sig: NodeJS.Signals): Promise<void> {
    const p = child;
    if (!p || exited(p)) return;
    const gone = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill(sig);
    const timer = setTimeout(() => p.kill('SIGKILL'), 10_000);
    await gone;
    clearTimeout(timer);
  }

  await start();
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    ...(tlsPort !== undefined ? { tlsPort, tlsUrl: `mqtts://localhost:${tlsPort}` } : {}),
    dir,
    running: () => child !== undefined && !exited(child),
    log: () => output,
    stop: () => signal('SIGTERM'),
    kill: () => signal('SIGKILL'),
    freeze: () => {
      if (child && !exited(child)) child.kill('SIGSTOP');
    },
    async restart() {
      await signal('SIGTERM');
      await start();
    },
    async close() {
      if (closed) return;
      closed = true;
      await signal('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Waits until mosquitto (persistence on, autosave_interval 1) has saved its database after
 * `since` (epoch ms), so that a SIGKILL keeps what it held then, e.g. a subscriber's session.
 */
export async function databaseSavedAfter(broker: MosquittoBroker, since: number): Promise<void> {
  try {
    await waitUntil(
      () => {
        try {
          return statSync(join(broker.dir, 'mosquitto.db')).mtimeMs > since + 1;
        } catch {
          return false;
        }
      },
      { timeoutMs: 30_000, what: 'mosquitto saved its database' },
    );
  } catch (err) {
    // Say why: the broker's own last words on saving (a full or read-only disk, …).
    const saving = broker
      .log()
      .split('\n')
      .filter((l) => /sav|persist|error/i.test(l))
      .slice(-6);
    throw new Error(`${(err as Error).message}; its log says:\n${saving.join('\n')}`);
  }
}
