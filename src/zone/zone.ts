/**
 * The zone: units of records (see units.ts) indexed for lookup, and one immutable Zone per commit
 * (serial, SOA, NS, negative answers, a name memo) that the query path reads.
 *
 * The unit index (ZoneData) is updated in place by one synchronous `apply` per commit, so a query,
 * which runs synchronously too, sees either the whole commit or none of it, and a commit costs what
 * changed, not the size of the zone. Units are immutable; a replaced unit is marked dead, which is
 * how prepared answers and cached responses derived from it know they are stale.
 *
 * Lookups return a verdict (answer, NODATA, NXDOMAIN, or Consul's empty NOERROR) inside the
 * prepared Answer; the handler alone turns verdicts into rcodes.
 */
import { cacheBudget } from '../cache-budget.js';
import { RingTable, hashString, type RingTableStats } from '../ring-table.js';
import type { PackedBlock } from '../dns/pack.js';
import { QTYPE } from '../dns/wire.js';
import { addrFromHex, canonicalIp } from './ip.js';
import { defaultReverseApex, enclosingApex } from './reverse-zones.js';
import type { ReverseZoneAnswers } from './apex.js';
import { unitRecords } from './listing.js';
import { prepareAnswer, type ChaseLookup } from './prepare.js';
import { AT, TYPE_CODE, ZoneHash, type RR } from './records.js';
import type { NodeUnit, OwnerRecords, RecordAnswer, ServiceUnit, Unit } from './units.js';

export type Verdict = 'answer' | 'nodata' | 'nxdomain' | 'empty';

/** One answer record plus the additional records it brings (SRV glue). */
export interface WireUnit {
  /** The complete answer RR; its owner is the question name (compressed to 0xC00C) or absolute. */
  readonly rr: Buffer;
  /** Offset inside `rr` of the RDATA name that glue owners point to, or -1. */
  readonly targetAt: number;
  /** Identity of the target for de-duplicating glue within one response, or -1. */
  readonly glueId: number;
  /** Uncompressed target name, used as glue owner when a pointer cannot reach it. */
  readonly glueOwner: Buffer | null;
  /** Glue RRs without owner (TYPE..RDATA); owner = the target. */
  readonly glue: readonly Buffer[];
}

/** Where a prepared answer came from: it is valid while its source is live. */
export interface Source {
  live: boolean;
  /** Its slot in the zone's Liveness (0: the zone version). */
  slot?: number;
}

/** A prepared answer: wire fragments derived from records, copied by the response writer. */
export interface Answer {
  readonly verdict: Verdict;
  readonly units: readonly WireUnit[];
  /** Shuffle units per response (service answers). */
  readonly shuffle: boolean;
  /** a_record_limit applies (service A/AAAA/ANY answers). */
  readonly addressLimit: boolean;
  /** Complete RRs (uncompressed owners). Dropped first when space runs out. */
  readonly authority: readonly Buffer[];
  /** Complete RRs whose loss does not make the answer incomplete (meta TXT, NS glue, .addr records). */
  readonly additional: readonly Buffer[];
  /** The whole answer as one compressed block (SOA, NS, negative), used whenever it fits. */
  readonly packed?: PackedBlock;
  /** The unit or zone version it was prepared from. */
  readonly source: Source;
  /** Its Liveness slot and generation when prepared: a cached response is good while they match. */
  readonly slot: number;
  readonly gen: number;
}

/**
 * Numbers for "still valid": a slot per unit key (stable across index generations) with a
 * generation that moves on when the unit in that slot dies, and slot 0 for the zone version (its
 * SOA, NS and negative answers). A cached response keeps the slot and generation of the answer it
 * was made from, and is good while they still match: no commit has to empty the cache.
 */
export class Liveness {
  private readonly slots = new Map<string, number>([['', 0]]);
  gens = new Uint32Array(1024);

  slotOf(key: string): number {
    let s = this.slots.get(key);
    if (s === undefined) {
      this.slots.set(key, (s = this.slots.size));
      if (s >= this.gens.length) {
        const g = new Uint32Array(this.gens.length * 2);
        g.set(this.gens);
        this.gens = g;
      }
    }
    return s;
  }

  /** The unit (or version, slot 0) in `slot` is dead: what was made from it is stale. */
  kill(slot: number): void {
    this.gens[slot] = (this.gens[slot]! + 1) >>> 0;
  }
}

