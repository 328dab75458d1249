/**
 * pino JSON on stdout for journald; readable lines when stdout is a terminal. Secrets never
 * reach a log: known secret-bearing keys are redacted wherever they appear.
 */
import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export const REDACT_PATHS = [
  'password',
  '*.password',
  '*.*.password',
  'passwordFile',
  '*.passwordFile',
  'key',
  '*.key',
  '*.keyFile',
  'authorization',
  '*.authorization',
  '*.headers.authorization',
];

export function createLogger(
  level: LevelWithSilent = 'info',
  options: { pretty?: boolean } = {},
): Logger {
  const pretty =
    options.pretty ?? (process.stdout.isTTY === true && process.env.NO_COLOR === undefined);
  return pino({
    level,
    base: { pid: process.pid },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    ...(pretty
      ? {
          transport: {
            target: 'pino-pretty',
            options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' },
          },
        }
      : {}),
  });
}

/** A logger that discards everything, for tests and library use. */
export const silentLogger: Logger = pino({ level: 'silent' });
