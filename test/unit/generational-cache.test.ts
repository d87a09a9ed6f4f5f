import { describe, expect, it } from 'vitest';
import { GenerationalCache } from '../../src/dns/response-cache.js';

describe('GenerationalCache', () => {
  it('keeps what is used, drops what was not touched for a generation, and stays bounded', () => {
    const c = new GenerationalCache<number>(100, () => 10); // 5 entries per generation
    for (let i = 0; i < 5; i++) c.set(`k${i}`, i); // fills young, rotates to old
    expect(c.size).toBe(5);
    expect(c.get('k0')).toBe(0); // promoted back to young
    for (let i = 5; i < 9; i++) c.set(`k${i}`, i); // young: k0,k5..k8 -> rotates; old k1..k4 dropped
    expect(c.get('k1')).toBeUndefined();
    expect(c.get('k0')).toBe(0);
    expect(c.get('k8')).toBe(8);
    for (let i = 0; i < 1000; i++) c.set(`x${i}`, i);
    expect(c.size).toBeLessThanOrEqual(10);
  });

  it('clear() empties both generations', () => {
    const c = new GenerationalCache<string>(1000, () => 1);
    c.set('a', 'A');
    c.clear();
    expect(c.get('a')).toBeUndefined();
    expect(c.size).toBe(0);
  });
});
