/**
 * The spool's own worker thread: it opens the Spool (spool.ts) and does every database and
 * seq-mark operation — open, group commits and their fsyncs, read-back, deletes, salvage —
 * for the main thread, which talks to it through SpoolClient (spool-client.ts). A card that
 * stalls on fsync stalls this thread only; sampling and the MQTT connection go on.
 *
 * Stats are sent after every change (coalesced per turn) and once a second, so the main
 * thread's health report reads a recent copy without asking.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { Logger } from '../../ops/logger.js';
import type {
  FromSpoolThread,
  LogLevel,
  OperatorRequest,
  OperatorResult,
  SpoolThreadInit,
  ToSpoolThread,
} from './spool-protocol.js';
import { Spool, SpoolInUseError } from './spool.js';

const STATS_EVERY_MS = 1000;

const init = workerData as SpoolThreadInit;
const port = parentPort!;
const post = (m: FromSpoolThread) => port.postMessage(m);

/** The Spool logs through this: each line goes to the main thread's logger. */
function forwardingLogger(): Logger {
  const at =
    (level: LogLevel) =>
    (fieldsOrMsg: unknown, msg?: string): void => {
      const [fields, text] =
        typeof fieldsOrMsg === 'string'
          ? [{}, fieldsOrMsg]
          : [(fieldsOrMsg ?? {}) as Record<string, unknown>, msg ?? ''];
      post({ type: 'log', level, fields, msg: text });
    };
  // The Spool calls only the level methods; the rest of pino's interface is never reached.
  return {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    fatal: at('fatal'),
  } as unknown as Logger;
}

let spool: Spool;
try {
  spool = Spool.open(init.dir, init.options, forwardingLogger());
} catch (err) {
  if (!(err instanceof SpoolInUseError)) throw err;
  post({ type: 'in-use', message: err.message });
  port.close();
  process.exit(0);
}

let statsQueued = false;
function sendStatsSoon(): void {
  if (statsQueued) return;
  statsQueued = true;
  setImmediate(() => {
    statsQueued = false;
    post({ type: 'stats', stats: spool.stats() });
  });
}
const statsTimer = setInterval(() => post({ type: 'stats', stats: spool.stats() }), STATS_EVERY_MS);
statsTimer.unref();

spool.onCommitted(() => {
  post({ type: 'committed' });
  sendStatsSoon();
});
spool.onRewind((fromSeq) => post({ type: 'rewind', fromSeq }));

function read(id: number, after: number, limit: number, maxBytes: number): void {
  const found = spool.peek(after, limit);
  const batches = [];
  let bytes = 0;
  for (const b of found) {
    // At least one batch, however large; then stay within maxBytes.
    if (batches.length > 0 && bytes + b.body.length > maxBytes) break;
    bytes += b.body.length;
    batches.push(b);
  }
  post({
    type: 'batches',
    id,
    after,
    batches,
    complete: found.length < limit && batches.length === found.length,
  });
}

/** An operator's request, answered whatever happens (an error is the answer's `error`). */
function answerOperator(id: number, request: OperatorRequest): void {
  let result: Promise<OperatorResult>;
  try {
    if (request.kind === 'figures') result = spool.figures();
    else if (request.kind === 'dead-letters') result = spool.listDeadLetters(request.limit);
    else result = spool.changeDeadLetters(request.kind, request.selection);
  } catch (err) {
    result = Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
  result.then(
    (r) => post({ type: 'operator-answer', id, result: r }),
    (err: unknown) =>
      post({
        type: 'operator-answer',
        id,
        error: err instanceof Error ? err.message : String(err),
      }),
  );
}

port.on('message', (m: ToSpoolThread) => {
  switch (m.type) {
    case 'append':
      void spool
        .append(m.body, m.createdAt)
        .then((seq) => post({ type: 'appended', id: m.id, seq }));
      break;
    case 'commit':
      spool.commit();
      break;
    case 'read':
      read(m.id, m.after, m.limit, m.maxBytes);
      break;
    case 'ack':
      spool.ack(m.seq);
      break;
    case 'setAside':
      if (!spool.setAside(m.seq, m.reason))
        post({ type: 'setAsideFailed', seq: m.seq, reason: m.reason });
      break;
    case 'retainRecent':
      spool.retainRecent(m.on);
      break;
    case 'operator':
      answerOperator(m.id, m.request);
      break;
    case 'close':
      clearInterval(statsTimer);
      spool.close();
      post({ type: 'closed', stats: spool.stats() });
      port.close();
      return;
  }
  sendStatsSoon();
});

post({ type: 'opened', path: spool.path, stats: spool.stats() });
