/**
 * Answer tables for the default ("rfc") mode, CoreDNS style: question -> rcode, flags and the three
 * sections as zone-file lines. Expectations come from the README ("DNS behaviour") and
 * docs/consul-dns.md, whose sections the describe titles name; docs/consul-dns.md §12 lists where
 * rfc mode deliberately differs from Consul.
 */
import { describe, expect, it } from 'vitest';
import { Table, caseTitle, catalogDoc, encodeMessage, exchangeRaw, instanceDoc, nodeDoc, type Case, type Json } from '../support/cases.js';
import { buildQuery } from '../support/dns-client.js';

// ---------------------------------------------------------------------------------------------
// Fixture: a small catalog in the catalog-file format
// ---------------------------------------------------------------------------------------------

function fixture() {
  // Consul servers: three healthy, one whose node check is critical (never an NS).
  const servers = [1, 2, 3, 4].map((i) => nodeDoc(`consul-server-${i}`, `10.0.0.${9 + i}`));
  const consul = servers.map((n, i) => instanceDoc(n, 'consul', { port: 8300, nodeStatus: i === 3 ? 'critical' : 'passing' }));

  // web: node form (no service address); weights; warning kept; critical (own or node check) excluded.
  const web1 = nodeDoc('web-1', '10.0.1.11', { meta: { instance_type: 't3.medium', 'rfc1035-owner': 'team-frontend' } });
  const web2 = nodeDoc('web-2', '10.0.1.12', { meta: { rack: 'r2' } });
  const web3 = nodeDoc('web-3', '10.0.1.13');
  const web4 = nodeDoc('web-4', '10.0.1.14');
  const web5 = nodeDoc('web-5', '10.0.1.15');
  const web = [
    instanceDoc(web1, 'web', { port: 8080, tags: ['v1', 'http'], weights: { Passing: 10, Warning: 1 } }),
    instanceDoc(web2, 'web', { port: 8080, tags: ['v2', 'http'] }),
    instanceDoc(web3, 'web', { port: 8080, tags: ['v1'], weights: { Passing: 5, Warning: 2 }, status: 'warning' }),
    instanceDoc(web4, 'web', { port: 8080, tags: ['v1'], status: 'critical' }),
    instanceDoc(web5, 'web', { port: 8080, tags: ['v3'], nodeStatus: 'critical' }),
  ];

  // db: addr form (service addresses of their own, one equal to its node's), a dotted tag.
  const db = [
    instanceDoc(nodeDoc('db-1', '10.0.2.21'), 'db', { port: 5432, address: '10.0.2.121', tags: ['v1.primary'] }),
    instanceDoc(nodeDoc('db-2', '10.0.2.22'), 'db', { port: 5432, address: '10.0.2.22', tags: ['replica'] }),
  ];

  // api: an IPv6 service address on an IPv4 node.
  const api = [instanceDoc(nodeDoc('api-1', '10.0.3.31'), 'api', { port: 443, address: '2001:db8::10' })];

  // cache: three instances on one node, two on the same port.
  const cacheNode = nodeDoc('cache-1', '10.0.4.41', { meta: { zone: 'a' } });
  const cache = [
    instanceDoc(cacheNode, 'cache', { id: 'cache-a', port: 6379 }),
    instanceDoc(cacheNode, 'cache', { id: 'cache-b', port: 6379 }),
    instanceDoc(cacheNode, 'cache', { id: 'cache-c', port: 6380 }),
  ];

  // odd: a check status Consul does not know (weight 1 whatever Weights say, docs/consul-dns.md §4).
  const odd = [instanceDoc(nodeDoc('odd-1', '10.0.8.81'), 'odd', { port: 81, weights: { Passing: 7, Warning: 3 }, status: 'pending' })];

  // down: every instance critical.
  const down = [instanceDoc(nodeDoc('down-1', '10.0.7.71'), 'down', { port: 80, status: 'critical' })];

  return catalogDoc('dc1', {
    dc1: {
      nodes: [
        nodeDoc('v6-1', '2001:db8::1'),
        nodeDoc('dual-1', '10.0.5.51', { tagged: { lan_ipv6: '2001:db8::51' } }),
        nodeDoc('meta-1', '10.0.6.61', { meta: { 'a=b': 'x', 'rfc1035-raw': 'hello world' } }),
        nodeDoc('bare-1', '10.0.6.62'),
        ...servers,
      ],
      services: { consul, web, db, api, cache, odd, down },
    },
    dc2: {
      services: { web: [instanceDoc(nodeDoc('web-9', '10.1.1.19'), 'web', { port: 8080 })] },
    },
  });
}

const t = new Table(fixture());
const table = (cases: readonly Case[]) => {
  for (const c of cases) it(caseTitle(c), () => { t.run(c); });
};

// Negative answers carry the apex SOA; its TTL is min(SOA TTL, MINIMUM) = soa.min_ttl = 0 (RFC 2308 §5).
const SOA = 'consul. 0 IN SOA ns.consul. hostmaster.consul. 42 3600 600 86400 0';
const NS = [1, 2, 3].map((i) => `consul. 0 IN NS consul-server-${i}.node.dc1.consul.`);
const NS_GLUE = [1, 2, 3].map((i) => `consul-server-${i}.node.dc1.consul. 0 IN A 10.0.0.${9 + i}`);

const a = (owner: string, ...ips: string[]) => ips.map((ip) => `${owner} 0 IN A ${ip}`);
const WEB_IPS = ['10.0.1.11', '10.0.1.12', '10.0.1.13'];
/** SRV + glue for web in dc1 (node form): target <node>.node.dc1.consul, glue A and node meta TXT. */
const webSrv = (owner: string) => [
  `${owner} 0 IN SRV 1 10 8080 web-1.node.dc1.consul.`,
  `${owner} 0 IN SRV 1 1 8080 web-2.node.dc1.consul.`,
  `${owner} 0 IN SRV 1 2 8080 web-3.node.dc1.consul.`,
];
const WEB_GLUE = [
  'web-1.node.dc1.consul. 0 IN A 10.0.1.11',
  'web-1.node.dc1.consul. 0 IN TXT "instance_type=t3.medium"',
  'web-1.node.dc1.consul. 0 IN TXT "team-frontend"',
  'web-2.node.dc1.consul. 0 IN A 10.0.1.12',
  'web-2.node.dc1.consul. 0 IN TXT "rack=r2"',
  'web-3.node.dc1.consul. 0 IN A 10.0.1.13',
];
/** The apex SOA answer with domain example.internal. */
const EXAMPLE_SOA = {
  answer: ['example.internal. 0 IN SOA ns.example.internal. hostmaster.example.internal. 42 3600 600 86400 0'],
  ns: [1, 2, 3].map((i) => `example.internal. 0 IN NS consul-server-${i}.node.dc1.example.internal.`),
  extra: [1, 2, 3].map((i) => `consul-server-${i}.node.dc1.example.internal. 0 IN A 10.0.0.${9 + i}`),
};
const ip6arpa = (hex32: string) => `${hex32.split('').reverse().join('.')}.ip6.arpa.`;

// Reverse zones (README "Reverse zones"): by default the /24 of every IPv4 address and the /64 of
// every IPv6 address with a PTR record, each with its own SOA at its apex.
const rsoa = (apex: string, ttl = 0, min = 0) => `${apex} ${ttl} IN SOA ns.consul. hostmaster.consul. 42 3600 600 86400 ${min}`;
const REV1 = '1.0.10.in-addr.arpa.';
const REV6 = ip6arpa('20010db800000000');
const revApex = (apex: string) => ({
  soa: { answer: [rsoa(apex)], ns: NS.map((l) => l.replace(/^consul\./, apex)), extra: NS_GLUE },
  ns: { answer: NS.map((l) => l.replace(/^consul\./, apex)), extra: NS_GLUE },
});

// ---------------------------------------------------------------------------------------------

