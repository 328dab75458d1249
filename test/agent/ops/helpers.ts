/** Test helpers for agent/ops: log capture (the notify listener is test/helpers/notify-socket.ts). */
import { pino, type Logger } from 'pino';

export interface CapturedLog {
  logger: Logger;
  lines: Array<Record<string, unknown>>;
  messages(): string[];
}

/** A pino logger whose JSON lines are kept in memory. */
export function captureLogger(): CapturedLog {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino(
    { level: 'debug' },
    {
      write(chunk: string) {
        lines.push(JSON.parse(chunk) as Record<string, unknown>);
      },
    },
  );
  return { logger, lines, messages: () => lines.map((l) => String(l.msg)) };
}
