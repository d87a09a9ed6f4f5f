/**
 * `alt_domain` (Consul's option of the same name): a second domain answered exactly like the
 * primary one. `web.service.example.internal` is answered like `web.service.consul`, and every name
 * in the answer that is under the primary domain (owners, SRV, CNAME, NS and PTR targets, SOA MNAME
 * and RNAME, glue owners) is written under the alt domain instead. Reverse names are not under
 * either domain, so PTR answers keep the primary domain, as in Consul.
 *
 * Where the rewrite happens: on the prepared Answer (its wire fragments), not on a finished reply.
 * The alt form of a prepared answer is made once and kept with it (a WeakMap keyed by the primary
 * Answer, which the zone replaces when its records change), and the response writer then shuffles,
 * trims, truncates and caches it exactly as a primary answer, with the real sizes of the alt names.
 * A cached alt reply is keyed by the question bytes (which hold the alt name) and carries the
 * primary answer's liveness slot and generation, so it goes stale with the records it came from.
 *
 * Cost: nothing on the primary path. Only a name the zone refuses can be under the alt domain (the
 * two domains do not nest, see altDomainProblem in config.ts), so the handler asks here on the REFUSED path only.
 */
import { isLabelBoundary, type Answer, type WireUnit, type Zone } from '../zone/zone.js';
import type { PackedBlock } from './pack.js';
import { QTYPE, nameToWire } from './wire.js';

const TYPE_SOA = QTYPE.SOA, TYPE_SRV = QTYPE.SRV, TYPE_MX = QTYPE.MX;
/** RR types whose RDATA is one domain name (RFC 1035 §3.3; DNAME, RFC 6672). */
const NAME_RDATA = new Set<number>([QTYPE.NS, QTYPE.CNAME, QTYPE.PTR, 39]);

/**
 * Names of one domain rewritten under another: `from` and `to` are uncompressed wire names (lower
 * case). A name is rewritten when it ends with `from` at a label boundary, compared ASCII
 * case-insensitively (RFC 4343).
 */
export class SuffixRewrite {
  constructor(readonly from: Buffer, readonly to: Buffer) {}

  /**
   * The name at `src[off]` (uncompressed; a compression pointer only as `allowPointer`, copied as is),
   * rewritten, appended to `out`. Returns the offset after the name in `src`.
   */
  name(src: Buffer, off: number, out: Chunks, allowPointer = false): number {
    const from = this.from;
    let p = off;
    let cut = -1;
    for (;;) {
      if (p >= src.length) throw new RangeError('name runs past the end of the record');
      const len = src[p]!;
      if ((len & 0xc0) === 0xc0) {
        if (!allowPointer || p !== off) throw new RangeError('unexpected compression pointer in a prepared record');
        out.push(src.subarray(off, off + 2));
        return off + 2;
      }
      if (len > 63) throw new RangeError('invalid label length');
      if (cut < 0 && src.length - p >= from.length && sameName(src, p, from)) cut = p;
      if (len === 0) break;
      p += len + 1;
    }
    const end = p + 1;
    // A name that would grow past 255 bytes keeps the primary domain: still a true, resolvable name.
    if (cut < 0 || (cut - off) + this.to.length > 255) out.push(src.subarray(off, end));
    else {
      out.push(src.subarray(off, cut));
      out.push(this.to);
    }
    return end;
  }