describe('service lookups (docs/consul-dns.md §3, §4)', () => {
  table([
    { qname: 'web.service.consul', qtype: 'A', answer: a('web.service.consul.', ...WEB_IPS) },
    { qname: 'web.service.dc1.consul', qtype: 'A', answer: a('web.service.dc1.consul.', ...WEB_IPS) },
    { name: 'ANY on a service gives the address records, not SRV', qname: 'web.service.consul', qtype: 'ANY', answer: a('web.service.consul.', ...WEB_IPS) },
    { name: 'SRV: node-form targets, weights from Weights.Passing/Warning, glue A and node meta TXT', qname: 'web.service.consul', qtype: 'SRV', answer: webSrv('web.service.consul.'), extra: WEB_GLUE },
    { name: 'AAAA on an IPv4-only service: NODATA with the SOA', qname: 'web.service.consul', qtype: 'AAAA', ns: [SOA] },
    { name: 'other qtype on a service: NODATA with the SOA', qname: 'web.service.consul', qtype: 'MX', ns: [SOA] },
    { name: 'TXT on a service: NODATA in rfc mode (docs/consul-dns.md §12.7)', qname: 'web.service.consul', qtype: 'TXT', ns: [SOA] },
    { name: 'unknown service: NXDOMAIN with the SOA', qname: 'nosuch.service.consul', qtype: 'A', rcode: 'NXDOMAIN', ns: [SOA] },
  ]);
});

describe('tags (docs/consul-dns.md §3)', () => {
  table([
    { name: 'tag filter, critical instance of that tag excluded', qname: 'v1.web.service.consul', qtype: 'A', answer: a('v1.web.service.consul.', '10.0.1.11', '10.0.1.13') },
    { qname: 'http.web.service.consul', qtype: 'SRV',
      answer: ['http.web.service.consul. 0 IN SRV 1 10 8080 web-1.node.dc1.consul.', 'http.web.service.consul. 0 IN SRV 1 1 8080 web-2.node.dc1.consul.'],
      extra: WEB_GLUE.filter((l) => !l.startsWith('web-3')) },
    { name: 'a tag carried only by unhealthy instances: NXDOMAIN', qname: 'v3.web.service.consul', qtype: 'A', rcode: 'NXDOMAIN', ns: [SOA] },
    { name: 'unknown tag: NXDOMAIN', qname: 'nosuchtag.web.service.consul', qtype: 'A', rcode: 'NXDOMAIN', ns: [SOA] },
    { name: 'dotted tag: all labels left of the service', qname: 'v1.primary.db.service.consul', qtype: 'A', answer: a('v1.primary.db.service.consul.', '10.0.2.121') },
    { name: 'dotted tag suffix is an empty non-terminal: NODATA (docs/consul-dns.md §12.1)', qname: 'primary.db.service.consul', qtype: 'A', ns: [SOA] },
  ]);
});

describe('RFC 2782 names (docs/consul-dns.md §3)', () => {
  table([
    { name: '_tcp means no tag filter', qname: '_web._tcp.service.consul', qtype: 'SRV', answer: webSrv('_web._tcp.service.consul.'), extra: WEB_GLUE },
    { name: '_<tag> filters on the tag', qname: '_web._v1.service.consul', qtype: 'SRV',
      answer: ['_web._v1.service.consul. 0 IN SRV 1 10 8080 web-1.node.dc1.consul.', '_web._v1.service.consul. 0 IN SRV 1 2 8080 web-3.node.dc1.consul.'],
      extra: WEB_GLUE.filter((l) => !l.startsWith('web-2')) },
    { name: 'RFC 2782 names answer A too', qname: '_web._tcp.service.consul', qtype: 'A', answer: a('_web._tcp.service.consul.', ...WEB_IPS) },
    { name: 'SRV without the service label', qname: '_web._tcp.consul', qtype: 'SRV', answer: webSrv('_web._tcp.consul.'), extra: WEB_GLUE },
    { name: 'SRV without the service label, with a tag', qname: '_db._replica.consul', qtype: 'SRV',
      answer: ['_db._replica.consul. 0 IN SRV 1 1 5432 0a000216.addr.dc1.consul.'], extra: ['0a000216.addr.dc1.consul. 0 IN A 10.0.2.22'] },
    { name: 'without the service label the name exists for SRV only: other qtypes NODATA', qname: '_web._tcp.consul', qtype: 'A', ns: [SOA] },
    { name: 'three query labels are not an RFC 2782 name: NXDOMAIN', qname: 'banana._web._tcp.service.consul', qtype: 'SRV', rcode: 'NXDOMAIN', ns: [SOA] },
    { qname: '_web._tcp.service.dc2.consul', qtype: 'SRV',
      answer: ['_web._tcp.service.dc2.consul. 0 IN SRV 1 1 8080 web-9.node.dc2.consul.'], extra: ['web-9.node.dc2.consul. 0 IN A 10.1.1.19'] },
  ]);
});

describe('datacenters and locality (docs/consul-dns.md §3)', () => {
  table([
    { qname: 'web.service.dc2.consul', qtype: 'A', answer: a('web.service.dc2.consul.', '10.1.1.19') },
    { name: '<dc>.dc form', qname: 'web.service.dc2.dc.consul', qtype: 'A', answer: a('web.service.dc2.dc.consul.', '10.1.1.19') },
    { name: 'SRV targets name the queried DC', qname: 'web.service.dc2.consul', qtype: 'SRV',
      answer: ['web.service.dc2.consul. 0 IN SRV 1 1 8080 web-9.node.dc2.consul.'], extra: ['web-9.node.dc2.consul. 0 IN A 10.1.1.19'] },
    { name: 'unknown DC: NXDOMAIN', qname: 'web.service.dc3.consul', qtype: 'A', rcode: 'NXDOMAIN', ns: [SOA] },
    { name: 'unknown DC, .dc form: NXDOMAIN', qname: 'web.service.dc3.dc.consul', qtype: 'A', rcode: 'NXDOMAIN', ns: [SOA] },
    { name: 'three locality labels: NXDOMAIN (TestDNS_InvalidQueries)', qname: 'web.service.dc1.extra.more.consul', qtype: 'A', rcode: 'NXDOMAIN', ns: [SOA] },
    { name: 'two locality labels that are not a keyword pair: NXDOMAIN', qname: 'web.service.dc1.extra.consul', qtype: 'A', rcode: 'NXDOMAIN', ns: [SOA] },
  ]);
});

describe('health (docs/consul-dns.md §5)', () => {
  table([
    { name: 'only_passing drops warning instances', qname: 'web.service.consul', qtype: 'A', config: { only_passing: true }, answer: a('web.service.consul.', '10.0.1.11', '10.0.1.12') },
    { name: 'only_passing: a tag left with only warning instances', qname: 'v1.web.service.consul', qtype: 'A', config: { only_passing: true }, answer: a('v1.web.service.consul.', '10.0.1.11') },
    { name: 'every instance critical: NXDOMAIN', qname: 'down.service.consul', qtype: 'A', rcode: 'NXDOMAIN', ns: [SOA] },
    { name: 'every instance critical, SRV: NXDOMAIN', qname: '_down._tcp.service.consul', qtype: 'SRV', rcode: 'NXDOMAIN', ns: [SOA] },
    { name: 'an unknown check status is not critical: kept, weight 1', qname: 'odd.service.consul', qtype: 'SRV',
      answer: ['odd.service.consul. 0 IN SRV 1 1 81 odd-1.node.dc1.consul.'], extra: ['odd-1.node.dc1.consul. 0 IN A 10.0.8.81'] },
    { name: 'only_passing: an unknown status is not passing', qname: 'odd.service.consul', qtype: 'A', config: { only_passing: true }, rcode: 'NXDOMAIN', ns: [SOA] },
    { name: 'node lookups ignore health (node check critical)', qname: 'web-5.node.consul', qtype: 'A', answer: a('web-5.node.consul.', '10.0.1.15') },
  ]);
});

