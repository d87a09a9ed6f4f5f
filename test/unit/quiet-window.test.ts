import { describe, expect, it } from 'vitest';
import { QuietWindow } from '../../src/catalog/quiet-window.js';
import { ManualTimers } from '../support/manual-timers.js';

function setup(minMs = 100, maxMs = 1000) {
  const timers = new ManualTimers();
  const commits: number[] = [];
  const w = new QuietWindow({ minMs, maxMs, timers, onCommit: () => commits.push(timers.now()) });
  return { timers, commits, w };
}

describe('QuietWindow (wait { min, max })', () => {
  it('commits one change once the input has been quiet for min', () => {
    const { timers, commits, w } = setup();
    w.touch();
    expect(w.pending).toBe(true);
    timers.advance(99);
    expect(commits).toEqual([]);
    timers.advance(1);
    expect(commits).toEqual([100]);
    expect(w.pending).toBe(false);
    timers.advance(5000);
    expect(commits).toEqual([100]);
  });

  it('coalesces a burst into one commit, min after its last change', () => {
    const { timers, commits, w } = setup();
    for (let i = 0; i < 5; i++) { w.touch(); timers.advance(30); } // changes at 0, 30, ..., 120
    timers.advance(1000);
    expect(commits).toEqual([220]);
    expect(w.changes).toBe(5);
    expect(w.commits).toBe(1);
  });

  it('commits at least every max under a stream of changes faster than min', () => {
    const { timers, commits, w } = setup();
    // A change every 20-50 ms for 5 s (never quiet for 100 ms).
    const gaps = [20, 35, 50, 25, 45];
    for (let t = 0, i = 0; t < 5000; i++) { w.touch(); const g = gaps[i % gaps.length]!; timers.advance(g); t += g; }
    expect(commits.length).toBeGreaterThanOrEqual(4);
    expect(commits[0]).toBe(1000);
    for (let i = 1; i < commits.length; i++) expect(commits[i]! - commits[i - 1]!).toBeLessThanOrEqual(1000 + 50);
  });

  it('runs one timer at a time and never clears it per change', () => {
    const { timers, w } = setup();
    for (let i = 0; i < 1000; i++) { w.touch(); timers.advance(1); }
    expect(timers.cleared).toBe(0);
    expect(timers.pending).toBeLessThanOrEqual(1);
    expect(timers.set).toBeLessThan(100);
  });

  it('opens a new window for a change made during the commit', () => {
    const timers = new ManualTimers();
    const commits: number[] = [];
    let again = true;
    const w: QuietWindow = new QuietWindow({
      minMs: 100, maxMs: 1000, timers,
      onCommit: () => { commits.push(timers.now()); if (again) { again = false; w.touch(); } },
    });
    w.touch();
    timers.advance(1000);
    expect(commits).toEqual([100, 200]);
  });

  it('cancel drops the pending change; close also ignores later ones', () => {
    const { timers, commits, w } = setup();
    w.touch();
    w.cancel();
    timers.advance(2000);
    expect(commits).toEqual([]);
    w.touch();
    timers.advance(100);
    expect(commits).toEqual([2100]);
    w.touch();
    w.close();
    w.touch();
    timers.advance(2000);
    expect(commits).toEqual([2100]);
    expect(timers.pending).toBe(0);
  });

  it('with min == max is a fixed delay from the first change', () => {
    const { timers, commits, w } = setup(200, 200);
    for (let i = 0; i < 10; i++) { w.touch(); timers.advance(50); }
    expect(commits).toEqual([200, 400]);
  });

  it.each([[-1, 10], [100, 50], [Number.NaN, 10]])('rejects min %d, max %d', (min, max) => {
    expect(() => setup(min, max)).toThrow(RangeError);
  });
});
