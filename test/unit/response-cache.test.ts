/**
 * The UDP response cache in QueryHandler: hits answer exactly like misses (ID patched), shuffled
 * answers keep varying, a new zone empties it, per-client EDNS options bypass it; and with the
 * zone's name memo it stays within response_cache_mb by its own accounting.
 */
import { describe, expect, it } from 'vitest';
import { validateCatalog } from '../../src/catalog/catalog.js';
import { loadConfig } from '../../src/config.js';
import { DnsCounters } from '../../src/dns/counters.js';
import { QueryHandler } from '../../src/dns/handler.js';
import { silentLogger } from '../../src/log.js';
import { buildZone } from '../../src/zone/build.js';
import type { Zone } from '../../src/zone/zone.js';
import { catalogDoc, instanceDoc, nodeDoc, seededRandom } from '../support/cases.js';
import { buildQuery, decode } from '../support/dns-client.js';

const config = loadConfig({ object: { dns: '127.0.0.1:0' } });
const zoneOf = (n: number, serial: number): Zone => {
  const nodes = Array.from({ length: n }, (_, i) => nodeDoc(`n${i}`, `10.0.0.${i + 1}`));
  const doc = catalogDoc('dc1', { dc1: { services: { web: nodes.map((nd) => instanceDoc(nd, 'web', { port: 80 })) } } });
  return buildZone(validateCatalog(doc).catalog, { config, serialFor: () => serial });
};

function setup(cacheBytes?: number) {
  let zone = zoneOf(6, 1);
  const counters = new DnsCounters();
  const h = new QueryHandler({
    store: { current: () => zone }, config, logger: silentLogger(), counters, random: seededRandom(7),
    ...(cacheBytes === undefined ? {} : { cacheBytes }),
  });
  return { h, counters, swap: (z: Zone) => { zone = z; } };
}

const order = (buf: Buffer) => decode(buf).answers.map((a) => a.data).join(',');

describe('UDP response cache', () => {
  it('answers a repeated question with the same records under the new ID, and counts each response', () => {
    const { h, counters } = setup();
    const a = decode(h.handle(buildQuery('web.service.consul', 'A', { id: 1, edns: 1232 }), false)!);
    const b = decode(h.handle(buildQuery('web.service.consul', 'A', { id: 2, edns: 1232 }), false)!);
    expect(b.id).toBe(2);
    expect(b.answers.map((r) => r.data).sort()).toEqual(a.answers.map((r) => r.data).sort());
    expect(b.answers).toHaveLength(6);
    expect(counters.responses[0]).toBe(2);
  });

  it('keeps shuffling: many hits show many orders, and every instance comes first', () => {
    const { h } = setup();
    const orders = new Set<string>();
    const firsts = new Set<string>();
    // 4000 queries, one miss and 3999 hits, each hit re-ordered from the cached encoding: a fair
    // shuffle of 6 answers shows nearly all of the 720 orders (about 717 expected) and puts every
    // instance first about 667 times.
    for (let i = 0; i < 4000; i++) {
      const o = order(h.handle(buildQuery('web.service.consul', 'A', { id: i & 0xffff, edns: 1232 }), false)!);
      orders.add(o);
      firsts.add(o.split(',')[0]!);
    }
    expect(orders.size).toBeGreaterThan(600);
    expect(firsts.size).toBe(6);
  });

  it('answers from the new zone after a swap', () => {
    const { h, swap } = setup();
    expect(decode(h.handle(buildQuery('web.service.consul', 'A', { edns: 1232 }), false)!).answers).toHaveLength(6);
    swap(zoneOf(2, 2));
    expect(decode(h.handle(buildQuery('web.service.consul', 'A', { edns: 1232 }), false)!).answers).toHaveLength(2);
  });

  it('gives the same bytes (but the ID) as an uncached handler for a fixed answer', () => {
    const cached = setup();
    const plain = setup(0);
    for (const [name, type] of [['consul', 'SOA'], ['nosuch.service.consul', 'A'], ['n1.node.consul', 'A']] as const) {
      for (let i = 0; i < 3; i++) {
        const q = buildQuery(name, type, { id: 100 + i });
        expect(cached.h.handle(q, false)).toEqual(plain.h.handle(q, false));
      }
    }
  });

  it('does not cache over TCP, nor queries with EDNS options (cookies differ per client)', () => {
    const { h } = setup();
    const cookie = { code: 10, data: Buffer.from('0011223344556677', 'hex') };
    const sizeOf = () => h.cacheMemory().responses!.entries;
    h.handle(buildQuery('web.service.consul', 'A', { edns: 1232, ednsOptions: [cookie] }), false);
    h.handle(buildQuery('web.service.consul', 'A'), true);
    expect(sizeOf()).toBe(0);
    h.handle(buildQuery('web.service.consul', 'A'), false);
    expect(sizeOf()).toBe(1);
  });
});