  /**
   * One record with its names rewritten: `withOwner` for a complete RR (owner, then TYPE..RDATA),
   * else the TYPE..RDATA tail of a glue record. Returns the bytes and where its RDATA starts.
   */
  record(src: Buffer, withOwner: boolean): { bytes: Buffer; rdataAt: number } {
    const out = new Chunks();
    const o = withOwner ? this.name(src, 0, out, true) : 0;
    if (o + 10 > src.length) throw new RangeError('record shorter than its fixed fields');
    const type = src.readUInt16BE(o);
    const rdlen = src.readUInt16BE(o + 8);
    const rd = o + 10, rdEnd = rd + rdlen;
    if (rdEnd !== src.length) throw new RangeError('RDLENGTH does not match the record');
    out.push(src.subarray(o, o + 8));
    const lenAt = out.length;
    out.push(Buffer.alloc(2)); // RDLENGTH, set below
    const rdataAt = out.length;
    let p = rd;
    if (NAME_RDATA.has(type)) p = this.name(src, p, out);
    else if (type === TYPE_SOA) {
      p = this.name(src, p, out);
      p = this.name(src, p, out);
      out.push(src.subarray(p, p + 20));
      p += 20;
    } else if (type === TYPE_SRV || type === TYPE_MX) {
      const fixed = type === TYPE_SRV ? 6 : 2;
      out.push(src.subarray(p, p + fixed));
      p = this.name(src, p + fixed, out);
    } else {
      out.push(src.subarray(rd, rdEnd));
      p = rdEnd;
    }
    if (p !== rdEnd) throw new RangeError('RDATA does not match its type');
    const bytes = out.concat();
    bytes.writeUInt16BE(bytes.length - rdataAt, lenAt);
    return { bytes, rdataAt };
  }

  /**
   * A packed block (pack.ts) with its names rewritten and compressed again: the records are read
   * with their block-relative pointers followed, renamed, and packed the way pack.ts packs them.
   */
  block(b: PackedBlock): PackedBlock {
    const src = b.bytes;
    const w = new BlockWriter();
    let o = 0;
    for (let i = b.an + b.ns + b.ar; i > 0; i--) {
      let name: Buffer;
      ({ name, end: o } = readName(src, o));
      w.name(this.whole(name));
      const type = src.readUInt16BE(o);
      const rdlen = src.readUInt16BE(o + 8);
      w.raw(src.subarray(o, o + 8));
      const lenAt = w.len;
      w.u16(0); // RDLENGTH, set below
      const start = w.len;
      let p = o + 10;
      const rdEnd = p + rdlen;
      if (NAME_RDATA.has(type) || type === TYPE_SOA) {
        for (let k = type === TYPE_SOA ? 2 : 1; k > 0; k--) {
          ({ name, end: p } = readName(src, p));
          w.name(this.whole(name));
        }
        w.raw(src.subarray(p, rdEnd));
      } else {
        w.raw(src.subarray(p, rdEnd));
      }
      w.u16At(lenAt, w.len - start);
      o = rdEnd;
    }
    if (o !== src.length) throw new RangeError('packed block longer than its records');
    return { bytes: w.bytes(), relocs: Uint16Array.from(w.relocs), an: b.an, ns: b.ns, ar: b.ar };
  }

  /** An uncompressed name, rewritten. */
  whole(name: Buffer): Buffer {
    const out = new Chunks();
    this.name(name, 0, out);
    return out.concat();
  }
}

/** Compares the wire name at `src[at]` with the lower-case wire name `lower` (ASCII case-insensitive). */
function sameName(src: Buffer, at: number, lower: Buffer): boolean {
  for (let i = 0; i < lower.length; i++) {
    let c = src[at + i]!;
    if (c >= 0x41 && c <= 0x5a) c |= 0x20;
    if (c !== lower[i]) return false;
  }
  return true;
}

/** Reads a possibly compressed name of a packed block (pointers relative to the block), uncompressed. */
function readName(src: Buffer, off: number): { name: Buffer; end: number } {
  const parts: Buffer[] = [];
  let p = off, end = -1, hops = 0;
  for (;;) {
    if (p >= src.length) throw new RangeError('name runs past the end of the block');
    const len = src[p]!;
    if ((len & 0xc0) === 0xc0) {
      if (end < 0) end = p + 2;
      if (++hops > 64) throw new RangeError('compression loop');
      p = ((len & 0x3f) << 8) | src[p + 1]!;
      continue;
    }
    parts.push(src.subarray(p, p + 1 + len));
    if (len === 0) break;
    p += len + 1;
  }
  return { name: Buffer.concat(parts), end: end < 0 ? p + 1 : end };
}

/** Buffers to concatenate once. */
class Chunks {
  private readonly parts: Buffer[] = [];
  length = 0;
  push(b: Buffer): void {
    this.parts.push(b);
    this.length += b.length;
  }
  concat(): Buffer {
    return Buffer.concat(this.parts, this.length);
  }
}

