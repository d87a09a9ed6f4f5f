/**
 * The zone model: records are the truth, commits cost what changed.
 *
 * - Property: random sequences of catalog changes committed one by one (per unit) give the same zone
 *   as a build from scratch of the final catalog: every listed record, the content hash (and so the
 *   serial), and every answer the query path gives, response cache included.
 * - Diffs of commits, as tables of records added and removed.
 * - Determinism: the order of the catalog does not matter; any change of an answer changes the hash.
 * - Verdicts, and the round trip of every record encoder.
 */
import packet from 'dns-packet';
import { describe, expect, it } from 'vitest';
import { openCatalog, validateCatalog, type Catalog, type DatacenterCatalog } from '../../src/catalog/catalog.js';
import { loadConfig } from '../../src/config.js';
import { DnsCounters } from '../../src/dns/counters.js';
import { HELD, QueryHandler } from '../../src/dns/handler.js';
import { silentLogger } from '../../src/log.js';
import { buildZone, type ChangeHint } from '../../src/zone/build.js';
import { wireOf } from '../../src/zone/prepare.js';
import { rrText, type RR } from '../../src/zone/records.js';
import { provisionalZone } from '../../src/zone/provisional.js';
import { ZoneStore } from '../../src/zone/store.js';
import { Translator } from '../../src/zone/units.js';
import { wireKey, type Zone } from '../../src/zone/zone.js';
import { catalogDoc, formatRR, instanceDoc, nodeDoc, seededRandom, type Json } from '../support/cases.js';
import { buildQuery, decode } from '../support/dns-client.js';

const config = loadConfig({ object: { dns: '127.0.0.1:0' } });
const catalogOf = (doc: Json): Catalog => validateCatalog(doc).catalog;
const serialOf = (hash: string) => parseInt(hash.slice(0, 7), 16);
const listing = (z: Zone) => [...z.records()].map((r) => rrText(r)).filter((l) => !l.includes(' IN SOA ')).sort();

// ---------------------------------------------------------------------------------------------
// A random catalog model and random changes to it
// ---------------------------------------------------------------------------------------------

interface Inst { node: number; port: number; tags: string[]; status: string; address: string; vip: string; kind: '' | 'proxy' | 'native' | 'gateway'; dest: string }
interface Model {
  nodes: Array<{ name: string; address: string; meta: Record<string, string>; v6: string } | null>;
  services: Map<string, Inst[]>;
  /** Terminating gateway service name -> linked services (the catalog's gateway_services). */
  gateways?: Map<string, string[]>;
}

function randomModel(rand: () => number): Model {
  const nodes = Array.from({ length: 8 }, (_, i) => ({ name: `n${i}`, address: `10.0.0.${i + 1}`, meta: i % 3 === 0 ? { rack: `r${i}` } : {}, v6: '' }));
  const services = new Map<string, Inst[]>();
  for (let s = 0; s < 6; s++) services.set(`s${s}`, Array.from({ length: 1 + Math.floor(rand() * 3) }, () => randomInst(rand, 8)));
  return { nodes, services, gateways: new Map([['s5', ['s0']]]) };
}