describe('re-ordering cached answers', () => {
  it('moves glue pointers with their SRV records: every glue owner is a target, with its own address', () => {
    const { h } = setup();
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const d = decode(h.handle(buildQuery('web.service.consul', 'SRV', { id: i, edns: 1232 }), false)!);
      const targets = d.answers.map((a) => (a.data as { target: string }).target);
      expect(targets).toHaveLength(6);
      const glue = d.additionals.filter((a) => a.type === 'A');
      expect(glue).toHaveLength(6);
      for (const g of glue) {
        expect(targets).toContain(g.name);
        // n<k>.node.dc1.consul has 10.0.0.<k+1>
        expect(g.data).toBe(`10.0.0.${Number(/^n(\d+)\./.exec(g.name)![1]) + 1}`);
      }
      seen.add(targets.join(','));
    }
    expect(seen.size).toBeGreaterThan(100);
  });

  it('picks a new subset per query when only some answers fit (no EDNS, udp_answer_limit 3)', () => {
    const { h } = setup();
    const subsets = new Set<string>();
    for (let i = 0; i < 30; i++) {
      const d = decode(h.handle(buildQuery('web.service.consul', 'A', { id: i }), false)!);
      expect(d.answers).toHaveLength(3);
      expect(d.flag_tc).toBe(true);
      subsets.add(d.answers.map((a) => a.data).sort().join(','));
    }
    expect(subsets.size).toBeGreaterThan(5);
  });
});

