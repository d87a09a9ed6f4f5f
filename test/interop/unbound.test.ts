// unbound as a recursive resolver with a stub-zone for consul. pointing at catalog-dns, QNAME
// minimisation on: what a client gets through it, and what unbound asked on the way.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Daemon, printLogsOnFailure, rootTrustAnchor, startUnbound, startUnboundWithConfig } from '../support/daemons.js';
import { requireProgram } from '../support/programs.js';
import { readmeRecipe, withoutLines, withPlaceholders } from '../support/recipes.js';
import { startServer } from '../support/server.js';
import {
  addressesV4, catalogDnsRecipeConfig, datas, DC, demoNode, digAt, type Reply, reverseName, served, srvRecords,
} from './resolvers.js';
const dig = requireProgram('dig', 'bind9-dnsutils');
const unboundBin = requireProgram('unbound', 'unbound');

describe.skipIf(dig.skip || unboundBin.skip)('unbound (stub-zone, QNAME minimisation) in front of catalog-dns', () => {
  let server: Awaited<ReturnType<typeof startServer>> | undefined;
  let unbound: Daemon | undefined;
  beforeAll(async () => {
    server = await startServer();
    unbound = await startUnbound({ stubPort: server.port, bin: unboundBin.path, verbosity: 3 });
  });
  afterAll(async () => {
    await unbound?.stop();
    await server?.close();
  });
  printLogsOnFailure(() => [unbound]);

  async function resolve(qname: string, qtype: string): Promise<Reply> {
    const reply = await digAt(dig.path, unbound!.port, qname, qtype);
    expect(reply.flags, reply.text).toContain('ra');
    return reply;
  }

  it('web.service.consul A: the served web addresses', async () => {
    const r = await resolve('web.service.consul', 'A');
    expect(r.status, r.text).toBe('NOERROR');
    expect(datas(r, 'A'), r.text).toEqual(addressesV4('web'));
  });

  it('_web._tcp.service.consul SRV: every instance with its port', async () => {
    const r = await resolve('_web._tcp.service.consul', 'SRV');
    expect(r.status, r.text).toBe('NOERROR');
    expect(datas(r, 'SRV'), r.text).toEqual(srvRecords('web'));
    const ports = new Set(served('web').map((i) => String(i.Service.Port)));
    expect(ports.size).toBeGreaterThan(1); // web-1 runs two instances on different ports
    expect(new Set(datas(r, 'SRV').map((s) => s.split(' ')[2]))).toEqual(ports);
  });

  it('nosuch.service.consul A: NXDOMAIN', async () => {
    const r = await resolve('nosuch.service.consul', 'A');
    expect(r.status, r.text).toBe('NXDOMAIN');
    expect(r.answer).toEqual([]);
  });

  it('asks minimised names, only of the stub on 127.0.0.1', async () => {
    const r = await resolve('_api._tcp.service.consul', 'SRV');
    expect(r.status, r.text).toBe('NOERROR');
    expect(datas(r, 'SRV'), r.text).toEqual(srvRecords('api'));
    const log = unbound!.log();
    // QNAME minimisation really happened: the full name was first asked with qtype A.
    expect(log).toMatch(/sending query: _api\._tcp\.service\.consul\. A IN/);
    const targets = [...log.matchAll(/sending to target: <[^>]*> (\S+)/g)].map((m) => m[1]);
    expect(targets.length).toBeGreaterThan(0);
    expect(new Set(targets)).toEqual(new Set([`127.0.0.1#${server!.port}`]));
  });
});

