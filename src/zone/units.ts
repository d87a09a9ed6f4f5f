/**
 * The one translator from the catalog (Consul's services, nodes, checks) to zone records, one unit
 * at a time: a service (its service, tag and RFC 2782 names), a connect destination (its `.connect`
 * and `.virtual` names), or a node. A unit depends only on its own catalog entry (and the nodes its
 * instances run on; for a connect destination, the instances serving it), so it can be rebuilt alone
 * when that entry changes. The shapes follow Consul's DNS interface; see docs/consul-dns.md and
 * README "DNS behaviour".
 *
 * Service names are matched lower-cased everywhere (unit keys, connect destinations, gateway links,
 * PTR claims), as Consul's state store indexes them (catalog_schema.go); the catalog's key spelling
 * is what names the server writes itself carry (PTR targets).
 */
import type { CatalogNode, ServiceAddress, ServiceInstance } from '../catalog/catalog.js';
import { isWireName, servableServiceName } from '../catalog/catalog.js';
import { serviceTtlFor, type Config } from '../config.js';
import { QTYPE, txtStrings } from '../dns/wire.js';
import { canonicalIp, ipFamily, ipHex } from './ip.js';
import { AT, ContentHasher, type RR } from './records.js';

/** What one name answers for one qtype, as records. */
export interface RecordAnswer {
  /** Answer section (owner `@` = the name asked, or an absolute owner for chained records). */
  readonly records: readonly RR[];
  /** Per answer record, the additional records it brings (SRV glue, owned by the target), or null. */
  readonly glue: ReadonlyArray<readonly RR[]> | null;
  /** Additional records that go with the answer as a whole (node meta TXT for node A/AAAA). */
  readonly additional: readonly RR[];
  /** Shuffled per response (service answers). */
  readonly shuffle: boolean;
  /** a_record_limit applies (service A/AAAA/ANY answers). */
  readonly addressLimit: boolean;
  /**
   * In-zone host names to resolve when the answer is prepared (Consul's resolveCNAME, 3 levels):
   * 'answer' appends what a CNAME target resolves to, 'glue' adds the A/AAAA of SRV host targets.
   */
  readonly chase: 'answer' | 'glue' | null;
}

/** One owner: its answers by qtype. A qtype without an entry gets `otherwise`. */
export interface OwnerRecords {
  readonly byType: ReadonlyMap<number, RecordAnswer>;
  /**
   * 'nodata': NOERROR with the SOA; 'empty': NOERROR without it (Consul's node lookups); 'any': the
   * ANY answer whatever the qtype (Consul's PTR); 'additional': NOERROR with the ANY answer's records
   * in ADDITIONAL (Consul's `.addr` names).
   */
  readonly otherwise: 'nodata' | 'empty' | 'any' | 'additional';
}

interface UnitBase {
  /** `service|connect|node` + `/dc/name`, lower case: the unit's identity. */
  readonly key: string;
  readonly dc: string;
  /** Lower case. */
  readonly name: string;
  /** The name as the catalog spells it (PTR targets keep it). */
  readonly display: string;
  /** Hash of the unit's records (see unitHash). */
  readonly hash: Uint32Array;
  /** How many records (lines) the unit holds. */
  readonly size: number;
  /** Cleared when a commit replaces or removes the unit: prepared answers of a dead unit are stale. */
  live: boolean;
  /** Its slot in the zone's Liveness (set when first indexed). */
  slot?: number;
}

export interface ServiceUnit extends UnitBase {
  readonly kind: 'service' | 'connect';
  /** The catalog entry it was built from (a commit compares it with the new one). */
  readonly input: readonly ServiceInstance[];
  /** Every healthy instance; null when none is left (the name is then NXDOMAIN). */
  readonly all: OwnerRecords | null;
  readonly byTag: ReadonlyMap<string, OwnerRecords>;
  /** Proper dot-suffixes of dotted tags: `primary` for tag `v1.primary` (empty non-terminals). */
  readonly tagSuffixes: ReadonlySet<string>;
  /**
   * `<svc>.virtual.<domain>`: connect units of the local datacenter only, from the virtual IP Consul
   * put on the instances serving the destination (see virtualIp).
   */
  readonly virtual: OwnerRecords | null;
  /** Addresses whose PTR this service claims (local datacenter, service addresses). */
  readonly ptrClaims: readonly string[];
  /**
   * Services (lower case) whose `.connect` names this service's instances serve: proxies'
   * destinations, Connect-native instances' own name, a terminating gateway's linked services.
   */
  readonly connectTo: readonly string[];
  /**
   * A service unit's gateway links (DatacenterCatalog.gatewayServices of its name, lower case,
   * sorted; empty for other services): with `input`, what the unit was built from.
   */
  readonly links: readonly string[];
  /** SRV targets in the addr form: `<hex>.addr.<dc>.<domain>` owners with their address record. */
  readonly addrTargets: readonly RR[];
}

