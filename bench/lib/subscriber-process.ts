/**
 * A benchmark's MQTT subscriber in a process of its own, so its CPU and memory are not the
 * measured side's. `source` is an ES module run with `node -e`: it prints "ready" once
 * subscribed, then JSON tallies (one object per line, merged into `tally`), and exits when
 * its stdin ends.
 */
import { spawn } from 'node:child_process';
import { sleep } from '../../drivers/time.js';

/** Poll cond every 20 ms; false when timeoutMs passed first. */
export async function until(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await sleep(20);
  }
  return true;
}

export async function subscriberProcess<T extends object>(
  source: string,
  args: string[],
  tally: T,
): Promise<{ tally: T; close: () => Promise<void> }> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', source, ...args], {
    stdio: ['pipe', 'pipe', 'inherit'],
    cwd: process.cwd(),
  });
  let buffered = '';
  let ready = false;
  child.stdout!.on('data', (d: Buffer) => {
    buffered += d.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const line of lines) {
      if (line === 'ready') ready = true;
      else if (line.startsWith('{')) Object.assign(tally, JSON.parse(line) as Partial<T>);
    }
  });
  if (!(await until(() => ready, 30_000))) {
    child.kill('SIGKILL');
    throw new Error('the subscriber process did not subscribe within 30 s');
  }
  return {
    tally,
    close: async () => {
      const gone = new Promise((r) => child.once('exit', r));
      child.stdin!.end();
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await gone;
      clearTimeout(t);
    },
  };
}