describe('memory budget (response_cache_mb)', () => {
  const MiB = 1024 * 1024;
  const small = loadConfig({ object: { dns: '127.0.0.1:0', response_cache_mb: 1 } });
  /** 300 services of 4 instances over 40 nodes; tags v1 and v2. */
  const bigZone = (cfg: typeof small): Zone => {
    const nodes = Array.from({ length: 40 }, (_, i) => nodeDoc(`n${i}`, `10.1.${i >> 8}.${(i & 0xff) + 1}`));
    const services: Record<string, unknown[]> = {};
    for (let s = 0; s < 300; s++) {
      services[`svc${s}`] = Array.from({ length: 4 }, (_, k) => instanceDoc(nodes[(s + k * 7) % 40]!, `svc${s}`, { port: 8000 + k, tags: [k % 2 ? 'v1' : 'v2'] }));
    }
    return buildZone(validateCatalog(catalogDoc('dc1', { dc1: { services: services as never } })).catalog, { config: cfg, serialFor: () => 1 });
  };

  /** Query i of a stream of distinct ones: 0x20 case, EDNS sizes (or none), valid and NXDOMAIN names. */
  function distinctQuery(i: number, rnd: () => number): Buffer {
    const kind = i % 6;
    const svc = `svc${Math.floor(rnd() * 300)}`;
    const name = kind === 0 ? `${svc}.service.consul` : kind === 1 ? `_${svc}._tcp.service.consul`
      : kind === 2 ? `${i % 12 === 2 ? 'v1' : `t${i}`}.${svc}.service.consul` // a tag, mostly one that does not exist
      : kind === 5 ? `${(0x0a000000 + i).toString(16)}.addr.consul`
      : `nx${i}-${Math.floor(rnd() * 1e9)}.service.consul`;
    const cased = name.replace(/[a-z]/g, (c) => (rnd() < 0.5 ? c.toUpperCase() : c));
    const edns = i % 4 === 3 ? undefined : 512 + (i % 3000);
    return buildQuery(cased, kind === 1 ? 'SRV' : 'A', { id: i & 0xffff, ...(edns === undefined ? {} : { edns }) });
  }

  /** The reply's shape, and its records unless it is a random subset (TC set). */
  const sorted = (b: Buffer) => {
    const d = decode(b);
    return { rcode: d.rcode, tc: d.flag_tc, an: d.answers.length, ar: d.additionals.length, data: d.flag_tc ? [] : d.answers.map((a) => JSON.stringify(a.data)).sort() };
  };

  it('many distinct queries: the response cache and the name memo stay within their parts of the budget, and evict', () => {
    const zone = bigZone(small);
    const h = new QueryHandler({ store: { current: () => zone }, config: small, logger: silentLogger(), counters: new DnsCounters(), random: seededRandom(3) });
    const plainZone = bigZone(small);
    const plain = new QueryHandler({ store: { current: () => plainZone }, config: small, logger: silentLogger(), counters: new DnsCounters(), cacheBytes: 0 });
    const rnd = seededRandom(5);
    const queries: Buffer[] = [];
    const n = 12_000;
    for (let i = 0; i < n; i++) {
      const q = distinctQuery(i, rnd);
      queries.push(q);
      expect(h.handle(q, false)).not.toBeNull();
      if (i % 500 === 499) {
        const m = h.cacheMemory();
        expect(m.budget).toBe(1 * MiB);
        expect(m.responses!.bytes).toBeLessThanOrEqual(m.responses!.limit);
        expect(m.names!.bytes).toBeLessThanOrEqual(m.names!.limit);
        expect(m.responses!.limit + m.names!.limit).toBeLessThanOrEqual(m.budget);
      }
    }
    const m = h.cacheMemory();
    expect(m.responses!.inserts).toBeGreaterThan(n / 2); // distinct: nearly every query was kept once
    expect(m.responses!.evictions).toBeGreaterThan(0);
    expect(m.responses!.entries).toBeGreaterThan(0);
    expect(m.names!.evictions).toBeGreaterThan(0);
    expect(m.names!.entries).toBeGreaterThan(0);
    expect(m.responses!.bytes + m.names!.bytes).toBeLessThanOrEqual(1 * MiB);

    // The newest queries again: answered from the cache, the same as a handler without one.
    const hits = m.responses!.hits;
    for (const q of queries.slice(-200)) expect(sorted(h.handle(q, false)!)).toEqual(sorted(plain.handle(q, false)!));
    expect(h.cacheMemory().responses!.hits).toBeGreaterThan(hits + 100);
    // And the oldest: evicted, answered again the same way.
    for (const q of queries.slice(0, 200)) expect(sorted(h.handle(q, false)!)).toEqual(sorted(plain.handle(q, false)!));
  }, 60_000);

  it('keeps copies: changing the query or the reply buffer afterwards does not change later hits', () => {
    const { h } = setup();
    const fresh = () => buildQuery('n1.node.consul', 'A', { id: 7, edns: 1232 });
    const q = fresh();
    const first = h.handle(q, false)!;
    const expected = Buffer.from(first);
    q.fill(0xee);
    first.fill(0xee);
    const hits = h.cacheMemory().responses!.hits;
    expect(h.handle(fresh(), false)).toEqual(expected);
    expect(h.cacheMemory().responses!.hits).toBe(hits + 1);
  });

  it('response_cache_mb 0: no response cache; the name memo keeps its own small part', () => {
    const off = loadConfig({ object: { dns: '127.0.0.1:0', response_cache_mb: 0 } });
    const zone = bigZone(off);
    const h = new QueryHandler({ store: { current: () => zone }, config: off, logger: silentLogger(), counters: new DnsCounters() });
    h.handle(buildQuery('svc1.service.consul', 'A', { edns: 1232 }), false);
    const m = h.cacheMemory();
    expect(m.responses).toBeNull();
    expect(m.names!.entries).toBe(1);
    expect(m.names!.limit).toBe(1 * MiB);
  });
});