export interface NodeUnit extends UnitBase {
  readonly kind: 'node';
  /** The catalog entry it was built from. */
  readonly input: CatalogNode;
  readonly owner: OwnerRecords;
  /** Proper dot-suffixes of a dotted node name (empty non-terminals). */
  readonly suffixes: readonly string[];
  /** The node address, when it is an IP (its PTR; local datacenter). */
  readonly ptrClaim: string | null;
}

export type Unit = ServiceUnit | NodeUnit;

const NO_RECORDS: readonly RR[] = Object.freeze([]);
const NO_NAMES: Set<string> = new Set();
const NO_LINKS: readonly string[] = Object.freeze([]);

/** Tagged address of the virtual IP Consul assigns (structs.TaggedAddressVirtualIP). */
const VIRTUAL_IP_TAG = 'consul-virtual';

/**
 * The service whose `.connect` names an instance serves through being a proxy or Connect-native
 * (Consul's IndexConnectService: a proxy's destination, a native instance's own name), or ''.
 */
export function connectDestination(s: ServiceInstance): string {
  return s.kind === 'connect-proxy' ? s.proxyDestination : s.connectNative ? s.service : '';
}

/**
 * The virtual IP of destination `name` (lower case) from the instances serving it, the first valid
 * IPv4 address in canonical order. Consul's ensureServiceTxn assigns one per service name
 * (assignServiceVirtualIP) when a connect-proxy registers for it (stored on the proxy as
 * `TaggedAddresses["consul-virtual"]`) or a Connect-native instance of it does (on that instance);
 * updateTerminatingGatewayVirtualIPs assigns the linked services of a terminating gateway theirs,
 * stored on the gateway's instances as `consul-virtual:<service>` (structs.ServiceGatewayVirtualIPTag,
 * CE form). A proxy's own name, or a plain service, has none.
 */
function virtualIp(name: string, list: readonly ServiceInstance[]): string | null {
  for (const s of list) {
    let a: ServiceAddress | undefined;
    if (connectDestination(s).toLowerCase() === name) a = s.taggedAddresses[VIRTUAL_IP_TAG];
    else {
      for (const k in s.taggedAddresses) {
        if (k.startsWith(`${VIRTUAL_IP_TAG}:`) && k.slice(VIRTUAL_IP_TAG.length + 1).toLowerCase() === name) {
          a = s.taggedAddresses[k];
          break;
        }
      }
    }
    if (a && ipFamily(a.address) === 4) return a.address;
  }
  return null;
}

export const unitKey = (kind: Unit['kind'], dc: string, name: string): string => `${kind}/${dc}/${name.toLowerCase()}`;

type Accept = 'v4' | 'v6' | 'any';
type AddrQtype = typeof QTYPE.A | typeof QTYPE.AAAA | typeof QTYPE.ANY | typeof QTYPE.SRV;

interface InstanceRecord {
  /** De-duplication key (Consul: record text for address answers, node:addr:port for SRV). */
  readonly key: string;
  readonly rr: RR;
  readonly glue: readonly RR[];
  readonly cname: boolean;
  /** An SRV target that is a host name (its glue is resolved when prepared). */
  readonly hostTarget: boolean;
}

/** Zone-wide settings the translator needs. */
export class Translator {
  readonly cfg: Config;
  readonly domain: string;
  readonly localDc: string;
  readonly rfc: boolean;
  private readonly ipText = new Map<string, string>();

