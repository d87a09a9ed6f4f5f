/**
 * splitCatalog (src/catalog/split.ts): the skeleton with each service list put back must be what
 * JSON.parse makes of the whole text, for any text; what the scan cannot follow is null.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { splitCatalog, type SplitCatalog } from '../../src/catalog/split.js';
import { seededRandom } from '../support/cases.js';

const fixture = (f: string) => readFileSync(new URL(`../../fixtures/${f}`, import.meta.url));

/** The document the split stands for: every marker replaced by its list. */
function expand(s: SplitCatalog): unknown {
  const walk = (v: unknown): unknown => {
    const l = s.list(v);
    if (l !== undefined) return l;
    if (Array.isArray(v)) return v.map(walk);
    if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    return v;
  };
  return walk(s.skeleton);
}

/** Markers in the skeleton (lists split off). */
function markers(s: SplitCatalog): number {
  let n = 0;
  const walk = (v: unknown): void => {
    if (s.list(v) !== undefined) { n++; return; }
    if (v !== null && typeof v === 'object') for (const x of Object.values(v)) walk(x);
  };
  walk(s.skeleton);
  return n;
}

function same(text: string): SplitCatalog | null {
  const s = splitCatalog(Buffer.from(text, 'utf8'));
  if (s) expect(expand(s)).toStrictEqual(JSON.parse(text));
  return s;
}

describe('splitCatalog', () => {
  it('splits every service list of the fixtures, and puts back exactly what JSON.parse reads', () => {
    for (const f of ['demo-catalog.json', 'alias-catalog.json']) {
      const buf = fixture(f);
      const s = splitCatalog(buf)!;
      expect(s).not.toBeNull();
      const doc = JSON.parse(buf.toString('utf8')) as { datacenters: Record<string, { services?: object }> };
      const lists = Object.values(doc.datacenters).reduce((n, d) => n + Object.keys(d.services ?? {}).length, 0);
      expect(markers(s)).toBe(lists);
      expect(expand(s)).toStrictEqual(doc);
    }
  });

  it('follows JSON strings: quotes, escapes, brackets and non-ASCII inside them, escaped key names', () => {
    const s = same(String.raw`{"datacenter":"dc1","data\u0063enters":{"dc1":{"nodes":[{"Node":"n]1{","Meta":{"k\"[":"v\\"}}],
      "\u0073ervices":{"we\"b":[{"Service":{"Service":"we\"b","Tags":["]","[[","\\","\"]"]}}],"ünï":[{"x":"é}ü"}],"e":[]}}}}`);
    expect(s).not.toBeNull();
    expect(markers(s!)).toBe(3);
  });

  it('a duplicate service key: the last list wins, at the first key\'s place (as JSON.parse)', () => {
    const text = '{"datacenter":"dc1","datacenters":{"dc1":{"services":{"a":[1],"b":[2],"a":[3]}}}}';
    const s = same(text)!;
    expect(Object.keys((expand(s) as { datacenters: { dc1: { services: object } } }).datacenters.dc1.services)).toEqual(['a', 'b']);
  });

  it('splits only arrays under datacenters.<dc>.services; other shapes stay in the skeleton for validation to judge', () => {
    expect(markers(same('{"datacenter":"dc1","datacenters":{"dc1":{"services":{"web":5,"db":{"x":[1]},"ok":[]}}}}')!)).toBe(1);
    expect(same('{"datacenter":"dc1","datacenters":{"dc1":{"services":[[1]]}}}')).toBeNull(); // nothing to split
    expect(same('{"datacenter":"dc1","datacenters":[{"services":{"web":[1]}}]}')).toBeNull();
    expect(same('{"datacenter":"dc1","other":{"dc1":{"services":{"web":[1]}}}}')).toBeNull();
    expect(same('{"datacenter":"dc1","datacenters":{"dc1":{"nodes":{"services":{"web":[1]}}}}}')).toBeNull();
  });

  it('text the scan cannot follow is null (the caller parses it whole); a list that is not JSON throws SyntaxError when read', () => {
    for (const bad of [
      '{"datacenter":"dc1","datacenters":{"dc1":{"services":{"web":[1]}}}',
      '{"datacenter":"dc1","datacenters":{"dc1":{"services":{"web":["1]}}}}',
      '{"datacenter":"dc1","datacenters":{"dc1":{"services":{"web":[1]}}}}}',
      '{"datacenter":"dc1","datacenters":{"dc1":{"services":{"web":[1]}}}} x',
      '{"datacenter":"dc1","datacenters":{"dc1":{"services":{"web":[1] "db":[2]}}}}',
      '',
    ]) {
      expect(splitCatalog(Buffer.from(bad)), bad).toBeNull();
      expect(() => JSON.parse(bad), bad).toThrow(SyntaxError);
    }
    const s = splitCatalog(Buffer.from('{"datacenter":"dc1","datacenters":{"dc1":{"services":{"web":[1,,2],"db":[{"a":tru}]}}}}'))!;
    expect(s).not.toBeNull();
    const dc = (s.skeleton as { datacenters: { dc1: { services: Record<string, unknown> } } }).datacenters.dc1.services;
    expect(() => s.list(dc.web)).toThrow(SyntaxError);
    expect(() => s.list(dc.db)).toThrow(SyntaxError);
    expect(s.list('web')).toBeUndefined(); // not a marker
  });

  it('random documents with hostile strings: the same values as JSON.parse, or null only for text JSON.parse rejects', () => {
    const rnd = seededRandom(11);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
    const chars = ['a', 'Z', '0', '"', '\\', '[', ']', '{', '}', ',', ':', ' ', 'é', '€', '😀', '\n', '\u0000', '/'];
    const str = () => Array.from({ length: Math.floor(rnd() * 6) }, () => pick(chars)).join('');
    const value = (depth: number): unknown => {
      const r = rnd();
      if (depth > 3 || r < 0.3) return pick([str(), 1.5, -2, true, false, null]);
      if (r < 0.65) return Array.from({ length: Math.floor(rnd() * 4) }, () => value(depth + 1));
      return Object.fromEntries(Array.from({ length: Math.floor(rnd() * 4) }, () => [str(), value(depth + 1)]));
    };
    let split = 0;
    for (let i = 0; i < 300; i++) {
      const services = Object.fromEntries(Array.from({ length: 1 + Math.floor(rnd() * 5) }, () => [str(), rnd() < 0.8 ? [value(0), value(0)] : value(0)]));
      const doc = { datacenter: str(), datacenters: { [str()]: { nodes: [value(1)], services }, x: { services: { a: [str()] } } }, [str()]: value(0) };
      // Pretty-printed or compact, as files come.
      const text = JSON.stringify(doc, null, rnd() < 0.5 ? 1 : undefined);
      if (same(text)) split++;
    }
    expect(split).toBe(300);
  });
});
