/**
 * Answer tables with `compat: 'consul'`: Consul's own behaviour where rfc mode fixes it
 * (docs/consul-dns.md §12), and the same answers as rfc mode everywhere else.
 */
import { describe, it } from 'vitest';
import { Table, caseTitle, catalogDoc, instanceDoc, nodeDoc, type Case } from '../support/cases.js';

function fixture() {
  const servers = [1, 2, 3].map((i) => nodeDoc(`consul-server-${i}`, `10.0.0.${9 + i}`));
  const web1 = nodeDoc('web-1', '10.0.1.11', { meta: { rack: 'r1' } });
  const web2 = nodeDoc('web-2', '10.0.1.12');
  const cacheNode = nodeDoc('cache-1', '10.0.4.41');
  return catalogDoc('dc1', {
    dc1: {
      nodes: [nodeDoc('bare-1', '10.0.6.62'), ...servers],
      services: {
        consul: servers.map((n) => instanceDoc(n, 'consul', { port: 8300 })),
        web: [
          instanceDoc(web1, 'web', { port: 8080, tags: ['v1'] }),
          instanceDoc(web2, 'web', { port: 8080, tags: ['v1.canary'] }),
          instanceDoc(nodeDoc('web-3', '10.0.1.13'), 'web', { port: 8080, status: 'critical' }),
        ],
        db: [instanceDoc(nodeDoc('db-1', '10.0.2.21'), 'db', { port: 5432, address: '10.0.2.121' })],
        cache: [
          instanceDoc(cacheNode, 'cache', { id: 'cache-a', port: 6379 }),
          instanceDoc(cacheNode, 'cache', { id: 'cache-b', port: 6380 }),
        ],
        big: Array.from({ length: 6 }, (_, i) => instanceDoc(nodeDoc(`big-${i + 1}`, `10.9.0.${i + 1}`), 'big', { port: 80 })),
      },
    },
    dc2: { services: { web: [instanceDoc(nodeDoc('web-9', '10.1.1.19'), 'web', { port: 8080 })] } },
  });
}

const t = new Table(fixture(), { compat: 'consul' });
const table = (cases: readonly Case[]) => {
  for (const c of cases) it(caseTitle(c), () => { t.run(c); });
};

const SOA = 'consul. 0 IN SOA ns.consul. hostmaster.consul. 42 3600 600 86400 0';
const NS = [1, 2, 3].map((i) => `consul. 0 IN NS consul-server-${i}.node.dc1.consul.`);
const NS_GLUE = [1, 2, 3].map((i) => `consul-server-${i}.node.dc1.consul. 0 IN A 10.0.0.${9 + i}`);
const WEB_A = ['web.service.consul. 0 IN A 10.0.1.11', 'web.service.consul. 0 IN A 10.0.1.12'];

describe('compat consul: where Consul differs from rfc mode (docs/consul-dns.md §12)', () => {
  table([
    { name: 'apex: NXDOMAIN (docs/consul-dns.md §12.1)', qname: 'consul', qtype: 'A', rcode: 'NXDOMAIN', ns: [SOA] },
    { name: 'apex ANY: NXDOMAIN too (the apex is not a lookup kind)', qname: 'consul', qtype: 'ANY', rcode: 'NXDOMAIN', ns: [SOA] },
    { name: 'service.consul: NXDOMAIN', qname: 'service.consul', qtype: 'A', rcode: 'NXDOMAIN', ns: [SOA] },
    { name: 'node.consul: NXDOMAIN', qname: 'node.consul', qtype: 'A', rcode: 'NXDOMAIN', ns: [SOA] },
    { name: '_tcp.service.consul: NXDOMAIN', qname: '_tcp.service.consul', qtype: 'SRV', rcode: 'NXDOMAIN', ns: [SOA] },
    { name: 'service.dc2.consul: NXDOMAIN', qname: 'service.dc2.consul', qtype: 'A', rcode: 'NXDOMAIN', ns: [SOA] },
    { name: 'dotted-tag suffix: NXDOMAIN', qname: 'canary.web.service.consul', qtype: 'A', rcode: 'NXDOMAIN', ns: [SOA] },
    { name: 'TXT on a service yields its address records (docs/consul-dns.md §12.7)', qname: 'web.service.consul', qtype: 'TXT',
      answer: ['web.service.consul. 0 IN A 10.0.1.11', 'web.service.consul. 0 IN A 10.0.1.12'] },
    { name: 'node, unsupported qtype: empty NOERROR without SOA (docs/consul-dns.md §12.6)', qname: 'web-1.node.consul', qtype: 'MX' },
    { name: 'node, no record of that family: empty NOERROR without SOA', qname: 'web-1.node.consul', qtype: 'AAAA' },
    { name: 'node without meta, TXT: empty NOERROR without SOA', qname: 'bare-1.node.consul', qtype: 'TXT' },
    { name: '.addr, other qtype: record in ADDITIONAL, no SOA (docs/consul-dns.md §12.10)', qname: '0a00010b.addr.consul', qtype: 'AAAA', extra: ['0a00010b.addr.consul. 0 IN A 10.0.1.11'] },
    { name: 'RFC 2782 name without the service label, not SRV: NXDOMAIN (docs/consul-dns.md §12.11)', qname: '_web._tcp.consul', qtype: 'A', rcode: 'NXDOMAIN', ns: [SOA] },
    { name: 'PTR name, other qtype: the PTR record (docs/consul-dns.md §12.8)', qname: '11.1.0.10.in-addr.arpa', qtype: 'A', answer: ['11.1.0.10.in-addr.arpa. 0 IN PTR web-1.node.dc1.consul.'] },
  ]);
});

