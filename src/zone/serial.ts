/** SOA serial arithmetic, RFC 1982 (SERIAL_BITS = 32). */

const HALF = 2 ** 31;
const MOD = 2 ** 32;

/** s1 > s2 in sequence space. Undefined pairs (exactly 2^31 apart) are "not greater" both ways. */
export function serialGt(s1: number, s2: number): boolean {
  return (s1 < s2 && s2 - s1 > HALF) || (s1 > s2 && s1 - s2 < HALF);
}

/** s + n for 0 <= n <= 2^31 - 1. */
export function serialAdd(s: number, n: number): number {
  if (n < 0 || n > HALF - 1) throw new RangeError(`serial increment ${n} outside 0..2^31-1`);
  return (s + n) % MOD;
}

/**
 * The serial for a changed zone: the Unix time when that is ahead of the previous serial (so
 * serials stay meaningful and survive a lost state file in most cases), else previous + 1.
 * Always greater than `prev` in RFC 1982 terms.
 */
export function nextSerial(prev: number | null, nowSeconds: number): number {
  const now = Math.floor(nowSeconds) % MOD;
  if (prev === null) return now;
  return serialGt(now, prev) ? now : serialAdd(prev, 1);
}
