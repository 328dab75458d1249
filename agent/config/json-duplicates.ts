/**
 * Keys that appear twice in one object of a JSON text. JSON.parse keeps the last one
 * silently; a config with two `gateway` keys is a mistake the user should hear about, as
 * YAML's parser already says. Runs on text JSON.parse has accepted, so it only needs to
 * follow strings, brackets and commas. Iterative (no recursion), so any nesting depth is safe.
 */

export interface DuplicateKey {
  path: PropertyKey[];
  /** 1-based position of the repeated key's opening quote. */
  line: number;
  column: number;
}

interface Frame {
  parent: Frame | undefined;
  /** The key or index under which this container sits in its parent. */
  segment: PropertyKey | undefined;
  kind: 'object' | 'array';
  keys: Set<string>;
  key: string | undefined;
  index: number;
  expectKey: boolean;
}

/** At most this many are reported; more than a screenful helps no one. */
const MAX_REPORTED = 50;

export function duplicateJsonKeys(text: string): DuplicateKey[] {
  const found: DuplicateKey[] = [];
  let top: Frame | undefined;
  let line = 1;
  let lineStart = 0;
  const open = (kind: Frame['kind']) => {
    const segment = top === undefined ? undefined : top.kind === 'object' ? top.key : top.index;
    top = {
      parent: top,
      segment,
      kind,
      keys: new Set(),
      key: undefined,
      index: 0,
      expectKey: kind === 'object',
    };
  };
  for (let i = 0; i < text.length && found.length < MAX_REPORTED; i++) {
    const c = text[i];
    if (c === '\n') {
      line++;
      lineStart = i + 1;
    } else if (c === '{') open('object');
    else if (c === '[') open('array');
    else if (c === '}' || c === ']') top = top?.parent;
    else if (c === ',' && top !== undefined) {
      if (top.kind === 'object') top.expectKey = true;
      else top.index++;
    } else if (c === '"') {
      let end = i + 1;
      while (end < text.length && text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      if (top?.kind === 'object' && top.expectKey) {
        const key = JSON.parse(text.slice(i, end + 1)) as string;
        if (top.keys.has(key)) {
          found.push({ path: [...pathOf(top), key], line, column: i - lineStart + 1 });
        }
        top.keys.add(key);
        top.key = key;
        top.expectKey = false;
      }
      i = end;
    }
  }
  return found;
}

function pathOf(frame: Frame): PropertyKey[] {
  const path: PropertyKey[] = [];
  for (let f: Frame | undefined = frame; f?.segment !== undefined; f = f.parent) {
    path.push(f.segment);
  }
  return path.reverse();
}
