/**
 * CRC-8 with polynomial 0x31 (x^8 + x^5 + x^4 + 1), no reflection, no final XOR — the
 * checksum of Sensirion (SHT3x, init 0xFF) and Silicon Labs (Si7021/HTU21D, init 0x00) chips.
 * Shared by the drivers that check it and the simulator that produces it.
 */
export function crc8(bytes: ArrayLike<number>, init: number): number {
  let crc = init & 0xff;
  for (let i = 0; i < bytes.length; i++) {
    crc ^= bytes[i] & 0xff;
    for (let bit = 0; bit < 8; bit++) {
      crc = crc & 0x80 ? ((crc << 1) ^ 0x31) & 0xff : (crc << 1) & 0xff;
    }
  }
  return crc;
}
