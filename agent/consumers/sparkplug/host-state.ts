/**
 * The primary host's STATE message (Sparkplug 3.0, `spBv1.0/STATE/<host_id>`): JSON
 * `{"online": bool, "timestamp": ms}`, retained by the host. A STATE older than the last one
 * seen is stale (an old Will delivered late) and changes nothing.
 */
export type HostState =
  | { kind: 'state'; online: boolean; at: number }
  /** Not JSON: worth a warning, it changes nothing. */
  | { kind: 'not-json' }
  /** Without a boolean `online`, or older than the last one seen. */
  | { kind: 'ignored' };

export function readHostState(payload: Buffer, lastAt: number): HostState {
  let state: { online?: unknown; timestamp?: unknown };
  try {
    state = JSON.parse(payload.toString('utf8')) as typeof state;
  } catch {
    return { kind: 'not-json' };
  }
  if (typeof state !== 'object' || state === null || typeof state.online !== 'boolean') {
    return { kind: 'ignored' };
  }
  const at = typeof state.timestamp === 'number' ? state.timestamp : -Infinity;
  if (at < lastAt) return { kind: 'ignored' };
  return { kind: 'state', online: state.online, at };
}