// Reverse zones (README "Reverse zones"): a resolver keeps the SOA of a negative answer, and caches
// the answer under it, only when the SOA's owner encloses the name (RFC 2308 §3, §5); unbound drops
// an SOA from another zone (such as `consul.`) as out of bailiwick. Each reverse zone catalog-dns
// serves has its own SOA, so a negative reverse answer reaches the client whole and is cached.
describe.skipIf(dig.skip || unboundBin.skip)('unbound in front of catalog-dns for reverse zones', () => {
  const web1 = demoNode('web-1');
  const reverse = reverseName;
  let server: Awaited<ReturnType<typeof startServer>> | undefined;
  let wide: Awaited<ReturnType<typeof startServer>> | undefined;
  let unbound: Daemon | undefined;
  let unboundWide: Daemon | undefined;
  beforeAll(async () => {
    // Negative answers cacheable for a minute (soa.min_ttl is the SOA MINIMUM).
    server = await startServer({ config: { soa: { min_ttl: 60 } } });
    wide = await startServer({ config: { soa: { min_ttl: 60 }, reverse_zones: '10.0.0.0/8' } });
    // The default reverse zones are the /24s of the catalog's addresses: web-1's is 1.0.10.in-addr.arpa.
    unbound = await startUnbound({ stubPort: server.port, bin: unboundBin.path, verbosity: 3, stubZones: ['consul.', '1.0.10.in-addr.arpa.'] });
    unboundWide = await startUnbound({ stubPort: wide.port, bin: unboundBin.path, verbosity: 3, stubZones: ['10.in-addr.arpa.'] });
  });
  afterAll(async () => {
    await unbound?.stop();
    await unboundWide?.stop();
    await server?.close();
    await wide?.close();
  });
  printLogsOnFailure(() => [unbound, unboundWide]);

  async function resolve(via: Daemon, qname: string, qtype: string): Promise<Reply> {
    return digAt(dig.path, via.port, qname, qtype);
  }
  const upstreamQueries = (d: Daemon, qname: string) =>
    d.log().split('\n').filter((l) => l.includes(`sending query: ${qname}. PTR IN`)).length;

  it('web-1\'s address: its node name', async () => {
    expect(reverse(web1.Address)).toBe('11.1.0.10.in-addr.arpa');
    const r = await resolve(unbound!, reverse(web1.Address), 'PTR');
    expect(r.status, r.text).toBe('NOERROR');
    expect(r.answer.map((a) => a.data), r.text).toEqual([`web-1.node.${DC}.consul.`]);
  });

  it('an address of the zone without a PTR: NXDOMAIN with the reverse zone\'s SOA, cached by unbound', async () => {
    const name = '250.1.0.10.in-addr.arpa';
    for (let i = 0; i < 2; i++) {
      const r = await resolve(unbound!, name, 'PTR');
      expect(r.status, r.text).toBe('NXDOMAIN');
      expect(r.authority.map((a) => `${a.owner} ${a.type}`), r.text).toEqual(['1.0.10.in-addr.arpa. SOA']);
    }
    expect(upstreamQueries(unbound!, name), unbound!.log()).toBe(1); // the second came from unbound's negative cache
  });

  it('reverse_zones 10.0.0.0/8: QNAME minimisation walks the empty non-terminals to the PTR, and a miss is NXDOMAIN', async () => {
    const r = await resolve(unboundWide!, reverse(web1.Address), 'PTR');
    expect(r.status, r.text).toBe('NOERROR');
    expect(r.answer.map((a) => a.data), r.text).toEqual([`web-1.node.${DC}.consul.`]);
    expect(unboundWide!.log()).toMatch(/sending query: 0\.10\.in-addr\.arpa\. A IN/);
    const miss = await resolve(unboundWide!, '7.7.7.10.in-addr.arpa', 'PTR');
    expect(miss.status, miss.text).toBe('NXDOMAIN');
    expect(miss.authority.map((a) => `${a.owner} ${a.type}`), miss.text).toEqual(['10.in-addr.arpa. SOA']);
  });
});

