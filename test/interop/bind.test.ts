// README "Resolvers in front", BIND: named as a validating resolver (dnssec-validation auto, its
// built-in root key) with the README's recipes exactly as documented, in front of catalog-dns run
// as the README's catalog-dns recipe says (the reverse zone 10.in-addr.arpa).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Daemon, printLogsOnFailure, startNamed } from '../support/daemons.js';
import { requireProgram } from '../support/programs.js';
import { readmeRecipe, withPlaceholders } from '../support/recipes.js';
import { startServer, type TestServer } from '../support/server.js';
import { addressesV4, catalogDnsRecipeConfig, datas, DC, demoNode, digAt, type Reply, reverseName, srvRecords } from './resolvers.js';

const dig = requireProgram('dig', 'bind9-dnsutils');
const namedBin = requireProgram('named', 'bind9');

const web1 = demoNode('web-1');

/** What every recipe must give a client: the checks shared by the forward and static-stub zones. */
function answersLikeCatalogDns(via: () => Daemon, opts: { strictMinimisation?: boolean } = {}): void {
  const resolve = (qname: string, qtype: string): Promise<Reply> => digAt(dig.path, via().port, qname, qtype);

  it('web.service.consul A and _web._tcp SRV: the served instances', async () => {
    const a = await resolve('web.service.consul', 'A');
    expect(a.status, a.text).toBe('NOERROR');
    expect(datas(a, 'A'), a.text).toEqual(addressesV4('web'));
    expect(a.flags, a.text).not.toContain('ad'); // answered, not authenticated
    const srv = await resolve('_web._tcp.service.consul', 'SRV');
    expect(srv.status, srv.text).toBe('NOERROR');
    expect(datas(srv, 'SRV'), srv.text).toEqual(srvRecords('web'));
  });

  it('nosuch.service.consul: NXDOMAIN with the consul SOA', async () => {
    const r = await resolve('nosuch.service.consul', 'A');
    expect(r.status, r.text).toBe('NXDOMAIN');
    expect(r.authority.map((x) => `${x.owner} ${x.type}`), r.text).toEqual(['consul. SOA']);
  });

  it('reverse: web-1\'s PTR, and a miss NXDOMAIN with catalog-dns\'s 10.in-addr.arpa SOA (not named\'s empty zone)', async () => {
    const r = await resolve(reverseName(web1.Address), 'PTR');
    expect(r.status, r.text).toBe('NOERROR');
    expect(datas(r, 'PTR'), r.text).toEqual([`web-1.node.${DC}.consul.`]);
    const miss = await resolve('7.7.7.10.in-addr.arpa', 'PTR');
    expect(miss.status, miss.text).toBe('NXDOMAIN');
    // Minimising strictly, named asks 7.10.in-addr.arpa first, gets NXDOMAIN and answers the longer
    // name from that (RFC 8020) without an SOA.
    if (opts.strictMinimisation) return;
    expect(miss.authority.map((x) => `${x.owner} ${x.type} ${x.data.split(' ')[0]}`), miss.text).toEqual(['10.in-addr.arpa. SOA ns.consul.']);
  });
}

describe.skipIf(dig.skip || namedBin.skip)('README recipe: BIND forward zones with validate-except in front of catalog-dns', () => {
  let server: TestServer | undefined;
  let named: Daemon | undefined;
  let withoutExcept: Daemon | undefined;
  beforeAll(async () => {
    server = await startServer({ config: catalogDnsRecipeConfig() });
    const zones = withPlaceholders(readmeRecipe('bind-forward'), { '127.0.0.1 port 8600': `127.0.0.1 port ${server.port}` });
    named = await startNamed({ options: readmeRecipe('bind-options'), config: zones, bin: namedBin.path });
    withoutExcept = await startNamed({ config: zones, bin: namedBin.path });
  });
  afterAll(async () => {
    await named?.stop();
    await withoutExcept?.stop();
    await server?.close();
  });
  printLogsOnFailure(() => [named, withoutExcept]);

  answersLikeCatalogDns(() => named!);

  // The control: validation is really on, and validate-except is what makes the answers possible.
  // named gives up on the root's keys after its own timeout (about 10 s here, nothing reachable).
  it('without validate-except, the same named answers SERVFAIL (broken trust chain)', async () => {
    const r = await digAt(dig.path, withoutExcept!.port, 'web.service.consul', 'A', [], 25);
    expect(r.status, r.text).toBe('SERVFAIL');
    expect(r.answer, r.text).toEqual([]);
    expect(withoutExcept!.log()).toMatch(/broken trust chain resolving 'web\.service\.consul\/A\/IN'/);
  }, 40_000);
});

describe.skipIf(dig.skip || namedBin.skip)('README recipe: BIND static-stub zones in front of catalog-dns on port 53 of its own address', () => {
  // The recipe's catalog-dns listens on 127.0.0.2 port 53 and named asks port 53. Here both use one
  // free high port instead: named's `port` option (set by the test harness) is also the port it
  // sends queries to, so the recipe runs unchanged.
  let server: TestServer | undefined;
  let named: Daemon | undefined;
  beforeAll(async () => {
    const zones = readmeRecipe('bind-static-stub');
    expect(zones).toContain('server-addresses { 127.0.0.2; };');
    named = await startNamed({ options: readmeRecipe('bind-options'), config: zones, bin: namedBin.path });
    server = await startServer({ config: { ...catalogDnsRecipeConfig(), dns: `127.0.0.2:${named.port}` } });
  });
  afterAll(async () => {
    await named?.stop();
    await server?.close();
  });
  printLogsOnFailure(() => [named]);

  answersLikeCatalogDns(() => named!);
});

describe.skipIf(dig.skip || namedBin.skip)('README recipe: BIND static-stub with strict QNAME minimisation (RFC 9156)', () => {
  // A minimising resolver asks `service.consul NS` on its way down: catalog-dns must answer NODATA
  // for it, not the apex NS under owner `consul.` (Consul's way, which named takes as malformed and,
  // when strict, turns into SERVFAIL).
  let server: TestServer | undefined;
  let named: Daemon | undefined;
  beforeAll(async () => {
    named = await startNamed({ options: `${readmeRecipe('bind-options')}\nqname-minimization strict;`, config: readmeRecipe('bind-static-stub'), bin: namedBin.path });
    server = await startServer({ config: { ...catalogDnsRecipeConfig(), dns: `127.0.0.2:${named.port}` } });
  });
  afterAll(async () => {
    await named?.stop();
    await server?.close();
  });
  printLogsOnFailure(() => [named]);

  answersLikeCatalogDns(() => named!, { strictMinimisation: true });

  it('named logged no malformed reply from catalog-dns', () => {
    expect(named!.log()).not.toMatch(/FORMERR resolving/);
  });
});