  constructor(cfg: Config, localDc: string) {
    this.cfg = cfg;
    this.domain = cfg.domain;
    this.localDc = localDc.toLowerCase();
    this.rfc = cfg.compat === 'rfc';
  }

  /** Canonical text of an IP (memoised: addresses repeat across a service, its tags and its glue). */
  canonicalIp(ip: string): string {
    let c = this.ipText.get(ip);
    if (c === undefined) {
      if (this.ipText.size > 100_000) this.ipText.clear();
      this.ipText.set(ip, (c = canonicalIp(ip)));
    }
    return c;
  }

  private isWan(dc: string): boolean {
    return this.cfg.translateWanAddrs && dc !== this.localDc;
  }

  /** Consul's translateAddressAccept: a tagged address of the accepted family, else the default. */
  private pick(accept: Accept, def: string, v4: string, v6: string): string {
    if (accept !== 'v4' && v6) return v6;
    if (accept !== 'v6' && v4) return v4;
    return def;
  }

  nodeAddr(dc: string, n: CatalogNode, accept: Accept): string {
    const t = n.taggedAddresses;
    if (this.isWan(dc)) return this.pick(accept, t.wan ?? n.address, t.wan_ipv4 ?? t.lan_ipv4 ?? '', t.wan_ipv6 ?? t.lan_ipv6 ?? '');
    return this.pick(accept, n.address, t.lan_ipv4 ?? '', t.lan_ipv6 ?? '');
  }

  private serviceAddr(dc: string, s: ServiceInstance, accept: Accept): string {
    const t = s.taggedAddresses;
    if (this.isWan(dc)) {
      return this.pick(accept, t.wan?.address ?? s.address, (t.wan_ipv4 ?? t.lan_ipv4)?.address ?? '', (t.wan_ipv6 ?? t.lan_ipv6)?.address ?? '');
    }
    return this.pick(accept, s.address, t.lan_ipv4?.address ?? '', t.lan_ipv6?.address ?? '');
  }

  private servicePort(dc: string, s: ServiceInstance): number {
    return this.isWan(dc) && s.taggedAddresses.wan && s.taggedAddresses.wan.port !== 0 ? s.taggedAddresses.wan.port : s.port;
  }

  /** Consul's makeARecord: the A or AAAA record for `ip` at `owner` if the qtype takes that family. */
  addrRecord(qt: number, ip: string, ttl: number, owner = AT): RR | null {
    const fam = ipFamily(ip);
    if (fam === 4 && qt !== QTYPE.AAAA) return { owner, type: 'A', ttl, data: ip };
    if (fam === 6 && qt !== QTYPE.A) return { owner, type: 'AAAA', ttl, data: this.canonicalIp(ip) };
    return null;
  }

  /** Node meta as TXT records (Consul's generateMeta), sorted by key for a stable zone. */
  metaRecords(n: CatalogNode, ttl: number, owner: string): RR[] {
    return Object.keys(n.meta).sort().map((k) => {
      const v = n.meta[k]!;
      const text = k.toLowerCase().startsWith('rfc1035-') ? v : encodeKVasRFC1464(k, v);
      return { owner, type: 'TXT', ttl, data: txtStrings(text) } as RR;
    });
  }

  /** Whether `<node>.node.<dc>.<domain>` can go on the wire, once per node object. */
  private nodeTargetOk(n: CatalogNode, target: string): boolean {
    let ok = this.nodeTargets.get(n);
    if (ok === undefined) this.nodeTargets.set(n, (ok = isWireName(target)));
    return ok;
  }
  private readonly nodeTargets = new WeakMap<CatalogNode, boolean>();

  healthy(s: ServiceInstance): boolean {
    return s.checks.every((c) => c.status !== 'critical' && (!this.cfg.onlyPassing || c.status === 'passing'));
  }