describe('addr form, IPv6 and de-duplication (docs/consul-dns.md §4)', () => {
  table([
    { name: 'service addresses give .addr SRV targets with glue, even when equal to the node address', qname: 'db.service.consul', qtype: 'SRV',
      answer: ['db.service.consul. 0 IN SRV 1 1 5432 0a000279.addr.dc1.consul.', 'db.service.consul. 0 IN SRV 1 1 5432 0a000216.addr.dc1.consul.'],
      extra: ['0a000279.addr.dc1.consul. 0 IN A 10.0.2.121', '0a000216.addr.dc1.consul. 0 IN A 10.0.2.22'] },
    { qname: 'db.service.consul', qtype: 'A', answer: a('db.service.consul.', '10.0.2.121', '10.0.2.22') },
    { name: 'IPv6 service address: AAAA', qname: 'api.service.consul', qtype: 'AAAA', answer: ['api.service.consul. 0 IN AAAA 2001:db8::10'] },
    { name: 'IPv6 service address: A is NODATA', qname: 'api.service.consul', qtype: 'A', ns: [SOA] },
    { name: 'IPv6 service address: 32-hex .addr target and AAAA glue', qname: 'api.service.consul', qtype: 'SRV',
      answer: ['api.service.consul. 0 IN SRV 1 1 443 20010db8000000000000000000000010.addr.dc1.consul.'],
      extra: ['20010db8000000000000000000000010.addr.dc1.consul. 0 IN AAAA 2001:db8::10'] },
    { name: 'three instances on one IP: one A (TestDNS_ServiceLookup_Dedup)', qname: 'cache.service.consul', qtype: 'A', answer: a('cache.service.consul.', '10.0.4.41') },
    { name: 'one SRV per node:address:port, glue and meta TXT once (docs/consul-dns.md §12.4)', qname: 'cache.service.consul', qtype: 'SRV',
      answer: ['cache.service.consul. 0 IN SRV 1 1 6379 cache-1.node.dc1.consul.', 'cache.service.consul. 0 IN SRV 1 1 6380 cache-1.node.dc1.consul.'],
      extra: ['cache-1.node.dc1.consul. 0 IN A 10.0.4.41', 'cache-1.node.dc1.consul. 0 IN TXT "zone=a"'] },
    { name: 'enable_additional_node_meta_txt=false: SRV glue without TXT', qname: 'web.service.consul', qtype: 'SRV', config: { enable_additional_node_meta_txt: false },
      answer: webSrv('web.service.consul.'), extra: WEB_GLUE.filter((l) => !l.includes(' TXT ')) },
  ]);
});

describe('node lookups (docs/consul-dns.md §6)', () => {
  const WEB1_TXT = ['web-1.node.consul. 0 IN TXT "instance_type=t3.medium"', 'web-1.node.consul. 0 IN TXT "team-frontend"'];
  table([
    { name: 'A, node meta TXT in ADDITIONAL', qname: 'web-1.node.consul', qtype: 'A', answer: a('web-1.node.consul.', '10.0.1.11'), extra: WEB1_TXT },
    { name: 'A without the meta TXT when switched off', qname: 'web-1.node.consul', qtype: 'A', config: { enable_additional_node_meta_txt: false }, answer: a('web-1.node.consul.', '10.0.1.11') },
    { name: 'TXT: one RR per meta key; rfc1035- keys bare', qname: 'web-1.node.consul', qtype: 'TXT', answer: WEB1_TXT },
    { name: 'TXT stays in ANSWER with the switch off', qname: 'web-1.node.consul', qtype: 'TXT', config: { enable_additional_node_meta_txt: false }, answer: WEB1_TXT },
    { name: 'ANY: address and TXT', qname: 'web-1.node.consul', qtype: 'ANY', answer: [...a('web-1.node.consul.', '10.0.1.11'), ...WEB1_TXT] },
    { name: 'ANY keeps the TXT with the switch off', qname: 'web-1.node.consul', qtype: 'ANY', config: { enable_additional_node_meta_txt: false },
      answer: [...a('web-1.node.consul.', '10.0.1.11'), ...WEB1_TXT] },
    { name: 'with the DC label', qname: 'web-1.node.dc1.consul', qtype: 'A', answer: a('web-1.node.dc1.consul.', '10.0.1.11'),
      extra: WEB1_TXT.map((l) => l.replace('web-1.node.consul.', 'web-1.node.dc1.consul.')) },
    { name: 'RFC 1464: "=" in the key is back-quoted', qname: 'meta-1.node.consul', qtype: 'TXT', answer: ['meta-1.node.consul. 0 IN TXT "a`=b=x"', 'meta-1.node.consul. 0 IN TXT "hello world"'] },
    { name: 'tagged lan_ipv6 gives the AAAA of an IPv4 node', qname: 'dual-1.node.consul', qtype: 'AAAA', answer: ['dual-1.node.consul. 0 IN AAAA 2001:db8::51'] },
    { qname: 'dual-1.node.consul', qtype: 'A', answer: a('dual-1.node.consul.', '10.0.5.51') },
    { name: 'IPv6 node', qname: 'v6-1.node.consul', qtype: 'AAAA', answer: ['v6-1.node.consul. 0 IN AAAA 2001:db8::1'] },
    { name: 'IPv6 node, A: NODATA', qname: 'v6-1.node.consul', qtype: 'A', ns: [SOA] },
    { name: 'IPv4 node, AAAA: NODATA', qname: 'web-1.node.consul', qtype: 'AAAA', ns: [SOA] },
    { name: 'unsupported qtype on a node: NODATA with the SOA in rfc mode', qname: 'web-1.node.consul', qtype: 'MX', ns: [SOA] },
    { name: 'TXT on a node without meta: NODATA', qname: 'bare-1.node.consul', qtype: 'TXT', ns: [SOA] },
    { name: 'unknown node: NXDOMAIN', qname: 'nosuch.node.consul', qtype: 'A', rcode: 'NXDOMAIN', ns: [SOA] },
    { name: 'node of another DC', qname: 'web-9.node.dc2.consul', qtype: 'A', answer: a('web-9.node.dc2.consul.', '10.1.1.19') },
    { name: 'node of another DC asked in the local one: NXDOMAIN', qname: 'web-9.node.consul', qtype: 'A', rcode: 'NXDOMAIN', ns: [SOA] },
    { name: 'unknown DC: NXDOMAIN', qname: 'web-1.node.dc3.consul', qtype: 'A', rcode: 'NXDOMAIN', ns: [SOA] },
  ]);
});

describe('.addr names (docs/consul-dns.md §3, §12.10)', () => {
  table([
    { qname: '0a00010b.addr.consul', qtype: 'A', answer: a('0a00010b.addr.consul.', '10.0.1.11') },
    { qname: '0a00010b.addr.dc1.consul', qtype: 'ANY', answer: a('0a00010b.addr.dc1.consul.', '10.0.1.11') },
    { name: '32 hex digits: AAAA', qname: '20010db8000000000000000000000010.addr.consul', qtype: 'AAAA', answer: ['20010db8000000000000000000000010.addr.consul. 0 IN AAAA 2001:db8::10'] },
    { name: 'other qtype: NOERROR, empty ANSWER, the record in ADDITIONAL (PR #10401), SOA in rfc mode', qname: '0a00010b.addr.consul', qtype: 'AAAA',
      ns: [SOA], extra: a('0a00010b.addr.consul.', '10.0.1.11') },
    { qname: '0a00010b.addr.consul', qtype: 'SRV', ns: [SOA], extra: a('0a00010b.addr.consul.', '10.0.1.11') },
    { name: '7 hex digits: NXDOMAIN', qname: '0a00010.addr.consul', qtype: 'A', rcode: 'NXDOMAIN', ns: [SOA] },
    { name: 'not hex: NXDOMAIN', qname: 'zz00010b.addr.consul', qtype: 'A', rcode: 'NXDOMAIN', ns: [SOA] },
    { name: 'TTL is node_ttl', qname: '0a00010b.addr.consul', qtype: 'A', config: { node_ttl: '1m' }, answer: ['0a00010b.addr.consul. 60 IN A 10.0.1.11'] },
  ]);
});

