/**
 * GET over HTTP/1.1 keep-alive for the http-json driver. HTTP/1.1 carries one request per
 * connection at a time, so concurrency is the number of sockets: at 10,000 sensors × 1 Hz
 * with 100 ms latency ~1,000 requests are in flight. The agent keeps up to maxSockets per
 * host open and reuses them (no handshake per sample); beyond that requests queue in the
 * Agent. 1024 per host stays well inside the 20,000 open-file limit for both ends.
 */
import http from 'node:http';
import https from 'node:https';
import { urlToHttpOptions } from 'node:url';
import { SensorError } from '../types.js';
import { redactUrl } from './url-text.js';

export interface HttpJsonResponse {
  status: number;
  contentType: string | undefined;
  body: string;
}

/** What the http-json driver needs from HTTP; replaceable in tests. */
export interface HttpJsonClient {
  /**
   * GET the URL; resolve with any status. Reject with SensorError TIMEOUT when the signal
   * aborts first, DISCONNECTED when the connection is refused or reset, PROTOCOL when the
   * body is too large.
   */
  get(url: string, signal: AbortSignal): Promise<HttpJsonResponse>;
}

export interface KeepAliveHttpClientOptions {
  /** Sockets per host (concurrent requests to one host). Default 1024. */
  maxSocketsPerHost?: number;
  /** Bodies larger than this are refused. Default 1 MiB. */
  maxBodyBytes?: number;
}

export interface KeepAliveHttpClientStats {
  requests: number;
  /** Requests that needed a new connection (the rest reused a kept-alive one). */
  newConnections: number;
  /** Second attempts after a kept-alive socket turned out to be closed. */
  retries: number;
}

export class KeepAliveHttpClient implements HttpJsonClient {
  private readonly counts: KeepAliveHttpClientStats = {
    requests: 0,
    newConnections: 0,
    retries: 0,
  };
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;
  private readonly maxBodyBytes: number;

  constructor(options: KeepAliveHttpClientOptions = {}) {
    const maxSockets = options.maxSocketsPerHost ?? 1024;
    // maxFreeSockets = maxSockets: an idle socket between 1 Hz samples is kept, not closed.
    const agentOptions = {
      keepAlive: true,
      maxSockets,
      maxFreeSockets: maxSockets,
      scheduling: 'lifo' as const,
    };
    this.httpAgent = new http.Agent(agentOptions);
    this.httpsAgent = new https.Agent(agentOptions);
    this.maxBodyBytes = options.maxBodyBytes ?? 1024 * 1024;
  }

  get(url: string, signal: AbortSignal): Promise<HttpJsonResponse> {
    return this.attempt(url, signal, true);
  }

  stats(): KeepAliveHttpClientStats {
    return { ...this.counts };
  }

  private attempt(url: string, signal: AbortSignal, mayRetry: boolean): Promise<HttpJsonResponse> {
    return new Promise((resolve, reject) => {
      const timeout = () => new SensorError('TIMEOUT', `no answer from ${redactUrl(url)} in time`);
      if (signal.aborted) return reject(timeout());
      // Settle once; whatever the socket emits after that (our own destroy) is ignored.
      let done = false;
      let responded = false;
      const finish = (outcome: HttpJsonResponse | SensorError | Promise<HttpJsonResponse>) => {
        if (done) return;
        done = true;
        signal.removeEventListener('abort', onAbort);
        if (outcome instanceof SensorError) reject(outcome);
        else resolve(outcome);
      };
      let options: http.RequestOptions;
      try {
        options = this.optionsFor(url);
      } catch (err) {
        return reject(
          new SensorError('PROTOCOL', `invalid URL ${JSON.stringify(redactUrl(url))}`, {
            cause: err,
          }),
        );
      }
      const get = options.protocol === 'https:' ? https.get : http.get;
      const req = get(options, (res) => {
        responded = true;
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > this.maxBodyBytes) {
            finish(
              new SensorError(
                'PROTOCOL',
                `body of ${redactUrl(url)} exceeds ${this.maxBodyBytes} bytes`,
              ),
            );
            req.destroy();
            return;
          }
          chunks.push(c);
        });
        res.on('end', () => {
          finish({
            status: res.statusCode ?? 0,
            contentType: res.headers['content-type'],
            body: Buffer.concat(chunks).toString('utf8'),
          });
        });
        res.on('error', onError);
      });
      const onError = (err: NodeJS.ErrnoException) => {
        if (done) return;
        if (signal.aborted) return finish(timeout());
        // A kept-alive socket the server closed while idle fails on first use; GET is
        // idempotent, so try once more on a fresh socket (as Node's docs advise).
        if (mayRetry && !responded && req.reusedSocket && err.code === 'ECONNRESET') {
          this.counts.retries++;
          return finish(this.attempt(url, signal, false));
        }
        finish(
          new SensorError(
            'DISCONNECTED',
            `${err.code ?? 'error'} from ${redactUrl(url)}: ${err.message}`,
            {
              cause: err,
            },
          ),
        );
      };
      const onAbort = () => {
        finish(timeout());
        req.destroy();
      };
      signal.addEventListener('abort', onAbort, { once: true });
      req.on('error', onError);
      this.counts.requests++;
      req.once('socket', () => {
        if (!req.reusedSocket) this.counts.newConnections++;
      });
    });
  }

  /** Request options per URL, parsed once: every sensor asks the same URL every round. */
  private readonly optionsByUrl = new Map<string, http.RequestOptions>();
  private optionsFor(url: string): http.RequestOptions {
    let o = this.optionsByUrl.get(url);
    if (!o) {
      if (this.optionsByUrl.size >= 100_000) this.optionsByUrl.clear();
      const parsed = urlToHttpOptions(new URL(url));
      const isHttps = parsed.protocol === 'https:';
      o = {
        ...parsed,
        agent: isHttps ? this.httpsAgent : this.httpAgent,
        headers: { accept: 'application/json' },
      };
      this.optionsByUrl.set(url, o);
    }
    return o;
  }

  /** Close idle sockets; in-flight requests finish or fail on their own. */
  destroy(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}

let shared: KeepAliveHttpClient | undefined;
/** The process-wide client every http-json sensor uses unless given another. */
export function sharedHttpClient(): KeepAliveHttpClient {
  return (shared ??= new KeepAliveHttpClient());
}
