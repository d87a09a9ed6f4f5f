import { describe, expect, it } from 'vitest';
import { eventually } from './eventually.js';

describe('eventually', () => {
  it('returns the first value accepted, polling until then', async () => {
    let n = 0;
    expect(await eventually(async () => ++n, (v) => v >= 3, { everyMs: 1 })).toBe(3);
    expect(n).toBe(3);
  });

  it('fails the test after its tries when nothing is accepted', async () => {
    let n = 0;
    await expect(eventually(async () => ++n, () => false, { tries: 4, everyMs: 1 })).rejects.toThrow();
    expect(n).toBe(5);
  });
});
