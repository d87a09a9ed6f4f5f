/**
 * The zone: immutable, versioned, with every answer prepared as wire fragments at build time.
 * Query time is: name lookup (memoised) -> Answer -> the response writer shuffles/trims and copies.
 */
import { cacheBudget } from '../cache-budget.js';
import type { PackedBlock } from '../dns/pack.js';
import { RingTable, hashString, type RingTableStats } from '../ring-table.js';

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
  /**
   * Made by the resolver for one name at lookup time (a `.addr` name's records): the name memo
   * does not keep it, so the memo only ever refers to owners built with the zone.
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
  constructor(private readonly byType: ReadonlyMap<number, Answer>, private readonly other: Answer, readonly perName = false) {}
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
/** Name memo flag: the name is in the zone (not in a reverse tree). */
const IN_ZONE = 1;
/**
 * Name memo index sizing: one slot per this many budget bytes. An entry is a 16-byte header and
 * the name (10-60 bytes); a slot is 18 bytes (RingTable's 10 + a reference to the owner).
 */
const MEMO_BYTES_PER_SLOT = 64;

/** The memo's entry for a reverse name in no reverse zone served (REFUSED). */
const OUTSIDE: Owner = { answer: () => { throw new Error('OUTSIDE has no answers'); } };

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
  /**
   * Names already resolved (key -> owner, in-zone flag), in a RingTable of the name memo's part of
   * response_cache_mb (cache-budget.ts): no per-name JavaScript objects, only the name's bytes and a
   * reference to an owner that the zone holds anyway.
   */
  private readonly memo: RingTable<Owner>;

  constructor(p: ZoneParts, memoBytes = cacheBudget(64 * 1024 * 1024).names) {
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
    this.memo = new RingTable<Owner>({ bytes: memoBytes, bytesPerSlot: MEMO_BYTES_PER_SLOT, values: true });
  }

  /** The name memo's own accounting: memory held (never above `limit`), entries, evictions. */
  memoStats(): RingTableStats {
    return this.memo.stats();
  }

  /**
   * The prepared answer for a question name given as its wire-format key (see wireKey: lower case,
   * latin1) and a qtype, or null when the name is outside the zone and every reverse zone served
   * (REFUSED). Consul answers SOA and NS queries for any name in its domain with the apex records;
   * reverse names are not in the domain: a reverse zone's apex answers its own SOA and NS.
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
      const labels = keyLabels(key);
      const where = this.classify(key, labels);
      if (where === OUT) return null;
      inZone = where === ZONE;
      // A reverse name in no reverse zone served is remembered too: finding the zone took some work.
      owner = (inZone ? this.resolve(labels.slice(0, labels.length - this.domainLabels), 'zone') : this.resolve(labels, 'reverse')) ?? OUTSIDE;
      if (!owner.perName) memo.addString(key, h, 0, 0, inZone ? IN_ZONE : 0, 0, owner);
    }
    if (owner === OUTSIDE) return null;
    if (inZone && (qtype === QTYPE_SOA || qtype === QTYPE_NS)) return qtype === QTYPE_SOA ? this.soa : this.ns;
    // ANY at the apex: the SOA with the NS records (a subset, as RFC 8482 allows).
    if (qtype === QTYPE_ANY && this.apexAnyIsSoa && key === this.domainKey) return this.soa;
    return owner.answer(qtype);
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