/** Counts of names that exist only because something lies below them (empty non-terminals). */
class RefCount {
  private readonly m = new Map<string, number>();
  add(k: string): void { this.m.set(k, (this.m.get(k) ?? 0) + 1); }
  remove(k: string): void {
    const n = (this.m.get(k) ?? 0) - 1;
    if (n > 0) this.m.set(k, n); else this.m.delete(k);
  }
  has(k: string): boolean { return this.m.has(k); }
  keys(): IterableIterator<string> { return this.m.keys(); }
  get size(): number { return this.m.size; }
}

export class DcIndex {
  constructor(
    /** By lower-cased name. A provisional zone (provisional.ts) passes maps that build units on demand. */
    readonly services: Map<string, ServiceUnit> = new Map(),
    readonly connect: Map<string, ServiceUnit> = new Map(),
    readonly nodes: Map<string, NodeUnit> = new Map(),
  ) {}
  readonly nodeSuffixes = new RefCount();
  /** Lower-cased tags of healthy instances (for `_tag.service` empty non-terminals). */
  readonly tags = new RefCount();
  /** Service (connect) units with at least one healthy instance. */
  healthyServices = 0;
  healthyConnect = 0;
}

/** Who claims a reverse name: nodes win over services, then the smallest name (deterministic). */
interface PtrClaims {
  readonly nodes: Set<string>;
  readonly services: Set<string>;
}

/** The unit index: every unit of the zone, by datacenter and name, and the reverse tree. */
export class ZoneData {
  readonly dcs = new Map<string, DcIndex>();
  readonly units = new Map<string, Unit>();
  readonly ptr = new Map<string, PtrClaims>();
  readonly reverseEnts = new RefCount();
  /** The default reverse zones (README "Reverse zones"): the /24 or /64 of every PTR name. */
  readonly defaultApexes = new RefCount();
  readonly hash = new ZoneHash();
  /** Records held by all units (see Unit.size). */
  records = 0;
  /** Identity of SRV targets, for de-duplicating glue within a response (stable across commits). */
  constructor(
    readonly domain: string,
    readonly localDc: string,
    readonly reverseName: (ip: string) => string,
    /** Shared by the ZoneData generations of one store: prepared answers outlive a generation. */
    private readonly glueIds = new Map<string, number>(),
    readonly liveness = new Liveness(),
  ) {}

  /** A new, empty generation that numbers glue targets and liveness slots as this one does. */
  successor(): ZoneData {
    return new ZoneData(this.domain, this.localDc, this.reverseName, this.glueIds, this.liveness);
  }

  /** Marks a unit dead: its prepared answers and the responses cached from them are stale. */
  kill(u: Unit): void {
    u.live = false;
    this.liveness.kill(u.slot ?? this.liveness.slotOf(u.key));
  }

  glueId(target: string): number {
    const t = target.toLowerCase();
    let id = this.glueIds.get(t);
    if (id === undefined) this.glueIds.set(t, (id = this.glueIds.size));
    return id;
  }

  /** The datacenters that exist (also those without services or nodes). */
  setDatacenters(names: Iterable<string>): void {
    const want = new Set([...names].map((n) => n.toLowerCase()));
    for (const dc of want) if (!this.dcs.has(dc)) this.dcs.set(dc, new DcIndex());
    for (const [dc, idx] of this.dcs) {
      if (!want.has(dc) && idx.services.size === 0 && idx.nodes.size === 0 && idx.connect.size === 0) this.dcs.delete(dc);
    }
  }

  /**
   * One commit: removes the units keyed in `remove` and puts `put` (replacing units with the same
   * key). Synchronous, so queries see all of it or none. Returns the units it replaced or removed.
   */
  apply(put: readonly Unit[], remove: readonly string[] = []): Unit[] {
    const gone: Unit[] = [];
    for (const k of remove) {
      const u = this.units.get(k);
      if (u) { this.unindex(u); gone.push(u); }
    }
    for (const u of put) {
      const old = this.units.get(u.key);
      if (old) { this.unindex(old); gone.push(old); }
      this.index(u);
    }
    return gone;
  }

  private dc(name: string): DcIndex {
    let d = this.dcs.get(name);
    if (!d) this.dcs.set(name, (d = new DcIndex()));
    return d;
  }

