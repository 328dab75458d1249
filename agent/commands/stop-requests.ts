/**
 * SIGTERM, SIGINT and SIGHUP, caught from the first moment of `run` and `simulate`, not only
 * once the pipeline is up: a stop requested during start-up is remembered and carried out as
 * soon as there is something to stop (or nothing is started at all), so it ends in a clean
 * stop with exit 0 instead of the default action of the signal (exit 143). A SIGHUP during
 * start-up is remembered too and applied once the pipeline runs.
 */

export type StopListener = (why: string) => void;

export class StopRequests {
  private why: string | undefined;
  private readonly stopListeners: StopListener[] = [];
  private reloadListener: (() => void) | undefined;
  private pendingReload = false;
  private readonly onTerm = () => this.request('SIGTERM');
  private readonly onInt = () => this.request('SIGINT');
  private readonly onHup = () => {
    if (this.reloadListener) this.reloadListener();
    else this.pendingReload = true;
  };

  private constructor() {}

  /** Start catching the signals now. */
  static install(): StopRequests {
    const requests = new StopRequests();
    process.on('SIGTERM', requests.onTerm);
    process.on('SIGINT', requests.onInt);
    process.on('SIGHUP', requests.onHup);
    return requests;
  }

  /** The signal (or reason) of the first stop request, if one came. */
  get requested(): string | undefined {
    return this.why;
  }

  /** Ask for a stop (a signal, or the end of --duration); only the first request counts. */
  request(why: string): void {
    if (this.why !== undefined) return;
    this.why = why;
    for (const listener of this.stopListeners.splice(0)) listener(why);
  }

  /** Called once with the reason; at once (next tick) if a stop was already requested. */
  onStop(listener: StopListener): void {
    const why = this.why;
    if (why !== undefined) process.nextTick(() => listener(why));
    else this.stopListeners.push(listener);
  }

  /** Called on every SIGHUP from now on, and once now if one came during start-up. */
  onReload(listener: () => void): void {
    this.reloadListener = listener;
    if (this.pendingReload) {
      this.pendingReload = false;
      process.nextTick(listener);
    }
  }

  /** Stop catching: the signals' default actions apply again. */
  release(): void {
    process.off('SIGTERM', this.onTerm);
    process.off('SIGINT', this.onInt);
    process.off('SIGHUP', this.onHup);
    this.stopListeners.length = 0;
    this.reloadListener = undefined;
  }
}
