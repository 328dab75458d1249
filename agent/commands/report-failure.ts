/**
 * What the user reads when a command fails, and its exit code: 2 for their configuration or
 * command line, 1 for the environment (a port in use, a directory it may not write, a file
 * it cannot read), each as plain lines naming what to change. Only a bug in the agent itself
 * keeps its stack trace, marked as such, because that is what a bug report needs.
 */
import { ConfigError } from '../config/load.js';
import { EXIT_FAILURE, EXIT_USAGE, UsageError } from './common.js';

/** Errors the agent raises for faults an operator fixes; their message says how. */
const OPERATOR_ERRORS = new Set([
  'SpoolInUseError',
  'ControlSocketInUse',
  'MqttSetupError',
  'I2CBusOpenError',
  'MetricsListenError',
  'StateDirError',
  'RemoteConnectError',
]);

export interface Failure {
  code: number;
  /** Complete lines, each ending in a newline. */
  text: string;
}

export function describeFailure(err: unknown, command: string, usage: string): Failure {
  if (err instanceof ConfigError) {
    return {
      code: EXIT_USAGE,
      text: `${err.source}: invalid configuration\n${err.problems.join('\n')}\n`,
    };
  }
  if (err instanceof UsageError) {
    return { code: EXIT_USAGE, text: `edge-agent ${command}: ${err.message}\nusage: ${usage}\n` };
  }
  const e = err instanceof Error ? err : new Error(String(err));
  if (OPERATOR_ERRORS.has(e.name)) {
    return { code: EXIT_FAILURE, text: `edge-agent ${command}: ${firstLine(e.message)}\n` };
  }
  const environment = environmentFault(e);
  if (environment !== undefined) {
    return { code: EXIT_FAILURE, text: `edge-agent ${command}: ${environment}\n` };
  }
  return {
    code: EXIT_FAILURE,
    text: `edge-agent ${command}: internal error (a bug; please report it with this output)\n${e.stack ?? e.message}\n`,
  };
}

/** A system call or SQLite refusing (EACCES, ENOSPC, SQLITE_CANTOPEN …), as one line. */
function environmentFault(e: Error): string | undefined {
  const { code, syscall } = e as NodeJS.ErrnoException;
  if (e.name === 'SqliteError') {
    return `spool database: ${firstLine(e.message)}${code ? ` (${code})` : ''}`;
  }
  if (typeof syscall === 'string' || (typeof code === 'string' && /^E[A-Z0-9_]+$/.test(code))) {
    return firstLine(e.message);
  }
  return undefined;
}

function firstLine(text: string): string {
  return text.split('\n')[0];
}
