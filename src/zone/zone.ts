/**
 * The zone: immutable, versioned, with every answer prepared as wire fragments at build time.
 * Query time is: name lookup (memoised) -> Answer -> the response writer shuffles/trims and copies.
 */
import { LRUCache } from 'lru-cache';
import type { PackedBlock } from '../dns/pack.js';

/** One answer record plus the additional records it brings (SRV glue). */
export interface Unit {
  /** The complete answer RR; its owner is the question name (compressed to 0xC00C). */
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

export interface Answer {
  readonly rcode: number;
  readonly units: readonly Unit[];
  /** Shuffle units per response (service answers). */
  readonly shuffle: boolean;
  /** a_record_limit applies (service A/AAAA/ANY answers). */
  readonly addressLimit: boolean;
  /** Complete RRs (uncompressed owners). Dropped first when space runs out. */
  readonly authority: readonly Buffer[];
  /**
   * Complete RRs whose loss does not make the answer incomplete (meta TXT, NS glue, .addr records
   * for other qtypes). Owners are uncompressed or the question pointer 0xC00C.
   */
  readonly additional: readonly Buffer[];
  /**
   * The whole answer (answer, authority, additional) as one compressed block, for answers with no
   * shuffled units (SOA, NS, negative). Used whenever it fits; else the records above are trimmed.
   */
  readonly packed?: PackedBlock;
}

/** What a name resolves to: one prepared Answer per qtype. */
export interface Owner {
  answer(qtype: number): Answer;
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

/** An owner whose answers are prepared when first asked for (then kept, like the others). */
export class LazyOwner implements Owner {
  private owner: Owner | null = null;
  constructor(private prepare: (() => Owner) | null) {}
  answer(qtype: number): Answer {
    if (this.owner === null) {
      this.owner = this.prepare!();
      this.prepare = null;
    }
    return this.owner.answer(qtype);
  }
}

/**
 * Resolves a canonical in-zone or reverse name (labels, left to right, lower case) to an Owner, or
 * to null for a reverse name in no reverse zone served.
 */
export type Resolver = (labels: readonly string[], kind: 'zone' | 'reverse') => Owner | null;

export interface ZoneParts {
  readonly serial: number;
  readonly domain: string;
  readonly contentHash: string;
  readonly soa: Answer;
  readonly ns: Answer;
  readonly resolve: Resolver;
  readonly stats: { readonly names: number; readonly records: number };
  /** ANY at the apex answers the SOA with its NS (rfc mode); else it goes to the resolver. */
  readonly apexAnyIsSoa: boolean;
  /** Apexes of the reverse zones served; null: every reverse name (Consul's way). */
  readonly reverseZones: readonly string[] | null;
}

const ZONE = 1, REVERSE = 2, OUT = 0;
const QTYPE_SOA = 6, QTYPE_NS = 2, QTYPE_ANY = 255;

interface Entry {
  /** null: outside the zone and every reverse zone served (REFUSED). */
  readonly owner: Owner | null;
  readonly inZone: boolean;
}

const OUTSIDE: Entry = { owner: null, inZone: false };

export class Zone {
  readonly serial: number;
  readonly domain: string;
  readonly contentHash: string;
  readonly soa: Answer;
  readonly ns: Answer;
  readonly stats: { readonly names: number; readonly records: number };
  readonly reverseZones: readonly string[] | null;
  private readonly resolve: Resolver;
  private readonly apexAnyIsSoa: boolean;
  private readonly domainKey: string;
  private readonly domainLabels: number;
  private readonly memo: LRUCache<string, Entry>;

  constructor(p: ZoneParts, memoSize = 50_000) {
    this.serial = p.serial;
    this.domain = p.domain;
    this.contentHash = p.contentHash;
    this.soa = p.soa;
    this.ns = p.ns;
    this.stats = p.stats;
    this.resolve = p.resolve;
    this.apexAnyIsSoa = p.apexAnyIsSoa;
    this.reverseZones = p.reverseZones;
    this.domainKey = wireKey(p.domain);
    this.domainLabels = p.domain.split('.').length;
    this.memo = new LRUCache({ max: memoSize });
  }

  /**
   * The prepared answer for a question name given as its wire-format key (see wireKey: lower case,
   * latin1) and a qtype, or null when the name is outside the zone and every reverse zone served
   * (REFUSED). Consul answers SOA and NS queries for any name in its domain with the apex records;
   * reverse names are not in the domain: a reverse zone's apex answers its own SOA and NS.
   */
  answer(key: string, qtype: number): Answer | null {
    const e = this.memo.get(key) ?? this.entry(key);
    if (e.owner === null) return null;
    if (e.inZone && (qtype === QTYPE_SOA || qtype === QTYPE_NS)) return qtype === QTYPE_SOA ? this.soa : this.ns;
    // ANY at the apex: the SOA with the NS records (a subset, as RFC 8482 allows).
    if (qtype === QTYPE_ANY && this.apexAnyIsSoa && key === this.domainKey) return this.soa;
    return e.owner.answer(qtype);
  }

  private entry(key: string): Entry {
    const labels = keyLabels(key);
    const where = this.classify(key, labels);
    if (where === OUT) return OUTSIDE;
    let e: Entry;
    if (where === ZONE) {
      e = { owner: this.resolve(labels.slice(0, labels.length - this.domainLabels), 'zone'), inZone: true };
    } else {
      const owner = this.resolve(labels, 'reverse');
      e = owner ? { owner, inZone: false } : OUTSIDE; // remembered: finding the zone took some work
    }
    this.memo.set(key, e);
    return e;
  }

  private classify(key: string, labels: readonly string[]): number {
    if (key.endsWith(this.domainKey) && (key.length === this.domainKey.length || isLabelBoundary(key, key.length - this.domainKey.length))) {
      return ZONE;
    }
    const n = labels.length;
    if (n >= 2 && labels[n - 1] === 'arpa' && (labels[n - 2] === 'in-addr' || labels[n - 2] === 'ip6')) return REVERSE;
    return OUT;
  }
}

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
function isLabelBoundary(key: string, at: number): boolean {
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