  private index(u: Unit): void {
    u.slot ??= this.liveness.slotOf(u.key);
    this.units.set(u.key, u);
    this.hash.add(u.hash);
    this.records += u.size;
    const d = this.dc(u.dc);
    if (u.kind === 'node') {
      d.nodes.set(u.name, u);
      for (const s of u.suffixes) d.nodeSuffixes.add(s);
      if (u.ptrClaim) this.claim(u.ptrClaim, 'nodes', u.name);
      return;
    }
    (u.kind === 'service' ? d.services : d.connect).set(u.name, u);
    if (u.all) {
      if (u.kind === 'service') { d.healthyServices++; for (const t of u.byTag.keys()) d.tags.add(t); } else d.healthyConnect++;
    }
    for (const a of u.ptrClaims) this.claim(a, 'services', u.name);
  }

  private unindex(u: Unit): void {
    this.kill(u);
    this.units.delete(u.key);
    this.hash.remove(u.hash);
    this.records -= u.size;
    const d = this.dc(u.dc);
    if (u.kind === 'node') {
      d.nodes.delete(u.name);
      for (const s of u.suffixes) d.nodeSuffixes.remove(s);
      if (u.ptrClaim) this.unclaim(u.ptrClaim, 'nodes', u.name);
      return;
    }
    (u.kind === 'service' ? d.services : d.connect).delete(u.name);
    if (u.all) {
      if (u.kind === 'service') { d.healthyServices--; for (const t of u.byTag.keys()) d.tags.remove(t); } else d.healthyConnect--;
    }
    for (const a of u.ptrClaims) this.unclaim(a, 'services', u.name);
  }

  private claim(ip: string, kind: 'nodes' | 'services', name: string): void {
    const r = this.reverseName(ip);
    let c = this.ptr.get(r);
    if (!c) {
      this.ptr.set(r, (c = { nodes: new Set(), services: new Set() }));
      const parts = r.split('.');
      for (let i = 1; i < parts.length - 1; i++) this.reverseEnts.add(parts.slice(i).join('.'));
      const apex = defaultReverseApex(r);
      if (apex) this.defaultApexes.add(apex);
    }
    c[kind].add(name);
  }

  private unclaim(ip: string, kind: 'nodes' | 'services', name: string): void {
    const r = this.reverseName(ip);
    const c = this.ptr.get(r);
    if (!c) return;
    c[kind].delete(name);
    if (c.nodes.size === 0 && c.services.size === 0) {
      this.ptr.delete(r);
      const parts = r.split('.');
      for (let i = 1; i < parts.length - 1; i++) this.reverseEnts.remove(parts.slice(i).join('.'));
      const apex = defaultReverseApex(r);
      if (apex) this.defaultApexes.remove(apex);
    }
  }

  /** The PTR target of a reverse name (local datacenter), or null. */
  ptrTarget(rname: string): string | null {
    const c = this.ptr.get(rname);
    if (!c) return null;
    const min = (s: Set<string>) => { let m: string | null = null; for (const x of s) if (m === null || x < m) m = x; return m; };
    const node = min(c.nodes);
    const unit = node !== null ? this.units.get(`node/${this.localDc}/${node}`) : this.units.get(`service/${this.localDc}/${min(c.services)}`);
    return unit ? `${unit.display}.${unit.kind}.${this.localDc}.${this.domain}` : null;
  }
}

/**
 * The answer of a provisional zone (provisional.ts) to a question only the complete zone can answer:
 * the query waits for it (QueryHandler returns HELD). Never written to the wire.
 */
export const NOT_YET: Answer = Object.freeze({
  verdict: 'nodata', units: [], shuffle: false, addressLimit: false, authority: [], additional: [],
  source: { live: false }, slot: 0, gen: 0,
}) as Answer;

/** What a name resolves to. */
export interface Owner {
  answer(qtype: number): Answer;
  /**
   * Made for one name at lookup time (`.addr`, PTR): the name memo does not keep it, so the memo
   * only ever refers to owners the zone holds anyway (its size is accounted in response_cache_mb).
   */
  readonly perName?: boolean;
}

export class FixedOwner implements Owner {
  constructor(private readonly a: Answer) {}
  answer(): Answer {
    return this.a;
  }
}

export class TypedOwner implements Owner {
  constructor(private readonly byType: ReadonlyMap<number, Answer>, private readonly other: Answer) {}
  answer(qtype: number): Answer {
    return this.byType.get(qtype) ?? this.other;
  }
}

