/**
 * Reading and validating a config file. Every problem is reported, each as one line
 * `path.to.field: what is wrong`; callers never see a stack trace for a user's mistake.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { extname } from 'node:path';
import { isUtf8 } from 'node:buffer';
import {
  isAlias,
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  type Document,
} from 'yaml';
import type { z } from 'zod';
import { humanize, MIB } from '../../drivers/config/bounds.js';
import { describeValue, quote } from '../../drivers/config/describe-value.js';
import { duplicateJsonKeys } from './json-duplicates.js';
import { resolveConfigPaths } from './paths.js';
import { DRIVER_NAMES } from '../../drivers/registry.js';
import { configSchema, crossChecks, type Config, type ConfigInput } from './schema.js';

/** A config is a few KiB; a file this large is the wrong file, and parsing it costs memory. */
export const MAX_CONFIG_BYTES = 4 * MIB;
/**
 * YAML alias expansions allowed (yaml's maxAliasCount: aliases weighted by the size of what
 * they repeat). Room for a template reused on thousands of sensors; a "billion laughs" file
 * (aliases of aliases, growing exponentially) exceeds it after a few levels.
 */
export const MAX_YAML_ALIASES = 10_000;
/** More syntax errors than this are one broken file; the first ones say enough. */
const MAX_SYNTAX_LINES = 10;
/** A config with thousands of problems is listed up to here, then counted. */
const MAX_PROBLEM_LINES = 200;
const MAX_LINE_CHARS = 300;

export class ConfigError extends Error {
  readonly problems: string[];
  constructor(
    problems: string[],
    readonly source: string,
  ) {
    const lines = problems.slice(0, MAX_PROBLEM_LINES).map(oneLine);
    if (problems.length > MAX_PROBLEM_LINES) {
      lines.push(`… and ${problems.length - MAX_PROBLEM_LINES} more problems`);
    }
    super(`${source}: invalid configuration\n${lines.join('\n')}`);
    this.name = 'ConfigError';
    this.problems = lines;
  }
}

/** One printable line: control characters escaped, long lines cut. */
function oneLine(text: string): string {
  // eslint-disable-next-line no-control-regex
  const printable = text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) =>
    c === '\t' ? ' ' : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  return printable.length > MAX_LINE_CHARS ? `${printable.slice(0, MAX_LINE_CHARS)}…` : printable;
}

/** A path segment that reads plainly as `.name`; anything else is shown quoted, `["a b"]`. */
const PLAIN_KEY = /^[A-Za-z_$][A-Za-z0-9_$-]*$/;

/** `sensors[2].address` from ['sensors', 2, 'address']. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (typeof seg === 'string' && PLAIN_KEY.test(seg)) {
      out += out === '' ? seg : `.${seg}`;
    } else out += `[${quote(String(seg))}]`;
  }
  return out === '' ? '(root)' : out;
}

const article = (word: string) => (/^[aeiou]/.test(word) ? `an ${word}` : `a ${word}`);

/** One line per zod issue, unions unpacked into the branch the user meant. */
function issueLines(issues: readonly z.core.$ZodIssue[], input: unknown): string[] {
  const lines: string[] = [];
  for (const iss of issues) {
    const where = formatPath(iss.path);
    switch (iss.code) {
      case 'unrecognized_keys':
        for (const key of iss.keys) {
          lines.push(`${formatPath([...iss.path, key])}: unknown key (check the spelling)`);
        }
        break;
      case 'invalid_union': {
        // A discriminated union with an unknown or missing `driver`.
        const discriminator = (iss as { discriminator?: string }).discriminator;
        if (discriminator === 'driver' || iss.path.at(-1) === 'driver') {
          const path = iss.path.at(-1) === 'driver' ? iss.path : [...iss.path, 'driver'];
          const got = valueAt(input, path);
          const known = `known drivers: ${DRIVER_NAMES.join(', ')}`;
          lines.push(
            got === undefined
              ? `${formatPath(path)}: missing; ${known}`
              : `${formatPath(path)}: unknown driver ${describeValue(got)}; ${known}`,
          );
        } else lines.push(`${where}: ${iss.message}`);
        break;
      }
      case 'invalid_type': {
        const got = valueAt(input, iss.path);
        lines.push(`${where}: ${typeProblem(iss.expected, got, shown(iss.path))}`);
        break;
      }
      case 'invalid_value':
        lines.push(
          `${where}: must be one of ${iss.values.map((v) => JSON.stringify(v)).join(', ')}, got ${shown(iss.path)(valueAt(input, iss.path))}`,
        );
        break;
      case 'too_small':
      case 'too_big':
      case 'invalid_format':
        lines.push(
          `${where}: ${sizeOrFormatProblem(iss, valueAt(input, iss.path), shown(iss.path))}`,
        );
        break;
      default:
        lines.push(`${where}: ${iss.message}`);
    }
  }
  return lines;
}

