/**
 * RingTable: keys (bytes or latin1 strings) to bodies in arena segments with a linear-probing
 * index; FIFO eviction by segment; memory fixed by the budget and reported as held.
 */
import { describe, expect, it } from 'vitest';
import { RingTable, hashBytes, hashString } from '../../src/ring-table.js';
import { seededRandom } from '../support/cases.js';

const key = (i: number) => Buffer.from(`key-${i}-${'x'.repeat(i % 7)}`, 'latin1');

/** Adds key(i) with a 4-byte body holding i, len i & 0xffff, flags i & 0xff, aux 7. */
function add(t: RingTable<number>, i: number, h = hashBytes(key(i), 0, key(i).length)): boolean {
  const k = key(i);
  if (!t.addBytes(k, 0, k.length, h, 4, i & 0xffff, i & 0xff, 7, i)) return false;
  t.seg.writeUInt32BE(i, t.body);
  return true;
}

/** Finds key(i) and checks everything stored with it. */
function has(t: RingTable<number>, i: number, h = hashBytes(key(i), 0, key(i).length)): boolean {
  const k = key(i);
  if (!t.findBytes(k, 0, k.length, h)) return false;
  expect(t.seg.readUInt32BE(t.body)).toBe(i);
  expect([t.len, t.flags, t.aux, t.value]).toEqual([i & 0xffff, i & 0xff, 7, i]);
  return true;
}

describe('RingTable', () => {
  it('finds what it holds, by bytes or by string, with body, len, flags, aux and value', () => {
    const t = new RingTable<number>({ bytes: 256 * 1024, bytesPerSlot: 64, values: true });
    for (let i = 0; i < 100; i++) expect(add(t, i)).toBe(true);
    for (let i = 0; i < 100; i++) expect(has(t, i)).toBe(true);
    expect(has(t, 100)).toBe(false);
    // A key that is a prefix of another, and one that differs in one byte, are other keys.
    const k = key(5);
    expect(t.findBytes(k, 0, k.length - 1, hashBytes(k, 0, k.length - 1))).toBe(false);
    const s = new RingTable<string>({ bytes: 256 * 1024, bytesPerSlot: 64, values: true });
    expect(s.addString('\u0003web\u0000', hashString('\u0003web\u0000'), 0, 0, 1, 0, 'web')).toBe(true);
    expect(s.findString('\u0003web\u0000', hashString('\u0003web\u0000'))).toBe(true);
    expect([s.flags, s.value]).toEqual([1, 'web']);
    expect(s.findString('\u0003Web\u0000', hashString('\u0003Web\u0000'))).toBe(false);
    // hashString of a latin1 string equals hashBytes of its bytes.
    const str = '\u00ff\u0001abc';
    expect(hashString(str)).toBe(hashBytes(Buffer.from(str, 'latin1'), 0, 5));
  });

  it('evicts the oldest segments first and never holds more than its budget', () => {
    const t = new RingTable<number>({ bytes: 64 * 1024, bytesPerSlot: 64, values: true });
    const n = 20_000;
    for (let i = 0; i < n; i++) {
      if (!add(t, i)) expect.fail(`add ${i}`);
      if (i % 97 === 0) {
        const st = t.stats();
        expect(st.bytes).toBeLessThanOrEqual(st.limit);
        expect(st.entryBytes).toBeLessThanOrEqual(st.bytes);
      }
    }
    const st = t.stats();
    expect(st.evictions).toBe(n - st.entries);
    expect(st.entries).toBeGreaterThan(500);
    // The newest entries are there, the oldest are gone, and what is there is one recent run.
    let newest = 0;
    while (newest < st.entries && has(t, n - 1 - newest)) newest++;
    expect(newest).toBe(st.entries);
    for (let i = 0; i < n - st.entries; i++) expect(has(t, i)).toBe(false);
  });

  it('keeps probe runs intact through evictions, even when every key has the same hash', () => {
    const t = new RingTable<number>({ bytes: 64 * 1024, bytesPerSlot: 64, values: true });
    const n = 3000;
    for (let i = 0; i < n; i++) expect(add(t, i, 42)).toBe(true);
    const st = t.stats();
    expect(st.evictions).toBeGreaterThan(0);
    for (let i = n - st.entries; i < n; i++) expect(has(t, i, 42)).toBe(true);
    for (let i = 0; i < n - st.entries; i++) expect(has(t, i, 42)).toBe(false);
  });

  it('with tiny entries, the index fills before the arena and is never more than 3/4 full', () => {
    const t = new RingTable<number>({ bytes: 64 * 1024, bytesPerSlot: 256, values: true });
    const slots = (t.stats().bytes - 0) / 18; // nothing allocated yet: the index alone
    for (let i = 0; i < 5000; i++) {
      expect(add(t, i)).toBe(true);
      expect(t.stats().entries).toBeLessThanOrEqual(Math.floor(slots * 0.75));
    }
    expect(has(t, 4999)).toBe(true);
  });

  it('does not keep an entry larger than a segment', () => {
    const t = new RingTable({ bytes: 64 * 1024, bytesPerSlot: 64 });
    const k = Buffer.from('big');
    expect(t.addBytes(k, 0, 3, hashBytes(k, 0, 3), t.segmentSize, 0, 0, 0)).toBe(false);
    expect(t.findBytes(k, 0, 3, hashBytes(k, 0, 3))).toBe(false);
    expect(t.stats().entries).toBe(0);
  });

  it('clear() forgets every entry and keeps its segments for reuse', () => {
    const t = new RingTable<number>({ bytes: 64 * 1024, bytesPerSlot: 64, values: true });
    for (let i = 0; i < 1000; i++) add(t, i);
    const before = t.stats();
    t.clear();
    expect(t.stats().entries).toBe(0);
    expect(t.stats().bytes).toBe(before.bytes);
    for (let i = 0; i < 1000; i++) expect(has(t, i)).toBe(false);
    expect(add(t, 1)).toBe(true);
    expect(has(t, 1)).toBe(true);
  });

  it('a budget too small for a segment keeps nothing and holds nothing', () => {
    const t = new RingTable({ bytes: 2048, bytesPerSlot: 64 });
    const k = Buffer.from('a');
    expect(t.addBytes(k, 0, 1, 1, 1, 0, 0, 0)).toBe(false);
    expect(t.findBytes(k, 0, 1, 1)).toBe(false);
    expect(t.stats().bytes).toBe(0);
  });

  it('random adds and lookups agree with a model of the newest entries', () => {
    const rnd = seededRandom(11);
    const t = new RingTable<number>({ bytes: 128 * 1024, bytesPerSlot: 64, values: true });
    const present = new Set<number>();
    let next = 0;
    for (let k = 0; k < 15_000; k++) {
      if (rnd() < 0.5) { add(t, next); present.add(next++); continue; }
      const i = Math.floor(rnd() * (next + 10));
      // Found implies added (and has i's data, checked in has); the newest entry is always there.
      if (has(t, i)) expect(present.has(i)).toBe(true);
      if (next > 0) expect(has(t, next - 1)).toBe(true);
    }
  });
});
