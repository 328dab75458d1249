/** A pino logger whose records a test can read: what the agent would have written to the journal. */
import { pino, type Logger } from 'pino';

export interface LogRecord {
  level: number;
  msg: string;
  [key: string]: unknown;
}

export interface CapturedLog {
  logger: Logger;
  /** Every record, parsed, in order (debug and up). */
  records: LogRecord[];
  /** The `msg` of every record. */
  messages(): string[];
  /** The raw JSON lines, joined. */
  text(): string;
}

export function capturingLogger(): CapturedLog {
  const lines: string[] = [];
  const records: LogRecord[] = [];
  const logger = pino(
    { level: 'debug' },
    {
      write: (line: string) => {
        lines.push(line);
        records.push(JSON.parse(line) as LogRecord);
      },
    },
  );
  return {
    logger,
    records,
    messages: () => records.map((r) => r.msg),
    text: () => lines.join(''),
  };
}
