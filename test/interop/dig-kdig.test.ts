// dig and kdig against catalog-dns: every answer type, parsed from the tools' own output, with the
// expectations derived from fixtures/demo-catalog.json (the rules: docs/consul-dns.md).
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireProgram, type RequiredProgram } from '../support/programs.js';
import { startServer } from '../support/server.js';

const run = promisify(execFile);
const dig = requireProgram('dig', 'bind9-dnsutils');
const kdig = requireProgram('kdig', 'knot-dnsutils');

// ---- expectations from the fixture -------------------------------------------------------------

interface CatalogNode { Node: string; Address: string; Meta?: Record<string, string> }
interface Check { Status: string; ServiceID: string }
interface Instance {
  Node: CatalogNode;
  Service: { ID: string; Address: string; Port: number; Weights?: { Passing: number; Warning: number } };
  Checks: Check[];
}
interface Catalog {
  datacenter: string;
  datacenters: Record<string, { nodes: CatalogNode[]; services: Record<string, Instance[]> }>;
}

const catalog = JSON.parse(
  readFileSync(new URL('../../fixtures/demo-catalog.json', import.meta.url), 'utf8'),
) as Catalog;
const DC = catalog.datacenter;

function dcData(dc: string): Catalog['datacenters'][string] {
  const d = catalog.datacenters[dc];
  if (d === undefined) throw new Error(`fixture has no datacenter ${dc}`);
  return d;
}

/** The checks that count for an instance: node-level ones and its own service's (docs/consul-dns.md §5). */
function ownChecks(i: Instance): Check[] {
  return i.Checks.filter((c) => c.ServiceID === '' || c.ServiceID === i.Service.ID);
}

/** Instances Consul serves: none of their checks critical (warning is served, docs/consul-dns.md §5). */
function served(service: string, dc = DC): Instance[] {
  return (dcData(dc).services[service] ?? []).filter((i) => !ownChecks(i).some((c) => c.Status === 'critical'));
}

const isV4 = (a: string): boolean => /^\d+\.\d+\.\d+\.\d+$/.test(a);
const addrOf = (i: Instance): string => i.Service.Address || i.Node.Address;

/** Unique A (or AAAA) addresses of a service, de-duplicated as Consul does (docs/consul-dns.md §4). */
function addresses(service: string, family: 4 | 6, dc = DC): string[] {
  return [...new Set(served(service, dc).map(addrOf).filter((a) => isV4(a) === (family === 4)))].sort();
}

const hexV4 = (a: string): string => a.split('.').map((o) => Number(o).toString(16).padStart(2, '0')).join('');

/** SRV target (docs/consul-dns.md §4): the addr form when the service has its own IP, else the node form. */
function srvTarget(i: Instance, dc = DC): string {
  return i.Service.Address !== '' && isV4(i.Service.Address)
    ? `${hexV4(i.Service.Address)}.addr.${dc}.consul.`
    : `${i.Node.Node}.node.${dc}.consul.`;
}

/** "priority weight port target" per unique node:address:port, weight from the checks (docs/consul-dns.md §4). */
function srvRecords(service: string, dc = DC): string[] {
  const out = new Set<string>();
  for (const i of served(service, dc)) {
    const w = i.Service.Weights ?? { Passing: 1, Warning: 1 };
    const weight = ownChecks(i).some((c) => c.Status === 'warning') ? w.Warning : w.Passing;
    out.add(`1 ${weight} ${i.Service.Port} ${srvTarget(i, dc)}`);
  }
  return [...out].sort();
}

function node(name: string, dc = DC): CatalogNode {
  const n = dcData(dc).nodes.find((x) => x.Node === name);
  if (n === undefined) throw new Error(`fixture has no node ${name}`);
  return n;
}

/** One TXT string per meta key: `rfc1035-` keys give the bare value, others `key=value` (docs/consul-dns.md §6). */
function metaTxt(n: CatalogNode): string[] {
  return Object.entries(n.Meta ?? {})
    .map(([k, v]) => (k.startsWith('rfc1035-') ? v : `${k}=${v}`))
    .sort();
}

const reverseName = (a: string): string => `${a.split('.').reverse().join('.')}.in-addr.arpa.`;

// ---- running the tools and parsing their presentation output -----------------------------------

