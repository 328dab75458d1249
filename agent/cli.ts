#!/usr/bin/env node
/**
 * edge-agent command line: the process around agent/commands/dispatch.ts.
 * Exit codes: 0 ok, 1 runtime failure, 2 usage or config error.
 */
import { EXIT_FAILURE } from './commands/common.js';
import { runCli } from './commands/dispatch.js';

runCli(process.argv.slice(2), {
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
}).then(
  (code) => {
    process.exitCode = code;
    // Normally nothing is left and the process ends by itself; a handle some library keeps
    // open must not turn a finished command into a hang (systemd would SIGKILL it).
    setTimeout(() => process.exit(code), 1000).unref();
  },
  (err: unknown) => {
    process.stderr.write(`edge-agent: ${String(err)}\n`);
    process.exitCode = EXIT_FAILURE;
  },
);
