/**
 * Resource records: the truth the zone is made of. Every answer, listing, hash and diff is computed
 * from these; the wire bytes the query path copies are prepared from them (see prepare.ts).
 *
 * Names are canonical inside (lower case, no trailing dot). An answer-section record whose owner is
 * the name being answered uses the owner `@` (as in zone files): the same record then serves every
 * spelling of that name (the local datacenter with and without its label, the question's case).
 */
import { createHash } from 'node:crypto';

export type RRType = 'A' | 'AAAA' | 'CNAME' | 'NS' | 'PTR' | 'SOA' | 'SRV' | 'TXT';

export interface SrvData {
  readonly priority: number;
  readonly weight: number;
  readonly port: number;
  readonly target: string;
}

export interface SoaData {
  readonly mname: string;
  readonly rname: string;
  readonly serial: number;
  readonly refresh: number;
  readonly retry: number;
  readonly expire: number;
  readonly minimum: number;
}

export type RR =
  | { readonly owner: string; readonly type: 'A' | 'AAAA' | 'CNAME' | 'NS' | 'PTR'; readonly ttl: number; readonly data: string }
  | { readonly owner: string; readonly type: 'SRV'; readonly ttl: number; readonly data: SrvData }
  | { readonly owner: string; readonly type: 'SOA'; readonly ttl: number; readonly data: SoaData }
  | { readonly owner: string; readonly type: 'TXT'; readonly ttl: number; readonly data: readonly Buffer[] };

/** The owner of records at the name being answered. */
export const AT = '@';

export const TYPE_CODE: Readonly<Record<RRType, number>> = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, TXT: 16, AAAA: 28, SRV: 33 };

/** TXT character-string in presentation form (RFC 1035 §5.1): quoted, `"` and `\` escaped, non-printables as \DDD. */
function txtText(b: Buffer): string {
  let s = '"';
  for (const c of b) {
    if (c === 0x22 || c === 0x5c) s += `\\${String.fromCharCode(c)}`;
    else if (c < 0x20 || c > 0x7e) s += `\\${String(c).padStart(3, '0')}`;
    else s += String.fromCharCode(c);
  }
  return `${s}"`;
}

export function rdataText(rr: RR): string {
  switch (rr.type) {
    case 'SRV': return `${rr.data.priority} ${rr.data.weight} ${rr.data.port} ${rr.data.target}.`;
    case 'SOA': {
      const d = rr.data;
      return `${d.mname}. ${d.rname}. ${d.serial} ${d.refresh} ${d.retry} ${d.expire} ${d.minimum}`;
    }
    case 'TXT': return rr.data.map(txtText).join(' ');
    case 'CNAME': case 'NS': case 'PTR': return `${rr.data}.`;
    default: return rr.data;
  }
}

/** A record as a zone-file line, its `@` owner replaced by `owner`. */
export function rrText(rr: RR, owner = rr.owner): string {
  const o = rr.owner === AT ? owner : rr.owner;
  return `${o === '' ? '' : o}. ${rr.ttl} IN ${rr.type} ${rdataText(rr)}`;
}

/**
 * A streaming 128-bit hash of record content (4 independent 32-bit Murmur3-style lanes with
 * different seeds and key multipliers), fed field by field so no text is built. It detects changes
 * of content; it is not meant to resist an adversary who controls the catalog (who controls the zone
 * anyway).
 */
export class ContentHasher {
  private h0 = 0x9747b28c;
  private h1 = 0x85ebca6b;
  private h2 = 0xc2b2ae35;
  private h3 = 0x27d4eb2f;
  private n = 0;

  private mix(k0: number): void {
    this.n++;
    this.h0 = lane(this.h0, k0, 0xcc9e2d51);
    this.h1 = lane(this.h1, k0, 0x1b873593);
    this.h2 = lane(this.h2, k0 ^ 0x5bd1e995, 0xcc9e2d51);
    this.h3 = lane(this.h3, k0 ^ 0x68e31da4, 0x1b873593);
  }

  str(s: string): this {
    for (let i = 0; i < s.length; i += 2) this.mix(s.charCodeAt(i) | (i + 1 < s.length ? s.charCodeAt(i + 1) << 16 : 0));
    this.mix(0xfffe0000 | s.length); // a separator that no pair of UTF-16 units produces
    return this;
  }

  num(v: number): this {
    this.mix(v >>> 0);
    this.mix(0xfffd0000 | Math.floor(v / 0x100000000));
    return this;
  }

  bytes(b: Uint8Array): this {
    for (let i = 0; i < b.length; i++) this.mix(0xff000000 | b[i]!);
    this.mix(0xfffc0000 | b.length);
    return this;
  }

  /** Finalised lanes (Murmur3's fmix32, with the length folded in). */
  digest(): Uint32Array {
    const out = new Uint32Array(LANES);
    const hs = [this.h0, this.h1, this.h2, this.h3];
    for (let i = 0; i < LANES; i++) {
      let h = hs[i]! ^ this.n;
      h ^= h >>> 16; h = Math.imul(h, 0x85ebca6b);
      h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35);
      h ^= h >>> 16;
      out[i] = h >>> 0;
    }
    return out;
  }

  /** Feeds one record (its owner as given: `@` stands for the name being hashed). */
  record(r: RR): this {
    this.str(r.owner).num(TYPE_CODE[r.type]).num(r.ttl);
    switch (r.type) {
      case 'SRV': return this.num(r.data.priority).num(r.data.weight).num(r.data.port).str(r.data.target);
      case 'SOA': {
        const d = r.data;
        return this.str(d.mname).str(d.rname).num(d.serial).num(d.refresh).num(d.retry).num(d.expire).num(d.minimum);
      }
      case 'TXT':
        this.num(r.data.length);
        for (const b of r.data) this.bytes(b);
        return this;
      default: return this.str(r.data);
    }
  }
}

const LANES = 4;

/** One Murmur3 round of a lane. */
function lane(h: number, k0: number, c: number): number {
  let k = Math.imul(k0, c);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/**
 * An order-free hash of a set of parts (units): the lane-wise sum mod 2^32 of each part's hash, so a
 * part can be added or removed in O(1) and equal content gives an equal hash whatever the order.
 */
export class ZoneHash {
  private readonly lanes = new Uint32Array(LANES);

  add(h: Uint32Array): void {
    for (let i = 0; i < LANES; i++) this.lanes[i] = (this.lanes[i]! + h[i]!) >>> 0;
  }

  remove(h: Uint32Array): void {
    for (let i = 0; i < LANES; i++) this.lanes[i] = (this.lanes[i]! - h[i]!) >>> 0;
  }

  /** The hex digest combined with `extra` (zone-wide parameters such as the SOA timers). */
  hex(extra = ''): string {
    const h = createHash('sha256');
    h.update(Buffer.from(this.lanes.buffer, this.lanes.byteOffset, LANES * 4));
    h.update(extra);
    return h.digest('hex');
  }
}
