// unbound as a recursive resolver with a stub-zone for consul. pointing at catalog-dns, QNAME
// minimisation on: what a client gets through it, and what unbound asked on the way.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Daemon, printLogsOnFailure, startUnbound } from '../support/daemons.js';
import { requireProgram } from '../support/programs.js';
import { startServer } from '../support/server.js';

const run = promisify(execFile);
const dig = requireProgram('dig', 'bind9-dnsutils');
const unboundBin = requireProgram('unbound', 'unbound');

// ---- expectations from the fixture (docs/consul-dns.md §4, §5) ---------------------------------

interface Check { Status: string; ServiceID: string }
interface Instance {
  Node: { Node: string; Address: string };
  Service: { ID: string; Address: string; Port: number; Weights?: { Passing: number; Warning: number } };
  Checks: Check[];
}
interface Catalog { datacenter: string; datacenters: Record<string, { services: Record<string, Instance[]> }> }

const catalog = JSON.parse(
  readFileSync(new URL('../../fixtures/demo-catalog.json', import.meta.url), 'utf8'),
) as Catalog;
const DC = catalog.datacenter;
const ownChecks = (i: Instance): Check[] => i.Checks.filter((c) => c.ServiceID === '' || c.ServiceID === i.Service.ID);
const served = (svc: string): Instance[] =>
  (catalog.datacenters[DC]?.services[svc] ?? []).filter((i) => !ownChecks(i).some((c) => c.Status === 'critical'));
const isV4 = (a: string): boolean => /^\d+\.\d+\.\d+\.\d+$/.test(a);
const hexV4 = (a: string): string => a.split('.').map((o) => Number(o).toString(16).padStart(2, '0')).join('');

function addressesV4(svc: string): string[] {
  return [...new Set(served(svc).map((i) => i.Service.Address || i.Node.Address).filter(isV4))].sort();
}

function srvRecords(svc: string): string[] {
  return [...new Set(served(svc).map((i) => {
    const w = i.Service.Weights ?? { Passing: 1, Warning: 1 };
    const weight = ownChecks(i).some((c) => c.Status === 'warning') ? w.Warning : w.Passing;
    const target = isV4(i.Service.Address) ? `${hexV4(i.Service.Address)}.addr.${DC}.consul.` : `${i.Node.Node}.node.${DC}.consul.`;
    return `1 ${weight} ${i.Service.Port} ${target}`;
  }))].sort();
}

// ---- dig output -------------------------------------------------------------------------------

interface Record { owner: string; type: string; data: string }
interface Reply { status: string; flags: string[]; answer: Record[]; authority: Record[]; text: string }

function parseReply(text: string): Reply {
  const reply: Reply = {
    status: /status: ([A-Z]+)/.exec(text)?.[1] ?? 'NO-REPLY',
    flags: (/^;; flags:([^;]*);/im.exec(text)?.[1] ?? '').trim().split(/\s+/),
    answer: [], authority: [], text,
  };
  let section: Record[] | null = null;
  for (const line of text.split('\n')) {
    if (line.startsWith(';; ANSWER SECTION:')) section = reply.answer;
    else if (line.startsWith(';; AUTHORITY SECTION:')) section = reply.authority;
    else if (line.trim() === '') section = null;
    else if (section !== null && !line.startsWith(';')) {
      const m = /^(\S+)\s+\d+\s+IN\s+(\S+)\s+(.*)$/.exec(line.trim());
      if (m !== null) section.push({ owner: m[1]!, type: m[2]!, data: m[3]!.trim() });
    }
  }
  return reply;
}

const datas = (r: Reply, type: string): string[] => r.answer.filter((a) => a.type === type).map((a) => a.data).sort();

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
    const args = ['@127.0.0.1', '-p', String(unbound!.port), qname, qtype, '+tries=1', '+time=5'];
    const reply = parseReply((await run(dig.path, args, { timeout: 10_000 })).stdout);
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
  const web1 = catalog.datacenters[DC]!.services.web!.find((i) => i.Node.Node === 'web-1')!.Node;
  const reverse = (a: string) => `${a.split('.').reverse().join('.')}.in-addr.arpa`;
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
    const args = ['@127.0.0.1', '-p', String(via.port), qname, qtype, '+tries=1', '+time=5'];
    return parseReply((await run(dig.path, args, { timeout: 10_000 })).stdout);
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
