/**
 * The control socket kept within reach for the agent's whole run. At start it is
 * ControlSocket.listen: a second agent on the state directory refuses the start. When the
 * environment refuses the socket (a card mounted read-only, a full disk, a stray file on its
 * path) the agent runs on and tries again with a growing pause (RETRY_MIN_MS … RETRY_MAX_MS)
 * until it listens or the agent stops, so `edge-agent spool` reaches the agent once the card
 * is writable again, without a restart. Said once when it fails and once when it listens.
 */
import { join } from 'node:path';
import type { Logger } from '../ops/logger.js';
import { describeError } from '../publish/connection-options.js';
import type { CommandSet } from './command.js';
import { CONTROL_SOCKET, ControlSocket, fitsSocketPath } from './control-socket.js';

const RETRY_MIN_MS = 2000;
const RETRY_MAX_MS = 60_000;

export interface RetryPause {
  minMs: number;
  maxMs: number;
}

export class ControlEndpoint {
  private socket: ControlSocket | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private tries = 1;

  private constructor(
    private readonly dir: string,
    private readonly commands: CommandSet,
    private readonly logger: Logger,
    private readonly pause: RetryPause,
  ) {}

  /** Listen now (throws ControlSocketInUse), and keep trying if the environment refuses. */
  static async open(
    dir: string,
    commands: CommandSet,
    logger: Logger,
    pause: RetryPause = { minMs: RETRY_MIN_MS, maxMs: RETRY_MAX_MS },
  ): Promise<ControlEndpoint> {
    const endpoint = new ControlEndpoint(dir, commands, logger, pause);
    endpoint.socket = await ControlSocket.listen(dir, commands, logger);
    // A path too long stays too long: nothing to wait for.
    if (!endpoint.socket && fitsSocketPath(join(dir, CONTROL_SOCKET))) {
      endpoint.retryIn(pause.minMs);
    }
    return endpoint;
  }

  /** Whether the socket listens now. */
  get listening(): boolean {
    return this.socket !== undefined;
  }

  /** Stop trying, and close the socket if it listens. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.socket?.close();
  }

  private retryIn(ms: number): void {
    this.timer = setTimeout(() => void this.retry(ms), ms);
    this.timer.unref();
  }

  private async retry(lastPauseMs: number): Promise<void> {
    if (this.closed) return;
    this.tries++;
    let socket: ControlSocket | undefined;
    try {
      socket = await ControlSocket.listen(this.dir, this.commands, this.logger, { quiet: true });
    } catch (err) {
      // Another agent answers there now: it serves the operator; this one stops trying.
      this.logger.warn(
        { error: describeError(err) },
        'control socket: another agent answers on it; not trying again',
      );
      return;
    }
    if (this.closed) {
      await socket?.close();
      return;
    }
    if (socket) {
      this.socket = socket;
      this.logger.info(
        { path: socket.path, tries: this.tries },
        'control socket listening: edge-agent spool reaches this agent again',
      );
      return;
    }
    this.retryIn(Math.min(this.pause.maxMs, lastPauseMs * 2));
  }
}