describe('reverse lookups (docs/consul-dns.md §7)', () => {
  table([
    { name: 'node address', qname: '11.1.0.10.in-addr.arpa', qtype: 'PTR', answer: ['11.1.0.10.in-addr.arpa. 0 IN PTR web-1.node.dc1.consul.'] },
    { name: 'service address', qname: '121.2.0.10.in-addr.arpa', qtype: 'PTR', answer: ['121.2.0.10.in-addr.arpa. 0 IN PTR db.service.dc1.consul.'] },
    { name: 'node wins over a service with the same address', qname: '22.2.0.10.in-addr.arpa', qtype: 'PTR', answer: ['22.2.0.10.in-addr.arpa. 0 IN PTR db-2.node.dc1.consul.'] },
    { name: 'IPv6 node', qname: ip6arpa('20010db8000000000000000000000001'), qtype: 'PTR', answer: [`${ip6arpa('20010db8000000000000000000000001')} 0 IN PTR v6-1.node.dc1.consul.`] },
    { name: 'IPv6 service', qname: ip6arpa('20010db8000000000000000000000010'), qtype: 'PTR', answer: [`${ip6arpa('20010db8000000000000000000000010')} 0 IN PTR api.service.dc1.consul.`] },
    { name: 'ANY on a PTR name gives the PTR', qname: '11.1.0.10.in-addr.arpa', qtype: 'ANY', answer: ['11.1.0.10.in-addr.arpa. 0 IN PTR web-1.node.dc1.consul.'] },
    { name: 'ptr_ttl', qname: '11.1.0.10.in-addr.arpa', qtype: 'PTR', config: { ptr_ttl: '5m' }, answer: ['11.1.0.10.in-addr.arpa. 300 IN PTR web-1.node.dc1.consul.'] },
    { name: 'case-insensitive, spelling echoed', qname: '11.1.0.10.IN-ADDR.ARPA', qtype: 'PTR', answer: ['11.1.0.10.IN-ADDR.ARPA. 0 IN PTR web-1.node.dc1.consul.'] },
  ]);
});

describe('reverse zones: negative answers carry the reverse zone\'s SOA (RFC 2308 §3, docs/consul-dns.md §12.9)', () => {
  table([
    { name: 'unknown address in a served /24: NXDOMAIN with the SOA of that zone, AA set', qname: '99.1.0.10.in-addr.arpa', qtype: 'PTR', rcode: 'NXDOMAIN', ns: [rsoa(REV1)] },
    { name: 'unknown IPv6 address in a served /64: NXDOMAIN with the SOA of that zone', qname: ip6arpa('20010db8000000000000000000000099'), qtype: 'PTR', rcode: 'NXDOMAIN', ns: [rsoa(REV6)] },
    { name: 'PTR name, other qtype: NODATA with the zone SOA', qname: '11.1.0.10.in-addr.arpa', qtype: 'A', ns: [rsoa(REV1)] },
    // The domain's SOA/NS answer "any name in the domain"; a reverse name is not in it.
    { name: 'SOA query on a PTR name: NODATA, not an apex SOA', qname: '11.1.0.10.in-addr.arpa', qtype: 'SOA', ns: [rsoa(REV1)] },
    { name: 'NS query on a PTR name: NODATA, not an apex NS', qname: '11.1.0.10.in-addr.arpa', qtype: 'NS', ns: [rsoa(REV1)] },
    { name: 'SOA query on an unknown name in a zone: NXDOMAIN', qname: '99.1.0.10.in-addr.arpa', qtype: 'SOA', rcode: 'NXDOMAIN', ns: [rsoa(REV1)] },
    { name: 'negative TTL: min(SOA TTL, MINIMUM), or negative_ttl', qname: '99.1.0.10.in-addr.arpa', qtype: 'PTR', config: { soa: { min_ttl: 30 }, negative_ttl: 10 },
      rcode: 'NXDOMAIN', ns: [rsoa(REV1, 10, 30)] },
    { name: 'a configured domain names the SOA MNAME and RNAME', qname: '99.1.0.10.in-addr.arpa', qtype: 'PTR', config: { domain: 'example.internal' }, rcode: 'NXDOMAIN',
      ns: [`${REV1} 0 IN SOA ns.example.internal. hostmaster.example.internal. 42 3600 600 86400 0`] },
  ]);
});

describe('reverse zones: the apex answers SOA and NS (docs/consul-dns.md §12.9)', () => {
  table([
    { name: 'SOA: owner the apex, NS in AUTHORITY, glue in ADDITIONAL', qname: '1.0.10.in-addr.arpa', qtype: 'SOA', ...revApex(REV1).soa },
    { name: 'NS: the domain\'s name servers with glue', qname: '1.0.10.in-addr.arpa', qtype: 'NS', ...revApex(REV1).ns },
    { name: 'ANY: the SOA with its NS (RFC 8482 subset)', qname: '1.0.10.in-addr.arpa', qtype: 'ANY', ...revApex(REV1).soa },
    { name: 'IPv6 apex SOA', qname: REV6, qtype: 'SOA', ...revApex(REV6).soa },
    { name: 'IPv6 apex NS', qname: REV6, qtype: 'NS', ...revApex(REV6).ns },
    { name: 'apex, other qtype: NODATA', qname: '1.0.10.in-addr.arpa', qtype: 'PTR', ns: [rsoa(REV1)] },
    { name: 'apex, case-insensitive: question echoed, owners lower case', qname: '1.0.10.In-Addr.Arpa', qtype: 'SOA', ...revApex(REV1).soa },
    { name: 'SOA timers and TTL from soa.*', qname: '1.0.10.in-addr.arpa', qtype: 'SOA', config: { soa: { refresh: '2h', retry: 60, expire: '1000s', min_ttl: 30 } },
      answer: [`${REV1} 30 IN SOA ns.consul. hostmaster.consul. 42 7200 60 1000 30`], ns: revApex(REV1).soa.ns, extra: NS_GLUE },
  ]);
});

describe('reverse zones: empty non-terminals between the apex and the PTR names are NODATA (RFC 8020)', () => {
  table([
    { name: 'IPv6: the nibbles between the /64 apex and the PTR name', qname: ip6arpa('20010db800000000000000000000000'), qtype: 'PTR', ns: [rsoa(REV6)] },
    { name: 'reverse_zones 10.0.0.0/8: 0.10.in-addr.arpa', qname: '0.10.in-addr.arpa', qtype: 'PTR', config: { reverse_zones: '10.0.0.0/8' }, ns: [rsoa('10.in-addr.arpa.')] },
    { name: 'reverse_zones 10.0.0.0/8: 1.0.10.in-addr.arpa, any qtype', qname: '1.0.10.in-addr.arpa', qtype: 'SOA', config: { reverse_zones: '10.0.0.0/8' }, ns: [rsoa('10.in-addr.arpa.')] },
    { name: 'reverse_zones 10.0.0.0/8: a name below with nothing under it is NXDOMAIN', qname: '9.0.10.in-addr.arpa', qtype: 'PTR', config: { reverse_zones: '10.0.0.0/8' },
      rcode: 'NXDOMAIN', ns: [rsoa('10.in-addr.arpa.')] },
  ]);
});

describe('reverse zones: names in no served zone are REFUSED, without AA (docs/consul-dns.md §10)', () => {
  table([
    { name: 'an address the catalog does not have', qname: '8.8.8.8.in-addr.arpa', qtype: 'PTR', rcode: 'REFUSED' },
    { name: 'another DC\'s addresses are not reverse-mapped', qname: '19.1.1.10.in-addr.arpa', qtype: 'PTR', rcode: 'REFUSED' },
    { name: 'above a derived /24 apex', qname: '0.10.in-addr.arpa', qtype: 'SOA', rcode: 'REFUSED' },
    { qname: '10.in-addr.arpa', qtype: 'NS', rcode: 'REFUSED' },
    { qname: 'in-addr.arpa', qtype: 'SOA', rcode: 'REFUSED' },
    { qname: 'ip6.arpa', qtype: 'NS', rcode: 'REFUSED' },
    { qname: 'arpa', qtype: 'SOA', rcode: 'REFUSED' },
    { name: 'an IPv6 address outside the /64s', qname: ip6arpa('20010db8000000010000000000000001'), qtype: 'PTR', rcode: 'REFUSED' },
    { name: 'REFUSED keeps the OPT', qname: '8.8.8.8.in-addr.arpa', qtype: 'PTR', edns: 1232, rcode: 'REFUSED' },
  ]);
});