// Every reverse name is answered, negative answers with the domain's SOA (docs/consul-dns.md §7, §12.9),
// unless reverse_zones is set: then the zones decide what is served and the SOA, the mode the rest.
describe('compat consul: reverse names (docs/consul-dns.md §12.9)', () => {
  const zone10 = { reverse_zones: '10.0.0.0/8' };
  const SOA10 = '10.in-addr.arpa. 0 IN SOA ns.consul. hostmaster.consul. 42 3600 600 86400 0';
  table([
    { name: 'an address the catalog does not have: NXDOMAIN with the consul. SOA', qname: '99.99.0.10.in-addr.arpa', qtype: 'PTR', rcode: 'NXDOMAIN', ns: [SOA] },
    { name: 'an address far from every catalog address: answered all the same', qname: '8.8.8.8.in-addr.arpa', qtype: 'PTR', rcode: 'NXDOMAIN', ns: [SOA] },
    { name: 'IPv6 too', qname: '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa', qtype: 'PTR', rcode: 'NXDOMAIN', ns: [SOA] },
    { name: 'in-addr.arpa itself: NXDOMAIN, no SOA of its own', qname: 'in-addr.arpa', qtype: 'SOA', rcode: 'NXDOMAIN', ns: [SOA] },
    { name: 'reverse empty non-terminal: NXDOMAIN', qname: '1.0.10.in-addr.arpa', qtype: 'PTR', rcode: 'NXDOMAIN', ns: [SOA] },
    { name: 'SOA query on a PTR name: the PTR record', qname: '11.1.0.10.in-addr.arpa', qtype: 'SOA', answer: ['11.1.0.10.in-addr.arpa. 0 IN PTR web-1.node.dc1.consul.'] },
    { name: 'reverse_zones set: outside them REFUSED', qname: '8.8.8.8.in-addr.arpa', qtype: 'PTR', config: zone10, rcode: 'REFUSED' },
    { name: 'reverse_zones set: NXDOMAIN with the zone SOA', qname: '99.99.0.10.in-addr.arpa', qtype: 'PTR', config: zone10, rcode: 'NXDOMAIN', ns: [SOA10] },
    { name: 'reverse_zones set: the apex answers its SOA', qname: '10.in-addr.arpa', qtype: 'SOA', config: zone10,
      answer: [SOA10], ns: NS.map((l) => l.replace(/^consul\./, '10.in-addr.arpa.')), extra: NS_GLUE },
    { name: 'reverse_zones set: an empty non-terminal is still NXDOMAIN (docs/consul-dns.md §12.1)', qname: '1.0.10.in-addr.arpa', qtype: 'PTR', config: zone10, rcode: 'NXDOMAIN', ns: [SOA10] },
    { name: 'reverse_zones set: PTR', qname: '11.1.0.10.in-addr.arpa', qtype: 'PTR', config: zone10, answer: ['11.1.0.10.in-addr.arpa. 0 IN PTR web-1.node.dc1.consul.'] },
  ]);
});

describe('compat consul: no TC when records are dropped (docs/consul-dns.md §12.2)', () => {
  it('3 of 6 answers without EDNS, TC clear', () => {
    const r = t.ask({ qname: 'big.service.consul', qtype: 'A' });
    if (r.answer.length !== 3 || r.tc) throw new Error(`expected 3 answers and no TC, got ${r.answer.length} and tc=${String(r.tc)}`);
  });
  it('enable_truncate=true sets TC', () => {
    const r = t.ask({ qname: 'big.service.consul', qtype: 'A', config: { enable_truncate: true } });
    if (r.answer.length !== 3 || !r.tc) throw new Error(`expected 3 answers and TC, got ${r.answer.length} and tc=${String(r.tc)}`);
  });
});

