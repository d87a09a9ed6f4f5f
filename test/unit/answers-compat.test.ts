/**
 * Answer tables with `compat: 'consul'`: Consul's own behaviour where rfc mode fixes it
 * (CONSUL.md §1.16), and the same answers as rfc mode everywhere else.
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

describe('compat consul: where Consul differs from rfc mode (§1.16)', () => {
  table([
    { name: 'apex: NXDOMAIN (§1.11, §1.16.2)', qname: 'consul', qtype: 'A', rcode: 'NXDOMAIN', ns: [SOA] },
    { name: 'apex ANY: NXDOMAIN too (the apex is not a lookup kind)', qname: 'consul', qtype: 'ANY', rcode: 'NXDOMAIN', ns: [SOA] },
    { name: 'service.consul: NXDOMAIN', qname: 'service.consul', qtype: 'A', rcode: 'NXDOMAIN', ns: [SOA] },
    { name: 'node.consul: NXDOMAIN', qname: 'node.consul', qtype: 'A', rcode: 'NXDOMAIN', ns: [SOA] },
    { name: '_tcp.service.consul: NXDOMAIN', qname: '_tcp.service.consul', qtype: 'SRV', rcode: 'NXDOMAIN', ns: [SOA] },
    { name: 'service.dc2.consul: NXDOMAIN', qname: 'service.dc2.consul', qtype: 'A', rcode: 'NXDOMAIN', ns: [SOA] },
    { name: 'dotted-tag suffix: NXDOMAIN', qname: 'canary.web.service.consul', qtype: 'A', rcode: 'NXDOMAIN', ns: [SOA] },
    { name: 'reverse empty non-terminal: NXDOMAIN', qname: '1.0.10.in-addr.arpa', qtype: 'PTR', rcode: 'NXDOMAIN', ns: [SOA] },
    { name: 'TXT on a service yields its address records (makeARecord quirk, §1.5)', qname: 'web.service.consul', qtype: 'TXT',
      answer: ['web.service.consul. 0 IN A 10.0.1.11', 'web.service.consul. 0 IN A 10.0.1.12'] },
    { name: 'node, unsupported qtype: empty NOERROR without SOA (§1.7, §1.11)', qname: 'web-1.node.consul', qtype: 'MX' },
    { name: 'node, no record of that family: empty NOERROR without SOA (§1.7)', qname: 'web-1.node.consul', qtype: 'AAAA' },
    { name: 'node without meta, TXT: empty NOERROR without SOA', qname: 'bare-1.node.consul', qtype: 'TXT' },
    { name: '.addr, other qtype: record in ADDITIONAL, no SOA (§1.11)', qname: '0a00010b.addr.consul', qtype: 'AAAA', extra: ['0a00010b.addr.consul. 0 IN A 10.0.1.11'] },
    { name: 'RFC 2782 name without the service label, not SRV: NXDOMAIN', qname: '_web._tcp.consul', qtype: 'A', rcode: 'NXDOMAIN', ns: [SOA] },
  ]);
});

describe('compat consul: no TC when records are dropped (§1.10)', () => {
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
    { name: 'service exists, no AAAA: NODATA with the SOA (§1.11)', qname: 'web.service.consul', qtype: 'AAAA', ns: [SOA] },
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
    { qname: '99.99.0.10.in-addr.arpa', qtype: 'PTR', rcode: 'NXDOMAIN', ns: [SOA] },
    { qname: 'consul', qtype: 'SOA', answer: [SOA], ns: NS, extra: NS_GLUE },
    { qname: 'consul', qtype: 'NS', answer: NS, extra: NS_GLUE },
    { name: 'SOA on a name Consul calls NXDOMAIN is still the apex SOA (§1.3)', qname: 'service.consul', qtype: 'SOA', answer: [SOA], ns: NS, extra: NS_GLUE },
    { qname: 'example.com', qtype: 'A', rcode: 'REFUSED' },
    { qname: 'WeB.SeRvIcE.CoNsUl', qtype: 'A', answer: WEB_A.map((l) => l.replace('web.service.consul.', 'WeB.SeRvIcE.CoNsUl.')) },
    { name: 'negative TTL from soa.min_ttl', qname: 'nosuch.service.consul', qtype: 'A', config: { soa: { min_ttl: 15 } }, rcode: 'NXDOMAIN',
      ns: ['consul. 15 IN SOA ns.consul. hostmaster.consul. 42 3600 600 86400 15'] },
    { name: 'service_ttl', qname: 'web.service.consul', qtype: 'A', config: { service_ttl: { 'w*': '9s' } },
      answer: WEB_A.map((l) => l.replace(' 0 IN ', ' 9 IN ')) },
    { name: 'only_passing', qname: 'web.service.consul', qtype: 'A', config: { only_passing: true }, answer: WEB_A },
  ]);
});