const pick = <T>(rand: () => number, xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;

function randomInst(rand: () => number, nodes: number): Inst {
  return {
    node: Math.floor(rand() * nodes), port: 8000 + Math.floor(rand() * 3), tags: rand() < 0.5 ? [pick(rand, ['v1', 'v2', 'a.b'])] : [],
    status: pick(rand, ['passing', 'passing', 'warning', 'critical']),
    address: pick(rand, ['', '', '10.9.0.1', '10.9.0.2', 'host.example.com', 's0.service.consul']), vip: rand() < 0.2 ? pick(rand, ['240.0.0.1', '240.0.0.2']) : '',
    kind: pick(rand, ['', '', '', 'proxy', 'native', 'gateway']), dest: pick(rand, ['s0', 's1', 'S1']),
  };
}

/** One random change: what Consul's catalog sees when services, checks and nodes come and go. */
function mutate(m: Model, rand: () => number): void {
  const names = [...m.services.keys()];
  const svc = pick(rand, names.length ? names : ['s0']);
  const list = m.services.get(svc) ?? [];
  switch (Math.floor(rand() * 13)) {
    case 0: m.services.set(svc, [...list, randomInst(rand, m.nodes.length)]); break;
    case 1: m.services.set(svc, list.slice(1)); break;
    case 2: if (list[0]) list[0].status = pick(rand, ['passing', 'warning', 'critical']); break;
    case 3: if (list[0]) list[0].tags = rand() < 0.5 ? [] : [pick(rand, ['v1', 'v3', 'x.y'])]; break;
    case 4: if (list[0]) list[0].port++; break;
    case 5: if (list[0]) list[0].address = pick(rand, ['', '10.9.0.3', '2001:db8::9', 'other.example.net']); break;
    case 6: m.services.delete(svc); break;
    case 7: m.services.set(`s${Math.floor(rand() * 9)}`, [randomInst(rand, m.nodes.length)]); break;
    case 8: { const n = m.nodes[Math.floor(rand() * m.nodes.length)]; if (n) n.address = `10.0.1.${Math.floor(rand() * 250) + 1}`; break; }
    case 9: { const n = m.nodes[Math.floor(rand() * m.nodes.length)]; if (n) { n.meta = { k: String(rand()).slice(2, 6) }; n.v6 = rand() < 0.5 ? '2001:db8::77' : ''; } break; }
    case 10: { // swap the virtual IPs of two services
      const [a, b] = [m.services.get('s0')?.[0], m.services.get('s1')?.[0]];
      if (a && b) [a.vip, b.vip] = [b.vip, a.vip];
      break;
    }
    case 11: { // a gateway's links change (Consul: a terminating-gateway config entry written)
      const links = ['s0', 's1', 'S1', 's2', 'x9'].filter(() => rand() < 0.4);
      (m.gateways ??= new Map()).set(pick(rand, ['s5', 's4', 'S5']), links);
      break;
    }
    case 12: // another spelling of a service: one service in Consul (its index is lower-cased)
      m.services.set(svc.toUpperCase(), [randomInst(rand, m.nodes.length)]);
      break;
  }
}

function docOf(m: Model, order: (xs: string[]) => string[] = (xs) => xs): Json {
  const nodeJson = (i: number) => {
    const n = m.nodes[i] ?? { name: `n${i}`, address: `10.0.0.${i + 1}`, meta: {}, v6: '' };
    return nodeDoc(n.name, n.address, { meta: n.meta, tagged: n.v6 ? { lan_ipv6: n.v6 } : {} });
  };
  const services: Record<string, Json[]> = {};
  for (const name of order([...m.services.keys()])) {
    services[name] = m.services.get(name)!.map((x, i) => {
      // Consul puts the virtual IP on proxies and native instances as `consul-virtual`, on a
      // terminating gateway's instances as `consul-virtual:<linked service>`.
      const tag = x.kind === 'gateway' ? `consul-virtual:${x.dest}` : 'consul-virtual';
      const d = instanceDoc(nodeJson(x.node), name, {
        id: `${name}-${i}`, port: x.port, tags: x.tags, status: x.status, address: x.address,
        tagged: x.vip ? { [tag]: { Address: x.vip, Port: 0 } } : {},
      });
      const s = d.Service as Json;
      if (x.kind === 'proxy') { s.Kind = 'connect-proxy'; s.Proxy = { DestinationServiceName: x.dest }; }
      if (x.kind === 'native') s.Connect = { Native: true };
      if (x.kind === 'gateway') s.Kind = 'terminating-gateway';
      return d;
    });
  }
  const doc = catalogDoc('dc1', { dc1: { nodes: m.nodes.map((_, i) => nodeJson(i)), services } });
  if (m.gateways?.size) (doc.datacenters as Record<string, Json>).dc1!.gateway_services = Object.fromEntries(m.gateways);
  return doc;
}

// ---------------------------------------------------------------------------------------------

/** Every name the zone lists, and a few that do not exist, asked for every qtype the zone answers. */
function questions(z: Zone): Array<[string, string]> {
  const names = new Set([...z.records()].map((r) => r.owner));
  for (const n of ['nosuch.service.consul', 'service.consul', 's7.service.consul', '_s1._tcp.service.consul', 'n3.node.consul', '1.0.0.10.in-addr.arpa']) names.add(n);
  return [...names].flatMap((n) => ['A', 'AAAA', 'SRV', 'TXT', 'ANY', 'PTR', 'SOA'].map((t): [string, string] => [n, t]));
}

/** A reply as comparable text: rcode, flags and sorted sections (shuffling makes order free). */
function replyText(buf: Buffer | null): string {
  if (!buf) return 'dropped';
  const d = decode(buf);
  const sec = (rs: readonly unknown[]) => rs.map((r) => formatRR(r as never)).filter(Boolean).sort().join(' | ');
  return `${d.rcode} ${d.flags} AN ${sec(d.answers)} NS ${sec(d.authorities)} AR ${sec(d.additionals)}`;
}

/**
 * The services and nodes whose catalog entries differ: what a Consul watch per service reports
 * (named by their catalog keys), and the gateways whose links changed (hinted as their service).
 */
function hintOf(before: Catalog, after: Catalog): ChangeHint {
  const [b, a] = [before.datacenters.get('dc1')!, after.datacenters.get('dc1')!];
  const changed = <V>(x: ReadonlyMap<string, V>, y: ReadonlyMap<string, V>) =>
    [...new Set([...x.keys(), ...y.keys()])].filter((k) => JSON.stringify(x.get(k)) !== JSON.stringify(y.get(k)));
  const services = new Set(changed(b.services, a.services));
  const links = (d: DatacenterCatalog) => new Map([...d.gatewayServices ?? []].map(([g, l]) => [g.toLowerCase(), l.map((x) => x.toLowerCase()).sort()]));
  for (const g of changed(links(b), links(a))) for (const k of a.services.keys()) if (k.toLowerCase() === g) services.add(k);
  return {
    services: [...services].map((s): [string, string] => ['dc1', s]),
    nodes: changed(b.nodes, a.nodes).map((n): [string, string] => ['dc1', n]),
  };
}

describe('commits per unit give the zone a build from scratch gives (property)', () => {
  const variants = [[1, false, 500], [2, false, 500], [3, false, 0], [4, true, 500], [5, true, 500], [6, true, 0]] as const;
  for (const [seed, hinted, inPlaceUnits] of variants) {
    const how = `${hinted ? ', each with the entries it changed' : ''}${inPlaceUnits === 0 ? ', each into a new index generation' : ''}`;
    it(`seed ${seed}: 40 random changes, committed one by one${how}`, async () => {
      const rand = seededRandom(seed);
      const m = randomModel(rand);
      const store = new ZoneStore({ config, logger: silentLogger(), inPlaceUnits });
      await store.commit(catalogOf(docOf(m)));
      // One handler (with its response cache) over the store for the whole sequence: cached
      // answers must never outlive the records they came from.
      const handler = new QueryHandler({ store, config, logger: silentLogger(), counters: new DnsCounters(), random: seededRandom(9) });
      for (let step = 0; step < 40; step++) {
        const before = docOf(m);
        mutate(m, rand);
        const r = await store.commit(catalogOf(docOf(m)), 'test', hinted ? hintOf(catalogOf(before), catalogOf(docOf(m))) : undefined);
        expect(r.units).toBeLessThan(8 + 6); // never a rebuild of everything
        const incremental = store.current()!;
        const scratch = buildZone(catalogOf(docOf(m)), { config, serialFor: serialOf });
        expect(incremental.contentHash, `step ${step}`).toBe(scratch.contentHash);
        if (step % 8 !== 7) continue;
        expect(listing(incremental)).toEqual(listing(scratch));
        const fresh = new QueryHandler({ store: { current: () => scratch }, config, logger: silentLogger(), counters: new DnsCounters(), cacheBytes: 0 });
        for (const [name, type] of questions(scratch)) {
          const q = buildQuery(name, type, { id: 7, edns: 4096 });
          // Twice through the cached handler: a miss, then a hit.
          const want = replyText(fresh.handle(q, false)).replace(/ \d+ 3600 600 86400 /g, ' S ');
          expect(replyText(handler.handle(q, false)).replace(/ \d+ 3600 600 86400 /g, ' S '), `${name} ${type}`).toBe(want);
          expect(replyText(handler.handle(q, false)).replace(/ \d+ 3600 600 86400 /g, ' S '), `${name} ${type} (cached)`).toBe(want);
        }
      }
    });
  }
});

describe('the provisional zone of a start answers as the complete zone does, or holds the query', () => {
  for (const [seed, compat] of [[21, 'rfc'], [22, 'rfc'], [23, 'consul'], [24, 'rfc']] as const) {
    it(`seed ${seed} (${compat}): 10 random catalogs, every question over TCP and UDP`, () => {
      const rand = seededRandom(seed);
      const cfg = loadConfig({ object: { dns: '127.0.0.1:0', compat } });
      const m = randomModel(rand);
      let answered = 0, held = 0, total = 0;
      for (let round = 0; round < 10; round++) {
        for (let k = 0; k < 4; k++) mutate(m, rand);
        const doc = docOf(m);
        // Some nodes missing from the nodes list: their services wait (the node comes from an entry).
        const dcDoc = (doc.datacenters as Record<string, { nodes: Json[] }>).dc1;
        if (round % 2 === 1) dcDoc.nodes = dcDoc.nodes.filter(() => rand() < 0.7);
        const complete = buildZone(catalogOf(doc), { config: cfg, serialFor: serialOf });
        const preview = openCatalog(doc).preview;
        const early = provisionalZone(new Translator(cfg, preview.datacenter), preview);
        const full = new QueryHandler({ store: { current: () => complete }, config: cfg, logger: silentLogger(), counters: new DnsCounters(), cacheBytes: 0 });
        const counters = new DnsCounters();
        const prov = new QueryHandler({ store: { current: () => null, provisional: () => early }, config: cfg, logger: silentLogger(), counters, cacheBytes: 0 });
        for (const [name, type] of questions(complete)) {
          for (const tcp of [true, false]) {
            const q = buildQuery(name, type, { id: 7, edns: 4096 });
            const got = prov.handle(q, tcp);
            if (got === HELD) { held++; continue; }
            answered++;
            expect(replyText(got), `${name} ${type}`).toBe(replyText(full.handle(q, tcp)));
            expect(decode(got!).answers.length, `${name} ${type}: only positive answers`).toBeGreaterThan(0);
          }
        }
        // Held queries were not counted (they are when handed in again).
        expect(counters.queriesUdp + counters.queriesTcp).toBe(answered);
        total += answered;
        answered = 0;
        // What needs the whole zone waits: the SOA, a name that does not exist, a reverse name.
        for (const [name, type] of [['consul', 'SOA'], ['consul', 'NS'], ['nosuch.service.consul', 'A'], ['1.0.0.10.in-addr.arpa', 'PTR']]) {
          expect(prov.handle(buildQuery(name!, type!, { id: 1 }), false), `${name} ${type}`).toBe(HELD);
        }
      }
      expect(held).toBeGreaterThan(0);
      expect(total).toBeGreaterThan(300);
    });
  }

  it('answers service, tag, RFC 2782 and node names; holds connect and virtual names and a service on an unlisted node', () => {
    const n1 = nodeDoc('n1', '10.0.0.1'), n2 = nodeDoc('n2', '10.0.0.2');
    const web = instanceDoc(n1, 'web', { id: 'web-1', port: 80, tags: ['v1'] });
    const proxy = instanceDoc(n1, 'web-sidecar', { id: 'p1', port: 21000, tagged: { 'consul-virtual': { Address: '240.0.0.9', Port: 80 } } });
    (proxy.Service as Json).Kind = 'connect-proxy';
    (proxy.Service as Json).Proxy = { DestinationServiceName: 'web' };
    // n2 is named by service entries only, and cache's copy differs from db's: the first entry wins.
    const n2b = nodeDoc('n2', '10.0.0.99');
    const doc = catalogDoc('dc1', { dc1: { nodes: [n1], services: { web: [web], 'web-sidecar': [proxy], db: [instanceDoc(n2, 'db', { id: 'db-1' })], cache: [instanceDoc(n2b, 'cache', { id: 'c-1' })] } } });
    const dc1 = (doc.datacenters as Record<string, { nodes: Json[] }>).dc1;
    dc1.nodes = dc1.nodes.filter((n) => n.Node !== 'n2');
    const preview = openCatalog(doc).preview;
    const early = provisionalZone(new Translator(config, preview.datacenter), preview);
    const complete = buildZone(catalogOf(doc), { config, serialFor: serialOf });
    const h = new QueryHandler({ store: { current: () => null, provisional: () => early }, config, logger: silentLogger(), counters: new DnsCounters(), cacheBytes: 0 });
    const full = new QueryHandler({ store: { current: () => complete }, config, logger: silentLogger(), counters: new DnsCounters(), cacheBytes: 0 });
    for (const [name, type] of [['web.service.consul', 'A'], ['WEB.service.dc1.consul', 'SRV'], ['v1.web.service.consul', 'A'], ['_web._v1.service.consul', 'SRV'],
      ['n1.node.consul', 'A'], ['web.service.dc1.dc.consul', 'A']]) {
      const q = buildQuery(name!, type!, { id: 3 });
      const r = h.handle(q, false);
      expect(r, `${name} ${type}`).not.toBe(HELD);
      expect(replyText(r), `${name} ${type}`).toBe(replyText(full.handle(q, false)));
    }
    for (const [name, type] of [['web.connect.consul', 'A'], ['web.virtual.consul', 'A'], ['db.service.consul', 'A'], ['cache.service.consul', 'A'], ['n2.node.consul', 'A'],
      ['web.service.consul', 'TXT'], ['_v1._tcp.service.consul', 'SRV']]) {
      expect(h.handle(buildQuery(name!, type!, { id: 3 }), false), `${name} ${type}`).toBe(HELD);
    }
    // The virtual IP is the proxy's (its destination's), from the complete zone.
    expect(decode(full.handle(buildQuery('web.virtual.consul', 'A', { id: 3 }), false)!).answers.map((a) => a.data)).toEqual(['240.0.0.9']);
    // Why cache waits: its own entry says 10.0.0.99, the zone says what db's entry said first.
    expect(decode(full.handle(buildQuery('cache.service.consul', 'A', { id: 3 }), false)!).answers.map((a) => a.data)).toEqual(['10.0.0.2']);
  });
});

describe('content hash and serial', () => {
  const base = (): Model => ({
    nodes: [{ name: 'n0', address: '10.0.0.1', meta: {}, v6: '' }, { name: 'n1', address: '10.0.0.2', meta: {}, v6: '' }],
    services: new Map([
      ['a', [{ node: 0, port: 80, tags: [], status: 'passing', address: '10.5.0.1', vip: '240.0.0.1', kind: 'native', dest: '' } as Inst]],
      ['b', [{ node: 1, port: 80, tags: [], status: 'passing', address: '10.5.0.1', vip: '240.0.0.2', kind: 'native', dest: '' } as Inst]],
    ]),
  });
  const zoneOf = (m: Model, order?: (xs: string[]) => string[]) => buildZone(catalogOf(docOf(m, order)), { config, serialFor: serialOf });

  it('two services swapping their virtual IPs change the hash and the serial', () => {
    const m = base();
    const before = zoneOf(m);
    const [a, b] = [m.services.get('a')![0]!, m.services.get('b')![0]!];
    [a.vip, b.vip] = [b.vip, a.vip];
    const after = zoneOf(m);
    expect(after.contentHash).not.toBe(before.contentHash);
    expect(after.serial).not.toBe(before.serial);
  });

  it('the same catalog in another key order gives the same zone (PTR of a shared address included)', () => {
    const m = base();
    const fwd = zoneOf(m);
    const rev = zoneOf(m, (xs) => [...xs].reverse());
    expect(rev.contentHash).toBe(fwd.contentHash);
    expect(listing(rev)).toEqual(listing(fwd));
    expect(listing(fwd)).toContain('1.0.5.10.in-addr.arpa. 0 IN PTR a.service.dc1.consul.');
  });

  it('instances listed in another order give the same hash', () => {
    const m = base();
    m.services.get('a')!.push({ node: 1, port: 81, tags: ['x'], status: 'warning', address: '', vip: '', kind: '', dest: '' });
    const h1 = zoneOf(m).contentHash;
    m.services.get('a')!.reverse();
    expect(zoneOf(m).contentHash).toBe(h1);
  });

  it('any change of an answer changes the hash: a port, health, a tag, node meta, a node address', () => {
    const m = base();
    const seen = new Set([zoneOf(m).contentHash]);
    const changes: Array<(x: Model) => void> = [
      (x) => { x.services.get('a')![0]!.port = 81; },
      (x) => { x.services.get('b')![0]!.status = 'critical'; },
      (x) => { x.services.get('a')![0]!.tags = ['t']; },
      (x) => { x.nodes[0]!.meta = { k: 'v' }; },
      (x) => { x.nodes[1]!.address = '10.0.0.9'; },
    ];
    for (const c of changes) {
      c(m);
      const h = zoneOf(m).contentHash;
      expect(seen.has(h)).toBe(false);
      seen.add(h);
    }
  });
});

describe('commit diffs (records added and removed, SOA aside)', () => {
  const cases: Array<{ name: string; change: (m: Model) => void; added: string[]; removed: string[] }> = [
    {
      name: 'a new instance of a service',
      change: (m) => m.services.get('web')!.push({ node: 1, port: 80, tags: [], status: 'passing', address: '', vip: '', kind: '', dest: '' }),
      added: [
        '_web._tcp.service.consul. 0 IN SRV 1 1 80 n1.node.dc1.consul.', '_web._tcp.service.dc1.consul. 0 IN SRV 1 1 80 n1.node.dc1.consul.',
        'web.service.consul. 0 IN A 10.0.0.2', 'web.service.consul. 0 IN SRV 1 1 80 n1.node.dc1.consul.',
        'web.service.dc1.consul. 0 IN A 10.0.0.2', 'web.service.dc1.consul. 0 IN SRV 1 1 80 n1.node.dc1.consul.',
        '_web._tcp.service.consul. 0 IN A 10.0.0.2', '_web._tcp.service.dc1.consul. 0 IN A 10.0.0.2',
      ].sort(),
      removed: [],
    },
    {
      name: 'a port change replaces the SRV records only',
      change: (m) => { m.services.get('web')![0]!.port = 81; },
      added: ['_web._tcp.service.consul. 0 IN SRV 1 1 81 n0.node.dc1.consul.', '_web._tcp.service.dc1.consul. 0 IN SRV 1 1 81 n0.node.dc1.consul.',
        'web.service.consul. 0 IN SRV 1 1 81 n0.node.dc1.consul.', 'web.service.dc1.consul. 0 IN SRV 1 1 81 n0.node.dc1.consul.'].sort(),
      removed: ['_web._tcp.service.consul. 0 IN SRV 1 1 80 n0.node.dc1.consul.', '_web._tcp.service.dc1.consul. 0 IN SRV 1 1 80 n0.node.dc1.consul.',
        'web.service.consul. 0 IN SRV 1 1 80 n0.node.dc1.consul.', 'web.service.dc1.consul. 0 IN SRV 1 1 80 n0.node.dc1.consul.'].sort(),
    },
    {
      name: 'a node address change: its A records and the service answers that use it',
      change: (m) => { m.nodes[0]!.address = '10.0.0.9'; },
      added: ['n0.node.consul. 0 IN A 10.0.0.9', 'n0.node.dc1.consul. 0 IN A 10.0.0.9', 'web.service.consul. 0 IN A 10.0.0.9', 'web.service.dc1.consul. 0 IN A 10.0.0.9',
        '_web._tcp.service.consul. 0 IN A 10.0.0.9', '_web._tcp.service.dc1.consul. 0 IN A 10.0.0.9'].sort(),
      removed: ['n0.node.consul. 0 IN A 10.0.0.1', 'n0.node.dc1.consul. 0 IN A 10.0.0.1', 'web.service.consul. 0 IN A 10.0.0.1', 'web.service.dc1.consul. 0 IN A 10.0.0.1',
        '_web._tcp.service.consul. 0 IN A 10.0.0.1', '_web._tcp.service.dc1.consul. 0 IN A 10.0.0.1'].sort(),
    },
    {
      name: 'the only instance goes critical: the service names lose their records',
      change: (m) => { m.services.get('web')![0]!.status = 'critical'; },
      added: [],
      removed: ['_web._tcp.service.consul. 0 IN A 10.0.0.1', '_web._tcp.service.consul. 0 IN SRV 1 1 80 n0.node.dc1.consul.',
        '_web._tcp.service.dc1.consul. 0 IN A 10.0.0.1', '_web._tcp.service.dc1.consul. 0 IN SRV 1 1 80 n0.node.dc1.consul.',
        'web.service.consul. 0 IN A 10.0.0.1', 'web.service.consul. 0 IN SRV 1 1 80 n0.node.dc1.consul.',
        'web.service.dc1.consul. 0 IN A 10.0.0.1', 'web.service.dc1.consul. 0 IN SRV 1 1 80 n0.node.dc1.consul.'].sort(),
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const m: Model = {
        nodes: [{ name: 'n0', address: '10.0.0.1', meta: {}, v6: '' }, { name: 'n1', address: '10.0.0.2', meta: {}, v6: '' }],
        services: new Map([['web', [{ node: 0, port: 80, tags: [], status: 'passing', address: '', vip: '', kind: '', dest: '' } as Inst]]]),
      };
      const store = new ZoneStore({ config, logger: silentLogger() });
      await store.commit(catalogOf(docOf(m)));
      c.change(m);
      const r = await store.commit(catalogOf(docOf(m)));
      expect(r.diff).not.toBeNull();
      expect({ added: r.diff!.added, removed: r.diff!.removed }).toEqual({ added: c.added, removed: c.removed });
    });
  }
  it('an unchanged catalog commits nothing and keeps the serial', async () => {
    const m = randomModel(seededRandom(3));
    const store = new ZoneStore({ config, logger: silentLogger() });
    const first = await store.commit(catalogOf(docOf(m)));
    const again = await store.commit(catalogOf(docOf(m)));
    expect(again.units).toBe(0);
    expect(again.changed).toBe(false);
    expect(again.zone.serial).toBe(first.zone.serial);
    expect(again.diff).toEqual({ added: [], removed: [] });
  });
});

