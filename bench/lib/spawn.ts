/** Starts a bench worker module, from .ts sources (tsx) or the built .js. */
import { Worker } from 'node:worker_threads';

export function spawnWorker(url: URL, workerData: unknown): Worker {
  if (url.pathname.endsWith('.ts')) {
    // Node 20 ignores `--import tsx` in a worker's execArgv: register tsx inside the worker.
    const boot = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(url.href)}); })`;
    return new Worker(boot, { eval: true, workerData });
  }
  return new Worker(url, { workerData });
}

/** The sibling module of `from` named `name`, with the same extension (.ts or .js). */
export function sibling(name: string, from: string): URL {
  const ext = from.endsWith('.ts') ? '.ts' : '.js';
  return new URL(`./lib/${name}${ext}`, from);
}