/** Per-version answers (SOA, NS, negative): built by the store for each commit. */
export interface VersionAnswers {
  readonly soa: Answer;
  readonly ns: Answer;
  readonly nxdomain: Answer;
  readonly nodata: Answer;
  readonly empty: Answer;
  /** The negative SOA as a complete RR (authority of `.addr` answers to other qtypes). */
  readonly negSoa: Buffer;
  /** `ns.<domain>` when the catalog has no consul servers (answers with the listen address), else null. */
  readonly fallbackNs: Owner | null;
  /** Marked dead when the next version replaces this one. */
  readonly source: Source;
  /** The apex records as listed in the zone: SOA, NS, and `ns.<domain>` glue when that is the NS. */
  readonly records: readonly RR[];
  /** The answers of a reverse zone at `apex`: its SOA and NS, and negative answers carrying its SOA. */
  readonly reverse: (apex: string) => ReverseZoneAnswers;
}

export interface ZoneParts {
  readonly serial: number;
  readonly domain: string;
  readonly contentHash: string;
  readonly data: ZoneData;
  readonly answers: VersionAnswers;
  readonly rfc: boolean;
  readonly nodeTtl: number;
  readonly ptrTtl: number;
  readonly stats: { readonly names: number; readonly records: number };
  /**
   * The name memo to use (the store keeps one across versions and clears it for each), or its size
   * in bytes for a memo of this zone's own (default: the memo's part of 64 MiB, cache-budget.ts).
   */
  readonly memo?: RingTable<Owner> | number;
  /** Reverse zones configured (README "Reverse zones"); null: derived from the PTR names (rfc mode) or every reverse name (compat consul). */
  readonly reverseZones: readonly string[] | null;
}

const ZONE = 1, REVERSE = 2, OUT = 0;
const KINDS = new Set(['service', 'connect', 'virtual', 'ingress', 'node', 'query', 'addr']);

/** Name memo flag: the name is in the zone (not in a reverse tree). */
const IN_ZONE = 1;
/**
 * Name memo index sizing: one slot per this many budget bytes. An entry is a 16-byte header and
 * the name (10-60 bytes); a slot is 18 bytes (RingTable's 10 + a reference to the owner).
 */
const MEMO_BYTES_PER_SLOT = 64;

/** A name memo of `bytes` (see ZoneParts.memo). */
export function nameMemo(bytes: number): RingTable<Owner> {
  return new RingTable<Owner>({ bytes, bytesPerSlot: MEMO_BYTES_PER_SLOT, values: true });
}

/** The memo's entry for a name outside the zone and every reverse zone served (REFUSED). */
const OUTSIDE: Owner = { answer: () => { throw new Error('OUTSIDE has no answers'); } };

/** The negative answers of the zone a name is in (a reverse zone has its own SOA). */
interface Negatives {
  readonly nodata: Answer;
  readonly nxdomain: Answer;
}

/** A reverse zone served in this version: its answers, and owners for its negative outcomes. */
interface ReverseZone extends ReverseZoneAnswers {
  readonly apex: string;
  readonly labels: number;
  readonly nx: Owner;
  readonly ent: Owner;
  apexOwner?: Owner;
}

/** An owner backed by records: answers are prepared on first use and kept with the records. */
export class RecordOwner implements Owner {
  constructor(
    private readonly zone: Zone,
    readonly rec: OwnerRecords,
    /** The unit the records belong to, or the zone version for names synthesised per query. */
    readonly source: Source,
    /** RFC 2782 names without the `service` label exist for SRV queries only. */
    private readonly srvOnly = false,
    /** The negative answers of the zone the name is in (a reverse zone's), if not the domain's. */
    private readonly neg: Negatives | null = null,
    readonly perName = false,
  ) {}

  answer(qtype: number): Answer {
    const z = this.zone;
    if (this.srvOnly && qtype !== QTYPE.SRV) return z.rfc ? z.answers.nodata : z.answers.nxdomain;
    const ra = this.rec.byType.get(qtype);
    if (ra) return z.prepared(ra, this.source);
    switch (this.rec.otherwise) {
      case 'nodata': return (this.neg ?? z.answers).nodata;
      case 'empty': return z.answers.empty;
      case 'any': return z.prepared(this.rec.byType.get(QTYPE.ANY)!, this.source);
      case 'additional': {
        let a = additionalCache.get(this.rec);
        if (!a || !a.source.live) {
          const hit = z.prepared(this.rec.byType.get(QTYPE.ANY)!, this.source);
          // NOERROR, the record in ADDITIONAL (Consul PR #10401); with the SOA in rfc mode.
          a = { ...hit, units: [], authority: z.rfc ? [z.answers.negSoa] : [], additional: hit.units.map((u) => u.rr) };
          additionalCache.set(this.rec, a);
        }
        return a;
      }
    }
  }
}