interface Rr { owner: string; ttl: number; type: string; data: string }
interface Reply { status: string; flags: string[]; answer: Rr[]; authority: Rr[]; additional: Rr[]; text: string }

const RR_LINE = /^(\S+)\s+(\d+)\s+IN\s+(\S+)\s*(.*)$/;

function parseRr(line: string): Rr | undefined {
  const m = RR_LINE.exec(line.trim());
  if (m === null) return undefined;
  return { owner: m[1]!.toLowerCase(), ttl: Number(m[2]), type: m[3]!, data: m[4]!.trim() };
}

/** Both dig and kdig print `;; X SECTION:` headings, a status in the header and a flags line. */
function parseReply(text: string): Reply {
  const reply: Reply = {
    status: /status: ([A-Z]+)/.exec(text)?.[1] ?? 'NO-REPLY',
    flags: (/^;; flags:([^;]*);/im.exec(text)?.[1] ?? '').trim().split(/\s+/).filter(Boolean),
    answer: [], authority: [], additional: [], text,
  };
  let section: Rr[] | undefined;
  for (const line of text.split('\n')) {
    const heading = /^;; (ANSWER|AUTHORITY|ADDITIONAL) SECTION:/.exec(line);
    if (heading !== null) {
      section = { ANSWER: reply.answer, AUTHORITY: reply.authority, ADDITIONAL: reply.additional }[heading[1] as 'ANSWER'];
    } else if (line.trim() === '') {
      section = undefined;
    } else if (!line.startsWith(';') && section !== undefined) {
      const rr = parseRr(line);
      if (rr !== undefined) section.push(rr);
    }
  }
  return reply;
}

/** Quoted character-strings of a TXT rdata, unescaped. */
function txtStrings(data: string): string[] {
  return [...data.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]!.replace(/\\(.)/g, '$1'));
}

const sorted = (xs: string[]): string[] => [...xs].sort();
const datas = (rrs: Rr[], type: string): string[] => sorted(rrs.filter((r) => r.type === type).map((r) => r.data));

