/**
 * Splitting one spooled batch body into parts for a broker that will not take it whole.
 *
 * A part is a body of the same shape (`{"windows":[...]}`, plus `"readings":[...]` when the
 * batch had them) holding a contiguous run of the batch's items, windows first, then
 * readings. Every item goes to exactly one part, in order, so the parts together carry the
 * batch. The split is a pure function of (body, parts): a replay after a reconnect or a
 * restart sends the same bytes for the same (seq, part).
 */

export interface BodyItems {
  windows: string[];
  /** Undefined when the batch carries no `readings` field (raw publishing off). */
  readings: string[] | undefined;
}

/** The items of a body, each as its JSON text. */
export function bodyItems(body: Uint8Array): BodyItems {
  const parsed = JSON.parse(Buffer.from(body).toString('utf8')) as {
    windows?: unknown[];
    readings?: unknown[];
  };
  const windows = Array.isArray(parsed.windows) ? parsed.windows : [];
  return {
    windows: windows.map((w) => JSON.stringify(w)),
    readings: Array.isArray(parsed.readings)
      ? parsed.readings.map((r) => JSON.stringify(r))
      : undefined,
  };
}

export function itemCount(items: BodyItems): number {
  return items.windows.length + (items.readings?.length ?? 0);
}

/** One part's body and how many items (windows + readings) it holds. */
export interface PartBody {
  body: Uint8Array;
  items: number;
}

function encodePart(windows: string[], readings: string[] | undefined): PartBody {
  const text =
    readings === undefined
      ? `{"windows":[${windows.join(',')}]}`
      : `{"windows":[${windows.join(',')}],"readings":[${readings.join(',')}]}`;
  return { body: Buffer.from(text, 'utf8'), items: windows.length + (readings?.length ?? 0) };
}

/**
 * `parts` bodies (fewer when the batch has fewer items) of about equal size in bytes.
 * Each part holds at least one item.
 */
export function splitItems(items: BodyItems, parts: number): PartBody[] {
  const all = [...items.windows, ...(items.readings ?? [])];
  const n = Math.max(1, Math.min(Math.floor(parts), all.length));
  const sizes = all.map((t) => Buffer.byteLength(t) + 1);
  const total = sizes.reduce((a, b) => a + b, 0);
  const out: PartBody[] = [];
  let from = 0;
  let acc = 0;
  for (let k = 1; k <= n; k++) {
    // Part k ends where the running size first reaches k/n of the total, leaving at least
    // one item for every later part.
    let to = from + 1;
    acc += sizes[from] ?? 0;
    const target = (total * k) / n;
    while (to < all.length - (n - k) && acc + (sizes[to] ?? 0) <= target) {
      acc += sizes[to] ?? 0;
      to++;
    }
    if (k === n) to = all.length;
    const w = items.windows.length;
    const windows = all.slice(Math.min(from, w), Math.min(to, w));
    const readings =
      items.readings === undefined ? undefined : all.slice(Math.max(from, w), Math.max(to, w));
    out.push(encodePart(windows, readings));
    from = to;
  }
  return out;
}

export interface FittedParts {
  bodies: PartBody[];
  /** False when even one item per part leaves a part over the limit. */
  fits: boolean;
  /** The largest part, in bytes. */
  largest: number;
}

/** The fewest parts (at most one item each) whose bodies are all at most `limit` bytes. */
export function splitToFit(body: Uint8Array, limit: number): FittedParts {
  const items = bodyItems(body);
  const count = Math.max(1, itemCount(items));
  const largestOf = (bodies: PartBody[]) => Math.max(...bodies.map((b) => b.body.length));
  // Grows by half each round (bounded: at most ~log1.5(count) rounds), up to one item a part.
  for (let parts = Math.min(count, Math.max(2, Math.ceil(body.length / Math.max(1, limit)))); ;) {
    const bodies = splitItems(items, parts);
    const largest = largestOf(bodies);
    if (largest <= limit) return { bodies, fits: true, largest };
    if (parts >= count) return { bodies, fits: false, largest };
    parts = Math.min(count, Math.ceil(parts * 1.5));
  }
}
