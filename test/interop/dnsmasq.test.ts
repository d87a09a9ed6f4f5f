// dnsmasq forwarding consul. to catalog-dns: what a client gets through it.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Daemon, printLogsOnFailure, startDnsmasq, startDnsmasqWithConfig } from '../support/daemons.js';
import { requireProgram } from '../support/programs.js';
import { readmeRecipe, withoutLines, withPlaceholders } from '../support/recipes.js';
import { startServer } from '../support/server.js';
import { addressesV4, catalogDnsRecipeConfig, datas, DC, demoNode, digAt, type Reply, reverseName, srvRecords } from './resolvers.js';
const dig = requireProgram('dig', 'bind9-dnsutils');
const dnsmasqBin = requireProgram('dnsmasq', 'dnsmasq');

describe.skipIf(dig.skip || dnsmasqBin.skip)('dnsmasq forwarding consul. to catalog-dns', () => {
  let server: Awaited<ReturnType<typeof startServer>> | undefined;
  let dnsmasq: Daemon | undefined;
  beforeAll(async () => {
    server = await startServer();
    dnsmasq = await startDnsmasq({ upstreamPort: server.port, bin: dnsmasqBin.path });
  });
  afterAll(async () => {
    await dnsmasq?.stop();
    await server?.close();
  });
  printLogsOnFailure(() => [dnsmasq]);

  async function resolve(qname: string, qtype: string, opts: string[] = []): Promise<Reply> {
    return digAt(dig.path, dnsmasq!.port, qname, qtype, opts);
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
  });

  it('api.service.consul SRV over TCP to dnsmasq: addr-form targets', async () => {
    const r = await resolve('api.service.consul', 'SRV', ['+tcp']);
    expect(r.status, r.text).toBe('NOERROR');
    expect(datas(r, 'SRV'), r.text).toEqual(srvRecords('api'));
  });

  it('nosuch.service.consul A: NXDOMAIN', async () => {
    const r = await resolve('nosuch.service.consul', 'A');
    expect(r.status, r.text).toBe('NXDOMAIN');
    expect(r.answer).toEqual([]);
  });

  it('logged the forwarding to catalog-dns', async () => {
    const r = await resolve('redis.service.consul', 'AAAA');
    expect(r.status, r.text).toBe('NOERROR');
    const line = new RegExp(`forwarded redis\\.service\\.consul to 127\\.0\\.0\\.1#${server!.port}`);
    // dnsmasq logs to a pipe: give the line a moment (bounded) to arrive.
    for (let i = 0; i < 40 && !line.test(dnsmasq!.log()); i++) await sleep(50);
    expect(dnsmasq!.log()).toMatch(line);
  });
});

// README "Resolvers in front", dnsmasq: the recipe exactly as documented, on a dnsmasq run as routers
// run it (stop-dns-rebind drops upstream answers with private addresses, bogus-priv answers private
// reverse names itself), in front of catalog-dns run as the README's catalog-dns recipe says.
describe.skipIf(dig.skip || dnsmasqBin.skip)('README recipe: dnsmasq with stop-dns-rebind and bogus-priv in front of catalog-dns', () => {
  const ROUTER = ['--stop-dns-rebind', '--bogus-priv', '--domain-needed'];
  const web1 = demoNode('web-1');
  let server: Awaited<ReturnType<typeof startServer>> | undefined;
  let dnsmasq: Daemon | undefined;
  let withoutRebindOk: Daemon | undefined;
  beforeAll(async () => {
    server = await startServer({ config: catalogDnsRecipeConfig() });
    const recipe = withPlaceholders(readmeRecipe('dnsmasq'), { '127.0.0.1#8600': `127.0.0.1#${server.port}` });
    dnsmasq = await startDnsmasqWithConfig({ config: recipe, args: ROUTER, bin: dnsmasqBin.path });
    withoutRebindOk = await startDnsmasqWithConfig({ config: withoutLines(recipe, /^rebind-domain-ok=/), args: ROUTER, bin: dnsmasqBin.path });
  });
  afterAll(async () => {
    await dnsmasq?.stop();
    await withoutRebindOk?.stop();
    await server?.close();
  });
  printLogsOnFailure(() => [dnsmasq, withoutRebindOk]);

  const resolve = (via: Daemon, qname: string, qtype: string, opts: string[] = []): Promise<Reply> => digAt(dig.path, via.port, qname, qtype, opts);

  it('web.service.consul A: the private addresses get through', async () => {
    const r = await resolve(dnsmasq!, 'web.service.consul', 'A');
    expect(r.status, r.text).toBe('NOERROR');
    expect(datas(r, 'A'), r.text).toEqual(addressesV4('web'));
  });

  it('_web._tcp.service.consul SRV, over UDP and TCP: every instance with its port', async () => {
    for (const opts of [[], ['+tcp']]) {
      const r = await resolve(dnsmasq!, '_web._tcp.service.consul', 'SRV', opts);
      expect(r.status, r.text).toBe('NOERROR');
      expect(datas(r, 'SRV'), r.text).toEqual(srvRecords('web'));
    }
  });

  it('reverse: web-1\'s PTR from catalog-dns in spite of bogus-priv, a miss NXDOMAIN with catalog-dns\'s SOA', async () => {
    const r = await resolve(dnsmasq!, reverseName(web1.Address), 'PTR');
    expect(r.status, r.text).toBe('NOERROR');
    expect(datas(r, 'PTR'), r.text).toEqual([`web-1.node.${DC}.consul.`]);
    const miss = await resolve(dnsmasq!, '7.7.7.10.in-addr.arpa', 'PTR');
    expect(miss.status, miss.text).toBe('NXDOMAIN');
    expect(miss.authority.map((x) => `${x.owner} ${x.type} ${x.data.split(' ')[0]}`), miss.text).toEqual(['10.in-addr.arpa. SOA ns.consul.']);
  });

  it('without rebind-domain-ok, the rebind protection drops the addresses: NOERROR, no records, EDE 15 (Blocked)', async () => {
    for (const qname of ['web.service.consul', `web-1.node.${DC}.consul`]) {
      const r = await resolve(withoutRebindOk!, qname, 'A');
      expect(r.status, r.text).toBe('NOERROR');
      expect(r.answer, r.text).toEqual([]);
      expect(r.text).toMatch(/EDE: 15 \(Blocked\)/);
    }
    // SRV records carry no address: they pass, but their targets' addresses do not (above).
    const srv = await resolve(withoutRebindOk!, '_web._tcp.service.consul', 'SRV');
    expect(datas(srv, 'SRV'), srv.text).toEqual(srvRecords('web'));
    const line = /possible DNS-rebind attack detected: web\.service\.consul/;
    for (let i = 0; i < 40 && !line.test(withoutRebindOk!.log()); i++) await sleep(50);
    expect(withoutRebindOk!.log()).toMatch(line);
  });
});