describe.skipIf(dig.skip && kdig.skip)('dig and kdig against catalog-dns', () => {
  let server: Awaited<ReturnType<typeof startServer>>;
  beforeAll(async () => { server = await startServer(); });
  afterAll(async () => { await server?.close(); });

  async function ask(tool: RequiredProgram, qname: string, qtype: string, opts: string[] = [], allowFailure = false): Promise<string> {
    // kdig sends no EDNS by default; give it EDNS so both tools see the same (untrimmed) answers.
    // dig's own no-EDNS path is tested separately below.
    const base = tool === kdig ? ['+edns', '+retry=0', '+time=3'] : ['+tries=1', '+time=3'];
    const args = [`@${server.host}`, '-p', String(server.port), qname, qtype, ...base, ...opts];
    try {
      const { stdout, stderr } = await run(tool.path, args, { timeout: 10_000 });
      return allowFailure ? stdout + stderr : stdout;
    } catch (e) {
      const err = e as { stdout?: string; stderr?: string; message: string; killed?: boolean };
      if (allowFailure && err.killed !== true) return `${err.stdout ?? ''}${err.stderr ?? ''}`;
      throw new Error(`${tool.bin} ${args.join(' ')} failed: ${err.message}\n${err.stdout ?? ''}${err.stderr ?? ''}`);
    }
  }

  async function query(tool: RequiredProgram, qname: string, qtype: string, opts: string[] = []): Promise<Reply> {
    const reply = parseReply(await ask(tool, qname, qtype, opts));
    // Authoritative only, no recursion offered (no recursors configured), on every in-zone reply.
    if (reply.status !== 'REFUSED') expect(reply.flags, reply.text).toContain('aa');
    expect(reply.flags, reply.text).not.toContain('ra');
    expect(reply.flags, reply.text).toContain('qr');
    return reply;
  }

  /** `+noall +<section>`: bare RR lines, no headings. */
  async function section(tool: RequiredProgram, name: string, qname: string, qtype: string): Promise<Rr[]> {
    const out = await ask(tool, qname, qtype, ['+noall', `+${name}`]);
    return out.split('\n').filter((l) => l.trim() !== '' && !l.startsWith(';')).map((l) => {
      const rr = parseRr(l);
      if (rr === undefined) throw new Error(`unparsable ${tool.bin} line: ${l}`);
      return rr;
    });
  }

  function expectNegative(reply: Reply, status: 'NXDOMAIN' | 'NOERROR', zone = 'consul.'): void {
    expect(reply.status, reply.text).toBe(status);
    expect(reply.answer, reply.text).toEqual([]);
    const soa = reply.authority.filter((r) => r.type === 'SOA');
    expect(soa.map((r) => r.owner), reply.text).toEqual([zone]);
  }

  for (const tool of [dig, kdig]) {
    describe.skipIf(tool.skip)(tool.bin, () => {
      it('web.service.consul A: healthy and warning web instances, de-duplicated', async () => {
        const r = await query(tool, 'web.service.consul', 'A');
        expect(r.status).toBe('NOERROR');
        expect(datas(r.answer, 'A'), r.text).toEqual(addresses('web', 4));
        expect(r.answer.every((rr) => rr.owner === 'web.service.consul.' && rr.type === 'A'), r.text).toBe(true);
        expect(r.authority, r.text).toEqual([]);
      });

      it('_web._tcp.service.consul SRV: one SRV per node:port, node-form targets', async () => {
        const r = await query(tool, '_web._tcp.service.consul', 'SRV');
        expect(r.status).toBe('NOERROR');
        expect(datas(r.answer, 'SRV'), r.text).toEqual(srvRecords('web'));
      });

      it('_web._tcp.service.consul SRV: glue A and node-meta TXT in the additional section', async () => {
        const additional = await section(tool, 'additional', '_web._tcp.service.consul', 'SRV');
        for (const i of served('web')) {
          const target = srvTarget(i);
          const glue = additional.filter((rr) => rr.owner === target && rr.type === 'A').map((rr) => rr.data);
          expect(glue.length, `glue A for ${target}`).toBeGreaterThan(0);
          expect(new Set(glue), `glue A for ${target}`).toEqual(new Set([i.Node.Address]));
          const txt = additional.filter((rr) => rr.owner === target && rr.type === 'TXT').flatMap((rr) => txtStrings(rr.data));
          expect(sorted([...new Set(txt)]), `meta TXT for ${target}`).toEqual(metaTxt(i.Node));
        }
        const targets = new Set(served('web').map((i) => srvTarget(i)));
        for (const rr of additional) expect(targets.has(rr.owner), `unexpected additional ${rr.owner}`).toBe(true);
      });

      it('web-1.node.consul A: the node address', async () => {
        const r = await query(tool, 'web-1.node.consul', 'A');
        expect(r.status).toBe('NOERROR');
        expect(r.answer.map((rr) => [rr.owner, rr.type, rr.data]), r.text)
          .toEqual([['web-1.node.consul.', 'A', node('web-1').Address]]);
      });

      it('web-1.node.consul TXT: node meta, one key=value string per key', async () => {
        const r = await query(tool, 'web-1.node.consul', 'TXT');
        expect(r.status).toBe('NOERROR');
        expect(r.answer.every((rr) => rr.type === 'TXT' && rr.owner === 'web-1.node.consul.'), r.text).toBe(true);
        expect(r.answer.map((rr) => txtStrings(rr.data).length), r.text).toEqual(r.answer.map(() => 1));
        expect(sorted(r.answer.flatMap((rr) => txtStrings(rr.data))), r.text).toEqual(metaTxt(node('web-1')));
      });

      it('redis.service.consul AAAA: the IPv6 node address', async () => {
        const r = await query(tool, 'redis.service.consul', 'AAAA');
        expect(r.status).toBe('NOERROR');
        expect(datas(r.answer, 'AAAA'), r.text).toEqual(addresses('redis', 6));
        expect(addresses('redis', 6)).toEqual(['2001:db8:0:3::31']);
      });

      it('api.service.consul SRV: addr-form targets for service addresses, weights from health', async () => {
        const r = await query(tool, 'api.service.consul', 'SRV');
        expect(r.status).toBe('NOERROR');
        expect(datas(r.answer, 'SRV'), r.text).toEqual(srvRecords('api'));
        expect(srvRecords('api').some((s) => s.endsWith(' ac100029.addr.dc1.consul.'))).toBe(true);
        for (const i of served('api')) {
          const glue = r.additional.filter((rr) => rr.owner === srvTarget(i) && rr.type === 'A').map((rr) => rr.data);
          expect(new Set(glue), `${r.text}\nglue for ${srvTarget(i)}`).toEqual(new Set([i.Service.Address]));
        }
      });

      it('consul SOA: apex SOA with Consul default timers, NS in authority', async () => {
        const r = await query(tool, 'consul', 'SOA');
        expect(r.status).toBe('NOERROR');
        expect(r.answer.length, r.text).toBe(1);
        const soa = r.answer[0]!;
        expect([soa.owner, soa.type], r.text).toEqual(['consul.', 'SOA']);
        const [mname, rname, serial, ...timers] = soa.data.split(/\s+/);
        expect([mname, rname]).toEqual(['ns.consul.', 'hostmaster.consul.']);
        expect(Number(serial)).toBeGreaterThan(0);
        expect(timers.map(Number)).toEqual([3600, 600, 86400, 0]);
        expect(r.authority.filter((rr) => rr.type === 'NS').length, r.text).toBeGreaterThan(0);
      });

      it('consul NS: up to 3 consul servers with glue', async () => {
        const r = await query(tool, 'consul', 'NS');
        expect(r.status).toBe('NOERROR');
        const servers = served('consul').map((i) => i.Node);
        const ns = r.answer.filter((rr) => rr.type === 'NS');
        expect(ns.length, r.text).toBe(Math.min(3, servers.length));
        for (const rr of ns) {
          expect(rr.owner).toBe('consul.');
          const server = servers.find((n) => rr.data === `${n.Node}.node.${DC}.consul.`);
          expect(server, `${rr.data} is not a consul server`).toBeDefined();
          const glue = r.additional.filter((g) => g.owner === rr.data && g.type === 'A').map((g) => g.data);
          expect(new Set(glue), `${r.text}\nglue for ${rr.data}`).toEqual(new Set([server!.Address]));
        }
      });

      it('PTR for web-1\'s address: the node name in the local DC', async () => {
        const web1 = node('web-1');
        const r = await query(tool, reverseName(web1.Address), 'PTR');
        expect(reverseName(web1.Address)).toBe('11.1.0.10.in-addr.arpa.');
        expect(r.status).toBe('NOERROR');
        expect(r.answer.map((rr) => [rr.type, rr.data]), r.text).toEqual([['PTR', `web-1.node.${DC}.consul.`]]);
      });

      it('reverse zones (README "Reverse zones"): web-1\'s /24 has its own SOA and NS; a miss in it is NXDOMAIN under that SOA', async () => {
        const soa = await query(tool, '1.0.10.in-addr.arpa.', 'SOA');
        expect(soa.status, soa.text).toBe('NOERROR');
        expect(soa.answer.map((rr) => `${rr.owner} ${rr.type} ${rr.data.split(/\s+/).slice(0, 2).join(' ')}`), soa.text)
          .toEqual(['1.0.10.in-addr.arpa. SOA ns.consul. hostmaster.consul.']);
        const ns = await query(tool, '1.0.10.in-addr.arpa.', 'NS');
        expect(datas(ns.answer, 'NS'), ns.text).toEqual(datas((await query(tool, 'consul', 'NS')).answer, 'NS'));
        expectNegative(await query(tool, reverseName('10.0.1.250'), 'PTR'), 'NXDOMAIN', '1.0.10.in-addr.arpa.');
      });

      it('a reverse name in no zone served: REFUSED without AA', async () => {
        const r = await query(tool, reverseName('8.8.8.8'), 'PTR');
        expect(r.status, r.text).toBe('REFUSED');
        expect(r.flags, r.text).not.toContain('aa');
      });

      it('nosuch.service.consul A: NXDOMAIN with the SOA in authority', async () => {
        expectNegative(await query(tool, 'nosuch.service.consul', 'A'), 'NXDOMAIN');
      });

      it('billing.service.consul A: NXDOMAIN, its only instance has a critical node check', async () => {
        expect(served('billing')).toEqual([]);
        expect(dcData(DC).services.billing?.length).toBeGreaterThan(0);
        expectNegative(await query(tool, 'billing.service.consul', 'A'), 'NXDOMAIN');
      });

      it('db.service.consul A: the critical instance is not served', async () => {
        const r = await query(tool, 'db.service.consul', 'A');
        expect(datas(r.answer, 'A'), r.text).toEqual(addresses('db', 4));
        expect(addresses('db', 4).length).toBeLessThan(dcData(DC).services.db?.length ?? 0);
      });

      it('service.consul A: empty non-terminal, NOERROR with no answers and the SOA', async () => {
        expectNegative(await query(tool, 'service.consul', 'A'), 'NOERROR');
      });

      it('_tcp.service.consul A: empty non-terminal that unbound asks with QNAME minimisation', async () => {
        expectNegative(await query(tool, '_tcp.service.consul', 'A'), 'NOERROR');
      });

      it('example.com A: REFUSED, out of zone', async () => {
        const r = await query(tool, 'example.com', 'A');
        expect(r.status, r.text).toBe('REFUSED');
        expect(r.answer).toEqual([]);
      });

      it('web.service.dc2.consul A: the remote DC\'s instances', async () => {
        const r = await query(tool, 'web.service.dc2.consul', 'A');
        expect(r.status).toBe('NOERROR');
        expect(datas(r.answer, 'A'), r.text).toEqual(addresses('web', 4, 'dc2'));
        expect(addresses('web', 4, 'dc2')).not.toEqual(addresses('web', 4));
      });

      it('consul IXFR (a query with an SOA in authority): a well-formed reply, whatever the rcode', async () => {
        const out = await ask(tool, 'consul', 'IXFR=1', ['+tcp'], true);
        expect(out).not.toMatch(/malformed/i);
        // Either a transfer (SOA records) or a clean refusal the tool could parse.
        expect(out).toMatch(/\sIN\s+SOA\s|Transfer failed|replied with error/);
      });

      it('over TCP: web.service.consul A and _web._tcp.service.consul SRV', async () => {
        const a = await query(tool, 'web.service.consul', 'A', ['+tcp']);
        expect(a.text).toMatch(/\(TCP\)/);
        expect(datas(a.answer, 'A'), a.text).toEqual(addresses('web', 4));
        const srv = await query(tool, '_web._tcp.service.consul', 'SRV', ['+tcp']);
        expect(srv.text).toMatch(/\(TCP\)/);
        expect(datas(srv.answer, 'SRV'), srv.text).toEqual(srvRecords('web'));
      });
    });
  }

  describe.skipIf(dig.skip)('dig without EDNS', () => {
    it('_web._tcp.service.consul SRV +noedns: at most udp_answer_limit (3) SRV, each valid, glue only for them', async () => {
      // +ignore: look at the UDP reply itself, even if TC is set.
      const r = await query(dig, '_web._tcp.service.consul', 'SRV', ['+noedns', '+ignore']);
      expect(r.status).toBe('NOERROR');
      expect(r.text).not.toMatch(/OPT PSEUDOSECTION/);
      const srv = datas(r.answer, 'SRV');
      expect(srv.length, r.text).toBeGreaterThan(0);
      expect(srv.length, r.text).toBeLessThanOrEqual(3);
      for (const s of srv) expect(srvRecords('web'), r.text).toContain(s);
      const targets = new Set(srv.map((s) => s.split(' ')[3]));
      for (const rr of r.additional) expect(targets.has(rr.owner), `${r.text}\nadditional ${rr.owner} for no SRV`).toBe(true);
      const size = Number(/MSG SIZE\s+rcvd: (\d+)/.exec(r.text)?.[1]);
      expect(size, r.text).toBeLessThanOrEqual(512);
      // enable_truncate defaults to true (docs/consul-dns.md §12.2): dropped records are flagged.
      if (srv.length < srvRecords('web').length) expect(r.flags, r.text).toContain('tc');
    });

    it('_web._tcp.service.consul SRV +noedns without +ignore: TC makes dig retry over TCP and get all', async () => {
      const r = await query(dig, '_web._tcp.service.consul', 'SRV', ['+noedns']);
      expect(r.status).toBe('NOERROR');
      expect(datas(r.answer, 'SRV'), r.text).toEqual(srvRecords('web'));
    });
  });
});
