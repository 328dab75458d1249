/**
 * The seams between drivers and the world. A driver never opens hardware itself: it is
 * handed an I2CBus, a serial port stream, a sysfs root or a host/port. Real hardware and
 * the simulator provide the same seams, so every driver's real code runs in tests.
 */

/** Physical quantities the agent knows, with their SenML unit names (payload `unit`). */
export const QUANTITIES = ['temperature', 'humidity', 'pressure'] as const;
export type Quantity = (typeof QUANTITIES)[number];
export const UNITS: Readonly<Record<Quantity, string>> = {
  temperature: 'Cel',
  humidity: '%RH',
  pressure: 'Pa',
};
/** Numeric code of a quantity in a ring-buffer record. */
export const quantityCode = (q: Quantity): number => QUANTITIES.indexOf(q);

/**
 * Status of one reading. `Fault` readings carry no usable value (NaN): they travel through
 * the ring so the worker counts them in the window. `Suspect` marks a value the chip gives
 * when it did not measure (the DS18B20 85 °C power-on value): it is counted in the window's
 * `flags.powerOn` and is never part of its statistics (count, min, max, mean, stddev, last).
 * The driver is the only judge of it.
 */
export const ReadingStatus = { Ok: 0, Suspect: 1, Fault: 2 } as const;
export type ReadingStatus = (typeof ReadingStatus)[keyof typeof ReadingStatus];

/** One sample of one quantity of one sensor, as it enters the ring buffer. */
export interface Reading {
  /** Configured sensor id (an MQTT-safe name). */
  sensor: string;
  quantity: Quantity;
  /** Wall-clock time of the sample, ms since the epoch. */
  t: number;
  value: number;
  status: ReadingStatus;
}

/** What one measurement round of a driver returns, before sensor id and time are attached. */
export interface Measurement {
  quantity: Quantity;
  value: number;
  /** Defaults to Ok. */
  status?: ReadingStatus;
}

/**
 * Where a result goes instead of a promise: exactly one of the two is called, once (possibly
 * before the call that was given the sink returns), with what the promise would resolve or
 * reject with.
 */
export interface ResultSink<T> {
  measured(value: T): void;
  failed(err: unknown): void;
}

/** Where Driver.measureInto() puts a round's result. */
export type MeasureSink = ResultSink<Measurement[]>;

/**
 * A driver instance bound to one sensor. `measure` performs one complete round — start a
 * conversion, wait for it, read, check CRC, convert — and either resolves with measurements
 * or rejects with a SensorError. Retrying, backoff, timeouts and turning the rounds into an
 * async generator of Readings are done once, for every driver, in drivers/rounds.ts.
 */
export interface Driver {
  /** Registry name, e.g. "tmp102". */
  readonly kind: string;
  /** Quantities this sensor reports. */
  readonly quantities: readonly Quantity[];
  /**
   * Shared resource this sensor takes turns on (one I²C bus, one RS-485 line), e.g.
   * "i2c:1" or "serial:/dev/ttyUSB0"; undefined for independent (network) sensors.
   */
  readonly resource?: string;
  /** Probe / configure the device. Called before the first round and after a reopen. */
  open?(signal: AbortSignal): Promise<void>;
  measure(signal: AbortSignal): Promise<Measurement[]>;
  /**
   * Optional: measure() handing its result to `sink` instead of a promise, for drivers the
   * agent runs by the thousand (Modbus TCP): a round then holds no promise of the driver's
   * while it waits on the device. Same contract as measure() otherwise; the round engine
   * uses it once the device is open.
   */
  measureInto?(signal: AbortSignal, sink: MeasureSink): void;
  /** Release handles; the next open() must work again (unplug → replug). */
  close?(): Promise<void>;
}

/** Why a round failed; `code` is counted per sensor in the health report. */
export type SensorErrorCode =
  | 'EIO' // bus I/O error (EIO / EREMOTEIO on the Pi)
  | 'NACK' // device did not acknowledge
  | 'CRC' // checksum mismatch
  | 'TIMEOUT' // no answer in time
  | 'DISCONNECTED' // serial adapter unplugged, connection refused, sysfs entry gone
  | 'PROTOCOL' // malformed frame, exception reply, unparsable line or JSON
  | 'DEVICE'; // device reported an error of its own (ID mismatch, Err line, w1 NO)

export class SensorError extends Error {
  constructor(
    readonly code: SensorErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'SensorError';
  }
}

/**
 * The subset of i2c-bus's PromisifiedBus that drivers use. On hardware it is
 * `i2cBus.openPromisified(n)`; simulator/i2c provides the same interface.
 */
export interface I2CBus {
  i2cRead(
    address: number,
    length: number,
    buffer: Buffer,
  ): Promise<{ bytesRead: number; buffer: Buffer }>;
  i2cWrite(
    address: number,
    length: number,
    buffer: Buffer,
  ): Promise<{ bytesWritten: number; buffer: Buffer }>;
  readByte(address: number, command: number): Promise<number>;
  readWord(address: number, command: number): Promise<number>;
  readI2cBlock(
    address: number,
    command: number,
    length: number,
    buffer: Buffer,
  ): Promise<{ bytesRead: number; buffer: Buffer }>;
  writeByte(address: number, command: number, byte: number): Promise<void>;
  writeWord(address: number, command: number, word: number): Promise<void>;
  writeI2cBlock(
    address: number,
    command: number,
    length: number,
    buffer: Buffer,
  ): Promise<{ bytesWritten: number; buffer: Buffer }>;
  sendByte(address: number, byte: number): Promise<void>;
  receiveByte(address: number): Promise<number>;
  scan(): Promise<number[]>;
  close(): Promise<void>;
}

/**
 * What drivers log through: the agent hands in its pino logger, which has this shape.
 * Fields first, then the message, as pino takes them.
 */
export interface Logger {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  child(bindings: Record<string, unknown>): Logger;
}

/** Discards everything: the default where no logger is handed in. */
export const nullLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  child: () => nullLogger,
};
