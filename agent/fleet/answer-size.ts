/**
 * Answers within the broker's packet limit: an answer that does not fit has its longest
 * lists cut (each cut named in `truncated`, path → the list's full length), and when even
 * that does not make it fit, it becomes a `too-large` answer, which always fits.
 */
import { failure } from '../control/command.js';
import type { AnswerMessage } from './command-protocol.js';

/** Cuts tried before giving up on an answer (each halves one list). */
const MAX_CUTS = 64;

/** The encoded answer, cut or replaced to be at most `maxBytes` long. */
export function fitAnswer(message: AnswerMessage, maxBytes: number): Buffer {
  let payload = encode(message);
  if (payload.length <= maxBytes) return payload;
  if (!message.ok) return tooLarge(message, payload.length);
  const result: unknown = structuredClone(message.result);
  const truncated: Record<string, number> = {};
  for (let cut = 0; cut < MAX_CUTS; cut++) {
    const longest = longestList(result, '');
    if (!longest || longest.list.length === 0) break;
    truncated[longest.path] ??= longest.list.length;
    longest.list.splice(Math.floor(longest.list.length / 2));
    const withCuts = isRecord(result) ? { ...result, truncated } : result;
    payload = encode({ ...message, result: withCuts });
    if (payload.length <= maxBytes) return payload;
  }
  return tooLarge(message, encode(message).length);
}

function tooLarge(message: AnswerMessage, bytes: number): Buffer {
  const {
    result: _r,
    error: _e,
    ...head
  } = message as AnswerMessage & {
    result?: unknown;
    error?: unknown;
  };
  return encode({
    ...head,
    ...failure(
      'too-large',
      `${message.command}: the answer (${bytes} bytes) does not fit the broker's packet limit, even with its lists cut`,
    ),
  });
}

function encode(message: unknown): Buffer {
  return Buffer.from(JSON.stringify(message), 'utf8');
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The longest array inside `value` (depth first), with its dotted path. */
function longestList(value: unknown, path: string): { path: string; list: unknown[] } | undefined {
  let best: { path: string; list: unknown[] } | undefined;
  const consider = (c: { path: string; list: unknown[] } | undefined) => {
    if (c && (!best || c.list.length > best.list.length)) best = c;
  };
  if (Array.isArray(value)) {
    consider({ path: path || '(result)', list: value });
    value.forEach((v, i) => consider(longestList(v, `${path}[${i}]`)));
  } else if (isRecord(value)) {
    for (const [k, v] of Object.entries(value)) consider(longestList(v, path ? `${path}.${k}` : k));
  }
  return best;
}