describe('reverse_zones setting (README "Reverse zones")', () => {
  table([
    { name: '10.0.0.0/8: one zone for every 10.x address', qname: '10.in-addr.arpa', qtype: 'SOA', config: { reverse_zones: '10.0.0.0/8' }, ...revApex('10.in-addr.arpa.').soa },
    { name: '10.0.0.0/8: a PTR inside', qname: '11.1.0.10.in-addr.arpa', qtype: 'PTR', config: { reverse_zones: '10.0.0.0/8' }, answer: ['11.1.0.10.in-addr.arpa. 0 IN PTR web-1.node.dc1.consul.'] },
    { name: '10.0.0.0/8: an address it does not have', qname: '99.99.0.10.in-addr.arpa', qtype: 'PTR', config: { reverse_zones: '10.0.0.0/8' }, rcode: 'NXDOMAIN', ns: [rsoa('10.in-addr.arpa.')] },
    { name: '10.0.0.0/8: IPv6 addresses are in no zone', qname: ip6arpa('20010db8000000000000000000000001'), qtype: 'PTR', config: { reverse_zones: '10.0.0.0/8' }, rcode: 'REFUSED' },
    { name: 'a list: only the zones listed', qname: '21.2.0.10.in-addr.arpa', qtype: 'PTR', config: { reverse_zones: '10.0.1.0/24,2001:db8::/32' }, rcode: 'REFUSED' },
    { name: 'a list: IPv6 /32', qname: ip6arpa('20010db8000000000000000000000001'), qtype: 'PTR', config: { reverse_zones: '10.0.1.0/24,2001:db8::/32' },
      answer: [`${ip6arpa('20010db8000000000000000000000001')} 0 IN PTR v6-1.node.dc1.consul.`] },
    { name: 'a list: the IPv6 apex', qname: '8.b.d.0.1.0.0.2.ip6.arpa', qtype: 'NS', config: { reverse_zones: '10.0.1.0/24,2001:db8::/32' }, ...revApex('8.b.d.0.1.0.0.2.ip6.arpa.').ns },
    { name: 'zone names work too', qname: '2.0.10.in-addr.arpa', qtype: 'SOA', config: { reverse_zones: ['2.0.10.in-addr.arpa.'] }, ...revApex('2.0.10.in-addr.arpa.').soa },
    { name: 'a /32 zone: the apex is also the PTR name', qname: '11.1.0.10.in-addr.arpa', qtype: 'PTR', config: { reverse_zones: '10.0.1.11/32' }, answer: ['11.1.0.10.in-addr.arpa. 0 IN PTR web-1.node.dc1.consul.'] },
    { name: 'a /32 zone: and answers its SOA', qname: '11.1.0.10.in-addr.arpa', qtype: 'SOA', config: { reverse_zones: '10.0.1.11/32' }, ...revApex('11.1.0.10.in-addr.arpa.').soa },
    { name: 'empty: no reverse zones, every reverse name REFUSED', qname: '11.1.0.10.in-addr.arpa', qtype: 'PTR', config: { reverse_zones: '' }, rcode: 'REFUSED' },
  ]);
  it('the default: the /24 of every IPv4 and the /64 of every IPv6 address with a PTR, sorted', () => {
    expect(t.server().zone.reverseZones).toEqual([
      REV6.slice(0, -1),
      ...['0', '1', '2', '3', '4', '5', '6', '7', '8'].map((n) => `${n}.0.10.in-addr.arpa`),
    ]);
  });
  it('is part of the zone content: another set of zones, another serial hash', () => {
    expect(t.server({ reverse_zones: '10.0.0.0/8' }).zone.contentHash).not.toBe(t.server().zone.contentHash);
  });
});

describe('SOA and NS (docs/consul-dns.md §8)', () => {
  table([
    { name: 'apex SOA: NS in AUTHORITY, glue in ADDITIONAL; only healthy servers are NS', qname: 'consul', qtype: 'SOA', answer: [SOA], ns: NS, extra: NS_GLUE },
    { name: 'apex NS with glue', qname: 'consul', qtype: 'NS', answer: NS, extra: NS_GLUE },
    { name: 'SOA below the apex: NODATA with the SOA (the owner must match the question, RFC 1034 §4.3.2)', qname: 'web.service.consul', qtype: 'SOA', ns: [SOA] },
    { name: 'NS below the apex: NODATA with the SOA', qname: 'web-1.node.consul', qtype: 'NS', ns: [SOA] },
    { name: 'NS on an empty non-terminal (what QNAME minimisation asks): NODATA', qname: 'service.consul', qtype: 'NS', ns: [SOA] },
    { name: 'NS below the apex for a name that does not exist: NXDOMAIN', qname: 'nosuch.service.consul', qtype: 'NS', rcode: 'NXDOMAIN', ns: [SOA] },
    { name: 'compat consul: SOA for any name in the domain is the apex SOA', qname: 'web.service.consul', qtype: 'SOA', config: { compat: 'consul' }, answer: [SOA], ns: NS, extra: NS_GLUE },
    { name: 'compat consul: NS for any name in the domain is the apex NS', qname: 'web-1.node.consul', qtype: 'NS', config: { compat: 'consul' }, answer: NS, extra: NS_GLUE },
    { name: 'soa settings; min_ttl is also the SOA TTL', qname: 'consul', qtype: 'SOA', config: { soa: { refresh: '2h', retry: 60, expire: '1000s', min_ttl: 30 } },
      answer: ['consul. 30 IN SOA ns.consul. hostmaster.consul. 42 7200 60 1000 30'], ns: NS, extra: NS_GLUE },
    { name: 'NS and glue use node_ttl', qname: 'consul', qtype: 'NS', config: { node_ttl: 20 },
      answer: NS.map((l) => l.replace(' 0 IN ', ' 20 IN ')), extra: NS_GLUE.map((l) => l.replace(' 0 IN ', ' 20 IN ')) },
    { name: 'a configured domain is matched case-insensitively and written lower case', qname: 'web.service.example.internal', qtype: 'A', config: { domain: 'Example.Internal.' },
      answer: a('web.service.example.internal.', ...WEB_IPS) },
    { name: 'a configured domain in SOA, NS and glue', qname: 'example.internal', qtype: 'SOA', edns: 1232, config: { domain: 'Example.Internal.' }, ...EXAMPLE_SOA },
    { name: 'a configured domain in negative answers', qname: 'nosuch.service.example.internal', qtype: 'A', config: { domain: 'example.internal' }, rcode: 'NXDOMAIN',
      ns: EXAMPLE_SOA.answer },
    { name: 'a configured domain in SRV targets', qname: 'db.service.example.internal', qtype: 'SRV', config: { domain: 'example.internal' },
      answer: ['db.service.example.internal. 0 IN SRV 1 1 5432 0a000279.addr.dc1.example.internal.', 'db.service.example.internal. 0 IN SRV 1 1 5432 0a000216.addr.dc1.example.internal.'],
      extra: ['0a000279.addr.dc1.example.internal. 0 IN A 10.0.2.121', '0a000216.addr.dc1.example.internal. 0 IN A 10.0.2.22'] },
    { name: 'with another domain configured, consul. is out of zone', qname: 'web.service.consul', qtype: 'A', config: { domain: 'example.internal' }, rcode: 'REFUSED' },
    { name: 'SOA answer with EDNS', qname: 'consul', qtype: 'SOA', edns: 1232, answer: [SOA], ns: NS, extra: NS_GLUE },
    { name: 'ANY at the apex: the SOA with its NS (RFC 8482 subset)', qname: 'consul', qtype: 'ANY', answer: [SOA], ns: NS, extra: NS_GLUE },
    // Owner names are compressed (RFC 1035 §4.1.4, docs/consul-dns.md §9): uncompressed, the apex SOA
    // answer for a 16-byte domain without EDNS is 514 bytes and loses its third glue record.
    { name: 'apex SOA for a longer domain keeps all its glue in 512 bytes', qname: 'example.internal', qtype: 'SOA', config: { domain: 'example.internal' }, ...EXAMPLE_SOA },
  ]);
});