const additionalCache = new WeakMap<OwnerRecords, Answer>();

export class Zone {
  readonly serial: number;
  readonly domain: string;
  readonly contentHash: string;
  readonly data: ZoneData;
  readonly answers: VersionAnswers;
  readonly rfc: boolean;
  readonly stats: { readonly names: number; readonly records: number };
  private readonly nodeTtl: number;
  private readonly ptrTtl: number;
  private readonly domainKey: string;
  private readonly domainLabels: number;
  private readonly memo: RingTable<Owner>;
  /** One owner object per owner's records (and per RFC 2782 form without `service`), held by this version. */
  private readonly owners = new WeakMap<OwnerRecords, RecordOwner>();
  private readonly srvOwners = new WeakMap<OwnerRecords, RecordOwner>();
  private readonly nx: Owner;
  private readonly ent: Owner;
  /** Consul's NOERROR without records or SOA (compat consul). */
  private readonly empty: Owner;
  private readonly configuredReverse: ReadonlySet<string> | null;
  private readonly reverseCache = new Map<string, ReverseZone>();

  constructor(p: ZoneParts) {
    this.serial = p.serial;
    this.domain = p.domain;
    this.contentHash = p.contentHash;
    this.data = p.data;
    this.answers = p.answers;
    this.rfc = p.rfc;
    this.stats = p.stats;
    this.nodeTtl = p.nodeTtl;
    this.ptrTtl = p.ptrTtl;
    this.domainKey = wireKey(p.domain);
    this.domainLabels = p.domain.split('.').length;
    this.memo = typeof p.memo === 'object' ? p.memo : nameMemo(p.memo ?? cacheBudget(64 * 1024 * 1024).names);
    this.nx = new FixedOwner(p.answers.nxdomain);
    this.empty = new FixedOwner(p.answers.empty);
    this.ent = new FixedOwner(p.rfc ? p.answers.nodata : p.answers.nxdomain);
    this.configuredReverse = p.reverseZones ? new Set(p.reverseZones) : null;
  }

  /**
   * Every record of the zone, apex first, then unit by unit in key order, then the PTR records
   * (AXFR's content; names synthesised per query are not listed, see listing.ts).
   */
  *records(): Generator<RR> {
    yield* this.answers.records;
    const units = [...this.data.units.values()].sort((a, b) => (a.key < b.key ? -1 : 1));
    for (const u of units) yield* unitRecords(u, this.domain, this.data.localDc);
    for (const rname of [...this.data.ptr.keys()].sort()) {
      const target = this.data.ptrTarget(rname);
      if (target) yield { owner: rname, type: 'PTR', ttl: this.ptrTtl, data: target };
    }
  }

  /** The name memo's own accounting: memory held (never above `limit`), entries, evictions. */
  memoStats(): RingTableStats {
    return this.memo.stats();
  }

  /** The SOA answer (apex). */
  get soa(): Answer {
    return this.answers.soa;
  }

  /**
   * The prepared answer for a question name given as its wire-format key (see wireKey: lower case,
   * latin1) and a qtype, or null when the name is outside the zone and the reverse trees (REFUSED).
   * Consul answers SOA and NS queries for any name in its domain with the apex records, owners that
   * do not match the question (resolvers that minimise QNAME, RFC 9156, take that for a broken
   * reply); in rfc mode only the apex has them, other names answer NODATA or NXDOMAIN.
   */
  answer(key: string, qtype: number): Answer | null {
    const memo = this.memo;
    const h = hashString(key);
    let owner: Owner;
    let inZone: boolean;
    if (memo.findString(key, h)) {
      owner = memo.value!;
      inZone = memo.flags === IN_ZONE;
    } else {
      const r = this.resolve(key);
      owner = r.owner;
      inZone = r.inZone;
      if (!owner.perName) memo.addString(key, h, 0, 0, inZone ? IN_ZONE : 0, 0, owner);
    }
    if (owner === OUTSIDE) return null;
    if (inZone && (qtype === QTYPE.SOA || qtype === QTYPE.NS) && (!this.rfc || key === this.domainKey)) return qtype === QTYPE.SOA ? this.answers.soa : this.answers.ns;
    // ANY at the apex: the SOA with the NS records (a subset, as RFC 8482 allows); Consul: NXDOMAIN.
    if (qtype === QTYPE.ANY && this.rfc && key === this.domainKey) return this.answers.soa;
    return owner.answer(qtype);
  }

