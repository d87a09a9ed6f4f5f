/**
 * buildZone: the one translator from the catalog (services, nodes, checks) to the zone (owners,
 * RRsets, serial). Every answer is decided and encoded here, once per catalog version.
 * The shapes follow Consul's DNS interface (agent/dns.go); see README "DNS behaviour" and docs/consul-dns.md.
 */
import { createHash, type Hash } from 'node:crypto';
import { isIP } from 'node:net';
import { cacheBudget } from '../cache-budget.js';
import type { Catalog, CatalogNode, ServiceInstance } from '../catalog/catalog.js';
import { isWireName } from '../catalog/catalog.js';
import { serviceTtlFor, type Config } from '../config.js';
import { packBlock, withFirstOwner, type PackRecord, type PackedBlock } from '../dns/pack.js';
import { QNAME_POINTER as QNAME_PTR, QTYPE, RCODE, nameToWire, rrAt, rrAtQname, rrTail, txtStrings } from '../dns/wire.js';
import { addrFromHex, canonicalIp as canonicalIpOf, ipHex, reverseName } from './ip.js';
import { enclosingApex, reverseZoneApexes } from './reverse-zones.js';
import { FixedOwner, LazyOwner, TypedOwner, Zone, type Answer, type Owner, type Unit } from './zone.js';

export interface BuildOptions {
  readonly config: Config;
  /** Returns the SOA serial for a zone whose content hash is `hash` (see ZoneStore). */
  readonly serialFor: (hash: string) => number;
  readonly warn?: (msg: string) => void;
}

type Accept = 'v4' | 'v6' | 'any';
type AddrQtype = typeof QTYPE.A | typeof QTYPE.AAAA | typeof QTYPE.ANY | typeof QTYPE.SRV;

interface InstanceRecord {
  /** De-duplication key (Consul: record text for address answers, node:addr:port for SRV). */
  readonly key: string;
  readonly unit: Unit;
  readonly cname: boolean;
  /** Host name target (CNAME or SRV target), resolved into the answer/glue when inside the zone. */
  readonly host?: string;
}

/** Records to add once every name exists: what an in-zone CNAME or SRV host target resolves to. */
interface Chase {
  readonly target: string;
  readonly ttl: number;
  /** Where the resolved records go: full RRs appended to an answer, or glue tails for an SRV target. */
  readonly into: Unit[] | Buffer[];
  readonly asGlue: boolean;
}

/** Answers for one service (or one service+tag), per qtype. */
interface ServiceEntry {
  readonly all: Owner | null;
  readonly byTag: ReadonlyMap<string, Owner>;
  /** Proper dot-suffixes of dotted tags: `primary` for tag `v1.primary` (empty non-terminals). */
  readonly tagSuffixes: ReadonlySet<string>;
}

interface DcData {
  readonly services: Map<string, ServiceEntry>;
  readonly connect: Map<string, ServiceEntry>;
  readonly nodes: Map<string, Owner>;
  readonly nodeSuffixes: Set<string>;
  /** Lower-cased tags of healthy instances in this DC (for `_tag.service` empty non-terminals). */
  readonly tags: Set<string>;
}

/** One reverse zone served, or (labels -1) Consul's catch-all for every reverse name. */
interface ReverseZone {
  readonly apex: string;
  /** Labels in the apex name; -1 for the catch-all, which has no apex. */
  readonly labels: number;
  readonly nxAnswer: MutableAnswer;
  readonly nodata: MutableAnswer;
  readonly nx: Owner;
  /** Empty non-terminals between the apex and the PTR owners (NXDOMAIN with compat consul). */
  readonly ent: Owner;
  /** SOA, NS (and PTR for a /32 zone) at the apex; set once the serial is known. */
  apexOwner: Owner | null;
}

const KINDS = new Set(['service', 'connect', 'virtual', 'ingress', 'node', 'query', 'addr']);

type MutableAnswer = Answer & { authority: Buffer[]; packed?: PackedBlock };

function mutableAnswer(rcode: number): MutableAnswer {
  return { rcode, units: [], shuffle: false, addressLimit: false, authority: [], additional: [] };
}

