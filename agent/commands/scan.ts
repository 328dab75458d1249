/**
 * `edge-agent scan [--bus N] [--simulated]`: which I²C addresses answer, and the likely chip.
 */
import { formatIdentified, identifyI2CDevices } from '../../drivers/i2c/identify.js';
import { I2CBusOpenError, openI2CBus } from '../../drivers/i2c/shared-bus.js';
import type { I2CBus } from '../../drivers/types.js';
import { EXIT_FAILURE, EXIT_OK, numberOption, UsageError, type OptionValues } from './common.js';

export async function scanCommand(values: OptionValues): Promise<number> {
  const busNumber = numberOption(values, 'bus', 0, 255) ?? 1;
  if (!Number.isInteger(busNumber) || busNumber > 255) {
    throw new UsageError(`--bus must be a whole number 0..255, got "${String(values.bus)}"`);
  }
  const simulated = values.simulated === true;
  let bus: I2CBus;
  if (simulated) {
    const { createDefaultSimulatedI2CBus } = await import('../../simulator/i2c/default-bus.js');
    bus = createDefaultSimulatedI2CBus().bus;
  } else {
    try {
      bus = await openI2CBus(busNumber);
    } catch (err) {
      const message = err instanceof I2CBusOpenError ? err.message : String(err);
      process.stderr.write(`edge-agent scan: cannot open I²C bus ${busNumber}: ${message}\n`);
      return EXIT_FAILURE;
    }
  }
  try {
    const where = simulated ? 'simulated I²C bus' : `I²C bus ${busNumber} (/dev/i2c-${busNumber})`;
    const found = await identifyI2CDevices(bus);
    process.stdout.write(
      found.length === 0
        ? `${where}: no device answered\n`
        : `${where}: ${found.length} device(s)\n${found.map((d) => `  ${formatIdentified(d)}`).join('\n')}\n`,
    );
    return EXIT_OK;
  } catch (err) {
    process.stderr.write(`edge-agent scan: scanning failed: ${(err as Error).message}\n`);
    return EXIT_FAILURE;
  } finally {
    await bus.close().catch(() => undefined);
  }
}
