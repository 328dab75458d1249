/**
 * Maps what an I²C transfer throws (errno errors from i2c-bus or the simulator, aborts) to
 * the SensorError codes counted in the health report.
 */
import { toSensorError } from '../rounds.js';
import { SensorError } from '../types.js';

export function i2cSensorError(err: unknown): SensorError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  // The adapter gave up on a stretched clock or a stuck line: the device did not answer in time.
  if (code === 'ETIMEDOUT')
    return new SensorError('TIMEOUT', 'I²C transfer timed out', { cause: err });
  return toSensorError(err, 'EIO');
}

/** Run a driver step, turning whatever it throws into a SensorError. */
export async function asSensorErrors<T>(step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    throw i2cSensorError(err);
  }
}
