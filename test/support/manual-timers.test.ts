import { describe, expect, it } from 'vitest';
import { ManualTimers } from './manual-timers.js';

describe('ManualTimers', () => {
  it('fires due timers in time order, with the clock at their due time, including timers they set', () => {
    const t = new ManualTimers();
    const seen: Array<[string, number]> = [];
    t.setTimeout(() => seen.push(['b', t.now()]), 20);
    t.setTimeout(() => { seen.push(['a', t.now()]); t.setTimeout(() => seen.push(['c', t.now()]), 15); }, 10);
    t.advance(24);
    expect(seen).toEqual([['a', 10], ['b', 20]]);
    expect(t.now()).toBe(24);
    t.advance(1);
    expect(seen).toEqual([['a', 10], ['b', 20], ['c', 25]]);
    expect(t.pending).toBe(0);
  });

  it('does not fire cleared timers and counts set and cleared', () => {
    const t = new ManualTimers();
    let fired = false;
    const h = t.setTimeout(() => (fired = true), 5);
    t.clearTimeout(h);
    t.clearTimeout(h);
    t.advance(10);
    expect(fired).toBe(false);
    expect([t.set, t.cleared, t.pending]).toEqual([1, 1, 0]);
  });
});