describe('compat consul: same as rfc mode', () => {
  table([
    { qname: 'web.service.consul', qtype: 'A', answer: WEB_A },
    { qname: 'web.service.consul', qtype: 'ANY', answer: WEB_A },
    { qname: 'v1.web.service.consul', qtype: 'A', answer: ['v1.web.service.consul. 0 IN A 10.0.1.11'] },
    { qname: 'v1.canary.web.service.consul', qtype: 'A', answer: ['v1.canary.web.service.consul. 0 IN A 10.0.1.12'] },
    { qname: '_web._tcp.service.consul', qtype: 'SRV',
      answer: ['_web._tcp.service.consul. 0 IN SRV 1 1 8080 web-1.node.dc1.consul.', '_web._tcp.service.consul. 0 IN SRV 1 1 8080 web-2.node.dc1.consul.'],
      extra: ['web-1.node.dc1.consul. 0 IN A 10.0.1.11', 'web-1.node.dc1.consul. 0 IN TXT "rack=r1"', 'web-2.node.dc1.consul. 0 IN A 10.0.1.12'] },
    { qname: '_web._tcp.consul', qtype: 'SRV',
      answer: ['_web._tcp.consul. 0 IN SRV 1 1 8080 web-1.node.dc1.consul.', '_web._tcp.consul. 0 IN SRV 1 1 8080 web-2.node.dc1.consul.'],
      extra: ['web-1.node.dc1.consul. 0 IN A 10.0.1.11', 'web-1.node.dc1.consul. 0 IN TXT "rack=r1"', 'web-2.node.dc1.consul. 0 IN A 10.0.1.12'] },
    { qname: 'db.service.consul', qtype: 'SRV', answer: ['db.service.consul. 0 IN SRV 1 1 5432 0a000279.addr.dc1.consul.'], extra: ['0a000279.addr.dc1.consul. 0 IN A 10.0.2.121'] },
    { name: 'one SRV per port on one node; glue written once (a deliberate departure, see README)', qname: 'cache.service.consul', qtype: 'SRV',
      answer: ['cache.service.consul. 0 IN SRV 1 1 6379 cache-1.node.dc1.consul.', 'cache.service.consul. 0 IN SRV 1 1 6380 cache-1.node.dc1.consul.'],
      extra: ['cache-1.node.dc1.consul. 0 IN A 10.0.4.41'] },
    { qname: 'web.service.dc2.consul', qtype: 'A', answer: ['web.service.dc2.consul. 0 IN A 10.1.1.19'] },
    { name: 'service exists, no AAAA: NODATA with the SOA', qname: 'web.service.consul', qtype: 'AAAA', ns: [SOA] },
    { name: 'service exists, MX: NODATA with the SOA', qname: 'web.service.consul', qtype: 'MX', ns: [SOA] },
    { qname: 'nosuch.service.consul', qtype: 'A', rcode: 'NXDOMAIN', ns: [SOA] },
    { qname: 'web.service.dc3.consul', qtype: 'A', rcode: 'NXDOMAIN', ns: [SOA] },
    { qname: 'web.service.dc1.extra.more.consul', qtype: 'A', rcode: 'NXDOMAIN', ns: [SOA] },
    { qname: 'nonexisting.consul', qtype: 'A', rcode: 'NXDOMAIN', ns: [SOA] },
    { qname: 'web-1.node.consul', qtype: 'A', answer: ['web-1.node.consul. 0 IN A 10.0.1.11'], extra: ['web-1.node.consul. 0 IN TXT "rack=r1"'] },
    { qname: 'web-1.node.consul', qtype: 'TXT', answer: ['web-1.node.consul. 0 IN TXT "rack=r1"'] },
    { qname: 'nosuch.node.consul', qtype: 'A', rcode: 'NXDOMAIN', ns: [SOA] },
    { qname: '0a00010b.addr.consul', qtype: 'A', answer: ['0a00010b.addr.consul. 0 IN A 10.0.1.11'] },
    { qname: '11.1.0.10.in-addr.arpa', qtype: 'PTR', answer: ['11.1.0.10.in-addr.arpa. 0 IN PTR web-1.node.dc1.consul.'] },
    { qname: '121.2.0.10.in-addr.arpa', qtype: 'PTR', answer: ['121.2.0.10.in-addr.arpa. 0 IN PTR db.service.dc1.consul.'] },
    { qname: 'consul', qtype: 'SOA', answer: [SOA], ns: NS, extra: NS_GLUE },
    { qname: 'consul', qtype: 'NS', answer: NS, extra: NS_GLUE },
    { name: 'SOA on a name Consul calls NXDOMAIN is still the apex SOA (docs/consul-dns.md §8)', qname: 'service.consul', qtype: 'SOA', answer: [SOA], ns: NS, extra: NS_GLUE },
    { qname: 'example.com', qtype: 'A', rcode: 'REFUSED' },
    { qname: 'WeB.SeRvIcE.CoNsUl', qtype: 'A', answer: WEB_A.map((l) => l.replace('web.service.consul.', 'WeB.SeRvIcE.CoNsUl.')) },
    { name: 'negative TTL from soa.min_ttl', qname: 'nosuch.service.consul', qtype: 'A', config: { soa: { min_ttl: 15 } }, rcode: 'NXDOMAIN',
      ns: ['consul. 15 IN SOA ns.consul. hostmaster.consul. 42 3600 600 86400 15'] },
    { name: 'service_ttl', qname: 'web.service.consul', qtype: 'A', config: { service_ttl: { 'w*': '9s' } },
      answer: WEB_A.map((l) => l.replace(' 0 IN ', ' 9 IN ')) },
    { name: 'only_passing', qname: 'web.service.consul', qtype: 'A', config: { only_passing: true }, answer: WEB_A },
  ]);
});