/** Writes a packed block: names compressed against the longest suffix already written (as pack.ts does). */
class BlockWriter {
  /** As pack.ts: a block follows the question, so its offsets stay far below the 14-bit pointer limit. */
  private readonly buf = Buffer.alloc(8192);
  len = 0;
  private readonly dict = new Map<string, number>();
  readonly relocs: number[] = [];

  raw(b: Uint8Array): void {
    if (this.len + b.length > this.buf.length) throw new RangeError('packed block too large');
    this.buf.set(b, this.len);
    this.len += b.length;
  }

  u16(v: number): void {
    if (this.len + 2 > this.buf.length) throw new RangeError('packed block too large');
    this.buf.writeUInt16BE(v, this.len);
    this.len += 2;
  }

  u16At(at: number, v: number): void {
    this.buf.writeUInt16BE(v, at);
  }

  name(n: Buffer): void {
    let p = 0;
    while (n[p] !== 0) {
      const key = n.toString('latin1', p).toLowerCase();
      const at = this.dict.get(key);
      if (at !== undefined) {
        this.relocs.push(this.len);
        this.u16(0xc000 | at);
        return;
      }
      this.dict.set(key, this.len);
      const l = n[p]!;
      this.raw(n.subarray(p, p + 1 + l));
      p += l + 1;
    }
    this.raw(n.subarray(p, p + 1));
  }

  bytes(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.len));
  }
}

/** The wire-format key of a name (zone.ts wireKey form: lower case, latin1), for canonical ASCII names. */
function keyOf(name: string): string {
  return nameToWire(name).toString('latin1');
}

/**
 * The alt domain of one handler: maps alt-domain question keys to the primary domain and keeps the
 * alt form of every prepared answer it has served (see the top of this file).
 */
export class AltDomain {
  readonly name: string;
  private readonly key: string;
  private readonly wire: Buffer;
  /** The primary domain the state below was made for (the zone's; a reload may change it). */
  private domain = '';
  private domainKey = '';
  private rewrite: SuffixRewrite | null = null;
  private answers = new WeakMap<Answer, Answer>();

  constructor(name: string) {
    this.name = name;
    this.wire = nameToWire(name);
    this.key = this.wire.toString('latin1');
  }

  /**
   * The alt-domain answer for a question key (parseQuery's `key`) the zone refused, or null when
   * the name is not under the alt domain either (REFUSED).
   */
  answer(zone: Zone, key: string, qtype: number): Answer | null {
    const ak = this.key;
    if (!key.endsWith(ak)) return null;
    const cut = key.length - ak.length;
    if (cut > 0 && !isLabelBoundary(key, cut)) return null;
    if (zone.domain !== this.domain) this.reset(zone.domain);
    const primary = key.slice(0, cut) + this.domainKey;
    // A name that would be longer than 255 bytes under the primary domain is in no answer of it.
    const a = primary.length > 255 ? zone.answers.nxdomain : zone.answer(primary, qtype);
    return a && this.of(a);
  }

  /** The alt form of a prepared answer (of the zone `reset` was last called for): made once, kept while the answer is. */
  private of(a: Answer): Answer {
    let alt = this.answers.get(a);
    if (!alt) {
      const r = this.rewrite!;
      const tails = (list: readonly Buffer[], withOwner: boolean) => list.map((b) => r.record(b, withOwner).bytes);
      alt = {
        ...a,
        units: a.units.map((u): WireUnit => {
          const { bytes, rdataAt } = r.record(u.rr, true);
          return {
            rr: bytes,
            // SRV: the target follows priority, weight and port.
            targetAt: u.targetAt < 0 ? -1 : rdataAt + 6,
            glueId: u.glueId,
            glueOwner: u.glueOwner && r.whole(u.glueOwner),
            glue: tails(u.glue, false),
          };
        }),
        authority: tails(a.authority, true),
        additional: tails(a.additional, true),
        ...(a.packed ? { packed: r.block(a.packed) } : {}),
      };
      this.answers.set(a, alt);
    }
    return alt;
  }

  private reset(domain: string): void {
    this.domain = domain;
    this.domainKey = keyOf(domain);
    this.rewrite = new SuffixRewrite(nameToWire(domain), this.wire);
    this.answers = new WeakMap();
  }
}