  /** Consul's nodeServiceRecords for one instance and qtype. */
  private instanceRecord(dc: string, s: ServiceInstance, qt: AddrQtype, ttl: number, selfNames: ReadonlySet<string>): InstanceRecord | null {
    const accept: Accept = qt === QTYPE.A ? 'v4' : qt === QTYPE.AAAA ? 'v6' : 'any';
    const svcAddr = this.serviceAddr(dc, s, accept);
    const nAddr = this.nodeAddr(dc, s.node, accept);
    if (!svcAddr && !nAddr) return null;
    if (!svcAddr) {
      if (ipFamily(nAddr) === 0) return this.fromFQDN(qt, ttl, nAddr, svcAddr, dc, s);
      return s.node.address !== nAddr ? this.fromIP(dc, s, qt, ttl, nAddr, svcAddr) : this.fromServiceNode(dc, s, qt, ttl, nAddr, svcAddr);
    }
    if (ipFamily(svcAddr) !== 0) return this.fromIP(dc, s, qt, ttl, svcAddr, svcAddr);
    if (selfNames.has(svcAddr.toLowerCase().replace(/\.$/, '')) && ipFamily(nAddr) !== 0) return this.fromServiceNode(dc, s, qt, ttl, nAddr, svcAddr);
    return this.fromFQDN(qt, ttl, svcAddr, svcAddr, dc, s);
  }

  /** An SRV record to `target` (de-duplicated by node, service address and port, as Consul does). */
  private srv(dc: string, s: ServiceInstance, ttl: number, svcAddr: string, target: string, glue: readonly RR[], hostTarget: boolean): InstanceRecord {
    const port = this.servicePort(dc, s);
    return {
      key: `${s.node.name}:${svcAddr}:${port}`, cname: false, hostTarget, glue,
      rr: { owner: AT, type: 'SRV', ttl, data: { priority: 1, weight: weightOf(s), port, target } },
    };
  }

  /** An address record; its text is its key (IPv4 and IPv6 texts never collide). */
  private static address(rec: RR): InstanceRecord {
    return { key: rec.data as string, cname: false, hostTarget: false, glue: NO_RECORDS, rr: rec };
  }

  /** An instance at an address of its own: A/AAAA, or SRV to `<hex>.addr.<dc>.<domain>`. */
  private fromIP(dc: string, s: ServiceInstance, qt: AddrQtype, ttl: number, ip: string, svcAddr: string): InstanceRecord | null {
    if (qt === QTYPE.SRV) {
      const target = `${ipHex(ip)}.addr.${dc}.${this.domain}`;
      const rec = this.addrRecord(qt, ip, ttl, target);
      return rec ? this.srv(dc, s, ttl, svcAddr, target, [rec], false) : null;
    }
    const rec = this.addrRecord(qt, ip, ttl);
    return rec ? Translator.address(rec) : null;
  }

  /** An instance at its node's address: A/AAAA, or SRV to `<node>.node.<dc>.<domain>` with meta TXT. */
  private fromServiceNode(dc: string, s: ServiceInstance, qt: AddrQtype, ttl: number, ip: string, svcAddr: string): InstanceRecord | null {
    if (qt === QTYPE.SRV) {
      const target = `${s.node.name}.node.${dc}.${this.domain}`;
      if (!this.nodeTargetOk(s.node, target)) return null;
      const rec = this.addrRecord(qt, ip, ttl, target);
      if (!rec) return null;
      const glue = this.cfg.enableAdditionalNodeMetaTxt && hasKeys(s.node.meta) ? [rec, ...this.metaRecords(s.node, ttl, target)] : [rec];
      return this.srv(dc, s, ttl, svcAddr, target, glue, false);
    }
    const rec = this.addrRecord(qt, ip, ttl);
    return rec ? Translator.address(rec) : null;
  }

  /** An instance at a host name: CNAME, or SRV to that host. */
  private fromFQDN(qt: AddrQtype, ttl: number, host: string, svcAddr: string, dc: string, s: ServiceInstance): InstanceRecord {
    const target = host.replace(/\.$/, '');
    if (qt === QTYPE.SRV) return this.srv(dc, s, ttl, svcAddr, target, NO_RECORDS, true);
    return { key: `CNAME:${target}`, cname: true, hostTarget: false, glue: NO_RECORDS, rr: { owner: AT, type: 'CNAME', ttl, data: target } };
  }