// README "Resolvers in front", unbound: the recipe exactly as documented, on a validating unbound
// with the root trust anchor Debian installs, in front of catalog-dns run as the README's
// catalog-dns recipe says (the reverse zone 10.in-addr.arpa).
describe.skipIf(dig.skip || unboundBin.skip)('README recipe: unbound with DNSSEC validation in front of catalog-dns', () => {
  const web1 = demoNode('web-1');
  let server: Awaited<ReturnType<typeof startServer>> | undefined;
  let unbound: Daemon | undefined;
  let withoutInsecure: Daemon | undefined;
  let withoutNodefault: Daemon | undefined;
  beforeAll(async () => {
    server = await startServer({ config: { ...catalogDnsRecipeConfig(), soa: { min_ttl: 60 } } });
    const recipe = withPlaceholders(readmeRecipe('unbound'), { '127.0.0.1@8600': `127.0.0.1@${server.port}` });
    unbound = await startUnboundWithConfig({ config: recipe, trustAnchor: rootTrustAnchor(), bin: unboundBin.path, verbosity: 3 });
    withoutInsecure = await startUnboundWithConfig({
      config: withoutLines(recipe, /^\s*domain-insecure:/), trustAnchor: rootTrustAnchor(), bin: unboundBin.path, verbosity: 3,
    });
    withoutNodefault = await startUnboundWithConfig({
      config: withoutLines(recipe, /^\s*local-zone: "10\.in-addr\.arpa\." nodefault/), trustAnchor: rootTrustAnchor(), bin: unboundBin.path,
    });
  });
  afterAll(async () => {
    await unbound?.stop();
    await withoutInsecure?.stop();
    await withoutNodefault?.stop();
    await server?.close();
  });
  printLogsOnFailure(() => [unbound, withoutInsecure, withoutNodefault]);

  const resolve = (via: Daemon, qname: string, qtype: string): Promise<Reply> => digAt(dig.path, via.port, qname, qtype, ['+dnssec']);

  it('web.service.consul A and _web._tcp SRV: the served instances, not authenticated (AD clear)', async () => {
    const a = await resolve(unbound!, 'web.service.consul', 'A');
    expect(a.status, a.text).toBe('NOERROR');
    expect(datas(a, 'A'), a.text).toEqual(addressesV4('web'));
    expect(a.flags, a.text).not.toContain('ad');
    const srv = await resolve(unbound!, '_web._tcp.service.consul', 'SRV');
    expect(srv.status, srv.text).toBe('NOERROR');
    expect(datas(srv, 'SRV'), srv.text).toEqual(srvRecords('web'));
    expect(served('web').length).toBeGreaterThan(2);
  });

  it('nosuch.service.consul: NXDOMAIN with the consul SOA', async () => {
    const r = await resolve(unbound!, 'nosuch.service.consul', 'A');
    expect(r.status, r.text).toBe('NXDOMAIN');
    expect(r.authority.map((x) => `${x.owner} ${x.type}`), r.text).toContain('consul. SOA');
  });

  it('reverse: web-1\'s PTR through the 10.in-addr.arpa stub, and a miss NXDOMAIN with that zone\'s SOA', async () => {
    const r = await resolve(unbound!, reverseName(web1.Address), 'PTR');
    expect(r.status, r.text).toBe('NOERROR');
    expect(datas(r, 'PTR'), r.text).toEqual([`web-1.node.${DC}.consul.`]);
    const miss = await resolve(unbound!, '7.7.7.10.in-addr.arpa', 'PTR');
    expect(miss.status, miss.text).toBe('NXDOMAIN');
    expect(miss.authority.map((x) => `${x.owner} ${x.type}`), miss.text).toEqual(['10.in-addr.arpa. SOA']);
  });

  // The control: the trust anchor is really in force, and the recipe's domain-insecure lines are
  // what make the answers above possible.
  it('without the domain-insecure lines, the same unbound answers SERVFAIL', async () => {
    for (const [qname, qtype] of [['web.service.consul', 'A'], [reverseName(web1.Address), 'PTR']] as const) {
      const r = await digAt(dig.path, withoutInsecure!.port, qname, qtype, [], 15);
      expect(r.status, r.text).toBe('SERVFAIL');
      expect(r.answer, r.text).toEqual([]);
    }
  });

  it('without `local-zone: "10.in-addr.arpa." nodefault`, unbound answers the reverse zone itself: NXDOMAIN', async () => {
    const r = await digAt(dig.path, withoutNodefault!.port, reverseName(web1.Address), 'PTR');
    expect(r.status, r.text).toBe('NXDOMAIN');
    // unbound's own RFC 6303 zone, not catalog-dns's (whose SOA names ns.consul.)
    expect(r.authority.map((x) => `${x.owner} ${x.type} ${x.data.split(' ')[0]}`), r.text).toEqual(['10.in-addr.arpa. SOA localhost.']);
  });
});
