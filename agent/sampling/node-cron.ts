/**
 * node-cron, loaded on first use and synchronously (its CommonJS build), so that a
 * configuration without a cron expression of its own never loads it: `run` with the default
 * health schedule and interval sensors does not (docs/benchmarks/footprint.md). Every use in
 * the agent goes through here, so there is one copy of the module and of its task registry.
 */
import { createRequire } from 'node:module';
import type { NodeCron } from 'node-cron';

let loaded: NodeCron | undefined;

export function nodeCron(): NodeCron {
  loaded ??= createRequire(import.meta.url)('node-cron') as NodeCron;
  return loaded;
}