  /** Consul's serviceNodeRecords / serviceSRVRecords over a set of healthy instances. */
  private serviceOwner(dc: string, svc: string, list: readonly ServiceInstance[], ttl: number,
    memo: Map<ServiceInstance, Array<InstanceRecord | null | undefined>>, interned: Map<string, RR>): OwnerRecords | null {
    if (list.length === 0) return null;
    const selfNames = new Set([`${svc}.service.${this.domain}`, `${svc}.service.${dc}.${this.domain}`].map((n) => n.toLowerCase()));
    const build = (qt: AddrQtype): RecordAnswer | null => {
      const seen = new Set<string>();
      const records: RR[] = [];
      const glue: Array<readonly RR[]> = [];
      let firstCname: InstanceRecord | null = null;
      let hostTargets = false;
      for (const s of list) {
        // The same instance appears under the service and each of its tags: build it once.
        let m = memo.get(s);
        if (!m) memo.set(s, (m = []));
        let r = m[qt];
        if (r === undefined) {
          r = this.instanceRecord(dc, s, qt, ttl, selfNames);
          if (r && (r.rr.type === 'A' || r.rr.type === 'AAAA')) {
            // The A and ANY answers hold the same address records: keep one object of each.
            const same = interned.get(r.key);
            if (same) r = { ...r, rr: same }; else interned.set(r.key, r.rr);
          }
          m[qt] = r;
        }
        if (!r || seen.has(r.key)) continue;
        seen.add(r.key);
        if (r.cname) { firstCname ??= r; continue; }
        records.push(r.rr);
        glue.push(r.glue);
        if (r.hostTarget) hostTargets = true;
      }
      if (records.length === 0 && firstCname) {
        // Consul keeps the first CNAME only when no address record was produced.
        return { records: [firstCname.rr], glue: null, additional: [], shuffle: false, addressLimit: false, chase: 'answer' };
      }
      if (records.length === 0) return null;
      return {
        records, glue: qt === QTYPE.SRV ? glue : null, additional: [], shuffle: true, addressLimit: qt !== QTYPE.SRV,
        chase: hostTargets ? 'glue' : null,
      };
    };
    const byType = new Map<number, RecordAnswer>();
    for (const qt of [QTYPE.A, QTYPE.AAAA, QTYPE.SRV, QTYPE.ANY] as const) {
      const a = build(qt);
      if (a) byType.set(qt, a);
    }
    // Consul's makeARecord accepts TXT: a quirk kept only in compat mode.
    if (!this.rfc && byType.has(QTYPE.ANY)) byType.set(QTYPE.TXT, byType.get(QTYPE.ANY)!);
    return { byType, otherwise: 'nodata' };
  }

