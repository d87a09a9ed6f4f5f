import { expect } from 'vitest';

/**
 * Polls until `f` returns what `ok` accepts, then returns it; fails the test (expect) with the last
 * value if it never does. Bounded: `tries` polls `everyMs` apart (default 400 x 25 ms), plus the
 * time `f` itself takes.
 */
export async function eventually<T>(f: () => Promise<T>, ok: (v: T) => boolean, o: { tries?: number; everyMs?: number } = {}): Promise<T> {
  const tries = o.tries ?? 400, everyMs = o.everyMs ?? 25;
  let v = await f();
  for (let i = 0; i < tries && !ok(v); i++) { await new Promise((r) => setTimeout(r, everyMs)); v = await f(); }
  expect(ok(v)).toBe(true);
  return v;
}
