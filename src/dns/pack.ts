/**
 * Name compression for the fixed parts of answers (SOA, NS, glue, negative SOA): records are packed
 * once, at zone build time, into a block with pointers relative to the block's start. The response
 * writer copies the block right after the question and adds the block's offset to each pointer
 * (`relocs`). dns-packet does not compress, so this is the one place names are compressed.
 */
import { isIP } from 'node:net';
import { ipBytes } from '../zone/ip.js';

export interface PackedBlock {
  readonly bytes: Buffer;
  /** Offsets of 2-byte pointers in `bytes` whose 14-bit value is relative to the block start. */
  readonly relocs: Uint16Array;
  readonly an: number;
  readonly ns: number;
  readonly ar: number;
}

export type PackRecord =
  | { readonly owner: string; readonly type: 'SOA'; readonly ttl: number; readonly data: { mname: string; rname: string; serial: number; refresh: number; retry: number; expire: number; minimum: number } }
  | { readonly owner: string; readonly type: 'NS' | 'PTR' | 'CNAME'; readonly ttl: number; readonly data: string }
  | { readonly owner: string; readonly type: 'A' | 'AAAA'; readonly ttl: number; readonly data: string };

const TYPE = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, AAAA: 28 } as const;
/** A block always follows the question, so block offsets stay far below the 14-bit pointer limit. */
const MAX_BLOCK = 8192;

class Packer {
  private buf = Buffer.allocUnsafe(512); // only the bytes written are read back
  len = 0;
  private readonly dict = new Map<string, number>();
  readonly relocs: number[] = [];

  private ensure(n: number): void {
    if (this.len + n > MAX_BLOCK) throw new RangeError('packed block too large');
    if (this.len + n > this.buf.length) {
      const b = Buffer.allocUnsafe(Math.min(MAX_BLOCK, this.buf.length * 2 + n));
      this.buf.copy(b, 0, 0, this.len);
      this.buf = b;
    }
  }
  u8(v: number) { this.ensure(1); this.buf[this.len++] = v; }
  u16(v: number) { this.ensure(2); this.buf.writeUInt16BE(v, this.len); this.len += 2; }
  u32(v: number) { this.ensure(4); this.buf.writeUInt32BE(v >>> 0, this.len); this.len += 4; }
  raw(b: Uint8Array) { this.ensure(b.length); this.buf.set(b, this.len); this.len += b.length; }
  at(off: number, v: number) { this.buf.writeUInt16BE(v, off); }

  /** Writes a name, pointing at the longest suffix already written (case-insensitive match). */
  name(n: string): void {
    const labels = n.replace(/\.$/, '').split('.').filter((l) => l !== '');
    // Lower-case suffixes, built right to left: suffixes[i] is labels i.. joined.
    const suffixes = new Array<string>(labels.length);
    for (let i = labels.length - 1; i >= 0; i--) {
      const l = labels[i]!.toLowerCase();
      suffixes[i] = i === labels.length - 1 ? l : `${l}.${suffixes[i + 1]!}`;
    }
    for (let i = 0; i < labels.length; i++) {
      const suffix = suffixes[i]!;
      const at = this.dict.get(suffix);
      if (at !== undefined) {
        this.relocs.push(this.len);
        this.u16(0xc000 | at);
        return;
      }
      this.dict.set(suffix, this.len);
      const b = Buffer.from(labels[i]!, 'utf8');
      if (b.length === 0 || b.length > 63) throw new RangeError(`invalid label in ${n}`);
      this.u8(b.length);
      this.raw(b);
    }
    this.u8(0);
  }

  record(r: PackRecord): void {
    this.name(r.owner);
    this.u16(TYPE[r.type]);
    this.u16(1);
    this.u32(r.ttl);
    const rdlenAt = this.len;
    this.u16(0);
    const start = this.len;
    switch (r.type) {
      case 'SOA':
        this.name(r.data.mname);
        this.name(r.data.rname);
        for (const v of [r.data.serial, r.data.refresh, r.data.retry, r.data.expire, r.data.minimum]) this.u32(v);
        break;
      case 'NS': case 'PTR': case 'CNAME':
        this.name(r.data);
        break;
      case 'A': case 'AAAA':
        if (isIP(r.data) !== (r.type === 'A' ? 4 : 6)) throw new RangeError(`not an ${r.type} address: ${r.data}`);
        this.raw(ipBytes(r.data));
        break;
    }
    this.at(rdlenAt, this.len - start);
  }

  bytes(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.len));
  }
}

/** Packs answer, authority and additional records into one compressed, relocatable block. */
export function packBlock(an: readonly PackRecord[], ns: readonly PackRecord[], ar: readonly PackRecord[]): PackedBlock {
  const p = new Packer();
  for (const r of [...an, ...ns, ...ar]) p.record(r);
  return { bytes: p.bytes(), relocs: Uint16Array.from(p.relocs), an: an.length, ns: ns.length, ar: ar.length };
}

/**
 * The block with the root owner of its first record replaced by `owner` (an uncompressed wire
 * name), its pointers moved along: one packed template serves many owners (the negative SOA of
 * each reverse zone). Names in the template never point at its root owner, which has no labels.
 */
export function withFirstOwner(block: PackedBlock, owner: Buffer): PackedBlock {
  if (block.bytes[0] !== 0) throw new RangeError('the first owner of the template is not the root');
  const delta = owner.length - 1;
  const bytes = Buffer.concat([owner, block.bytes.subarray(1)]);
  if (bytes.length > MAX_BLOCK) throw new RangeError('packed block too large');
  const relocs = new Uint16Array(block.relocs.length);
  for (let i = 0; i < relocs.length; i++) {
    const at = block.relocs[i]! + delta;
    relocs[i] = at;
    const target = (((bytes[at]! & 0x3f) << 8) | bytes[at + 1]!) + delta;
    bytes.writeUInt16BE(0xc000 | target, at);
  }
  return { bytes, relocs, an: block.an, ns: block.ns, ar: block.ar };
}

/** Copies a block to `out` at `base`, turning its block-relative pointers into message offsets. */
export function writeBlock(block: PackedBlock, out: Buffer, base: number): number {
  out.set(block.bytes, base);
  for (let i = 0; i < block.relocs.length; i++) {
    const at = base + block.relocs[i]!;
    const target = (((out[at]! & 0x3f) << 8) | out[at + 1]!) + base;
    out[at] = 0xc0 | (target >> 8);
    out[at + 1] = target & 0xff;
  }
  return base + block.bytes.length;
}