/** Keys whose value may be a secret pasted in the wrong place: never echoed to a log. */
const SECRET_KEY = /pass(word)?|secret|token|credential/i;

/** How a value at this path is shown in a problem line. */
function shown(path: readonly PropertyKey[]): (value: unknown) => string {
  return SECRET_KEY.test(String(path.at(-1) ?? ''))
    ? () => 'a value not repeated here (it may be a secret)'
    : describeValue;
}

function typeProblem(expected: string, got: unknown, show: (value: unknown) => string): string {
  if (got === undefined) return `required (${expected === 'int' ? 'number' : expected})`;
  if (typeof got === 'number' && (expected === 'int' || expected === 'number')) {
    return Number.isFinite(got)
      ? `must be a whole number, got ${got}`
      : `must be a finite number, got ${got}`;
  }
  const what = expected === 'int' ? 'number' : expected;
  return `must be ${article(what)}, got ${show(got)}`;
}

/** zod's own wording ("Too small: expected string to have >=1 characters") in ours. */
function sizeOrFormatProblem(
  iss: z.core.$ZodIssue,
  got: unknown,
  show: (value: unknown) => string,
): string {
  if (!/^(Too small|Too big|Invalid string)/.test(iss.message)) return iss.message;
  const { origin, minimum, maximum } = iss as {
    origin?: string;
    minimum?: unknown;
    maximum?: unknown;
  };
  if (iss.code === 'invalid_format') {
    const pattern = (iss as { pattern?: string }).pattern;
    return `must match ${pattern ?? (iss as { format?: string }).format ?? 'the expected format'}, got ${show(got)}`;
  }
  if (origin === 'string') {
    if (iss.code === 'too_small') {
      return Number(minimum) <= 1
        ? 'must not be empty'
        : `must be at least ${String(minimum)} characters`;
    }
    return `must be at most ${String(maximum)} characters`;
  }
  if (origin === 'array') {
    return iss.code === 'too_small'
      ? `must hold at least ${String(minimum)} entries`
      : `must hold at most ${String(maximum)} entries`;
  }
  return iss.code === 'too_small'
    ? `must be at least ${String(minimum)}, got ${show(got)}`
    : `must be at most ${String(maximum)}, got ${show(got)}`;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let cur: unknown = root;
  for (const seg of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[seg];
  }
  return cur;
}

/** Parse YAML or JSON text; syntax errors name line and column. */
export function parseConfigText(text: string, source: string): unknown {
  // A byte order mark is legal at the start of a UTF-8 file; neither parser wants it.
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  if (body.trim() === '') throw emptyFile(source);
  return extname(source).toLowerCase() === '.json'
    ? parseJson(body, source)
    : parseYaml(body, source);
}

function emptyFile(source: string): ConfigError {
  return new ConfigError(
    ['(file): empty; a configuration needs at least `gateway: { id: <name> }`'],
    source,
  );
}

function parseJson(text: string, source: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text) as unknown;
  } catch (err) {
    throw new ConfigError([`(syntax): ${parserMessage(err)}`], source);
  }
  const duplicates = duplicateJsonKeys(text);
  if (duplicates.length > 0) {
    throw new ConfigError(
      duplicates.map(
        (d) =>
          `${formatPath(d.path)}: duplicate key (line ${d.line}, column ${d.column}); each key may appear once`,
      ),
      source,
    );
  }
  return value;
}

