/**
 * alt_domain (README "DNS behaviour"): a name under the alt domain is answered exactly like the same
 * name under the domain, with every name of the reply that is under the domain written under the
 * alt domain. Over real UDP and TCP sockets against the server in-process.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import packet from 'dns-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { App } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { silentLogger } from '../../src/log.js';
import { buildQuery, decode, tcpQuery, udpQuery, udpRaw, type Decoded } from '../support/dns-client.js';
import { DEMO_CATALOG, startServer, type TestServer } from '../support/server.js';

const ALT = 'example.internal';

/** The demo catalog plus nodes whose address is a host name (CNAME answers, chased in-zone or not). */
function catalogWithHostNames(dir: string): string {
  const cat = JSON.parse(readFileSync(DEMO_CATALOG, 'utf8'));
  const dc1 = cat.datacenters.dc1;
  const node = (name: string, address: string) => ({ Node: name, Address: address, Datacenter: 'dc1', TaggedAddresses: {}, Meta: {} });
  dc1.nodes.push(node('alias-1', 'web-1.node.dc1.consul'), node('ext-1', 'db.example.com'));
  dc1.services.hosted = [{
    Node: node('alias-1', 'web-1.node.dc1.consul'),
    Service: { ID: 'hosted-1', Service: 'hosted', Tags: [], Address: '', Port: 7000, Meta: {} },
    Checks: [],
  }];
  const path = join(dir, 'catalog.json');
  writeFileSync(path, JSON.stringify(cat));
  return path;
}

type Rec = packet.Answer;
const SECTIONS = ['answers', 'authorities', 'additionals'] as const;

/** `name` (any case) under `consul` moved under the alt domain; others unchanged. */
function toAlt(name: string): string {
  const l = name.toLowerCase();
  if (l === 'consul') return ALT;
  return l.endsWith('.consul') ? `${name.slice(0, -'consul'.length)}${ALT}` : name;
}

/** A record as one comparable line, its names passed through `f`. */
function line(r: Rec, f: (n: string) => string = (n) => n): string {
  const d = r.data as unknown;
  let data: unknown = d;
  if (r.type === 'SRV') { const s = d as { target: string }; data = { ...s, target: f(s.target) }; }
  else if (r.type === 'SOA') { const s = d as { mname: string; rname: string }; data = { ...s, mname: f(s.mname), rname: f(s.rname) }; }
  else if (r.type === 'CNAME' || r.type === 'NS' || r.type === 'PTR') data = f(d as string);
  else if (r.type === 'TXT') data = (d as Buffer[]).map((b) => b.toString());
  else if (r.type === 'OPT') return 'OPT';
  return `${f(r.name)} ${r.ttl} ${r.type} ${JSON.stringify(data)}`;
}

/** Every name in a reply (owners and RDATA names), lower-cased. */
function namesOf(d: Decoded): string[] {
  const out: string[] = [];
  for (const s of SECTIONS) {
    for (const r of d[s] ?? []) {
      if (r.type === 'OPT') continue;
      out.push(r.name);
      line(r, (n) => { out.push(n); return n; });
    }
  }
  return out.map((n) => n.toLowerCase());
}

const under = (n: string, domain: string) => n === domain || n.endsWith(`.${domain}`);

