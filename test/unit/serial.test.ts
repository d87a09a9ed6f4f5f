/** RFC 1982 serial number arithmetic (SERIAL_BITS = 32) and the zone serial policy. */
import { describe, expect, it } from 'vitest';
import { nextSerial, serialAdd, serialGt } from '../../src/zone/serial.js';

const MAX = 2 ** 32 - 1;
const HALF = 2 ** 31;

describe('serialGt (RFC 1982 §3.2)', () => {
  it.each([
    // s1, s2, s1 > s2
    [1, 0, true],
    [0, 1, false],
    [5, 5, false],
    [HALF - 1, 0, true], // largest forward step
    [0, HALF - 1, false],
    [0, MAX, true], // wrap: 0 follows 2^32-1
    [MAX, 0, false],
    [100, MAX - 100, true],
    [MAX - 100, 100, false],
    [HALF, 0, false], // exactly 2^31 apart: undefined, neither is greater
    [0, HALF, false],
    [HALF + 7, 7, false],
    [7, HALF + 7, false],
    [HALF + 1, 0, false], // more than half ahead is behind
    [0, HALF + 1, true],
  ])('serialGt(%i, %i) = %s', (s1, s2, want) => {
    expect(serialGt(s1, s2)).toBe(want);
  });
});

describe('serialAdd (RFC 1982 §3.1)', () => {
  it.each([
    [0, 1, 1],
    [MAX, 1, 0],
    [MAX, 2, 1],
    [MAX - 5, 10, 4],
    [1000, HALF - 1, 1000 + HALF - 1],
    [HALF + 10, HALF - 1, 9],
    [42, 0, 42],
  ])('serialAdd(%i, %i) = %i', (s, n, want) => {
    expect(serialAdd(s, n)).toBe(want);
  });

  it('rejects increments outside 0..2^31-1', () => {
    expect(() => serialAdd(0, HALF)).toThrow(RangeError);
    expect(() => serialAdd(0, -1)).toThrow(RangeError);
  });

  it('any allowed increment above 0 moves forward', () => {
    for (const s of [0, 1, HALF - 1, HALF, MAX - 1, MAX]) {
      for (const n of [1, 2, 1000, HALF - 1]) expect(serialGt(serialAdd(s, n), s)).toBe(true);
    }
  });
});

describe('nextSerial', () => {
  it.each([
    // prev, now, want
    [null, 1_700_000_000, 1_700_000_000], // first zone: the Unix time
    [null, 1_700_000_000.9, 1_700_000_000], // whole seconds
    [1_600_000_000, 1_700_000_000, 1_700_000_000], // time is ahead: take it
    [1_700_000_000, 1_700_000_000, 1_700_000_001], // same second: +1
    [1_700_000_005, 1_700_000_000, 1_700_000_006], // clock went back: +1, never backwards
    [MAX, 1_700_000_000, 1_700_000_000], // now is ahead of MAX across the wrap
    [MAX, MAX - 10, 0], // now is behind: prev + 1 wraps to 0
    [MAX - 10, 100, 100], // now is ahead across the wrap
    [MAX, MAX, 0], // +1 wraps
    [5, 5 + HALF, 6], // exactly half way: undefined, so +1
  ])('nextSerial(%s, %s) = %i', (prev, now, want) => {
    expect(nextSerial(prev, now)).toBe(want);
  });

  it('wraps a Unix time beyond 2^32 into serial space', () => {
    expect(nextSerial(null, 2 ** 32 + 5)).toBe(5);
  });

  it('never goes backwards: the result is always greater than the previous serial', () => {
    // A deterministic spread of (prev, now) pairs, including the edges.
    const edges = [0, 1, 2, HALF - 2, HALF - 1, HALF, HALF + 1, MAX - 1, MAX, 1_700_000_000];
    let x = 0x9e3779b9;
    const rnd = () => { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; return (x >>> 0); };
    const values = [...edges, ...Array.from({ length: 200 }, rnd)];
    for (const prev of values) {
      for (const now of [...edges, rnd(), rnd()]) {
        const next = nextSerial(prev, now);
        expect(Number.isInteger(next) && next >= 0 && next <= MAX).toBe(true);
        expect(serialGt(next, prev), `nextSerial(${prev}, ${now}) = ${next}`).toBe(true);
      }
    }
  });

  it('a chain of changes within one second stays strictly increasing', () => {
    let s: number | null = null;
    const seen: number[] = [];
    for (let i = 0; i < 5; i++) { s = nextSerial(s, 1_700_000_000); seen.push(s); }
    expect(seen).toEqual([1_700_000_000, 1_700_000_001, 1_700_000_002, 1_700_000_003, 1_700_000_004]);
  });
});
