/**
 * The measured process of a process-level bench: node with the given arguments, its output
 * drained (a full pipe would block the agent's synchronous logger) and kept in part for error
 * messages, and a stop that escalates from SIGTERM to SIGKILL. Registered with the run kit's
 * cleanups, so it ends whatever happens to the bench.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { sleep } from '../../drivers/time.js';
import { cleanups } from './run-kit.js';

/** The service unit's environment for the agent (systemd/edge-agent.service). */
export const SERVICE_ENV = { UV_THREADPOOL_SIZE: '8', NODE_ENV: 'production', NO_COLOR: '1' };

export interface Spawned {
  child: ChildProcess;
  pid: number;
  exited: Promise<number | null>;
  output: () => string;
  /** SIGTERM, then SIGKILL after graceMs; the exit code, or 'killed'. */
  stop(graceMs?: number): Promise<number | null | 'killed'>;
}

export function spawnMeasured(
  args: string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv },
): Spawned {
  const child = spawn(process.execPath, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  // Always drain: a full pipe would block the agent's synchronous logger.
  const keep = (d: Buffer) => {
    out += d.toString();
    if (out.length > 100_000) out = out.slice(-50_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const gone = () => child.exitCode !== null || child.signalCode !== null;
  const s: Spawned = {
    child,
    pid: child.pid!,
    exited,
    output: () => out,
    async stop(graceMs = 30_000) {
      if (gone()) return child.exitCode;
      child.kill('SIGTERM');
      const code = await Promise.race([exited, sleep(graceMs).then(() => 'timeout' as const)]);
      if (code !== 'timeout') return code;
      child.kill('SIGKILL');
      await exited;
      return 'killed';
    },
  };
  cleanups.push(async () => void (await s.stop(5000)));
  return s;
}