describe('alt_domain: answered like the domain, names under the alt domain', () => {
  let s: TestServer;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cdns-alt-'));
    s = await startServer({ catalogFile: catalogWithHostNames(dir), config: { alt_domain: ALT } });
  });
  afterAll(async () => {
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const cases: Array<[string, string]> = [
    ['web.service', 'A'], ['_web._tcp.service', 'SRV'], ['v1.web.service', 'SRV'], ['web.service.dc2', 'SRV'],
    ['api.service', 'SRV'], ['redis.service', 'AAAA'], ['web-1.node', 'A'], ['web-1.node', 'ANY'], ['web-1.node.dc1', 'TXT'],
    ['', 'SOA'], ['', 'NS'], ['', 'ANY'], ['web.service', 'SOA'], ['web.service', 'NS'],
    ['nope.service', 'A'], ['service', 'A'], ['web.service.dc9', 'A'], ['web.service', 'MX'],
    ['0a00010b.addr.dc1', 'A'], ['0a00010b.addr.dc1', 'AAAA'],
    ['alias-1.node', 'A'], ['ext-1.node', 'A'], ['hosted.service', 'SRV'],
  ];

  it.each(cases)('over TCP, %s.<alt> %s is the %s.consul answer with its names under the alt domain', async (label, type) => {
    const pre = label ? `${label}.` : '';
    const [p, a] = await Promise.all([tcpQuery(s.port, `${pre}consul`, type), tcpQuery(s.port, `${pre}${ALT}`, type)]);
    expect(a.rcode).toBe(p.rcode);
    expect(a.flag_aa).toBe(true);
    expect(a.flag_tc).toBe(false);
    expect(a.questions).toEqual([{ name: `${pre}${ALT}`, type, class: 'IN' }]);
    for (const sec of SECTIONS) {
      expect((a[sec] ?? []).map((r) => line(r)).sort(), sec).toEqual((p[sec] ?? []).map((r) => line(r, toAlt)).sort());
    }
    // Nothing of the reply is left under the domain (reverse names are answered from the domain, below).
    expect(namesOf(a).filter((n) => under(n, 'consul'))).toEqual([]);
  });

  it('answers SOA and NS at the alt apex with the alt MNAME, RNAME and name servers (with glue)', async () => {
    const soa = await udpQuery(s.port, ALT, 'SOA', { edns: 1232 });
    expect(soa.rcode).toBe('NOERROR');
    expect(soa.answers).toMatchObject([{ name: ALT, type: 'SOA', data: { mname: `ns.${ALT}`, rname: `hostmaster.${ALT}` } }]);
    const ns = await udpQuery(s.port, ALT, 'NS');
    expect(ns.answers.map((r) => [r.name, r.data])).toEqual(['consul-server-1', 'consul-server-2', 'consul-server-3'].map((n) => [ALT, `${n}.node.dc1.${ALT}`]));
    expect(ns.additionals.map((r) => r.name).sort()).toEqual(['consul-server-1', 'consul-server-2', 'consul-server-3'].map((n) => `${n}.node.dc1.${ALT}`));
  });

  it('answers NXDOMAIN under the alt domain with the alt SOA in AUTHORITY', async () => {
    const r = await udpQuery(s.port, `nope.service.${ALT}`, 'A', { edns: 1232 });
    expect(r.rcode).toBe('NXDOMAIN');
    expect(r.flag_aa).toBe(true);
    expect(r.answers).toEqual([]);
    expect(r.authorities).toMatchObject([{ name: ALT, type: 'SOA', data: { mname: `ns.${ALT}`, rname: `hostmaster.${ALT}` } }]);
  });

  it('SRV over UDP: targets and their glue under the alt domain, the glue owners pointing at the targets', async () => {
    const r = await udpQuery(s.port, `_web._tcp.service.${ALT}`, 'SRV', { edns: 1232 });
    expect(r.answers.length).toBe(4);
    expect(r.flag_tc).toBe(false);
    const targets = new Set(r.answers.map((a) => (a.data as { target: string }).target));
    expect([...targets].sort()).toEqual(['web-1', 'web-2', 'web-3'].map((n) => `${n}.node.dc1.${ALT}`));
    const glue = r.additionals.filter((a) => a.type === 'A');
    expect(new Set(glue.map((g) => g.name))).toEqual(targets);
    const api = await udpQuery(s.port, `api.service.${ALT}`, 'SRV', { edns: 1232 });
    expect(api.answers.map((a) => (a.data as { target: string }).target).sort()).toEqual([`ac100029.addr.dc1.${ALT}`, `ac10002a.addr.dc1.${ALT}`]);
    expect(api.additionals.filter((a) => a.type === 'A').map((a) => [a.name, a.data]).sort()).toEqual([
      [`ac100029.addr.dc1.${ALT}`, '172.16.0.41'], [`ac10002a.addr.dc1.${ALT}`, '172.16.0.42'],
    ]);
  });

  it('keeps udp_answer_limit, the 512-byte bound and TC without EDNS, and the EDNS size with it', async () => {
    for (let i = 0; i < 5; i++) {
      const r = await udpQuery(s.port, `_web._tcp.service.${ALT}`, 'SRV');
      expect(r.raw.length).toBeLessThanOrEqual(512);
      expect(r.answers.length).toBe(3);
      expect(r.flag_tc).toBe(true);
      expect(namesOf(r).every((n) => under(n, ALT))).toBe(true);
      // Consul's UDP shape: an answer goes in with its glue.
      const glued = new Set(r.additionals.filter((a) => a.type === 'A').map((a) => a.name));
      for (const a of r.answers) expect(glued.has((a.data as { target: string }).target)).toBe(true);
    }
    const e = await udpQuery(s.port, `web.service.${ALT}`, 'A', { edns: 1232, dnssecOk: true });
    const opt = e.additionals.find((a) => a.type === 'OPT') as unknown as { udpPayloadSize: number; flags: number };
    expect(opt.udpPayloadSize).toBe(1232);
    expect(opt.flags & packet.DNSSEC_OK).toBe(packet.DNSSEC_OK);
    expect(e.answers.length).toBe(3);
  });

  it('echoes a mixed-case (0x20) question and its spelling in the owners; other names in the alt domain', async () => {
    const q = 'WeB.SeRvIcE.ExAmPlE.InTeRnAl';
    const r = await udpQuery(s.port, q, 'SRV', { edns: 1232 });
    expect(r.questions[0]!.name).toBe(q);
    expect(r.answers.length).toBe(4);
    expect(r.answers.every((a) => a.name === q)).toBe(true);
    expect(r.answers.every((a) => (a.data as { target: string }).target.endsWith(`.node.dc1.${ALT}`))).toBe(true);
    const apex = await udpQuery(s.port, 'EXAMPLE.internal', 'SOA');
    expect(apex.questions[0]!.name).toBe('EXAMPLE.internal');
    expect(apex.answers[0]!.name.toLowerCase()).toBe(ALT);
  });

  it('answers reverse lookups with the domain (the alt domain is for names asked under it)', async () => {
    const r = await udpQuery(s.port, '11.1.0.10.in-addr.arpa', 'PTR');
    expect(r.answers.map((a) => a.data)).toEqual(['web-1.node.dc1.consul']);
  });

  it('refuses names under neither domain, also a suffix that is not at a label boundary', async () => {
    for (const n of ['example.com', 'internal', `web.service.x${ALT}`, 'web.service.example', 'web.service.consul.example']) {
      const r = await udpQuery(s.port, n, 'A');
      expect(r.rcode, n).toBe('REFUSED');
      expect(r.flag_aa, n).toBe(false);
    }
    // A label holding the bytes of "\x07example" followed by "internal": the key ends like the alt
    // domain's but not at a label boundary.
    const q = buildQuery('web.service.consul', 'A');
    const name = Buffer.concat([Buffer.from([3]), Buffer.from('web'), Buffer.from([9, 0x78, 7]), Buffer.from('example'), Buffer.from([8]), Buffer.from('internal'), Buffer.from([0])]);
    const raw = Buffer.concat([q.subarray(0, 12), name, Buffer.from([0, 1, 0, 1])]);
    const r = decode((await udpRaw(s.port, raw))!);
    expect(r.rcode).toBe('REFUSED');
  });

  it('serves repeated alt questions from the response cache with the alt names, shuffled subsets included', async () => {
    const hits = () => (s.app as unknown as { handler: { cacheMemory(): { responses: { hits: number } | null } } }).handler.cacheMemory().responses!.hits;
    const before = hits();
    const first = await udpQuery(s.port, `web.service.${ALT}`, 'A');
    for (let i = 0; i < 3; i++) {
      const again = await udpQuery(s.port, `web.service.${ALT}`, 'A');
      expect(again.answers.map((r) => line(r)).sort()).toEqual(first.answers.map((r) => line(r)).sort());
      const sub = await udpQuery(s.port, `_web._tcp.service.${ALT}`, 'SRV');
      expect(sub.answers.length).toBe(3);
      expect(sub.raw.length).toBeLessThanOrEqual(512);
      expect(namesOf(sub).every((n) => under(n, ALT))).toBe(true);
    }
    expect(hits() - before).toBeGreaterThanOrEqual(5);
  });
});