describe('verdicts (the handler alone maps them to rcodes)', () => {
  const m = randomModel(seededRandom(11));
  m.services.set('web', [{ node: 0, port: 80, tags: [], status: 'passing', address: '', vip: '', kind: '', dest: '' }]);
  const rfc = buildZone(catalogOf(docOf(m)), { config, serialFor: serialOf });
  const compat = buildZone(catalogOf(docOf(m)), { config: loadConfig({ object: { dns: '127.0.0.1:0', compat: 'consul' } }), serialFor: serialOf });
  const verdict = (z: Zone, name: string, qtype: number) => z.answer(wireKey(name), qtype)?.verdict ?? 'refused';
  const table: Array<[Zone, string, number, string]> = [
    [rfc, 'web.service.consul', 1, 'answer'],
    [rfc, 'web.service.consul', 28, 'nodata'],
    [rfc, 'nosuch.service.consul', 1, 'nxdomain'],
    [rfc, 'service.consul', 1, 'nodata'],
    [compat, 'service.consul', 1, 'nxdomain'],
    [rfc, 'n0.node.consul', 15, 'nodata'],
    [compat, 'n0.node.consul', 15, 'empty'],
    [rfc, 'example.com', 1, 'refused'],
  ];
  for (const [z, name, qt, want] of table) {
    it(`${z === rfc ? 'rfc' : 'consul'}: ${name} type ${qt} -> ${want}`, () => { expect(verdict(z, name, qt)).toBe(want); });
  }
});

