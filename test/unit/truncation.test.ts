/**
 * Answer limits, truncation and sizes (docs/consul-dns.md §9, §12.2; README "Protocol"): udp_answer_limit
 * without EDNS (capped at 8), EDNS sizes up to max_udp_size, TC when records are dropped (rfc
 * default) or not (compat consul, enable_truncate=false), TCP carrying everything, compression.
 */
import { describe, expect, it } from 'vitest';
import { Table, catalogDoc, instanceDoc, nodeDoc, type Reply } from '../support/cases.js';

const pad = (i: number) => String(i).padStart(2, '0');

function fixture() {
  const many = (svc: string, n: number, net: string) =>
    Array.from({ length: n }, (_, i) => instanceDoc(nodeDoc(`${svc}-${pad(i + 1)}`, `${net}.${i + 1}`), svc, { port: 9000 }));
  // Five instances on nodes with long (38-byte) names: only compressed owner names let 5 SRV + 5 glue fit in 512 bytes.
  const long = Array.from({ length: 5 }, (_, i) =>
    instanceDoc(nodeDoc(`ip-10-7-0-${i + 1}-eu-west-1-compute-internal`, `10.7.0.${i + 1}`), 'long', { port: 443 }));
  return catalogDoc('dc1', {
    dc1: {
      services: {
        three: many('three', 3, '10.3.0'), big: many('big', 20, '10.9.0'), huge: many('huge', 40, '10.8.0'), long,
        // 400 SRV over TCP put later targets beyond the 14-bit compression pointer range (16383).
        massive: Array.from({ length: 400 }, (_, i) => instanceDoc(nodeDoc(`mass-${i + 1}`, `10.${20 + Math.floor(i / 200)}.${i % 200}.1`), 'massive', { port: 7000 })),
      },
    },
  });
}

const t = new Table(fixture());

const ips = (net: string, n: number) => Array.from({ length: n }, (_, i) => `${net}.${i + 1}`);
const aLines = (owner: string, addrs: string[]) => addrs.map((ip) => `${owner} 0 IN A ${ip}`);
const BIG_A = aLines('big.service.consul.', ips('10.9.0', 20));
const HUGE_A = aLines('huge.service.consul.', ips('10.8.0', 40));
const HUGE_SRV = Array.from({ length: 40 }, (_, i) => `huge.service.consul. 0 IN SRV 1 1 9000 huge-${pad(i + 1)}.node.dc1.consul.`);
const HUGE_GLUE = Array.from({ length: 40 }, (_, i) => `huge-${pad(i + 1)}.node.dc1.consul. 0 IN A 10.8.0.${i + 1}`);

/** `n` distinct answers, each one of `from`. */
function expectSubset(r: Reply, from: readonly string[], n: number) {
  expect(r.answer).toHaveLength(n);
  expect(new Set(r.answer).size).toBe(n);
  for (const l of r.answer) expect(from).toContain(l);
}

/** ADDITIONAL holds exactly one glue A per SRV target left in ANSWER, nothing for dropped ones (docs/consul-dns.md §9). */
function expectGlueMatchesSrv(r: Reply) {
  const targets = r.answer.map((l) => l.split(' ').pop()!);
  expect(new Set(targets).size).toBe(targets.length);
  const glueOwners = r.extra.map((l) => l.split(' ')[0]);
  expect([...glueOwners].sort()).toEqual([...targets].sort());
}

describe('udp_answer_limit without EDNS (docs/consul-dns.md §9)', () => {
  it('cuts a UDP answer without EDNS to 3 by default, with TC in rfc mode', () => {
    const r = t.ask({ qname: 'big.service.consul', qtype: 'A' });
    expectSubset(r, BIG_A, 3);
    expect(r.tc).toBe(true);
    expect(r.raw.length).toBeLessThanOrEqual(512);
  });

  it('does not set TC when nothing was dropped (exactly the limit)', () => {
    t.run({ qname: 'three.service.consul', qtype: 'A', answer: aLines('three.service.consul.', ips('10.3.0', 3)) });
  });

  it('honours a larger limit', () => {
    const r = t.ask({ qname: 'big.service.consul', qtype: 'A', config: { udp_answer_limit: 5 } });
    expectSubset(r, BIG_A, 5);
    expect(r.tc).toBe(true);
  });

  it('caps the limit at 8 (maxUDPAnswerLimit)', () => {
    const r = t.ask({ qname: 'big.service.consul', qtype: 'A', config: { udp_answer_limit: 20 } });
    expectSubset(r, BIG_A, 8);
    expect(r.tc).toBe(true);
  });

  it('applies to SRV, and the glue follows the SRV kept', () => {
    const r = t.ask({ qname: 'huge.service.consul', qtype: 'SRV' });
    expectSubset(r, HUGE_SRV, 3);
    expectGlueMatchesSrv(r);
    expect(r.tc).toBe(true);
  });

  it('is ignored with an EDNS size above 512', () => {
    const r = t.ask({ qname: 'huge.service.consul', qtype: 'A', edns: 1232 });
    expectSubset(r, HUGE_A, 40);
    expect(r.tc).toBe(false);
  });

  it('is ignored over TCP', () => {
    t.run({ qname: 'huge.service.consul', qtype: 'A', tcp: true, answer: HUGE_A });
  });

  it('shuffles: repeated queries return different subsets (TestDNS_ServiceLookup_Randomize)', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) for (const l of t.ask({ qname: 'big.service.consul', qtype: 'A' }).answer) seen.add(l);
    expect(seen.size).toBeGreaterThan(10);
  });
});

