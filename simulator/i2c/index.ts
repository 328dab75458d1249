/** The register-level I²C simulator: bus, chip models, fault injection, default bus. */
export {
  SimulatedI2CBus,
  i2cErrnoError,
  type SimulatedI2CBusOptions,
  type TransferRecord,
  type TransferKind,
} from './bus.js';
export {
  SimulatedI2CDevice,
  Nack,
  I2C_FAULTS,
  type I2CFault,
  type FaultWindow,
  type ValueSource,
} from './device.js';
export { SimulatedTmp102, tmp102Raw } from './chips/tmp102.js';
export { SimulatedLm75, lm75Raw } from './chips/lm75.js';
export { SimulatedMcp9808, mcp9808Raw } from './chips/mcp9808.js';
export {
  SimulatedSht3x,
  sht3xFrame,
  sht3xRawHumidity,
  sht3xRawTemperature,
} from './chips/sht3x.js';
export {
  SimulatedSi7021,
  si7021Frame,
  si7021RawHumidity,
  si7021RawTemperature,
} from './chips/si7021.js';
export {
  SimulatedBme280,
  EXAMPLE_BME280_CALIBRATION,
  bme280CalibrationBytes,
} from './chips/bme280.js';
export {
  createDefaultSimulatedI2CBus,
  defaultSimulatedI2CSensors,
  type DefaultSimulatedI2CBus,
} from './default-bus.js';
export {
  createI2CSimulation,
  simulatedChipFor,
  type I2CSimulation,
  type I2CSimulationOptions,
} from './scenario.js';