function parseYaml(text: string, source: string): unknown {
  const lineCounter = new LineCounter();
  let doc: Document.Parsed;
  try {
    // Merge keys (`<<: *template`) are how YAML users reuse a sensor template.
    doc = parseDocument(text, {
      lineCounter,
      prettyErrors: false,
      uniqueKeys: false,
      merge: true,
      // Problems become lines of the ConfigError; nothing goes to the process's warnings.
      logLevel: 'error',
    });
  } catch (err) {
    throw new ConfigError([`(file): cannot parse the YAML: ${parserMessage(err)}`], source);
  }
  if (doc.errors.length > 0) {
    throw new ConfigError(
      syntaxLines(
        doc.errors.map((e) => ({ pos: lineCounter.linePos(e.pos[0]), message: e.message })),
      ),
      source,
    );
  }
  if (doc.contents === null) throw emptyFile(source);
  const duplicates = duplicateYamlKeys(doc).map(({ path, offset }) => {
    const pos = lineCounter.linePos(offset);
    return `${formatPath(path)}: duplicate key (line ${pos.line}, column ${pos.col}); each key may appear once`;
  });
  if (duplicates.length > 0) throw new ConfigError(duplicates, source);
  try {
    return doc.toJS({ maxAliasCount: MAX_YAML_ALIASES }) as unknown;
  } catch (err) {
    if (err instanceof ReferenceError && /alias/i.test(err.message)) {
      throw new ConfigError(
        [
          `(file): aliases expand to more than ${MAX_YAML_ALIASES} nodes (aliases of aliases grow exponentially); write the values out or reuse fewer levels of aliases`,
        ],
        source,
      );
    }
    throw new ConfigError([`(file): cannot read the YAML: ${parserMessage(err)}`], source);
  }
}

/** Lines of a file shown for one syntax message said on several; the rest are counted. */
const MAX_REPEAT_LINES = 5;

/**
 * One line per distinct syntax message, at its first position: a file that is not YAML
 * breaks the same rule on many lines (tabs, `key value`), and the rule is said once, with the
 * other lines where it is broken.
 */
function syntaxLines(
  errors: ReadonlyArray<{ pos: { line: number; col: number }; message: string }>,
): string[] {
  const byMessage = new Map<string, { line: number; col: number; more: number[] }>();
  for (const { pos, message: raw } of errors) {
    const message = /call stack/i.test(raw)
      ? 'nested too deeply (a configuration is a few levels deep)'
      : raw.split('\n')[0];
    const seen = byMessage.get(message);
    if (seen === undefined) byMessage.set(message, { line: pos.line, col: pos.col, more: [] });
    else if (pos.line !== seen.line && !seen.more.includes(pos.line)) seen.more.push(pos.line);
  }
  const lines = [...byMessage].slice(0, MAX_SYNTAX_LINES).map(([message, { line, col, more }]) => {
    const shown = more.slice(0, MAX_REPEAT_LINES).join(', ');
    const rest =
      more.length > MAX_REPEAT_LINES ? ` and ${more.length - MAX_REPEAT_LINES} more` : '';
    const also =
      more.length === 0 ? '' : ` (also on line${more.length > 1 ? 's' : ''} ${shown}${rest})`;
    return `(syntax) line ${line}, column ${col}: ${message}${also}`;
  });
  if (byMessage.size > MAX_SYNTAX_LINES) {
    lines.push(`(syntax) … and ${byMessage.size - MAX_SYNTAX_LINES} more kinds of syntax error`);
  }
  return lines;
}

/** A parser's message without its class name; deep nesting named as such. */
function parserMessage(err: unknown): string {
  if (err instanceof RangeError && /call stack/i.test(err.message)) {
    return 'nested too deeply (a configuration is a few levels deep)';
  }
  return err instanceof Error ? err.message.split('\n')[0] : String(err);
}

/**
 * Explicit keys repeated in one YAML mapping, with their path and offset. Keys brought in by
 * a merge (`<<`) may be overridden; only keys written twice are refused. Iterative, so deep
 * nesting cannot overflow the stack.
 */
function duplicateYamlKeys(doc: Document.Parsed): Array<{ path: PropertyKey[]; offset: number }> {
  const found: Array<{ path: PropertyKey[]; offset: number }> = [];
  const stack: Array<{ node: unknown; path: PropertyKey[] }> = [{ node: doc.contents, path: [] }];
  for (let visited = 0; stack.length > 0 && found.length < 50; visited++) {
    const { node, path } = stack.pop()!;
    if (isAlias(node)) continue;
    if (isSeq(node)) {
      node.items.forEach((item, i) => stack.push({ node: item, path: [...path, i] }));
    } else if (isMap(node)) {
      const seen = new Set<string>();
      for (const pair of node.items) {
        if (!isPair(pair)) continue;
        const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
        if (key !== '<<' && seen.has(key)) {
          found.push({
            path: [...path, key],
            offset: isScalar(pair.key) ? (pair.key.range?.[0] ?? 0) : 0,
          });
        }
        seen.add(key);
        stack.push({ node: pair.value, path: [...path, key] });
      }
    }
  }
  return found.sort((a, b) => a.offset - b.offset);
}

