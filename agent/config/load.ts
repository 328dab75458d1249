/**
 * Reading and validating a config file. Every problem is reported, each as one line
 * `path.to.field: what is wrong`; callers never see a stack trace for a user's mistake.
 */
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parseDocument, LineCounter } from 'yaml';
import type { z } from 'zod';
import {
  configSchema,
  crossChecks,
  DRIVER_NAMES,
  type Config,
  type ConfigInput,
} from './schema.js';

export class ConfigError extends Error {
  constructor(
    readonly problems: string[],
    readonly source: string,
  ) {
    super(`${source}: invalid configuration\n${problems.join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** `sensors[2].address` from ['sensors', 2, 'address']. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? String(seg) : `.${String(seg)}`;
  }
  return out === '' ? '(root)' : out;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'string') return `"${value}"`;
  if (typeof value === 'object') return 'an object';
  return String(value);
}

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
              : `${formatPath(path)}: unknown driver ${describe(got)}; ${known}`,
          );
        } else lines.push(`${where}: ${iss.message}`);
        break;
      }
      case 'invalid_type': {
        const got = valueAt(input, iss.path);
        lines.push(
          got === undefined
            ? `${where}: required (${iss.expected})`
            : `${where}: must be ${iss.expected === 'number' || iss.expected === 'int' ? 'a number' : `a ${iss.expected}`}, got ${describe(got)}`,
        );
        break;
      }
      case 'invalid_value':
        lines.push(
          `${where}: must be one of ${iss.values.map((v) => JSON.stringify(v)).join(', ')}, got ${describe(valueAt(input, iss.path))}`,
        );
        break;
      default:
        lines.push(`${where}: ${iss.message}`);
    }
  }
  return lines;
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
  if (extname(source).toLowerCase() === '.json') {
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw new ConfigError([`(syntax): ${(err as Error).message}`], source);
    }
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) => {
        const pos = lineCounter.linePos(e.pos[0]);
        return `(syntax) line ${pos.line}, column ${pos.col}: ${e.message.split('\n')[0]}`;
      }),
      source,
    );
  }
  return doc.toJS() as unknown;
}

/** Validate an already-parsed object. */
export function validateConfig(input: unknown, source = '(config)'): Config {
  const result = configSchema.safeParse(input ?? {});
  const problems = result.success ? [] : issueLines(result.error.issues, input);
  for (const c of crossChecks(result.success ? result.data : input)) {
    problems.push(`${formatPath(c.path)}: ${c.message}`);
  }
  if (!result.success || problems.length > 0) throw new ConfigError(problems, source);
  return result.data;
}

export function loadConfigFile(file: string): Config {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(
      [
        `(file): cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      ],
      file,
    );
  }
  return validateConfig(parseConfigText(text, file), file);
}

export type { Config, ConfigInput };