describe('negative answers (RFC 2308, docs/consul-dns.md §12.3)', () => {
  table([
    { name: 'SOA TTL = min(SOA TTL, MINIMUM) = soa.min_ttl', qname: 'nosuch.service.consul', qtype: 'A', config: { soa: { min_ttl: 30 } }, rcode: 'NXDOMAIN',
      ns: ['consul. 30 IN SOA ns.consul. hostmaster.consul. 42 3600 600 86400 30'] },
    { name: 'NODATA too', qname: 'web.service.consul', qtype: 'AAAA', config: { soa: { min_ttl: 30 } },
      ns: ['consul. 30 IN SOA ns.consul. hostmaster.consul. 42 3600 600 86400 30'] },
    { name: 'negative_ttl sets the SOA TTL in negative answers', qname: 'nosuch.service.consul', qtype: 'A', config: { soa: { min_ttl: 30 }, negative_ttl: 10 }, rcode: 'NXDOMAIN',
      ns: ['consul. 10 IN SOA ns.consul. hostmaster.consul. 42 3600 600 86400 30'] },
  ]);
});

describe('apex and empty non-terminals: NODATA, not NXDOMAIN (RFC 8020, docs/consul-dns.md §12.1)', () => {
  table([
    { qname: 'consul', qtype: 'A', ns: [SOA] },
    { qname: 'service.consul', qtype: 'A', ns: [SOA] },
    { qname: 'node.consul', qtype: 'A', ns: [SOA] },
    { qname: '_tcp.service.consul', qtype: 'SRV', ns: [SOA] },
    { qname: '_v1.service.consul', qtype: 'SRV', ns: [SOA] },
    { qname: 'service.dc2.consul', qtype: 'A', ns: [SOA] },
    { qname: 'dc2.consul', qtype: 'A', ns: [SOA] },
    { name: '_tcp.consul is an ENT of _web._tcp.consul (SRV)', qname: '_tcp.consul', qtype: 'SRV', ns: [SOA] },
    { name: '_v1.consul is an ENT of _web._v1.consul (SRV)', qname: '_v1.consul', qtype: 'SRV', ns: [SOA] },
    { qname: 'addr.consul', qtype: 'A', ns: [SOA] },
    { name: 'dc.consul, dc2.dc.consul, service.dc2.dc.consul', qname: 'service.dc2.dc.consul', qtype: 'A', ns: [SOA] },
    { qname: 'dc2.dc.consul', qtype: 'A', ns: [SOA] },
    { qname: 'dc.consul', qtype: 'A', ns: [SOA] },
    { qname: 'node.dc2.consul', qtype: 'A', ns: [SOA] },
    { name: 'a name with no lookup kind and nothing below it: NXDOMAIN', qname: 'nonexisting.consul', qtype: 'A', rcode: 'NXDOMAIN', ns: [SOA] },
    { name: 'service.<unknown dc>: NXDOMAIN', qname: 'service.dc3.consul', qtype: 'A', rcode: 'NXDOMAIN', ns: [SOA] },
    { name: 'a tag only unhealthy instances carry is no ENT', qname: '_v3.service.consul', qtype: 'SRV', rcode: 'NXDOMAIN', ns: [SOA] },
  ]);
});

describe('out of zone (docs/consul-dns.md §10)', () => {
  table([
    { name: 'REFUSED, no AA, no RA, no records', qname: 'example.com', qtype: 'A', rcode: 'REFUSED' },
    { name: 'a suffix that is not on a label boundary is out of zone', qname: 'notconsul', qtype: 'A', rcode: 'REFUSED' },
    { qname: 'consul.example.com', qtype: 'SOA', rcode: 'REFUSED' },
    { name: 'REFUSED keeps the OPT', qname: 'example.com', qtype: 'A', edns: 1232, rcode: 'REFUSED' },
  ]);
});

describe('case-insensitive matching, spelling echoed (RFC 4343, docs/consul-dns.md §11)', () => {
  table([
    { qname: 'WeB.sErViCe.CoNsUl', qtype: 'A', answer: a('WeB.sErViCe.CoNsUl.', ...WEB_IPS) },
    { name: 'tag, service and DC labels', qname: 'V1.WEB.SERVICE.DC1.CONSUL', qtype: 'A', answer: a('V1.WEB.SERVICE.DC1.CONSUL.', '10.0.1.11', '10.0.1.13') },
    { name: 'SRV: owner echoed; targets and glue as the server writes them', qname: '_WEB._TCP.service.consul', qtype: 'SRV', answer: webSrv('_WEB._TCP.service.consul.'), extra: WEB_GLUE },
    { name: 'node: owner of the answer and of the meta TXT echoed', qname: 'WEB-1.Node.Consul', qtype: 'A', answer: a('WEB-1.Node.Consul.', '10.0.1.11'),
      extra: ['WEB-1.Node.Consul. 0 IN TXT "instance_type=t3.medium"', 'WEB-1.Node.Consul. 0 IN TXT "team-frontend"'] },
    { name: 'negative: the SOA owner is the lower-case apex', qname: 'NOSUCH.service.CONSUL', qtype: 'A', rcode: 'NXDOMAIN', ns: [SOA] },
    { name: 'upper-case hex in .addr', qname: '0A00010B.addr.consul', qtype: 'A', answer: a('0A00010B.addr.consul.', '10.0.1.11') },
  ]);

  // A datacenter spelled with capitals in the catalog: names carrying the DC label match it in any
  // case, including the SRV targets and PTR names the server writes itself (`w-1.node.dc1.consul.`).
  const upper = new Table(catalogDoc('DC1', {
    DC1: { services: { web: [instanceDoc(nodeDoc('w-1', '10.0.0.1'), 'web', { port: 80 })] } },
    DC2: { services: { web: [instanceDoc(nodeDoc('w-2', '10.0.0.2'), 'web', { port: 80 })] } },
  }));
  for (const c of [
    { name: 'DC label of a capitalised catalog DC, local', qname: 'web.service.dc1.consul', qtype: 'A', answer: ['web.service.dc1.consul. 0 IN A 10.0.0.1'] },
    { name: 'DC label of a capitalised catalog DC, remote', qname: 'web.service.dc2.consul', qtype: 'A', answer: ['web.service.dc2.consul. 0 IN A 10.0.0.2'] },
    { name: 'the SRV target the server writes resolves', qname: 'w-1.node.DC1.consul', qtype: 'A', answer: ['w-1.node.DC1.consul. 0 IN A 10.0.0.1'] },
    { name: 'the service ENT of a capitalised DC', qname: 'service.dc2.consul', qtype: 'A', ns: [SOA] },
  ] as Case[]) it(caseTitle(c), () => { upper.run(c); });
});

