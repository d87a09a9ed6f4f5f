import packet from 'dns-packet';
import { describe, expect, it } from 'vitest';
import { validateCatalog } from '../../src/catalog/catalog.js';
import {
  Table, catalogDoc, formatRR, instanceDoc, multisetDiff, nodeDoc, normalizeLine, quoteTxt, seededRandom, summarize,
} from './cases.js';

/** Encodes one record in a response and decodes it back, as a reply from the server would be. */
function roundTrip(rr: Record<string, unknown>): string | null {
  const buf = packet.encode({ type: 'response', id: 1, flags: 0, questions: [], answers: [rr] } as unknown as packet.Packet);
  return summarize(buf).answer[0] ?? null;
}

describe('formatRR', () => {
  it.each([
    [{ name: 'web.service.consul', type: 'A', ttl: 0, data: '10.0.1.11' }, 'web.service.consul. 0 IN A 10.0.1.11'],
    [{ name: 'x.consul', type: 'AAAA', ttl: 5, data: '2001:db8::1' }, 'x.consul. 5 IN AAAA 2001:db8::1'],
    [{ name: '_web._tcp.service.consul', type: 'SRV', ttl: 0, data: { priority: 1, weight: 1, port: 8080, target: 'web-1.node.dc1.consul' } },
      '_web._tcp.service.consul. 0 IN SRV 1 1 8080 web-1.node.dc1.consul.'],
    [{ name: 'consul', type: 'NS', ttl: 0, data: 'a.node.dc1.consul' }, 'consul. 0 IN NS a.node.dc1.consul.'],
    [{ name: '1.0.0.10.in-addr.arpa', type: 'PTR', ttl: 0, data: 'n.node.dc1.consul' }, '1.0.0.10.in-addr.arpa. 0 IN PTR n.node.dc1.consul.'],
    [{ name: 'a.consul', type: 'CNAME', ttl: 3, data: 'b.example' }, 'a.consul. 3 IN CNAME b.example.'],
    [{ name: 'consul', type: 'SOA', ttl: 0, data: { mname: 'ns.consul', rname: 'hostmaster.consul', serial: 42, refresh: 3600, retry: 600, expire: 86400, minimum: 0 } },
      'consul. 0 IN SOA ns.consul. hostmaster.consul. 42 3600 600 86400 0'],
    [{ name: 'n.node.consul', type: 'TXT', ttl: 0, data: ['rack=r1'] }, 'n.node.consul. 0 IN TXT "rack=r1"'],
    [{ name: 'n.node.consul', type: 'TXT', ttl: 0, data: ['a', 'b c'] }, 'n.node.consul. 0 IN TXT "a" "b c"'],
  ])('%j', (rr, line) => {
    expect(roundTrip(rr)).toBe(line);
  });

  it('skips OPT (checked separately)', () => {
    expect(formatRR({ name: '.', type: 'OPT' })).toBeNull();
  });

  it('quotes TXT strings with escapes for quote, backslash and non-printable bytes', () => {
    expect(quoteTxt('say "hi"\\')).toBe('"say \\"hi\\"\\\\"');
    expect(quoteTxt(Buffer.from([0x61, 0x09, 0xc3]))).toBe('"a\\009\\195"');
  });

  it('normalizes the spacing of hand-written lines', () => {
    expect(normalizeLine('  a.consul.   0  IN A   1.2.3.4 ')).toBe('a.consul. 0 IN A 1.2.3.4');
  });
});

describe('multisetDiff', () => {
  it('is order-insensitive and counts duplicates', () => {
    expect(multisetDiff(['a', 'b'], ['b', 'a'])).toEqual({ missing: [], unexpected: [] });
    expect(multisetDiff(['a', 'a'], ['a'])).toEqual({ missing: ['a'], unexpected: [] });
    expect(multisetDiff(['a'], ['a', 'a', 'c'])).toEqual({ missing: [], unexpected: ['a', 'c'] });
  });
});

describe('seededRandom', () => {
  it('is repeatable for a seed, differs across seeds, and stays in [0, 1)', () => {
    const a = seededRandom(7), b = seededRandom(7), c = seededRandom(8);
    const xs = Array.from({ length: 1000 }, () => a());
    expect(Array.from({ length: 1000 }, () => b())).toEqual(xs);
    expect(c()).not.toBe(xs[0]);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    expect(new Set(xs).size).toBeGreaterThan(990);
  });
});