describe('record encoders round-trip (encode, decode, encode; predicted length)', () => {
  const rrs: RR[] = [
    { owner: 'a.consul', type: 'A', ttl: 5, data: '10.1.2.3' },
    { owner: 'a.consul', type: 'AAAA', ttl: 5, data: '2001:db8::1' },
    { owner: 'a.consul', type: 'CNAME', ttl: 0, data: 'b.example.com' },
    { owner: 'consul', type: 'NS', ttl: 30, data: 'ns.consul' },
    { owner: '1.0.0.10.in-addr.arpa', type: 'PTR', ttl: 0, data: 'n.node.dc1.consul' },
    { owner: 'consul', type: 'SOA', ttl: 0, data: { mname: 'ns.consul', rname: 'hostmaster.consul', serial: 4294967295, refresh: 3600, retry: 600, expire: 86400, minimum: 0 } },
    { owner: '_a._tcp.consul', type: 'SRV', ttl: 0, data: { priority: 1, weight: 65535, port: 65535, target: 'x.addr.dc1.consul' } },
    { owner: 'n.node.consul', type: 'TXT', ttl: 0, data: [Buffer.from('k=v'), Buffer.from('x'.repeat(255)), Buffer.alloc(0)] },
  ];
  const codec = (packet as unknown as { answer: { decode(b: Buffer): unknown; encode(a: unknown): Buffer; encodingLength(a: unknown): number } }).answer;
  for (const rr of rrs) {
    it(rr.type, () => {
      const wire = wireOf(rr);
      const decoded = codec.decode(wire);
      expect(codec.encodingLength(decoded)).toBe(wire.length);
      expect(codec.encode(decoded).equals(wire)).toBe(true);
      expect(formatRR(decoded as never)).toBe(rrText(rr));
    });
  }
});