  /** The wire form of a unit's record answer: prepared once and kept while the unit (and what it chased) lives. */
  prepared(ra: RecordAnswer, source: Source): Answer {
    const cached = preparedCache.get(ra);
    if (cached && cached.source.live) return cached;
    // An answer that resolved names elsewhere in the zone is valid for this version only.
    const src = ra.chase ? this.answers.source : source;
    const a = prepareAnswer(ra, { data: this.data, source: src, chase: ra.chase ? this.chaseLookup : null });
    preparedCache.set(ra, a);
    return a;
  }

  /** Consul's resolveCNAME: what an in-zone name answers to ANY, as records at absolute owners. */
  private readonly chaseLookup: ChaseLookup = (target: string): { records: readonly RR[] } | null => {
    const r = this.resolve(wireKey(target));
    if (!r.inZone || !(r.owner instanceof RecordOwner)) return null;
    const ra = r.owner.rec.byType.get(QTYPE.ANY);
    return ra ? { records: ra.records } : null;
  };

  /** What a name (wire key) resolves to; OUTSIDE when it is in no zone served. */
  private resolve(key: string): { owner: Owner; inZone: boolean } {
    const labels = keyLabels(key);
    const where = this.classify(key, labels);
    if (where === OUT) return { owner: OUTSIDE, inZone: false };
    if (where === ZONE) return { owner: this.resolveZone(labels.slice(0, labels.length - this.domainLabels)), inZone: true };
    return { owner: this.resolveReverse(labels) ?? OUTSIDE, inZone: false };
  }

  private classify(key: string, labels: readonly string[]): number {
    if (key.endsWith(this.domainKey) && (key.length === this.domainKey.length || isLabelBoundary(key, key.length - this.domainKey.length))) {
      return ZONE;
    }
    const n = labels.length;
    if (n >= 2 && labels[n - 1] === 'arpa' && (labels[n - 2] === 'in-addr' || labels[n - 2] === 'ip6')) return REVERSE;
    return OUT;
  }

  /** Consul CE parseLocality: [], [dc], [x, dc|peer] pairs (2 or 4 labels). Returns the DC or null. */
  private parseLocality(suffix: readonly string[]): string | null {
    if (suffix.length === 0) return this.data.localDc;
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
  }

  private owner(rec: OwnerRecords | null | undefined, unit: Unit): RecordOwner | null {
    if (!rec) return null;
    let o = this.owners.get(rec);
    if (!o) this.owners.set(rec, (o = new RecordOwner(this, rec, unit)));
    return o;
  }

  /** An owner synthesised for this query name (`.addr`, PTR): valid for this version. */
  private synthetic(rr: RR, otherwise: OwnerRecords['otherwise'], neg: Negatives | null = null): RecordOwner {
    const a: RecordAnswer = { records: [rr], glue: null, additional: [], shuffle: false, addressLimit: false, chase: null };
    const byType = new Map<number, RecordAnswer>([[TYPE_CODE[rr.type], a], [QTYPE.ANY, a]]);
    return new RecordOwner(this, { byType, otherwise }, this.answers.source, false, neg, true);
  }

  private serviceLookup(parts: readonly string[], suffix: readonly string[], which: 'services' | 'connect'): Owner {
    const dcName = this.parseLocality(suffix);
    const data = dcName === null ? undefined : this.data.dcs.get(dcName);
    if (!data) return this.nx;
    const n = parts.length;
    let svc: string, tag: string;
    if (n === 2 && parts[0]!.startsWith('_') && parts[1]!.startsWith('_')) {
      svc = parts[0]!.slice(1);
      tag = parts[1] === '_tcp' ? '' : parts[1]!.slice(1);
    } else {
      svc = parts[n - 1]!;
      tag = which === 'services' ? parts.slice(0, n - 1).join('.') : '';
    }
    const unit = data[which].get(svc);
    if (!unit) {
      // `_tcp.service.consul` and `_<tag>.service.consul` are empty non-terminals of RFC 2782 names.
      if (this.rfc && n === 1 && svc.startsWith('_')) {
        const t = svc.slice(1);
        if (t === 'tcp' ? data.healthyServices > 0 : data.tags.has(t)) return this.ent;
      }
      return this.nx;
    }
    const owner = this.owner(tag ? unit.byTag.get(tag) : unit.all, unit);
    if (owner) return owner;
    return tag && unit.all && unit.tagSuffixes.has(tag) ? this.ent : this.nx;
  }