describe('catalog builders', () => {
  it('produce a document validateCatalog accepts, adding nodes named only in service entries', () => {
    const n1 = nodeDoc('n1', '10.0.0.1', { meta: { k: 'v' } });
    const doc = catalogDoc('dc1', {
      dc1: { nodes: [nodeDoc('lonely', '10.0.0.9')], services: { web: [instanceDoc(n1, 'web', { port: 80, tags: ['v1'], status: 'warning' })] } },
    });
    const { catalog, warnings } = validateCatalog(doc);
    expect(warnings).toEqual([]);
    const dc = catalog.datacenters.get('dc1')!;
    expect([...dc.nodes.keys()].sort()).toEqual(['lonely', 'n1']);
    const [inst] = dc.services.get('web')!;
    expect(inst).toMatchObject({ service: 'web', port: 80, tags: ['v1'], address: '' });
    expect(inst!.node.meta).toEqual({ k: 'v' });
    expect(inst!.checks.map((c) => [c.serviceId === '' ? 'node' : 'service', c.status])).toEqual([['node', 'passing'], ['service', 'warning']]);
  });

  it('copies builder objects used in several places apart, so a test can edit one place', () => {
    const n = nodeDoc('n', '10.0.0.1');
    const doc = catalogDoc('dc1', { dc1: { services: { a: [instanceDoc(n, 'a')], b: [instanceDoc(n, 'b')] } } }) as { datacenters: { dc1: { nodes: Array<{ Node: string }>; services: Record<string, Array<{ Node: { Node: string } }>> } } };
    const dc = doc.datacenters.dc1;
    dc.services.a![0]!.Node.Node = 'changed';
    expect(dc.services.b![0]!.Node.Node).toBe('n');
    expect(dc.nodes[0]!.Node).toBe('n');
    expect(n.Node).toBe('n');
  });

  it('can leave out the node check and the service check', () => {
    const doc = instanceDoc(nodeDoc('n', '10.0.0.1'), 's', { status: null, nodeStatus: null });
    expect(doc.Checks).toEqual([]);
  });
});

describe('Table', () => {
  const doc = catalogDoc('dc1', {
    dc1: { services: { web: [instanceDoc(nodeDoc('web-1', '10.0.1.11'), 'web', { port: 8080 }), instanceDoc(nodeDoc('web-2', '10.0.1.12'), 'web', { port: 8080 })] } },
  });
  const t = new Table(doc);

  it('passes a matching case whatever the answer order', () => {
    for (let i = 0; i < 5; i++) {
      t.run({ qname: 'web.service.consul', qtype: 'A', answer: ['web.service.consul. 0 IN A 10.0.1.12', 'web.service.consul. 0 IN A 10.0.1.11'] });
    }
  });

  it('fails with the missing and unexpected lines named', () => {
    expect(() => t.run({ qname: 'web.service.consul', qtype: 'A', answer: ['web.service.consul. 0 IN A 10.0.1.11', 'web.service.consul. 0 IN A 10.9.9.9'] }))
      .toThrow(/answer: missing {5}web\.service\.consul\. 0 IN A 10\.9\.9\.9[\s\S]*answer: unexpected {2}web\.service\.consul\. 0 IN A 10\.0\.1\.12/);
  });

  it('fails on a wrong rcode or flag, and on a section that should be empty', () => {
    expect(() => t.run({ qname: 'web.service.consul', qtype: 'A', rcode: 'NXDOMAIN' })).toThrow(/rcode: expected NXDOMAIN, got NOERROR/);
    expect(() => t.run({ qname: 'web.service.consul', qtype: 'A', tc: true, answer: ['web.service.consul. 0 IN A 10.0.1.11', 'web.service.consul. 0 IN A 10.0.1.12'] }))
      .toThrow(/tc: expected true, got false/);
    expect(() => t.run({ qname: 'web.service.consul', qtype: 'A' })).toThrow(/answer: unexpected/);
  });

  it('checks the OPT against the query: an EDNS query needs an OPT back', () => {
    const r = t.run({ qname: 'web.service.consul', qtype: 'A', edns: 1232, answer: ['web.service.consul. 0 IN A 10.0.1.11', 'web.service.consul. 0 IN A 10.0.1.12'] });
    expect(r.opt?.udpPayloadSize).toBe(1232);
  });

  it('builds one zone per distinct config and applies case config on top of the base', () => {
    expect(t.server({ node_ttl: 5 })).toBe(t.server({ node_ttl: 5 }));
    expect(t.server({ node_ttl: 5 }).config.nodeTtl).toBe(5);
    t.run({ qname: 'web-1.node.consul', qtype: 'A', config: { node_ttl: '7s' }, answer: ['web-1.node.consul. 7 IN A 10.0.1.11'] });
  });
});