/** Validate an already-parsed object. */
export function validateConfig(input: unknown, source = '(config)'): Config {
  const root = input === undefined ? {} : input;
  if (root === null || typeof root !== 'object' || Array.isArray(root)) {
    throw new ConfigError(
      [`(root): must be a mapping of keys (gateway, mqtt, sensors, …), got ${describeValue(root)}`],
      source,
    );
  }
  const result = configSchema.safeParse(root);
  const problems = result.success ? [] : issueLines(result.error.issues, root);
  for (const c of crossChecks(result.success ? result.data : root)) {
    problems.push(`${formatPath(c.path)}: ${c.message}`);
  }
  if (!result.success || problems.length > 0) throw new ConfigError(problems, source);
  return result.data;
}

/**
 * Valid but probably not meant: said on stderr by check-config and logged by run, never an
 * error (a gateway may be set up before its sensors are wired).
 */
export function configWarnings(config: Config): string[] {
  const warnings: string[] = [];
  if (!config.sensors.some((s) => s.enabled)) {
    warnings.push(
      'sensors: no enabled sensors; the agent will publish only status and health (add a sensor, or set enabled: true)',
    );
  }
  return warnings;
}

/** Read, parse and validate a file; relative paths in it are resolved against its directory. */
export function loadConfigFile(file: string): Config {
  return resolveConfigPaths(
    validateConfig(parseConfigText(readConfigText(file), file), file),
    file,
  );
}

/** The file as UTF-8 text, or a ConfigError naming why it cannot be one. */
export function readConfigText(file: string): string {
  const bytes = readBounded(file);
  if (!isUtf8(bytes)) {
    const utf16 =
      (bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff);
    if (utf16) {
      throw new ConfigError(
        ['(file): UTF-16 text (a Windows editor?); save the file as UTF-8'],
        file,
      );
    }
    const offset = firstInvalidUtf8(bytes);
    throw new ConfigError(
      [
        `(file): not UTF-8 text (byte 0x${bytes[offset].toString(16).padStart(2, '0')} at offset ${offset}); save the file as UTF-8`,
      ],
      file,
    );
  }
  return bytes.toString('utf8');
}

const FILE_ERRORS: Record<string, string> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied (the agent must be able to read it)',
  EISDIR: 'is a directory; give the path of a YAML or JSON file',
  ENOTDIR: 'a part of the path is not a directory',
  ELOOP: 'too many symbolic links',
};

/** Reads at most MAX_CONFIG_BYTES + 1 bytes, so neither a huge file nor a device is slurped. */
function readBounded(file: string): Buffer {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    throw fileError(file, err);
  }
  try {
    if (fstatSync(fd).isDirectory()) throw fileError(file, { code: 'EISDIR' });
    const buffer = Buffer.alloc(MAX_CONFIG_BYTES + 1);
    let length = 0;
    // Each pass reads at least one byte or ends: bounded by the buffer's size.
    while (length < buffer.length) {
      const n = readSync(fd, buffer, length, buffer.length - length, null);
      if (n === 0) break;
      length += n;
    }
    if (length > MAX_CONFIG_BYTES) {
      throw new ConfigError(
        [
          `(file): ${file} is larger than ${humanize(MAX_CONFIG_BYTES, 'bytes')}; a configuration is a few KiB (is this the right file?)`,
        ],
        file,
      );
    }
    return buffer.subarray(0, length);
  } catch (err) {
    throw err instanceof ConfigError ? err : fileError(file, err);
  } finally {
    closeSync(fd);
  }
}

function fileError(file: string, err: unknown): ConfigError {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  const what = FILE_ERRORS[code] ?? (err as Error).message ?? String(err);
  return new ConfigError([`(file): cannot read ${file}: ${what}${code ? ` (${code})` : ''}`], file);
}

/** Offset of the first byte that breaks UTF-8 (a U+FFFD the file itself holds is skipped). */
function firstInvalidUtf8(bytes: Buffer): number {
  const text = bytes.toString('utf8');
  let from = 0;
  for (let guard = 0; guard < bytes.length; guard++) {
    const index = text.indexOf('\uFFFD', from);
    if (index < 0) break;
    const offset = Buffer.byteLength(text.slice(0, index));
    const legit =
      bytes[offset] === 0xef && bytes[offset + 1] === 0xbf && bytes[offset + 2] === 0xbd;
    if (!legit) return offset;
    from = index + 1;
  }
  return 0;
}

export type { Config, ConfigInput };