  private addrOwner(hex: string): Owner {
    const a = addrFromHex(hex);
    if (!a) return this.nx;
    const ip = a.family === 4 ? [...a.bytes].join('.') : canonicalIp(a.bytes.toString('hex').replace(/(.{4})(?!$)/g, '$1:'));
    return this.synthetic({ owner: AT, type: a.family === 4 ? 'A' : 'AAAA', ttl: this.nodeTtl, data: ip }, 'additional');
  }

  /** Empty non-terminals made of locality labels only: `dc1`, `dc`, `dc1.dc`. */
  private localityEnt(labels: readonly string[]): boolean {
    if (labels.length === 1) return this.data.dcs.has(labels[0]!) || labels[0] === 'dc';
    return labels.length === 2 && labels[1] === 'dc' && this.data.dcs.has(labels[0]!);
  }

  private resolveZone(labels: readonly string[]): Owner {
    if (labels.length === 0) return this.ent;
    // A label holding a "." byte is one label: no name here has one, and joining labels with "."
    // below must not make `a\.b` match the two labels `a.b`.
    if (labels.some((l) => l.includes('.'))) return this.nx;
    let k = -1;
    for (let i = labels.length - 1; i >= 0; i--) {
      if (KINDS.has(labels[i]!)) { k = i; break; }
    }
    if (k < 0) {
      if (this.answers.fallbackNs && labels.length === 1 && labels[0] === 'ns') return this.answers.fallbackNs;
      // RFC 2782 names without the `service` label: `_db._primary.consul` (Consul: SRV queries only).
      for (let i = labels.length - 1; i >= 0; i--) {
        if (labels[i]!.startsWith('_')) {
          const owner = this.serviceLookup(labels.slice(0, i + 1), labels.slice(i + 1), 'services');
          // An empty non-terminal stays one; a name with records answers SRV queries only.
          if (!(owner instanceof RecordOwner)) return owner;
          let o = this.srvOwners.get(owner.rec);
          if (!o) this.srvOwners.set(owner.rec, (o = new RecordOwner(this, owner.rec, owner.source, true)));
          return o;
        }
      }
      return this.rfc && this.localityEnt(labels) ? this.ent : this.nx;
    }
    const parts = labels.slice(0, k);
    const suffix = labels.slice(k + 1);
    const kind = labels[k]!;
    if (parts.length === 0) {
      if (!this.rfc) return this.nx;
      const dcName = kind === 'virtual' ? this.data.localDc : this.parseLocality(suffix);
      const data = dcName === null ? undefined : this.data.dcs.get(dcName);
      if (!data) return this.nx;
      const has = kind === 'service' ? data.healthyServices > 0
        : kind === 'connect' ? data.healthyConnect > 0
        : kind === 'node' ? data.nodes.size > 0
        : kind === 'addr' ? true
        : kind === 'virtual' ? suffix.length === 0 && [...data.connect.values()].some((u) => u.virtual)
        : false;
      return has ? this.ent : this.nx;
    }
    switch (kind) {
      case 'service':
        return this.serviceLookup(parts, suffix, 'services');
      case 'connect':
        return this.serviceLookup(parts.slice(-1), suffix, 'connect');
      case 'node': {
        const dcName = this.parseLocality(suffix);
        const data = dcName === null ? undefined : this.data.dcs.get(dcName);
        if (!data) return this.nx;
        const name = parts.join('.');
        const unit = data.nodes.get(name);
        if (unit) return this.owner(unit.owner, unit)!;
        return this.rfc && data.nodeSuffixes.has(name) ? this.ent : this.nx;
      }
      case 'addr':
        return parts.length === 1 ? this.addrOwner(parts[0]!) : this.nx;
      case 'virtual': {
        // The virtual IP assigned to a service name (Consul's Catalog.VirtualIPForService, local
        // datacenter only; a locality label names a cluster peer, not served): the destination's
        // connect unit holds it. None: Consul answers NOERROR with nothing at all (its dispatch
        // returns no error and no record); rfc mode NXDOMAIN (docs/consul-dns.md §12.12).
        if (suffix.length !== 0) return this.nx;
        const unit = this.data.dcs.get(this.data.localDc)?.connect.get(parts[parts.length - 1]!);
        return (unit && this.owner(unit.virtual, unit)) ?? (this.rfc ? this.nx : this.empty);
      }
      default: // query, ingress: no prepared queries or gateways in the catalog
        return this.nx;
    }
  }