describe('TTLs (docs/consul-dns.md §2, §4)', () => {
  const ttl = { service_ttl: { '*': '5s', web: '30s', 'd*': '20s', 'db*': '10s', 'we*': '1s' }, node_ttl: 60 };
  table([
    { name: 'exact service_ttl key beats prefixes', qname: 'web.service.consul', qtype: 'A', config: ttl, answer: WEB_IPS.map((ip) => `web.service.consul. 30 IN A ${ip}`) },
    { name: 'service TTL for SRV and its glue (A and TXT)', qname: 'web.service.consul', qtype: 'SRV', config: ttl,
      answer: webSrv('web.service.consul.').map((l) => l.replace(' 0 IN ', ' 30 IN ')), extra: WEB_GLUE.map((l) => l.replace(' 0 IN ', ' 30 IN ')) },
    { name: 'longest matching prefix*', qname: 'db.service.consul', qtype: 'A', config: ttl, answer: ['db.service.consul. 10 IN A 10.0.2.121', 'db.service.consul. 10 IN A 10.0.2.22'] },
    { name: '* catch-all', qname: 'cache.service.consul', qtype: 'A', config: ttl, answer: ['cache.service.consul. 5 IN A 10.0.4.41'] },
    { name: 'no match: 0, not node_ttl (Consul\'s legacy server)', qname: 'cache.service.consul', qtype: 'A', config: { service_ttl: { web: 30 }, node_ttl: 60 }, answer: ['cache.service.consul. 0 IN A 10.0.4.41'] },
    { name: 'node_ttl for node records and their TXT', qname: 'web-1.node.consul', qtype: 'A', config: ttl, answer: ['web-1.node.consul. 60 IN A 10.0.1.11'],
      extra: ['web-1.node.consul. 60 IN TXT "instance_type=t3.medium"', 'web-1.node.consul. 60 IN TXT "team-frontend"'] },
    { name: 'PTR is 0 by default whatever node_ttl is', qname: '11.1.0.10.in-addr.arpa', qtype: 'PTR', config: ttl, answer: ['11.1.0.10.in-addr.arpa. 0 IN PTR web-1.node.dc1.consul.'] },
    { name: '.addr SRV target glue uses the service TTL', qname: 'db.service.consul', qtype: 'SRV', config: { service_ttl: { db: 12 }, node_ttl: 60 },
      answer: ['db.service.consul. 12 IN SRV 1 1 5432 0a000279.addr.dc1.consul.', 'db.service.consul. 12 IN SRV 1 1 5432 0a000216.addr.dc1.consul.'],
      extra: ['0a000279.addr.dc1.consul. 12 IN A 10.0.2.121', '0a000216.addr.dc1.consul. 12 IN A 10.0.2.22'] },
  ]);
});

describe('a_record_limit (docs/consul-dns.md §4, §9)', () => {
  it('caps service A answers on every transport, without TC', () => {
    for (const q of [{ tcp: false, edns: 1232 }, { tcp: true }, { tcp: false }]) {
      const r = t.ask({ qname: 'web.service.consul', qtype: 'A', config: { a_record_limit: 2 }, ...q });
      expect(r.answer).toHaveLength(2);
      expect(new Set(r.answer).size).toBe(2);
      for (const l of r.answer) expect(a('web.service.consul.', ...WEB_IPS)).toContain(l);
      expect(r.tc).toBe(false);
    }
  });
  it('caps ANY', () => {
    expect(t.ask({ qname: 'web.service.consul', qtype: 'ANY', config: { a_record_limit: 1 } }).answer).toHaveLength(1);
  });
  table([
    { name: 'never caps SRV', qname: 'web.service.consul', qtype: 'SRV', config: { a_record_limit: 1 }, answer: webSrv('web.service.consul.'), extra: WEB_GLUE },
  ]);
});

describe('EDNS (RFC 6891, docs/consul-dns.md §9)', () => {
  it('echoes an OPT with the client\'s UDP size', () => {
    const r = t.run({ qname: 'web.service.consul', qtype: 'A', edns: 4000, answer: a('web.service.consul.', ...WEB_IPS) });
    expect(r.opt!.udpPayloadSize).toBe(4000);
  });
  it('tolerates unknown options such as a cookie', () => {
    const cookie = { code: 10, data: Buffer.from('0123456789abcdef', 'hex') };
    t.run({ qname: 'web-1.node.consul', qtype: 'A', edns: 1232, ednsOptions: [cookie], answer: a('web-1.node.consul.', '10.0.1.11'),
      extra: ['web-1.node.consul. 0 IN TXT "instance_type=t3.medium"', 'web-1.node.consul. 0 IN TXT "team-frontend"'] });
  });
  it('puts an OPT on negative answers too', () => {
    t.run({ qname: 'nosuch.service.consul', qtype: 'A', edns: 1232, rcode: 'NXDOMAIN', ns: [SOA] });
  });
});

