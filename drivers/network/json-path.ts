/**
 * The small path language of the http-json driver: dotted keys with [i] array indexes,
 * e.g. "data.temperature", "sensors[0].t", "[2].value", "a.b[1][0]". Keys are any
 * characters except ".", "[" and "]"; indexes are non-negative integers.
 */

export type JsonPath = readonly (string | number)[];

/** Parse a path; throws an Error naming the offending position when it is not valid. */
export function parseJsonPath(path: string): JsonPath {
  const out: (string | number)[] = [];
  let i = 0;
  const fail = (what: string): never => {
    throw new Error(`invalid JSON path "${path}" at ${i}: ${what}`);
  };
  if (path.length === 0) fail('empty path');
  while (i < path.length) {
    if (path[i] === '[') {
      const close = path.indexOf(']', i);
      if (close < 0) fail('missing "]"');
      const digits = path.slice(i + 1, close);
      if (!/^\d+$/.test(digits)) fail(`index "${digits}" is not a non-negative integer`);
      out.push(Number(digits));
      i = close + 1;
    } else {
      if (path[i] === '.') {
        if (out.length === 0) fail('path starts with "."');
        i++;
      }
      let end = i;
      while (end < path.length && !'.[]'.includes(path[end])) end++;
      if (end === i) fail('empty key');
      out.push(path.slice(i, end));
      i = end;
    }
    if (i < path.length && path[i] === ']') fail('unexpected "]"');
  }
  return out;
}

export type PathLookup = { found: true; value: unknown } | { found: false; reason: string };

/** The value at a parsed path, or why it is not there (for a clear fault message). */
export function valueAtPath(doc: unknown, path: JsonPath): PathLookup {
  let here: unknown = doc;
  let walked = '';
  for (const step of path) {
    const name = typeof step === 'number' ? `[${step}]` : walked === '' ? step : `.${step}`;
    if (typeof step === 'number') {
      if (!Array.isArray(here))
        return { found: false, reason: `${walked || 'body'} is not an array` };
      if (step >= here.length)
        return {
          found: false,
          reason: `${walked || 'body'} has ${here.length} elements, no ${name}`,
        };
      here = here[step];
    } else {
      if (here === null || typeof here !== 'object' || Array.isArray(here))
        return { found: false, reason: `${walked || 'body'} is not an object` };
      if (!Object.hasOwn(here, step)) return { found: false, reason: `no "${walked}${name}"` };
      here = (here as Record<string, unknown>)[step];
    }
    walked += name;
  }
  return { found: true, value: here };
}

/**
 * A JSON value as a reading: a finite number, or a string holding exactly one (some
 * devices quote their numbers). Anything else is undefined.
 */
export function numericValue(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
  if (typeof v === 'string' && /^\s*-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/.test(v)) {
    const n = Number(v);
    return Number.isFinite(n) ? n : undefined;
  }
  return undefined;
}