export function buildZone(catalog: Catalog, opts: BuildOptions): Zone {
  const cfg = opts.config;
  const warn = opts.warn ?? (() => {});
  const domain = cfg.domain;
  const rfc = cfg.compat === 'rfc';
  const hash: Hash = createHash('sha256');
  let records = 0;
  let names = 0;

  // Negative answers share one SOA, filled in once the serial is known (it depends on the content).
  const NXDOMAIN = mutableAnswer(RCODE.NXDOMAIN);
  const NODATA = mutableAnswer(RCODE.NOERROR);
  const EMPTY: Answer = mutableAnswer(RCODE.NOERROR); // Consul: NOERROR, no SOA
  const nx = new FixedOwner(NXDOMAIN);
  const ent = new FixedOwner(rfc ? NODATA : NXDOMAIN);
  const nodeNoData = rfc ? NODATA : EMPTY;

  const positive = (units: Unit[], o: { shuffle?: boolean; addressLimit?: boolean; additional?: Buffer[] } = {}): Answer => {
    if (units.length === 0) return NODATA;
    for (const u of units) {
      hash.update(u.rr);
      for (const g of u.glue) hash.update(g);
    }
    for (const a of o.additional ?? []) hash.update(a);
    records += units.length;
    return {
      rcode: RCODE.NOERROR, units, shuffle: o.shuffle ?? false, addressLimit: o.addressLimit ?? false,
      authority: [], additional: o.additional ?? [],
    };
  };
  const plain = (rr: Buffer): Unit => ({ rr, targetAt: -1, glueId: -1, glueOwner: null, glue: [] });

  // Addresses repeat across a service, its tags and its glue: canonicalise each text once per build.
  const canonical = new Map<string, string>();
  const canonicalIp = (ip: string): string => {
    let c = canonical.get(ip);
    if (c === undefined) canonical.set(ip, (c = canonicalIpOf(ip)));
    return c;
  };

  const glueIds = new Map<string, number>();
  const glueId = (target: string) => {
    let id = glueIds.get(target);
    if (id === undefined) glueIds.set(target, (id = glueIds.size));
    return id;
  };

  // Datacenter names are labels like any other: matched and written in lower case.
  const localDc = catalog.datacenter.toLowerCase();
  const isWan = (dc: string) => cfg.translateWanAddrs && dc !== localDc;
  const acceptOf = (qt: number): Accept => (qt === QTYPE.A ? 'v4' : qt === QTYPE.AAAA ? 'v6' : 'any');
  // Consul's translateAddressAccept: a tagged address of the accepted family, else the default.
  const pick = (accept: Accept, def: string, v4: string, v6: string): string => {
    if (accept !== 'v4' && v6) return v6;
    if (accept !== 'v6' && v4) return v4;
    return def;
  };
  const nodeAddr = (dc: string, n: CatalogNode, accept: Accept): string => {
    const t = n.taggedAddresses;
    if (isWan(dc)) return pick(accept, t.wan ?? n.address, t.wan_ipv4 ?? t.lan_ipv4 ?? '', t.wan_ipv6 ?? t.lan_ipv6 ?? '');
    return pick(accept, n.address, t.lan_ipv4 ?? '', t.lan_ipv6 ?? '');
  };
  const serviceAddr = (dc: string, s: ServiceInstance, accept: Accept): string => {
    const t = s.taggedAddresses;
    if (isWan(dc)) {
      return pick(accept, t.wan?.address ?? s.address, (t.wan_ipv4 ?? t.lan_ipv4)?.address ?? '', (t.wan_ipv6 ?? t.lan_ipv6)?.address ?? '');
    }
    return pick(accept, s.address, t.lan_ipv4?.address ?? '', t.lan_ipv6?.address ?? '');
  };
  const servicePort = (dc: string, s: ServiceInstance): number =>
    isWan(dc) && s.taggedAddresses.wan && s.taggedAddresses.wan.port !== 0 ? s.taggedAddresses.wan.port : s.port;

  /** Consul's makeARecord: the A or AAAA record for `ip` if the qtype takes that family. */
  const addrRecord = (qt: number, ip: string, ttl: number): { type: 'A' | 'AAAA'; tail: Buffer } | null => {
    const fam = isIP(ip);
    if (fam === 4 && qt !== QTYPE.AAAA) return { type: 'A', tail: rrTail('A', ttl, ip) };
    if (fam === 6 && qt !== QTYPE.A) return { type: 'AAAA', tail: rrTail('AAAA', ttl, canonicalIp(ip)) };
    return null;
  };

  // Node meta as TXT tails (Consul's generateMeta), sorted by key for a stable zone.
  const metaCache = new Map<CatalogNode, Map<number, Buffer[]>>();
  const metaTails = (n: CatalogNode, ttl: number): Buffer[] => {
    let byTtl = metaCache.get(n);
    if (!byTtl) metaCache.set(n, (byTtl = new Map()));
    let out = byTtl.get(ttl);
    if (!out) {
      out = Object.keys(n.meta).sort().map((k) => {
        const v = n.meta[k]!;
        const text = k.toLowerCase().startsWith('rfc1035-') ? v : encodeKVasRFC1464(k, v);
        return rrTail('TXT', ttl, txtStrings(text));
      });
      byTtl.set(ttl, out);
    }
    return out;
  };

  const chases: Chase[] = [];
  const srvUnit = (ttl: number, weight: number, port: number, target: string, glue: Buffer[]): Unit => {
    const targetWire = nameToWire(target); // validates
    const rr = rrAtQname('SRV', ttl, { priority: 1, weight, port, target });
    return { rr, targetAt: 2 + 10 + 6, glueId: glueId(target.toLowerCase()), glueOwner: targetWire, glue };
  };

  /** Consul's nodeServiceRecords for one instance and qtype. */
  const instanceRecord = (dc: string, s: ServiceInstance, qt: AddrQtype, ttl: number, selfNames: ReadonlySet<string>): InstanceRecord | null => {
    const accept = acceptOf(qt);
    const svcAddr = serviceAddr(dc, s, accept);
    const nAddr = nodeAddr(dc, s.node, accept);
    if (!svcAddr && !nAddr) return null;
    const fromIP = (ip: string): InstanceRecord | null => {
      const rec = addrRecord(qt, ip, ttl);
      if (!rec) return null;
      if (qt === QTYPE.SRV) {
        const target = `${ipHex(ip)}.addr.${dc}.${domain}`;
        return { key: `${s.node.name}:${svcAddr}:${servicePort(dc, s)}`, cname: false, unit: srvUnit(ttl, weightOf(s), servicePort(dc, s), target, [rec.tail]) };
      }
      return { key: `${rec.type}:${canonicalIp(ip)}`, cname: false, unit: plain(Buffer.concat([QNAME_PTR, rec.tail])) };
    };
    const fromServiceNode = (ip: string): InstanceRecord | null => {
      const rec = addrRecord(qt, ip, ttl);
      if (!rec) return null;
      if (qt === QTYPE.SRV) {
        const target = `${s.node.name}.node.${dc}.${domain}`;
        if (!isWireName(target)) return null;
        const glue = [rec.tail, ...(cfg.enableAdditionalNodeMetaTxt ? metaTails(s.node, ttl) : [])];
        return { key: `${s.node.name}:${svcAddr}:${servicePort(dc, s)}`, cname: false, unit: srvUnit(ttl, weightOf(s), servicePort(dc, s), target, glue) };
      }
      return { key: `${rec.type}:${canonicalIp(ip)}`, cname: false, unit: plain(Buffer.concat([QNAME_PTR, rec.tail])) };
    };
    const fromFQDN = (host: string): InstanceRecord => {
      const target = host.replace(/\.$/, '');
      if (qt === QTYPE.SRV) {
        const glue: Buffer[] = [];
        chases.push({ target, ttl, into: glue, asGlue: true });
        return { key: `${s.node.name}:${svcAddr}:${servicePort(dc, s)}`, cname: false, unit: srvUnit(ttl, weightOf(s), servicePort(dc, s), target, glue) };
      }
      return { key: `CNAME:${target.toLowerCase()}`, cname: true, host: target, unit: plain(rrAtQname('CNAME', ttl, target)) };
    };
    if (!svcAddr && isIP(nAddr)) return s.node.address !== nAddr ? fromIP(nAddr) : fromServiceNode(nAddr);
    if (!svcAddr) return fromFQDN(nAddr);
    if (isIP(svcAddr)) return fromIP(svcAddr);
    if (selfNames.has(svcAddr.toLowerCase().replace(/\.$/, '')) && isIP(nAddr)) return fromServiceNode(nAddr);
    return fromFQDN(svcAddr);
  };

  /** Consul's serviceNodeRecords / serviceSRVRecords over a set of healthy instances. */
  type RecordMemo = Map<ServiceInstance, Array<InstanceRecord | null | undefined>>;
  const serviceOwner = (dc: string, svc: string, list: readonly ServiceInstance[], ttl: number, memo: RecordMemo): Owner | null => {
    if (list.length === 0) return null;
    const selfNames = new Set([`${svc}.service.${domain}`, `${svc}.service.${dc}.${domain}`].map((n) => n.toLowerCase()));
    const build = (qt: AddrQtype): Answer => {
      const seen = new Set<string>();
      const units: Unit[] = [];
      let firstCname: InstanceRecord | null = null;
      for (const s of list) {
        // The same instance appears under the service and each of its tags: encode it once.
        let m = memo.get(s);
        if (!m) memo.set(s, (m = []));
        let r = m[qt];
        if (r === undefined) m[qt] = r = instanceRecord(dc, s, qt, ttl, selfNames);
        if (!r || seen.has(r.key)) continue;
        seen.add(r.key);
        if (r.cname) firstCname ??= r;
        else units.push(r.unit);
      }
      if (units.length === 0 && firstCname) {
        // Consul keeps the first CNAME only when no address record was produced.
        const chain: Unit[] = [firstCname.unit];
        chases.push({ target: firstCname.host!, ttl, into: chain, asGlue: false });
        return positive(chain);
      }
      return positive(units, { shuffle: true, addressLimit: qt !== QTYPE.SRV });
    };
    const byType = new Map<number, Answer>([
      [QTYPE.A, build(QTYPE.A)], [QTYPE.AAAA, build(QTYPE.AAAA)], [QTYPE.SRV, build(QTYPE.SRV)],
    ]);
    const any = build(QTYPE.ANY);
    byType.set(QTYPE.ANY, any);
    if (!rfc) byType.set(QTYPE.TXT, any); // Consul's makeARecord accepts TXT: a quirk kept only in compat mode
    names++;
    return new TypedOwner(byType, NODATA);
  };

  const healthy = (s: ServiceInstance): boolean =>
    s.checks.every((c) => c.status !== 'critical' && (!cfg.onlyPassing || c.status === 'passing'));

  const serviceEntry = (dc: string, svc: string, list: readonly ServiceInstance[]): ServiceEntry => {
    const ttl = serviceTtlFor(cfg.serviceTtl, svc);
    const live = list.filter(healthy);
    const byTag = new Map<string, Owner>();
    const tagSuffixes = new Set<string>();
    const memo: RecordMemo = new Map();
    const tags = new Set(live.flatMap((s) => s.tags.map((t) => t.toLowerCase())));
    for (const tag of [...tags].sort()) {
      const owner = serviceOwner(dc, svc, live.filter((s) => s.tags.some((t) => t.toLowerCase() === tag)), ttl, memo);
      if (owner) byTag.set(tag, owner);
      const parts = tag.split('.');
      for (let i = 1; i < parts.length; i++) tagSuffixes.add(parts.slice(i).join('.'));
    }
    hash.update(`svc:${dc}:${svc}:${[...byTag.keys()].join(',')}\n`);
    return { all: serviceOwner(dc, svc, live, ttl, memo), byTag, tagSuffixes };
  };

  // --- datacenters: services, connect, nodes ---
  const dcs = new Map<string, DcData>();
  for (const [dcRaw, dcat] of [...catalog.datacenters].sort(([a], [b]) => a.localeCompare(b))) {
    const dc = dcRaw.toLowerCase();
    if (dcs.has(dc)) { warn(`datacenter ${dcRaw} differs from another only by case; first kept`); continue; }
    const data: DcData = { services: new Map(), connect: new Map(), nodes: new Map(), nodeSuffixes: new Set(), tags: new Set() };
    const connectLists = new Map<string, ServiceInstance[]>();
    for (const [svc, list] of [...dcat.services].sort(([a], [b]) => a.localeCompare(b))) {
      const key = svc.toLowerCase();
      const entry = serviceEntry(dc, svc, list);
      if (data.services.has(key)) warn(`service ${svc} in ${dc} differs from another only by case; first kept`);
      else data.services.set(key, entry);
      if (entry.all) for (const t of entry.byTag.keys()) data.tags.add(t);
      for (const s of list) {
        const dest = s.kind === 'connect-proxy' ? s.proxyDestination : s.connectNative ? s.service : '';
        if (!dest) continue;
        const k = dest.toLowerCase();
        if (!connectLists.has(k)) connectLists.set(k, []);
        connectLists.get(k)!.push(s);
      }
    }
    for (const [dest, list] of connectLists) data.connect.set(dest, serviceEntry(dc, dest, list));
    for (const node of [...dcat.nodes.values()].sort((a, b) => a.name.localeCompare(b.name))) {
      const key = node.name.toLowerCase();
      if (!isWireName(`${node.name}.node.${dc}.${domain}`)) {
        warn(`node ${node.name} in ${dc}: name too long for ${domain}; not served`);
        continue;
      }
      if (data.nodes.has(key)) continue;
      data.nodes.set(key, nodeOwner(dc, node));
      const parts = key.split('.');
      for (let i = 1; i < parts.length; i++) data.nodeSuffixes.add(parts.slice(i).join('.'));
    }
    dcs.set(dc, data);
  }

  function nodeOwner(dc: string, n: CatalogNode): Owner {
    const ttl = cfg.nodeTtl;
    // Consul's makeRecordFromNode: an address of the accepted family, or a CNAME to a host name.
    const rec = (qt: number): Buffer | null => {
      const addr = nodeAddr(dc, n, acceptOf(qt));
      if (!isIP(addr)) return rrAtQname('CNAME', ttl, n.address.replace(/\.$/, ''));
      const r = addrRecord(qt, addr, ttl);
      return r ? Buffer.concat([QNAME_PTR, r.tail]) : null;
    };
    const chased = (units: Unit[]): Unit[] => {
      if (!isIP(n.address) && units.length > 0) chases.push({ target: n.address.replace(/\.$/, ''), ttl, into: units, asGlue: false });
      return units;
    };
    const meta = metaTails(n, ttl).map((t) => Buffer.concat([QNAME_PTR, t]));
    const byType = new Map<number, Answer>();
    for (const qt of [QTYPE.A, QTYPE.AAAA]) {
      const r = rec(qt);
      byType.set(qt, r ? positive(chased([plain(r)]), { additional: cfg.enableAdditionalNodeMetaTxt ? meta : [] }) : nodeNoData);
    }
    const anyRec = rec(QTYPE.ANY);
    const anyUnits = [...(anyRec ? chased([plain(anyRec)]) : []), ...meta.map(plain)];
    byType.set(QTYPE.ANY, anyUnits.length ? positive(anyUnits) : nodeNoData);
    byType.set(QTYPE.TXT, meta.length ? positive(meta.map(plain)) : nodeNoData);
    hash.update(`node:${dc}:${n.name}\n`);
    names++;
    return new TypedOwner(byType, nodeNoData);
  }

  const local = dcs.get(localDc)!;
  const localCat = catalog.datacenters.get(catalog.datacenter)!;

  // --- virtual IPs (local DC; Consul does not answer them across DCs) ---
  const virtual = new Map<string, Owner>();
  for (const [svc, list] of localCat.services) {
    const vip = list.map((s) => s.taggedAddresses['consul-virtual']?.address ?? '').find((a) => isIP(a) === 4);
    if (!vip) continue;
    virtual.set(svc.toLowerCase(), new TypedOwner(
      new Map([[QTYPE.A, positive([plain(rrAtQname('A', cfg.nodeTtl, vip))])], [QTYPE.ANY, positive([plain(rrAtQname('A', cfg.nodeTtl, vip))])]]),
      nodeNoData,
    ));
  }

  // --- reverse names (local DC): nodes first, then service addresses ---
  const ptrTargets = new Map<string, string>(); // reverse name -> PTR target; the first wins
  const addPtrTarget = (ip: string, target: string) => {
    const rname = reverseName(ip);
    if (!ptrTargets.has(rname)) ptrTargets.set(rname, target);
  };
  for (const n of localCat.nodes.values()) {
    if (isIP(n.address) && local.nodes.has(n.name.toLowerCase())) addPtrTarget(n.address, `${n.name}.node.${localDc}.${domain}`);
  }
  for (const [svc, list] of localCat.services) {
    for (const s of list) if (isIP(s.address)) addPtrTarget(s.address, `${svc}.service.${localDc}.${domain}`);
  }

  // The reverse zones served, each with its own negative answers (their SOA is the zone's, filled
  // in with the serial below). Without any (compat consul, reverse_zones unset), Consul's way: every
  // reverse name is answered, negative answers carry the domain's SOA.
  const reverseApexes = rfc || cfg.reverseZones !== null
    ? reverseZoneApexes(cfg.reverseZones, ptrTargets.keys())
    : null;
  const reverseZones = new Map<string, ReverseZone>();
  for (const apex of reverseApexes ?? []) {
    const nxA = mutableAnswer(RCODE.NXDOMAIN);
    const nodata = mutableAnswer(RCODE.NOERROR);
    reverseZones.set(apex, {
      apex, labels: apex.split('.').length, nxAnswer: nxA, nodata,
      nx: new FixedOwner(nxA), ent: new FixedOwner(rfc ? nodata : nxA), apexOwner: null,
    });
  }
  const everyReverseName: ReverseZone = { apex: '', labels: -1, nxAnswer: NXDOMAIN, nodata: NODATA, nx, ent, apexOwner: null };
  const reverseZoneOf = (labels: readonly string[]): ReverseZone | null =>
    reverseApexes === null ? everyReverseName : enclosingApex(labels, reverseZones);

  const ptr = new Map<string, Owner>();
  const reverseEnts = new Set<string>();
  for (const [rname, target] of ptrTargets) {
    const parts = rname.split('.');
    const z = reverseZoneOf(parts);
    if (!z) continue; // in no zone served: never asked of this server (REFUSED)
    const a = positive([plain(rrAtQname('PTR', cfg.ptrTtl, target))]);
    ptr.set(rname, rfc ? new TypedOwner(new Map([[QTYPE.PTR, a], [QTYPE.ANY, a]]), z.nodata) : new FixedOwner(a));
    for (let i = 1; i < parts.length - 1; i++) reverseEnts.add(parts.slice(i).join('.'));
  }

  // --- apex NS: up to 3 healthy consul servers of the local DC (Consul's getNameserversAndNodeRecord) ---
  const apexWire = nameToWire(domain);
  // NS and glue are decided once as records; the compressed blocks and the uncompressed RRs (used
  // when a block does not fit and records must be dropped one by one) are both encoded from them.
  const nsPack: PackRecord[] = [];
  const gluePack: PackRecord[] = [];
  const servers = (localCat.services.get('consul') ?? []).filter(healthy)
    .map((s) => s.node).filter((n, i, a) => a.indexOf(n) === i)
    .filter((n) => isWireName(`${n.name}.node.${localDc}.${domain}`))
    .sort((a, b) => a.name.localeCompare(b.name)).slice(0, 3);
  for (const n of servers) {
    const target = `${n.name}.node.${localDc}.${domain}`;
    nsPack.push({ owner: domain, type: 'NS', ttl: cfg.nodeTtl, data: target });
    const addr = nodeAddr(localDc, n, 'any');
    const fam = isIP(addr);
    if (fam) gluePack.push({ owner: target, type: fam === 4 ? 'A' : 'AAAA', ttl: cfg.nodeTtl, data: canonicalIp(addr) });
  }
  // No healthy consul servers in the catalog: the SOA MNAME `ns.<domain>` is the name server, with
  // this server's own listen address (when it is a specific one) so the delegation is usable.
  let fallbackNs: Owner | null = null;
  if (nsPack.length === 0) {
    const target = `ns.${domain}`;
    nsPack.push({ owner: domain, type: 'NS', ttl: cfg.nodeTtl, data: target });
    const own = cfg.dnsHost === '0.0.0.0' || cfg.dnsHost === '::' ? null : addrRecord(QTYPE.ANY, cfg.dnsHost, cfg.nodeTtl);
    if (own) {
      gluePack.push({ owner: target, type: own.type, ttl: cfg.nodeTtl, data: canonicalIp(cfg.dnsHost) });
      const a = positive([plain(Buffer.concat([QNAME_PTR, own.tail]))]);
      fallbackNs = new TypedOwner(new Map([[own.type === 'A' ? QTYPE.A : QTYPE.AAAA, a], [QTYPE.ANY, a]]), NODATA);
    } else {
      fallbackNs = ent;
    }
  }
  const rrOf = (r: PackRecord): Buffer => rrAt(nameToWire(r.owner), r.type, r.ttl, r.data);
  const nsRRs = nsPack.map(rrOf);
  const nsGlue = gluePack.map(rrOf);
  for (const b of [...nsRRs, ...nsGlue]) hash.update(b);
  hash.update(JSON.stringify([domain, cfg.soa, cfg.negativeTtl, cfg.compat, reverseApexes]));

  // --- the serial depends on the content; now the SOA can be encoded ---
  const contentHash = hash.digest('hex');
  const serial = opts.serialFor(contentHash);
  const soaData = {
    mname: `ns.${domain}`, rname: `hostmaster.${domain}`, serial,
    refresh: cfg.soa.refresh, retry: cfg.soa.retry, expire: cfg.soa.expire, minimum: cfg.soa.minTtl,
  };
  const soaRR = rrAt(apexWire, 'SOA', cfg.soa.minTtl, soaData);
  // RFC 2308 §5: the SOA in a negative answer carries min(SOA TTL, SOA MINIMUM) -- both are
  // soa.min_ttl here -- unless negative_ttl is configured.
  const negTtl = cfg.negativeTtl ?? cfg.soa.minTtl;
  const negSoa = rrAt(apexWire, 'SOA', negTtl, soaData);
  const soaPack: PackRecord = { owner: domain, type: 'SOA', ttl: cfg.soa.minTtl, data: soaData };
  const negPacked = packBlock([], [{ ...soaPack, ttl: negTtl }], []);
  NXDOMAIN.authority.push(negSoa);
  NODATA.authority.push(negSoa);
  NXDOMAIN.packed = negPacked;
  NODATA.packed = negPacked;
  const soa: Answer = {
    rcode: RCODE.NOERROR, units: [plain(soaRR)], shuffle: false, addressLimit: false, authority: nsRRs, additional: nsGlue,
    packed: packBlock([soaPack], nsPack, gluePack),
  };
  const ns: Answer = {
    rcode: RCODE.NOERROR, units: nsRRs.map(plain), shuffle: false, addressLimit: false, authority: [], additional: nsGlue,
    packed: packBlock(nsPack, [], gluePack),
  };

  // --- each reverse zone: its own SOA at its apex (MNAME, RNAME, timers and serial as the domain's),
  // in its negative answers; the apex answers SOA and NS (the domain's name servers, with glue) ---
  // Owner-less tails are encoded once; each zone only prefixes its apex. A catalog spread over many
  // subnets has many zones and few queries for their apexes: the apex answers are prepared when
  // first asked for (once per zone version), the negative answers here.
  const soaTail = rrTail('SOA', cfg.soa.minTtl, soaData);
  const negSoaTail = rrTail('SOA', negTtl, soaData);
  const nsTails = nsPack.map((r) => rrTail(r.type, r.ttl, r.data));
  const negTemplate = packBlock([], [{ ...soaPack, owner: '.', ttl: negTtl }], []);
  for (const z of reverseZones.values()) {
    const owner = nameToWire(z.apex);
    const zNegSoa = Buffer.concat([owner, negSoaTail]);
    const zNegPacked = withFirstOwner(negTemplate, owner);
    for (const a of [z.nxAnswer, z.nodata]) {
      a.authority.push(zNegSoa);
      a.packed = zNegPacked;
    }
    z.apexOwner = new LazyOwner(() => {
      const zSoa: PackRecord = { ...soaPack, owner: z.apex };
      const zNs = nsPack.map((r): PackRecord => ({ ...r, owner: z.apex }));
      const zNsRRs = nsTails.map((t) => Buffer.concat([owner, t]));
      const zSoaAnswer: Answer = {
        rcode: RCODE.NOERROR, units: [plain(Buffer.concat([owner, soaTail]))], shuffle: false, addressLimit: false,
        authority: zNsRRs, additional: nsGlue, packed: packBlock([zSoa], zNs, gluePack),
      };
      const zNsAnswer: Answer = {
        rcode: RCODE.NOERROR, units: zNsRRs.map(plain), shuffle: false, addressLimit: false, authority: [], additional: nsGlue,
        packed: packBlock(zNs, [], gluePack),
      };
      // ANY: the SOA with its NS (RFC 8482 subset), as at the domain's apex. A /32 zone's apex may own a PTR too.
      const byType = new Map<number, Answer>([[QTYPE.SOA, zSoaAnswer], [QTYPE.NS, zNsAnswer], [QTYPE.ANY, zSoaAnswer]]);
      const apexPtr = ptr.get(z.apex);
      if (apexPtr) byType.set(QTYPE.PTR, apexPtr.answer(QTYPE.PTR));
      return new TypedOwner(byType, z.nodata);
    });
  }

  // --- name resolution (Consul's dispatch), memoised per name by the Zone ---
  const apexOwner = rfc ? ent : nx;

  /** Consul CE parseLocality: [], [dc], [x, dc|peer] pairs (2 or 4 labels). Returns the DC or null. */
  const parseLocality = (suffix: readonly string[]): string | null => {
    if (suffix.length === 0) return localDc;
    if (suffix.length === 1) return suffix[0]!;
    if (suffix.length !== 2 && suffix.length !== 4) return null;
    let dc = '', peer = '';
    for (let i = 0; i < suffix.length; i += 2) {
      if (suffix[i + 1] === 'dc') dc = suffix[i]!;
      else if (suffix[i + 1] === 'peer') peer = suffix[i]!;
      else return null;
    }
    if (peer) return null; // no cluster peers in the catalog
    return dc;
  };

  const serviceLookup = (parts: readonly string[], suffix: readonly string[], which: 'services' | 'connect'): Owner => {
    const dcName = parseLocality(suffix);
    const data = dcName === null ? undefined : dcs.get(dcName);
    if (!data) return nx;
    const n = parts.length;
    let svc: string, tag: string;
    if (n === 2 && parts[0]!.startsWith('_') && parts[1]!.startsWith('_')) {
      svc = parts[0]!.slice(1);
      tag = parts[1] === '_tcp' ? '' : parts[1]!.slice(1);
    } else {
      svc = parts[n - 1]!;
      tag = which === 'services' ? parts.slice(0, n - 1).join('.') : '';
    }
    const entry = data[which].get(svc);
    if (!entry) {
      // `_tcp.service.consul` and `_<tag>.service.consul` are empty non-terminals of RFC 2782 names.
      if (rfc && n === 1 && svc.startsWith('_')) {
        const t = svc.slice(1);
        if (t === 'tcp' ? [...data.services.values()].some((e) => e.all) : data.tags.has(t)) return ent;
      }
      return nx;
    }
    const owner = tag ? entry.byTag.get(tag) : entry.all;
    if (owner) return owner;
    return tag && entry.all && entry.tagSuffixes.has(tag) ? ent : nx;
  };

  const addrOwner = (hex: string): Owner => {
    const a = addrFromHex(hex);
    if (!a) return nx;
    // Made per name at lookup time (perName: the name memo does not keep it), so nothing here may
    // grow a build-time map: canonicalIpOf, not the memoised canonicalIp.
    const ip = a.family === 4 ? [...a.bytes].join('.') : canonicalIpOf(a.bytes.toString('hex').replace(/(.{4})(?!$)/g, '$1:'));
    const type = a.family === 4 ? 'A' : 'AAAA';
    const rr = rrAtQname(type, cfg.nodeTtl, ip);
    const hit: Answer = { rcode: RCODE.NOERROR, units: [plain(rr)], shuffle: false, addressLimit: false, authority: [], additional: [] };
    // Other qtypes: NOERROR, the record in ADDITIONAL (Consul PR #10401); with the SOA in rfc mode.
    const other: Answer = { rcode: RCODE.NOERROR, units: [], shuffle: false, addressLimit: false, authority: rfc ? NODATA.authority : [], additional: [rr] };
    return new TypedOwner(new Map([[a.family === 4 ? QTYPE.A : QTYPE.AAAA, hit], [QTYPE.ANY, hit]]), other, true);
  };

  /** Empty non-terminals made of locality labels only: `dc1`, `dc`, `dc1.dc`. */
  const localityEnt = (labels: readonly string[]): boolean => {
    if (labels.length === 1) return dcs.has(labels[0]!) || labels[0] === 'dc';
    return labels.length === 2 && labels[1] === 'dc' && dcs.has(labels[0]!);
  };

  // A label holding a "." byte (`a\.b` in presentation form) is one label: no name we build has one,
  // and joining labels with "." below must not make `a\.b` match the two labels `a.b`.
  const hasDotLabel = (labels: readonly string[]) => labels.some((l) => l.includes('.'));

  // One SrvOnlyOwner per service owner, made on first use and shared by every name that reaches it,
  // so the name memo only refers to owners the zone holds (bounded by the zone's size).
  const srvOnlyOwners = new Map<Owner, SrvOnlyOwner>();
  const srvOnly = (owner: Owner): SrvOnlyOwner => {
    let o = srvOnlyOwners.get(owner);
    if (!o) srvOnlyOwners.set(owner, (o = new SrvOnlyOwner(owner, rfc ? NODATA : NXDOMAIN)));
    return o;
  };

  const resolveZone = (labels: readonly string[]): Owner => {
    if (labels.length === 0) return apexOwner;
    if (hasDotLabel(labels)) return nx;
    let k = -1;
    for (let i = labels.length - 1; i >= 0; i--) {
      if (KINDS.has(labels[i]!)) { k = i; break; }
    }
    if (k < 0) {
      if (fallbackNs && labels.length === 1 && labels[0] === 'ns') return fallbackNs;
      // RFC 2782 names without the `service` label: `_db._primary.consul` (Consul: SRV queries only).
      for (let i = labels.length - 1; i >= 0; i--) {
        if (labels[i]!.startsWith('_')) {
          const owner = serviceLookup(labels.slice(0, i + 1), labels.slice(i + 1), 'services');
          return owner === nx ? nx : srvOnly(owner);
        }
      }
      return rfc && localityEnt(labels) ? ent : nx;
    }
    const parts = labels.slice(0, k);
    const suffix = labels.slice(k + 1);
    const kind = labels[k]!;
    if (parts.length === 0) {
      if (!rfc) return nx;
      const dcName = kind === 'virtual' ? localDc : parseLocality(suffix);
      const data = dcName === null ? undefined : dcs.get(dcName);
      if (!data) return nx;
      const has = kind === 'service' ? [...data.services.values()].some((e) => e.all)
        : kind === 'connect' ? [...data.connect.values()].some((e) => e.all)
        : kind === 'node' ? data.nodes.size > 0
        : kind === 'addr' ? true
        : kind === 'virtual' ? virtual.size > 0 && suffix.length === 0
        : false;
      return has ? ent : nx;
    }
    switch (kind) {
      case 'service':
        return serviceLookup(parts, suffix, 'services');
      case 'connect':
        return serviceLookup(parts.slice(-1), suffix, 'connect');
      case 'node': {
        const dcName = parseLocality(suffix);
        const data = dcName === null ? undefined : dcs.get(dcName);
        if (!data) return nx;
        const node = parts.join('.');
        return data.nodes.get(node) ?? (rfc && data.nodeSuffixes.has(node) ? ent : nx);
      }
      case 'addr':
        return parts.length === 1 ? addrOwner(parts[0]!) : nx;
      case 'virtual':
        return suffix.length === 0 ? virtual.get(parts[parts.length - 1]!) ?? nx : nx;
      default: // query, ingress: no prepared queries or gateways in the catalog
        return nx;
    }
  };

  /** A reverse name's owner, or null when it is in no reverse zone served (REFUSED). */
  const resolveReverse = (labels: readonly string[]): Owner | null => {
    const z = reverseZoneOf(labels);
    if (!z) return null;
    if (labels.length === z.labels) return z.apexOwner;
    if (hasDotLabel(labels)) return z.nx;
    const name = labels.join('.');
    return ptr.get(name) ?? (reverseEnts.has(name) ? z.ent : z.nx);
  };

  // --- CNAME and SRV host targets inside the zone: add what they resolve to (Consul's resolveCNAME:
  // an internal ANY lookup, at most 3 levels deep; loops end there too) ---
  const suffix = `.${domain}`;
  /** What `target` resolves to, as (owner, TYPE..RDATA) pairs; the direct records come first. */
  const resolveTarget = (target: string, ttl: number, depth: number): Array<{ owner: Buffer; tail: Buffer }> => {
    const t = target.toLowerCase();
    if (depth < 1 || !t.endsWith(suffix)) return [];
    const owner = nameToWire(target);
    const out: Array<{ owner: Buffer; tail: Buffer }> = [];
    for (const u of resolveZone(t.slice(0, -suffix.length).split('.')).answer(QTYPE.ANY).units) {
      if (u.rr[0] !== 0xc0 || u.rr[1] !== 0x0c) continue; // records of chained names, added below
      const type = u.rr.readUInt16BE(2);
      if (type !== QTYPE.A && type !== QTYPE.AAAA && type !== QTYPE.CNAME) continue;
      const tail = Buffer.from(u.rr.subarray(2));
      tail.writeUInt32BE(ttl, 4); // Consul sets the TTL of resolved records
      out.push({ owner, tail });
      const next = type === QTYPE.CNAME ? cnameTarget(u.rr) : null;
      if (next) out.push(...resolveTarget(next, ttl, depth - 1));
    }
    return out;
  };
  for (const c of chases) {
    const rrs = resolveTarget(c.target, c.ttl, 3);
    if (c.asGlue) {
      // Glue owners are the SRV target itself: only its direct records can be glue.
      const direct = rrs[0]?.owner;
      for (const r of rrs) if (r.owner === direct) (c.into as Buffer[]).push(r.tail);
    } else {
      for (const r of rrs) (c.into as Unit[]).push(plain(Buffer.concat([r.owner, r.tail])));
    }
  }

  return new Zone({
    serial, domain, contentHash, soa, ns,
    resolve: (labels, where) => (where === 'zone' ? resolveZone(labels) : resolveReverse(labels)),
    stats: { names: names + ptr.size + reverseZones.size, records },
    reverseZones: reverseApexes,
    apexAnyIsSoa: rfc, // Consul: the apex is not a lookup kind, so NXDOMAIN
  }, cacheBudget(cfg.responseCacheBytes).names);
}