  /**
   * A reverse name's owner, or null when it is in no reverse zone served (REFUSED). Without reverse
   * zones (compat consul, reverse_zones unset) every reverse name is answered, Consul's way.
   */
  private resolveReverse(labels: readonly string[]): Owner | null {
    const z = this.reverseZoneOf(labels);
    if (z === null) return null;
    if (z !== 'all' && labels.length === z.labels) return (z.apexOwner ??= this.reverseApex(z));
    const nx = z === 'all' ? this.nx : z.nx;
    if (labels.some((l) => l.includes('.'))) return nx;
    const name = labels.join('.');
    const target = this.data.ptrTarget(name);
    const neg = z === 'all' ? null : z;
    if (target) return this.synthetic({ owner: AT, type: 'PTR', ttl: this.ptrTtl, data: target }, this.rfc ? 'nodata' : 'any', neg);
    if (!this.data.reverseEnts.has(name)) return nx;
    return z === 'all' ? (this.rfc ? this.ent : this.nx) : z.ent;
  }

  /** The reverse zone a name is in: 'all' (Consul's way), a zone, or null (none served). */
  private reverseZoneOf(labels: readonly string[]): ReverseZone | 'all' | null {
    if (this.configuredReverse === null && !this.rfc) return 'all';
    const apex = enclosingApex(labels, this.configuredReverse ?? this.data.defaultApexes);
    return apex === null ? null : this.reverseZone(apex);
  }

  private reverseZone(apex: string): ReverseZone {
    let z = this.reverseCache.get(apex);
    if (!z) {
      const a = this.answers.reverse(apex);
      z = { ...a, apex, labels: apex.split('.').length, nx: new FixedOwner(a.nxdomain), ent: new FixedOwner(this.rfc ? a.nodata : a.nxdomain) };
      this.reverseCache.set(apex, z);
    }
    return z;
  }

  /** A reverse zone's apex: SOA, NS, ANY (the SOA with its NS, RFC 8482), and a PTR if a /32 apex has one. */
  private reverseApex(z: ReverseZone): Owner {
    const byType = new Map<number, Answer>([[QTYPE.SOA, z.soa], [QTYPE.NS, z.ns], [QTYPE.ANY, z.soa]]);
    const target = this.data.ptrTarget(z.apex);
    if (target) byType.set(QTYPE.PTR, this.synthetic({ owner: AT, type: 'PTR', ttl: this.ptrTtl, data: target }, 'nodata', z).answer(QTYPE.PTR));
    return new TypedOwner(byType, z.nodata);
  }

  /** How many reverse zones are served (null: every reverse name, Consul's way); cheap, unlike reverseZones. */
  get reverseZoneCount(): number | null {
    if (this.configuredReverse === null && !this.rfc) return null;
    return this.configuredReverse ? this.configuredReverse.size : this.data.defaultApexes.size;
  }

  /** The apexes of the reverse zones served, sorted (null: every reverse name, Consul's way). */
  get reverseZones(): readonly string[] | null {
    if (this.configuredReverse === null && !this.rfc) return null;
    return [...(this.configuredReverse ?? this.data.defaultApexes.keys())].sort();
  }
}

/** Prepared wire answers, kept with the records they came from (dropped with them). */
const preparedCache = new WeakMap<RecordAnswer, Answer>();

/** The wire-format name as a latin1 string with ASCII letters lower-cased: a cheap, exact map key. */
export function wireKey(name: string): string {
  const n = name.endsWith('.') ? name.slice(0, -1) : name;
  if (n === '') return '\0';
  let s = '';
  for (const l of n.split('.')) {
    const b = Buffer.from(l.toLowerCase(), 'utf8');
    s += String.fromCharCode(b.length) + b.toString('latin1');
  }
  return s + '\0';
}

/** True when position `at` of a wire key starts a label (walks the length bytes from the start). */
export function isLabelBoundary(key: string, at: number): boolean {
  let i = 0;
  while (i < at) {
    const len = key.charCodeAt(i);
    if (len === 0) return false;
    i += len + 1;
  }
  return i === at;
}

/** Labels of a wire key as strings (UTF-8 decoded), left to right. */
export function keyLabels(key: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < key.length) {
    const len = key.charCodeAt(i);
    if (len === 0) break;
    out.push(Buffer.from(key.slice(i + 1, i + 1 + len), 'latin1').toString('utf8'));
    i += len + 1;
  }
  return out;
}
