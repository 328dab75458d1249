/**
 * The part of GJSON path syntax (github.com/tidwall/gjson, SYNTAX.md) that docs/examples/
 * telegraf.conf uses, evaluated the way gjson does: dot-separated keys, `\.` to escape a dot
 * in a key, a number as an array index, and `#` (alone: the array's length; followed by
 * more path: that path applied to every element). Anything else — wildcards, queries
 * `#(...)`, modifiers `@`, pipes — is refused with an error naming the path, so a config that
 * starts using it makes the test fail until this evaluator learns it, instead of passing
 * unchecked.
 */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** What a path found: `exists: false` is gjson's "no result" (telegraf: "the path … doesn't exist"). */
export type GjsonResult = { exists: false } | { exists: true; value: Json };

/** The path split into its components; throws on syntax outside the supported subset. */
export function gjsonComponents(path: string): string[] {
  if (path === '') throw new Error('GJSON path is empty');
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < path.length; i++) {
    const c = path[i];
    if (c === '\\' && i + 1 < path.length) {
      current += path[++i];
    } else if (c === '.') {
      parts.push(current);
      current = '';
    } else if ('*?|@!=<>()[]{},'.includes(c)) {
      throw new Error(
        `GJSON path "${path}": "${c}" is outside the subset test/consumers/gjson.ts evaluates`,
      );
    } else {
      current += c;
    }
  }
  parts.push(current);
  if (parts.some((p) => p === '')) throw new Error(`GJSON path "${path}" has an empty component`);
  return parts;
}

function isObject(v: Json | undefined): v is { [key: string]: Json } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function walk(value: Json, parts: string[]): GjsonResult {
  if (parts.length === 0) return { exists: true, value };
  const [head, ...rest] = parts;
  if (head === '#') {
    if (!Array.isArray(value)) return { exists: false };
    if (rest.length === 0) return { exists: true, value: value.length };
    const found: Json[] = [];
    for (const element of value) {
      const r = walk(element, rest);
      if (r.exists) found.push(r.value);
    }
    return { exists: true, value: found };
  }
  if (Array.isArray(value)) {
    if (!/^\d+$/.test(head)) return { exists: false };
    const index = Number(head);
    return index < value.length ? walk(value[index], rest) : { exists: false };
  }
  if (isObject(value) && Object.prototype.hasOwnProperty.call(value, head)) {
    return walk(value[head], rest);
  }
  return { exists: false };
}

/** gjson.Get(document, path) for the supported subset. */
export function gjsonGet(document: Json, path: string): GjsonResult {
  return walk(document, gjsonComponents(path));
}