  /**
   * A service unit (kind 'service', `links`: the services it links as a terminating gateway), or the
   * connect unit of a destination (kind 'connect', `input` is every instance serving it: proxies,
   * Connect-native instances and linked terminating gateways' instances, as Consul's
   * checkServiceNodesTxn gives them with connect=true). Instances are taken in a canonical order, so
   * the unit does not depend on the order the catalog listed them in.
   */
  service(kind: 'service' | 'connect', dcRaw: string, svc: string, input: readonly ServiceInstance[], links: readonly string[] = NO_LINKS): ServiceUnit {
    const dc = dcRaw.toLowerCase();
    const name = svc.toLowerCase();
    const ttl = serviceTtlFor(this.cfg.serviceTtl, svc);
    const list = [...input].sort(instanceOrder);
    const live = list.filter((s) => this.healthy(s));
    const memo = new Map<ServiceInstance, Array<InstanceRecord | null | undefined>>();
    const interned = new Map<string, RR>();
    const all = this.serviceOwner(dc, svc, live, ttl, memo, interned);
    const byTag = new Map<string, OwnerRecords>();
    let tagSuffixes: Set<string> = NO_NAMES;
    // Each instance's tags in lower case, once (not per tag and instance).
    const lowTags: string[][] = new Array(live.length);
    const tagSet = new Set<string>();
    for (let i = 0; i < live.length; i++) {
      const ts = live[i]!.tags, low: string[] = new Array(ts.length);
      for (let j = 0; j < ts.length; j++) tagSet.add((low[j] = ts[j]!.toLowerCase()));
      lowTags[i] = low;
    }
    for (const tag of [...tagSet].sort()) {
      const tagged: ServiceInstance[] = [];
      for (let i = 0; i < live.length; i++) if (lowTags[i]!.includes(tag)) tagged.push(live[i]!);
      // A tag every instance carries answers exactly as the service does: share its records.
      const owner = tagged.length === live.length ? all : this.serviceOwner(dc, svc, tagged, ttl, memo, interned);
      if (owner) byTag.set(tag, owner);
      const parts = tag.split('.');
      if (parts.length > 1 && tagSuffixes === NO_NAMES) tagSuffixes = new Set();
      for (let i = 1; i < parts.length; i++) tagSuffixes.add(parts.slice(i).join('.'));
    }

    let virtual: OwnerRecords | null = null;
    const ptrClaims: string[] = [];
    const connectTo = new Set<string>();
    if (kind === 'service') {
      if (dc === this.localDc) for (const s of list) if (ipFamily(s.address)) ptrClaims.push(this.canonicalIp(s.address));
      for (const s of list) {
        const dest = connectDestination(s);
        if (dest && servableServiceName(dest)) connectTo.add(dest.toLowerCase());
      }
      for (const l of links) connectTo.add(l);
    } else if (dc === this.localDc) {
      // Consul answers `.virtual` from its virtual-IP table, local datacenter only (dns.go: the
      // Catalog.VirtualIPForService RPC carries no datacenter).
      const vip = virtualIp(name, list);
      if (vip) {
        const a: RecordAnswer = { records: [{ owner: AT, type: 'A', ttl: this.cfg.nodeTtl, data: vip }], glue: null, additional: [], shuffle: false, addressLimit: false, chase: null };
        // Consul's dispatch adds the A record whatever the qtype (compat mode); rfc mode: NODATA.
        virtual = { byType: new Map([[QTYPE.A, a], [QTYPE.ANY, a]]), otherwise: this.rfc ? 'nodata' : 'any' };
      }
    }
    const addrTargets: RR[] = [];
    const seenTargets = new Set<string>();
    // Owners shared by tags (a tag every instance carries) are looked at once.
    for (const o of new Set([all, ...byTag.values()])) {
      for (const g of o?.byType.get(QTYPE.SRV)?.glue ?? []) {
        const t = g[0];
        if (!t || !t.owner.includes('.addr.') || seenTargets.has(t.owner)) continue;
        seenTargets.add(t.owner);
        addrTargets.push({ ...t, ttl: this.cfg.nodeTtl });
      }
    }
    const unit: Omit<ServiceUnit, 'hash' | 'size'> = {
      kind, key: unitKey(kind, dc, name), dc, name, display: svc, input, all, byTag, tagSuffixes, virtual,
      ptrClaims: [...new Set(ptrClaims)].sort(), connectTo: [...connectTo].sort(), links: kind === 'service' ? links : NO_LINKS, addrTargets, live: true,
    };
    return withHash(unit, this.domain);
  }

  /** A node unit: A/AAAA (or a CNAME to a host name address), meta TXT (Consul's handleNodeQuery). */
  node(dcRaw: string, n: CatalogNode): NodeUnit | null {
    const dc = dcRaw.toLowerCase();
    const name = n.name.toLowerCase();
    if (!isWireName(`${name}.node.${dc}.${this.domain}`)) return null;
    const ttl = this.cfg.nodeTtl;
    const meta = this.metaRecords(n, ttl, AT);
    const hostname = !ipFamily(n.address);
    // Consul's makeRecordFromNode: an address of the accepted family, or a CNAME to a host name.
    const rec = (qt: number): RR | null => {
      const addr = this.nodeAddr(dc, n, qt === QTYPE.A ? 'v4' : qt === QTYPE.AAAA ? 'v6' : 'any');
      if (!ipFamily(addr)) return { owner: AT, type: 'CNAME', ttl, data: n.address.replace(/\.$/, '') };
      return this.addrRecord(qt, addr, ttl);
    };
    const answer = (records: RR[], additional: RR[] = [], cname = false): RecordAnswer =>
      ({ records, glue: null, additional, shuffle: false, addressLimit: false, chase: cname ? 'answer' : null });
    const byType = new Map<number, RecordAnswer>();
    for (const qt of [QTYPE.A, QTYPE.AAAA]) {
      const r = rec(qt);
      if (r) byType.set(qt, answer([r], this.cfg.enableAdditionalNodeMetaTxt ? meta : [], r.type === 'CNAME'));
    }
    const anyRec = rec(QTYPE.ANY);
    const anyRecords = [...(anyRec ? [anyRec] : []), ...meta];
    if (anyRecords.length) byType.set(QTYPE.ANY, answer(anyRecords, [], anyRec?.type === 'CNAME'));
    if (meta.length) byType.set(QTYPE.TXT, answer(meta));
    const parts = name.split('.');
    const unit: Omit<NodeUnit, 'hash' | 'size'> = {
      kind: 'node', key: unitKey('node', dc, name), dc, name, display: n.name, input: n,
      owner: { byType, otherwise: this.rfc ? 'nodata' : 'empty' },
      suffixes: parts.slice(1).map((_, i) => parts.slice(i + 1).join('.')),
      ptrClaim: dc === this.localDc && !hostname ? this.canonicalIp(n.address) : null,
      live: true,
    };
    return withHash(unit, this.domain);
  }
}

