/**
 * Batch bodies: UTF-8 JSON text of exactly `{"windows":[...]}` or, with raw publishing,
 * `{"windows":[...],"readings":[...]}`. The publisher later inserts schema, gateway, seq
 * and createdAt by replacing the leading `{` — seq belongs to the spool, not to the worker.
 *
 * Bodies are split so that none exceeds the byte budget; large payloads are split, never
 * dropped. The budget leaves HEADER_RESERVE bytes of `maxBytes` for the publisher's prefix.
 */

/** Room kept for `"schema":…,"gateway":…,"seq":…,"createdAt":…,` added by the publisher. */
export const HEADER_RESERVE = 256;

/** One JSON item with its UTF-8 size, ready to join. */
export interface EncodedItem {
  json: string;
  bytes: number;
}

export interface BodyText {
  text: string;
  windows: number;
  readings: number;
}

export const item = (json: string): EncodedItem => ({ json, bytes: Buffer.byteLength(json) });

/** JSON for a finite number or null. */
export const num = (x: number): string => (Number.isFinite(x) ? String(x) : 'null');

/**
 * Packs items into bodies of at most `budget` bytes: windows first, then readings, in order.
 * An item that alone exceeds the budget still goes out, alone (never dropped).
 */
export function packBodies(
  windows: readonly EncodedItem[],
  readings: readonly EncodedItem[],
  raw: boolean,
  budget: number,
): BodyText[] {
  const open = '{"windows":[';
  const mid = raw ? '],"readings":[' : '';
  const close = raw ? ']}' : ']}';
  const fixed = open.length + mid.length + close.length;
  const bodies: BodyText[] = [];
  let w: string[] = [];
  let r: string[] = [];
  let size = fixed;
  const out = () => {
    const text = raw
      ? `${open}${w.join(',')}${mid}${r.join(',')}${close}`
      : `${open}${w.join(',')}${close}`;
    bodies.push({ text, windows: w.length, readings: r.length });
    w = [];
    r = [];
    size = fixed;
  };
  const add = (it: EncodedItem, into: 'w' | 'r') => {
    const list = into === 'w' ? w : r;
    const extra = it.bytes + (list.length > 0 ? 1 : 0);
    if (w.length + r.length > 0 && size + extra > budget) out();
    const again = into === 'w' ? w : r;
    size += it.bytes + (again.length > 0 ? 1 : 0);
    again.push(it.json);
  };
  for (const it of windows) add(it, 'w');
  for (const it of readings) add(it, 'r');
  if (w.length + r.length > 0) out();
  return bodies;
}
