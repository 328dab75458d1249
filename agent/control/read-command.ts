/**
 * `read`: one sensor read now through its running driver, within a timeout (the sensor's
 * round timeout unless the request gives one); answers the measurements, or fails with the
 * driver's error code and message. The read runs beside the sampler's own rounds: on a
 * shared bus it takes its turn for the wire like any round, and a chip that is still busy
 * with the sampler's conversion may answer it with an error.
 */
import { z } from 'zod';
import { ReadingStatus, SensorError } from '../../drivers/types.js';
import { CommandRefused, type Command } from './command.js';
import type { AgentControl } from './agent-control.js';

/** Longest timeout a request may ask for. */
const MAX_READ_TIMEOUT_MS = 60_000;

const readArgs = z.strictObject({
  sensor: z.string().min(1).max(256),
  timeoutMs: z.number().int().min(1).max(MAX_READ_TIMEOUT_MS).optional(),
});
const STATUS_NAMES: Record<ReadingStatus, string> = { 0: 'ok', 1: 'suspect', 2: 'fault' };

export type ReadArgs = z.infer<typeof readArgs>;

export interface ReadAnswer {
  sensor: string;
  /** When the measurement ended, ms since the epoch. */
  t: number;
  measurements: Array<{ quantity: string; value: number; status: string }>;
}

export function readCommand(agent: AgentControl): Command<ReadArgs> {
  return {
    name: 'read',
    summary: 'read one sensor now: {"sensor": ID, "timeoutMs"?: N}',
    args: readArgs,
    run: async ({ sensor, timeoutMs }): Promise<ReadAnswer> => {
      const found = agent.sensor(sensor);
      if (!found) {
        const known = agent
          .config()
          .sensors.filter((s) => s.enabled)
          .map((s) => s.id);
        throw new CommandRefused(
          `no enabled sensor ${JSON.stringify(sensor)}; enabled: ${known.slice(0, 50).join(', ') || 'none'}`,
        );
      }
      const ms = timeoutMs ?? found.timeoutMs;
      try {
        const measurements = await withinTimeout(found.driver.measure(AbortSignal.timeout(ms)), ms);
        return {
          sensor,
          t: Date.now(),
          measurements: measurements.map((m) => ({
            quantity: m.quantity,
            value: m.value,
            status: STATUS_NAMES[m.status ?? ReadingStatus.Ok],
          })),
        };
      } catch (err) {
        if (err instanceof SensorError) throw new Error(`${sensor}: ${err.code}: ${err.message}`);
        if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) {
          throw new Error(`${sensor}: TIMEOUT: no answer within ${ms} ms`);
        }
        throw new Error(`${sensor}: ${err instanceof Error ? err.message : String(err)}`);
      }
    },
  };
}

/** The driver's promise, or a TimeoutError once `ms` passed even if it ignores its signal. */
function withinTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = new Error(`no answer within ${ms} ms`);
      err.name = 'TimeoutError';
      reject(err);
    }, ms);
  });
  // A rejection after the timeout won is nobody's to handle.
  work.catch(() => undefined);
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}
