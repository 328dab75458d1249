/**
 * How long bytes hold an I²C wire: 9 clocks a byte (8 bits + ACK), the address bytes
 * included, plus START and STOP, plus a repeated START for a write-then-read. Drivers use it
 * to time a conversion from when its command left the wire rather than from when the
 * transfer's completion reached JavaScript, which a busy event loop can delay by milliseconds.
 */

/** The Pi's default SCL (dtparam i2c_arm_baudrate). At 400 kHz the estimate is late, never early. */
export const I2C_DEFAULT_CLOCK_HZ = 100_000;

export function i2cWireMs(bytes: number, repeatedStart = false, hz = I2C_DEFAULT_CLOCK_HZ): number {
  return ((9 * bytes + 2 + (repeatedStart ? 1 : 0)) / hz) * 1000;
}

/**
 * How much later than when it was issued a transfer may reach the wire: i2c-bus hands the
 * ioctl to a libuv pool thread (tens of µs on a Pi). Added where a look that comes too early
 * costs a whole poll period (a refused Si7021 read).
 */
export const I2C_ISSUE_MARGIN_MS = 0.1;
