/** Two's complement of register words. */

/** int16 from a 16-bit unsigned value. */
export const int16 = (u: number): number => (u << 16) >> 16;