/** A name that exists only for SRV queries (RFC 2782 names without the `service` label). */
class SrvOnlyOwner implements Owner {
  constructor(private readonly inner: Owner, private readonly other: Answer) {}
  answer(qtype: number): Answer {
    return qtype === QTYPE.SRV ? this.inner.answer(qtype) : this.other;
  }
}

/** The target of a CNAME RR whose owner is the 0xC00C pointer and whose RDATA name is uncompressed. */
function cnameTarget(rr: Buffer): string | null {
  if (rr.readUInt16BE(2) !== QTYPE.CNAME) return null;
  const labels: string[] = [];
  let o = 12;
  while (o < rr.length && rr[o] !== 0) {
    const len = rr[o]!;
    labels.push(rr.toString('utf8', o + 1, o + 1 + len));
    o += len + 1;
  }
  return labels.join('.');
}

/** Consul's findWeight: Weights.Passing/Warning by the aggregated status of the instance's checks. */
export function weightOf(s: ServiceInstance): number {
  let maint = false, critical = false, warning = false;
  for (const c of s.checks) {
    if (c.serviceName !== s.service && c.serviceName !== '') continue;
    if (c.checkId === '_node_maintenance' || c.checkId.startsWith('_service_maintenance:')) { maint = true; continue; }
    if (c.status === 'passing') continue;
    if (c.status === 'warning') warning = true;
    else if (c.status === 'critical') critical = true;
    else return 1; // unknown status
  }
  if (maint || critical) return 0;
  return warning ? s.weights.warning : s.weights.passing;
}

/** RFC 1464 key=value, with Consul's back-quote escaping of the key. */
export function encodeKVasRFC1464(key: string, value: string): string {
  let k = key.replace(/`/g, '``').replace(/=/g, '`=');
  k = k.replace(/^ +/, (m) => '` '.repeat(m.length)).replace(/ +$/, (m) => '` '.repeat(m.length));
  return `${k}=${value.replace(/`/g, '``')}`;
}