/** The unit with its hash and size filled in (in place: a spread of the whole unit showed in build profiles). */
function withHash<U extends Unit>(u: Omit<U, 'hash' | 'size'>, domain: string): U {
  const h = unitHash(u as U, domain);
  const out = u as U & { hash: Uint32Array; size: number };
  out.hash = h.hash;
  out.size = h.size;
  return out;
}

function hasKeys(o: object): boolean {
  for (const _ in o) return true;
  return false;
}

/** Instances in a canonical order: node name, then service ID. */
function instanceOrder(a: ServiceInstance, b: ServiceInstance): number {
  return a.node.name < b.node.name ? -1 : a.node.name > b.node.name ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** The canonical name of a unit's main owner. */
export function unitOwnerName(u: Unit, domain: string): string {
  return u.kind === 'node' ? `${u.name}.node.${u.dc}.${domain}` : `${u.name}.${u.kind}.${u.dc}.${domain}`;
}

/** Feeds one owner's answers, per qtype, glue included: what a unit's hash covers. */
function hashOwner(h: ContentHasher, name: string, o: OwnerRecords): number {
  let n = 0;
  h.str(name).str(o.otherwise);
  for (const [qt, a] of o.byType) {
    h.num(qt).num((a.shuffle ? 1 : 0) | (a.addressLimit ? 2 : 0)).str(a.chase ?? '').num(a.records.length);
    a.records.forEach((r, i) => {
      h.record(r);
      const g = a.glue?.[i] ?? NO_RECORDS;
      h.num(g.length);
      for (const x of g) h.record(x);
      n += 1 + g.length;
    });
    h.num(a.additional.length);
    for (const r of a.additional) h.record(r);
    n += a.additional.length;
  }
  return n;
}

/**
 * The hash of a unit's records (answers per qtype with their glue, virtual IP, PTR claims, connect
 * destinations) and how many records it holds. Records are produced in a canonical order
 * (instances sorted by node and ID, tags and meta keys sorted, qtypes in a fixed order), so equal
 * content gives an equal hash whatever the order of the catalog.
 */
export function unitHash(u: Unit, domain: string): { hash: Uint32Array; size: number } {
  const h = new ContentHasher();
  const base = unitOwnerName(u, domain);
  let size = 0;
  if (u.kind === 'node') {
    size += hashOwner(h, base, u.owner);
    h.str(u.ptrClaim ?? '');
  } else {
    h.str(u.kind);
    if (u.all) size += hashOwner(h, base, u.all);
    // A tag every instance carries shares the service's records: its name is enough.
    for (const [tag, o] of u.byTag) size += o === u.all ? (h.str(tag).str('=all'), 0) : hashOwner(h.str(tag), base, o);
    if (u.virtual) size += hashOwner(h, `${u.name}.virtual.${domain}`, u.virtual);
    h.num(u.ptrClaims.length);
    for (const a of u.ptrClaims) h.str(a);
    h.num(u.connectTo.length);
    for (const c of u.connectTo) h.str(c);
  }
  return { hash: h.digest(), size };
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
