/**
 * The running agent's local control socket: `<stateDir>/control.sock`, a unix stream socket
 * (mode 0660: root, and the service's user and group; the state directory's own mode decides
 * who reaches it). Requests are newline-delimited JSON, `{"id": …, "name": "spool/status",
 * "args": {…}}`, each answered by one line `{"id": …, "ok": true, "result": …}` or
 * `{"id": …, "ok": false, "error": {"code", "message"}}` (command.ts), in order.
 *
 * Promises: a request line is bounded (REQUEST_MAX_BYTES; a longer one is answered
 * `too-large` and the connection closed), as are answers (ANSWER_MAX_BYTES) and connections
 * (CONNECTIONS_MAX, idle ones closed after IDLE_MS); a malformed line gets a `bad-request`
 * answer and the agent goes on. At start a socket left by an agent that was killed (nothing
 * accepts on it) is replaced; one another agent answers on refuses the start. The socket is
 * removed at stop.
 */
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { z } from 'zod';
import type { Logger } from '../ops/logger.js';
import { describeError } from '../publish/connection-options.js';
import { failure, type Answer, type CommandSet } from './command.js';

export const CONTROL_SOCKET = 'control.sock';
export const REQUEST_MAX_BYTES = 64 * 1024;
export const ANSWER_MAX_BYTES = 1024 * 1024;
export const CONNECTIONS_MAX = 8;
export const IDLE_MS = 60_000;
/** Longest unix socket path Linux takes (sun_path less its terminating NUL). */
const SOCKET_PATH_MAX = 107;
const SOCKET_MODE = 0o660;

/** Another agent answers on this state directory's control socket. */
export class ControlSocketInUse extends Error {
  override name = 'ControlSocketInUse';
}

const requestSchema = z.object({
  id: z.union([z.string().max(200), z.number()]).optional(),
  name: z.string().min(1).max(200),
  args: z.unknown().optional(),
});

type RequestId = string | number | null;

export class ControlSocket {
  private readonly connections = new Set<Socket>();
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly server: Server,
    private readonly commands: CommandSet,
    private readonly logger: Logger,
  ) {
    server.on('connection', (socket) => this.accept(socket));
    server.on('error', (err) =>
      logger.warn({ error: describeError(err), path }, 'control socket error'),
    );
  }

  /**
   * Listen on `<dir>/control.sock`. Throws ControlSocketInUse when another agent answers
   * there; any other trouble (a path too long, a read-only directory) is logged (at debug
   * when `quiet`: a retry) and the agent runs without it (undefined): `edge-agent spool` then
   * says no agent answers. control-endpoint.ts tries again while the environment refuses.
   */
  static async listen(
    dir: string,
    commands: CommandSet,
    logger: Logger,
    options: { quiet?: boolean } = {},
  ): Promise<ControlSocket | undefined> {
    const path = join(dir, CONTROL_SOCKET);
    if (!fitsSocketPath(path)) {
      logger.warn(
        { path },
        `control socket not started: its path is longer than ${SOCKET_PATH_MAX} bytes; edge-agent spool cannot reach this agent while it runs`,
      );
      return undefined;
    }
    if (await answers(path)) {
      throw new ControlSocketInUse(
        `another agent answers on ${path}: two agents cannot share a state directory (stop the other one, or give this one its own --state-dir)`,
      );
    }
    try {
      removeStale(path);
      const server = createServer({ allowHalfOpen: false });
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(path, () => {
          server.off('error', reject);
          resolve();
        });
      });
      chmodSync(path, SOCKET_MODE);
      server.unref();
      logger.debug({ path }, 'control socket listening');
      return new ControlSocket(path, server, commands, logger);
    } catch (err) {
      // The environment's fault (a read-only card, a full disk): one line, no stack.
      logger[options.quiet ? 'debug' : 'warn'](
        { error: describeError(err), path },
        'control socket not started; edge-agent spool cannot reach this agent while it runs',
      );
      return undefined;
    }
  }

  /** Stop accepting, end the connections and remove the socket file. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const socket of this.connections) socket.destroy();
    // Node unlinks a unix socket path it listened on when the server closes.
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    try {
      unlinkSync(this.path);
    } catch {
      // Already gone.
    }
  }

  private accept(socket: Socket): void {
    if (this.connections.size >= CONNECTIONS_MAX) {
      socket.end(line(null, failure('rate-limited', 'too many control connections; try again')));
      return;
    }
    this.connections.add(socket);
    socket.setTimeout(IDLE_MS, () => socket.destroy());
    socket.on('close', () => this.connections.delete(socket));
    socket.on('error', () => socket.destroy());
    let buffered = '';
    let queue = Promise.resolve();
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
        const text = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (Buffer.byteLength(text) > REQUEST_MAX_BYTES) return this.tooLarge(socket);
        if (text.trim() === '') continue;
        queue = queue.then(async () => {
          const reply = await this.answer(text);
          if (!socket.destroyed) socket.write(reply);
        });
      }
      if (Buffer.byteLength(buffered) > REQUEST_MAX_BYTES) this.tooLarge(socket);
    });
  }

  private tooLarge(socket: Socket): void {
    socket.end(
      line(null, failure('too-large', `a request line is at most ${REQUEST_MAX_BYTES} bytes`)),
    );
    socket.removeAllListeners('data');
  }

  /** The answer line for one request line; never throws. */
  private async answer(text: string): Promise<string> {
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      return line(
        null,
        failure('bad-request', 'a request is one line of JSON: {"id", "name", "args"}'),
      );
    }
    const parsed = requestSchema.safeParse(raw);
    const id = idOf(raw);
    if (!parsed.success) {
      const problems = parsed.error.issues.map(
        (i) => `${i.path.length > 0 ? i.path.join('.') : 'request'}: ${i.message}`,
      );
      return line(id, failure('bad-request', `malformed request: ${problems.join('; ')}`));
    }
    const { name, args } = parsed.data;
    const answer = await this.commands.handle(name, args, { origin: 'local' });
    // What a command changes, it logs itself (the spool, the publisher); refusals are the
    // operator's own answer, so they are logged at debug like every request.
    this.logger.debug(
      { command: name, ok: answer.ok, ...(answer.ok ? {} : { error: answer.error.code }) },
      'control command',
    );
    const reply = line(id, answer);
    if (Buffer.byteLength(reply) <= ANSWER_MAX_BYTES) return reply;
    return line(id, failure('too-large', `${name}: the answer exceeds ${ANSWER_MAX_BYTES} bytes`));
  }
}

function line(id: RequestId, answer: Answer): string {
  return `${JSON.stringify({ id, ...answer })}\n`;
}

function idOf(raw: unknown): RequestId {
  if (typeof raw !== 'object' || raw === null) return null;
  const id = (raw as { id?: unknown }).id;
  return typeof id === 'string' || typeof id === 'number' ? id : null;
}

/** Whether Linux takes `path` for a unix socket. */
export function fitsSocketPath(path: string): boolean {
  return Buffer.byteLength(path) <= SOCKET_PATH_MAX;
}

/** Whether something accepts connections on `path` (a live agent). */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection(path);
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(true), 2000);
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** Remove a socket nobody accepts on (left by a killed agent); refuse to remove anything else. */
function removeStale(path: string): void {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return; // nothing there
  }
  if (!isSocket) throw new Error(`${path} exists and is not a socket; not removing it`);
  unlinkSync(path);
}