describe('TC switch (docs/consul-dns.md §9, §12.2)', () => {
  it('enable_truncate=false: records dropped, TC not set', () => {
    const r = t.ask({ qname: 'big.service.consul', qtype: 'A', config: { enable_truncate: false } });
    expectSubset(r, BIG_A, 3);
    expect(r.tc).toBe(false);
  });

  it('compat consul: TC not set by default', () => {
    const r = t.ask({ qname: 'big.service.consul', qtype: 'A', config: { compat: 'consul' } });
    expectSubset(r, BIG_A, 3);
    expect(r.tc).toBe(false);
  });

  it('compat consul with enable_truncate=true: TC set', () => {
    const r = t.ask({ qname: 'big.service.consul', qtype: 'A', config: { compat: 'consul', enable_truncate: true } });
    expectSubset(r, BIG_A, 3);
    expect(r.tc).toBe(true);
  });

  it('compat consul: no TC for a size-based cut either', () => {
    const r = t.ask({ qname: 'huge.service.consul', qtype: 'SRV', edns: 1232, config: { compat: 'consul' } });
    expect(r.answer.length).toBeLessThan(40);
    expect(r.tc).toBe(false);
  });
});

describe('sizes (docs/consul-dns.md §9, README "Protocol")', () => {
  it('fits as many SRV as the EDNS size allows, under it, with TC and matching glue', () => {
    for (const edns of [600, 1000, 1232]) {
      const r = t.ask({ qname: 'huge.service.consul', qtype: 'SRV', edns });
      expect(r.raw.length).toBeLessThanOrEqual(edns);
      expect(r.answer.length).toBeGreaterThan(3); // udp_answer_limit does not apply
      expect(r.answer.length).toBeLessThan(40);
      for (const l of r.answer) expect(HUGE_SRV).toContain(l);
      expectGlueMatchesSrv(r);
      expect(r.tc).toBe(true);
      expect(r.opt).not.toBeNull();
    }
  });

  it('honours the client size only up to max_udp_size (default 1232)', () => {
    const r = t.ask({ qname: 'huge.service.consul', qtype: 'SRV', edns: 4096 });
    expect(r.raw.length).toBeLessThanOrEqual(1232);
    expect(r.tc).toBe(true);
  });

  it('a larger max_udp_size lets a 4096-byte client get every record', () => {
    t.run({ qname: 'huge.service.consul', qtype: 'SRV', edns: 4096, config: { max_udp_size: 4096 }, answer: HUGE_SRV, extra: HUGE_GLUE });
  });

  it('an EDNS size under 512 counts as 512', () => {
    const r = t.ask({ qname: 'huge.service.consul', qtype: 'SRV', edns: 100 });
    expect(r.raw.length).toBeLessThanOrEqual(512);
    expect(r.answer.length).toBeGreaterThan(0);
  });

  it('TCP carries every record', () => {
    t.run({ qname: 'huge.service.consul', qtype: 'SRV', tcp: true, answer: HUGE_SRV, extra: HUGE_GLUE });
  });

  it('TCP carries 400 SRV and their glue, also past the reach of compression pointers', () => {
    const srv = Array.from({ length: 400 }, (_, i) => `massive.service.consul. 0 IN SRV 1 1 7000 mass-${i + 1}.node.dc1.consul.`);
    const glue = Array.from({ length: 400 }, (_, i) => `mass-${i + 1}.node.dc1.consul. 0 IN A 10.${20 + Math.floor(i / 200)}.${i % 200}.1`);
    const r = t.run({ qname: 'massive.service.consul', qtype: 'SRV', tcp: true, answer: srv, extra: glue });
    expect(r.raw.length).toBeGreaterThan(0x3fff);
  });

  it('without EDNS with the limit at 8, SRV stay under 512 bytes', () => {
    const r = t.ask({ qname: 'huge.service.consul', qtype: 'SRV', config: { udp_answer_limit: 8 } });
    expect(r.raw.length).toBeLessThanOrEqual(512);
    expect(r.answer.length).toBeLessThanOrEqual(8);
    expectGlueMatchesSrv(r);
    expect(r.tc).toBe(true);
  });

  it('5 SRV with long targets and their 5 glue A fit in 512 bytes (owner names compressed)', () => {
    const owner = '_long._tcp.service.consul.';
    const names = Array.from({ length: 5 }, (_, i) => `ip-10-7-0-${i + 1}-eu-west-1-compute-internal.node.dc1.consul.`);
    const r = t.run({
      qname: '_long._tcp.service.consul', qtype: 'SRV', config: { udp_answer_limit: 5 },
      answer: names.map((n) => `${owner} 0 IN SRV 1 1 443 ${n}`),
      extra: names.map((n, i) => `${n} 0 IN A 10.7.0.${i + 1}`),
    });
    expect(r.raw.length).toBeLessThanOrEqual(512);
    expect(r.answer.length + r.extra.length).toBe(10);
  });
});

describe('a_record_limit with truncation (docs/consul-dns.md §9)', () => {
  it('limits A without counting as truncation, and leaves SRV alone on TCP', () => {
    const a = t.ask({ qname: 'huge.service.consul', qtype: 'A', edns: 1232, config: { a_record_limit: 4 } });
    expectSubset(a, HUGE_A, 4);
    expect(a.tc).toBe(false);
    t.run({ qname: 'huge.service.consul', qtype: 'SRV', tcp: true, config: { a_record_limit: 4 }, answer: HUGE_SRV, extra: HUGE_GLUE });
  });

  it('the smaller of a_record_limit and udp_answer_limit wins without EDNS', () => {
    const r = t.ask({ qname: 'big.service.consul', qtype: 'A', config: { a_record_limit: 2 } });
    expectSubset(r, BIG_A, 2);
    expect(r.tc).toBe(false);
  });
});
