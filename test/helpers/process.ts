/**
 * Child processes for tests: run a TypeScript entry with `node --import tsx`, collect its
 * output line by line, wait for a line, signal it, and always reap it in cleanup.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { waitUntil } from './wait.js';

export interface TestProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  lines(): string[];
  waitForLine(match: RegExp, timeoutMs?: number): Promise<string>;
  /** Resolves with the exit code (or the signal name) once the process is gone. */
  exited: Promise<number | string>;
  /** SIGKILL if still running; safe to call twice. */
  kill(signal?: NodeJS.Signals): Promise<number | string>;
}

export function runTs(
  entry: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): TestProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', entry, ...args], {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')),
  );
  const lines = () => out.split('\n').filter((l) => l.length > 0);
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    lines,
    exited,
    async waitForLine(match, timeoutMs = 30_000) {
      let found: string | undefined;
      await waitUntil(
        () => {
          found = lines().find((l) => match.test(l));
          if (!found && child.exitCode !== null) {
            throw new Error(
              `process exited (${child.exitCode}) before printing ${match}:\n${out}\n${err}`,
            );
          }
          return found !== undefined;
        },
        { timeoutMs, what: `a line matching ${match}` },
      );
      return found!;
    },
    async kill(signal = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
