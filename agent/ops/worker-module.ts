/**
 * Start a worker thread from a module beside the caller. Built, the module is `<name>.js`;
 * under vitest/tsx the sources are `.ts`, which Worker does not transform, and Node 20
 * ignores `--import tsx` in a worker's execArgv — so a tiny eval'd bootstrap registers tsx's
 * loader inside the worker, then imports the module.
 */
import { Worker, type WorkerOptions } from 'node:worker_threads';

/** `callerUrl` is the caller's import.meta.url; `name` the module's file name without extension. */
export function startModuleWorker(callerUrl: string, name: string, options: WorkerOptions): Worker {
  if (callerUrl.endsWith('.ts')) {
    const url = new URL(`./${name}.ts`, callerUrl).href;
    const boot = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(url)}); })`;
    return new Worker(boot, { ...options, eval: true });
  }
  return new Worker(new URL(`./${name}.js`, callerUrl), options);
}