describe('protocol gate (README "Protocol")', () => {
  const s = t.server();
  it('answers opcodes other than QUERY with NOTIMP', () => {
    const q = buildQuery('web.service.consul', 'A', { id: 9 });
    q[2] = (q[2]! & 0x87) | (2 << 3); // opcode STATUS
    const r = exchangeRaw(s, q)!;
    expect(r.rcode).toBe('NOTIMP');
    expect(r.msg.id).toBe(9);
    expect(r.answer).toEqual([]);
  });
  it('answers a query without a question with FORMERR', () => {
    const r = exchangeRaw(s, encodeMessage({ type: 'query', id: 3, flags: 0, questions: [] }))!;
    expect(r.rcode).toBe('FORMERR');
    expect(r.msg.id).toBe(3);
  });
  it('answers two questions with FORMERR', () => {
    const r = exchangeRaw(s, encodeMessage({ type: 'query', id: 4, flags: 0, questions: [{ name: 'a.consul', type: 'A' }, { name: 'b.consul', type: 'A' }] }))!;
    expect(r.rcode).toBe('FORMERR');
  });
  it('drops datagrams shorter than a header and responses', () => {
    expect(exchangeRaw(s, Buffer.from([1, 2, 3]))).toBeNull();
    const resp = buildQuery('web.service.consul', 'A');
    resp[2] = resp[2]! | 0x80; // QR
    expect(exchangeRaw(s, resp)).toBeNull();
  });
  it('never sets RA (no recursors)', () => {
    expect(t.ask({ qname: 'web.service.consul', qtype: 'A' }).ra).toBe(false);
    expect(t.ask({ qname: 'example.com', qtype: 'A' }).ra).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------
// Consul's data shapes: service names grouped case-insensitively, the virtual IP where Consul keeps
// it, terminating gateways under `.connect`, weights as Consul stores them
// ---------------------------------------------------------------------------------------------

type Doc = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

describe('service names differing only in case are one service (Consul indexes them lower-cased; docs/consul-dns.md §11)', () => {
  // /v1/catalog/services lists both "Web" and "web"; /v1/health/service/<either> gives both instances.
  const cased = new Table(catalogDoc('dc1', {
    dc1: {
      services: {
        web: [instanceDoc(nodeDoc('w-b', '10.0.30.2'), 'web', { port: 80, tags: ['V1'] })],
        Web: [instanceDoc(nodeDoc('w-a', '10.0.30.1'), 'Web', { port: 80, address: '10.0.30.101', tags: ['v1'] })],
      },
    },
  }));
  const both = (owner: string) => [`${owner} 0 IN A 10.0.30.101`, `${owner} 0 IN A 10.0.30.2`];
  for (const c of [
    { name: 'one service: every instance of both spellings', qname: 'web.service.consul', qtype: 'A', answer: both('web.service.consul.') },
    { name: 'any spelling asks for it, echoed (0x20)', qname: 'WEB.service.consul', qtype: 'A', answer: both('WEB.service.consul.') },
    { qname: 'Web.service.dc1.consul', qtype: 'SRV',
      answer: ['Web.service.dc1.consul. 0 IN SRV 1 1 80 0a001e65.addr.dc1.consul.', 'Web.service.dc1.consul. 0 IN SRV 1 1 80 w-b.node.dc1.consul.'],
      extra: ['0a001e65.addr.dc1.consul. 0 IN A 10.0.30.101', 'w-b.node.dc1.consul. 0 IN A 10.0.30.2'] },
    { name: 'tags across spellings', qname: 'v1.wEb.service.consul', qtype: 'A', answer: both('v1.wEb.service.consul.') },
    { name: 'RFC 2782', qname: '_web._v1.service.consul', qtype: 'SRV',
      answer: ['_web._v1.service.consul. 0 IN SRV 1 1 80 0a001e65.addr.dc1.consul.', '_web._v1.service.consul. 0 IN SRV 1 1 80 w-b.node.dc1.consul.'],
      extra: ['0a001e65.addr.dc1.consul. 0 IN A 10.0.30.101', 'w-b.node.dc1.consul. 0 IN A 10.0.30.2'] },
    { name: 'a PTR target names the service by its key (the code-unit-smallest spelling)', qname: '101.30.0.10.in-addr.arpa', qtype: 'PTR',
      answer: ['101.30.0.10.in-addr.arpa. 0 IN PTR Web.service.dc1.consul.'] },
  ] as Case[]) it(caseTitle(c), () => { cased.run(c); });
  it('is no warning: legitimate Consul data', () => { expect(cased.server().warnings).toEqual([]); });
});

describe('.virtual and .connect: proxies, Connect-native instances, terminating gateways (docs/consul-dns.md §3, §12.12)', () => {
  function mesh(): Doc {
    const [n1, n2, n3] = [1, 2, 3].map((i) => nodeDoc(`n-${i}`, `10.0.20.${i}`));
    const [g1, g2] = [1, 2].map((i) => nodeDoc(`g-${i}`, `10.0.29.${i}`));
    const vip = (tag: string, ip: string, port = 0) => ({ [tag]: { Address: ip, Port: port } });
    // Consul's ensureServiceTxn stores the destination's virtual IP on each proxy.
    const proxy = (n: Json, id: string) => {
      const d = instanceDoc(n!, 'web-sidecar-proxy', { id, port: 21000, tagged: vip('consul-virtual', '240.0.0.1', 21000) });
      Object.assign(d.Service as Json, { Kind: 'connect-proxy', Proxy: { DestinationServiceName: 'web' } });
      return d;
    };
    const pay = instanceDoc(n3!, 'pay', { port: 9090, tagged: vip('consul-virtual', '240.0.0.2', 9090) });
    (pay.Service as Json).Connect = { Native: true };
    // updateTerminatingGatewayVirtualIPs stores a linked service's virtual IP on the gateway's instances.
    const gateway = (n: Json, status: string) => {
      const d = instanceDoc(n!, 'tgw', { port: 8443, status, tagged: vip('consul-virtual:db', '240.0.0.3') });
      (d.Service as Json).Kind = 'terminating-gateway';
      return d;
    };
    const doc = catalogDoc('dc1', {
      dc1: {
        services: {
          web: [instanceDoc(n1!, 'web', { port: 8080 }), instanceDoc(n2!, 'web', { port: 8080 })],
          'web-sidecar-proxy': [proxy(n1!, 'p-1'), proxy(n2!, 'p-2')],
          pay: [pay],
          // A tag Consul never puts on a plain service: not a virtual IP.
          legacy: [instanceDoc(n3!, 'legacy', { port: 81, tagged: vip('consul-virtual', '240.0.0.9') })],
          db: [instanceDoc(n3!, 'db', { port: 5432 })],
          tgw: [gateway(g1!, 'passing'), gateway(g2!, 'critical')],
        },
      },
    }) as Doc;
    doc.datacenters.dc1.gateway_services = { tgw: ['db', 'ext'] };
    return doc;
  }
  const m = new Table(mesh());
  const A = (owner: string, ...ips: string[]) => ips.map((ip) => `${owner} 0 IN A ${ip}`);
  for (const c of [
    { name: 'a sidecar\'s virtual IP answers at its destination\'s name', qname: 'web.virtual.consul', qtype: 'A', answer: A('web.virtual.consul.', '240.0.0.1') },
    { qname: 'WEB.Virtual.consul', qtype: 'A', answer: A('WEB.Virtual.consul.', '240.0.0.1') },
    { name: 'TTL node_ttl', qname: 'web.virtual.consul', qtype: 'A', config: { node_ttl: 7 }, answer: ['web.virtual.consul. 7 IN A 240.0.0.1'] },
    { name: 'the proxy\'s own name has none', qname: 'web-sidecar-proxy.virtual.consul', qtype: 'A', rcode: 'NXDOMAIN', ns: [SOA] },
    { name: 'compat consul: Consul\'s NOERROR with nothing at all', qname: 'web-sidecar-proxy.virtual.consul', qtype: 'A', config: { compat: 'consul' } },
    { name: 'a Connect-native service\'s own', qname: 'pay.virtual.consul', qtype: 'A', answer: A('pay.virtual.consul.', '240.0.0.2') },
    { name: 'a linked service\'s, from the terminating gateway', qname: 'db.virtual.consul', qtype: 'A', answer: A('db.virtual.consul.', '240.0.0.3') },
    { name: 'not from a plain service\'s tagged address', qname: 'legacy.virtual.consul', qtype: 'A', rcode: 'NXDOMAIN', ns: [SOA] },
    { name: 'AAAA: NODATA', qname: 'web.virtual.consul', qtype: 'AAAA', ns: [SOA] },
    { name: 'compat consul: the A record whatever the type, as Consul\'s dispatch adds it', qname: 'web.virtual.consul', qtype: 'AAAA', config: { compat: 'consul' },
      answer: A('web.virtual.consul.', '240.0.0.1') },
    { name: 'local datacenter only: a label would name a peer', qname: 'web.virtual.dc1.consul', qtype: 'A', rcode: 'NXDOMAIN', ns: [SOA] },
    { name: 'virtual.consul is an empty non-terminal', qname: 'virtual.consul', qtype: 'A', ns: [SOA] },
    { name: 'sidecar proxies', qname: 'web.connect.consul', qtype: 'A', answer: A('web.connect.consul.', '10.0.20.1', '10.0.20.2') },
    { name: 'Connect-native instances', qname: 'pay.connect.consul', qtype: 'A', answer: A('pay.connect.consul.', '10.0.20.3') },
    { name: 'a terminating gateway\'s healthy instances for a service it links', qname: 'db.connect.consul', qtype: 'A', answer: A('db.connect.consul.', '10.0.29.1') },
    { qname: 'db.connect.dc1.consul', qtype: 'SRV', answer: ['db.connect.dc1.consul. 0 IN SRV 1 1 8443 g-1.node.dc1.consul.'], extra: ['g-1.node.dc1.consul. 0 IN A 10.0.29.1'] },
    { name: 'a linked service without instances of its own (a destination)', qname: 'ext.connect.consul', qtype: 'A', answer: A('ext.connect.consul.', '10.0.29.1') },
    { name: 'the service itself is unchanged', qname: 'db.service.consul', qtype: 'A', answer: A('db.service.consul.', '10.0.20.3') },
    { name: 'a gateway\'s own name is no connect destination', qname: 'tgw.connect.consul', qtype: 'A', rcode: 'NXDOMAIN', ns: [SOA] },
  ] as Case[]) it(caseTitle(c), () => { m.run(c); });
  it('is no warning', () => { expect(m.server().warnings).toEqual([]); });
});

describe('weights as Consul stores them: structs.ToServiceNode, findWeight (docs/consul-dns.md §4)', () => {
  const inst = (i: number, weights: unknown, status = 'passing') => {
    const d = instanceDoc(nodeDoc(`w-${i}`, `10.0.40.${i}`), 'w', { port: 1, status });
    if (weights !== undefined) (d.Service as Json).Weights = weights;
    return d;
  };
  const w = new Table(catalogDoc('dc1', {
    dc1: {
      services: {
        w: [
          inst(1, { Passing: 0, Warning: 3 }), // refused by ValidateWeights: 1/1
          inst(2, { Passing: 70000, Warning: 1 }), // refused: 1/1 (never the whole service dropped)
          inst(3, undefined), // absent: 1/1
          inst(4, { Passing: 7, Warning: -1 }, 'warning'), // refused: 1/1
          inst(5, { Passing: 7, Warning: 0 }, 'warning'), // stored: a warning instance weighs 0
          inst(6, { Passing: 65535, Warning: 1 }),
          inst(7, { Passing: 9 }, 'warning'), // Warning absent from the object: Go's zero value
        ],
      },
    },
  }));
  const weights = [1, 1, 1, 1, 0, 65535, 0];
  for (const c of [
    { name: 'SRV weights: 0, 70000, negative and absent give Consul\'s 1; stored values as they are', qname: 'w.service.consul', qtype: 'SRV', tcp: true,
      answer: weights.map((x, i) => `w.service.consul. 0 IN SRV 1 ${x} 1 w-${i + 1}.node.dc1.consul.`),
      extra: weights.map((_, i) => `w-${i + 1}.node.dc1.consul. 0 IN A 10.0.40.${i + 1}`) },
  ] as Case[]) it(caseTitle(c), () => { w.run(c); });
  it('is no warning', () => { expect(w.server().warnings).toEqual([]); });
});

describe('fixture sanity', () => {
  it('produces no validation warnings', () => {
    expect(t.server().warnings).toEqual([]);
  });
});