describe('alt_domain longer than the domain: replies still fit', () => {
  const LONG = 'a-rather-long-alternative-domain-name.for-service-discovery.example.internal';
  let s: TestServer;
  beforeAll(async () => { s = await startServer({ config: { alt_domain: LONG } }); });
  afterAll(() => s.close());

  it('trims a 512-byte UDP reply by the real (alt) sizes and sets TC; TCP carries everything', async () => {
    const u = await udpQuery(s.port, `_web._tcp.service.${LONG}`, 'SRV');
    expect(u.raw.length).toBeLessThanOrEqual(512);
    expect(u.flag_tc).toBe(true);
    expect(u.answers.length).toBeGreaterThanOrEqual(1);
    expect(u.answers.length).toBeLessThan(4);
    expect(namesOf(u).every((n) => under(n, LONG))).toBe(true);
    const t = await tcpQuery(s.port, `_web._tcp.service.${LONG}`, 'SRV');
    expect(t.answers.length).toBe(4);
    expect(t.flag_tc).toBe(false);
    expect(namesOf(t).every((n) => under(n, LONG))).toBe(true);
  });
});

describe('alt_domain configuration', () => {
  it('refuses an alt domain that nests with the domain when the configuration loads, naming where it came from', () => {
    expect(() => loadConfig({ object: { dns: '127.0.0.1:0', http: 'off', catalog_file: DEMO_CATALOG, alt_domain: 'alt.consul' } }))
      .toThrow(expect.objectContaining({ code: 'CDNS_ERR_CONFIG', message: expect.stringContaining('alt_domain: "alt.consul" is inside the domain') }));
    expect(() => loadConfig({ flags: { alt_domain: 'consul' } })).toThrow(expect.objectContaining({ message: expect.stringContaining('--alt-domain: "consul" is the domain itself') }));
  });

  it('is applied by a reload (SIGHUP): on, changed (cached replies gone), rejected when nested, off', async () => {
    let file: Record<string, unknown> = { dns: '127.0.0.1:0', http: 'off', catalog_file: DEMO_CATALOG };
    const load = () => loadConfig({ object: file });
    const app = new App({ config: load(), logger: silentLogger(), reloadConfig: load });
    await app.start();
    try {
      const port = app.dnsAddress.port;
      const ask = async (n: string) => (await udpQuery(port, n, 'A')).rcode;
      expect(await ask(`web.service.${ALT}`)).toBe('REFUSED');
      file = { ...file, alt_domain: ALT };
      await app.reload();
      expect(await ask(`web.service.${ALT}`)).toBe('NOERROR');
      expect(await ask(`web.service.${ALT}`)).toBe('NOERROR'); // cached
      file = { ...file, alt_domain: 'other.internal' };
      await app.reload();
      expect(await ask(`web.service.${ALT}`)).toBe('REFUSED');
      expect(await ask('web.service.other.internal')).toBe('NOERROR');
      file = { ...file, alt_domain: 'sub.consul' };
      await app.reload();
      expect(app.config.altDomain).toBe('other.internal');
      expect(await ask('web.service.other.internal')).toBe('NOERROR');
      file = { dns: '127.0.0.1:0', http: 'off', catalog_file: DEMO_CATALOG };
      await app.reload();
      expect(await ask('web.service.other.internal')).toBe('REFUSED');
      expect(await ask('web.service.consul')).toBe('NOERROR');
    } finally {
      await app.close();
    }
  });
});
