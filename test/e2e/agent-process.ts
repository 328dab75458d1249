/**
 * Drive the built CLI as a real child process: collect its JSON log lines, send it signals,
 * wait for its exit. Shared by the end-to-end tests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { waitUntil } from '../helpers/wait.js';

export const CLI = join(process.cwd(), 'dist/agent/cli.js');

export interface AgentProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Parsed pino JSON lines from stdout. */
  logs(): Array<Record<string, unknown>>;
  waitForLog(
    match: (line: Record<string, unknown>) => boolean,
    what: string,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal: NodeJS.Signals): void;
}

export function startAgent(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  /** Run as this user (tests of permissions, which root would bypass). */
  user?: { uid: number; gid: number },
): AgentProcess {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, NO_COLOR: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(user ?? {}),
  });
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const logs = () =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .flatMap((l) => {
        try {
          return [JSON.parse(l) as Record<string, unknown>];
        } catch {
          return [];
        }
      });
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    logs,
    async waitForLog(match, what, timeoutMs = 30_000) {
      let found: Record<string, unknown> | undefined;
      await waitUntil(
        () => {
          if (child.exitCode !== null)
            throw new Error(`agent exited (${child.exitCode}) before ${what}:\n${out}\n${err}`);
          found = logs().find(match);
          return found !== undefined;
        },
        { timeoutMs, what },
      );
      return found!;
    },
    exited: () => exit,
    kill: (signal) => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
  };
}

/** A telemetry payload as the tests read it. */
export interface TelemetryWindow {
  sensor: string;
  quantity: string;
  unit: string;
  count: number;
  faults: number;
  mean: number | null;
  min: number | null;
  max: number | null;
  /** Counts of flagged readings (docs/payload.md); present when any was flagged. */
  flags?: { range?: number; stuck?: number; spike?: number; powerOn?: number };
}
