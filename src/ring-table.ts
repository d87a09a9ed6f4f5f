/**
 * RingTable: a hash table of byte-string keys whose memory is fixed by a byte budget and holds no
 * per-entry JavaScript objects, so what it uses is what it reports and the garbage collector has
 * nothing to trace or collect per entry. The response cache (dns/response-cache.ts) and the zone's
 * name memo (zone/zone.ts) are built on it.
 *
 * - Entries live back to back in an arena of segments (allocated on first use, each its own
 *   allocation, never a slice of Buffer's shared pool):
 *     [entry size u32][hash i32][key length u16][len u16][flags u8][aux u8][0 u16][key][body]
 *   The owner of the table gives len, flags, aux and the body their meaning.
 * - An index with linear probing finds them: per slot a hash (Int32), a segment number + 1
 *   (Uint16, 0 = empty) and an offset (Int32): SLOT_BYTES. With `values`, a JavaScript array
 *   parallel to the slots keeps one reference per entry (8 bytes a slot) to objects that live
 *   elsewhere (the zone's owners).
 * - The arena is written as a ring: when the write head moves into a segment, every entry that
 *   segment held is evicted (FIFO by segment). The index is never more than MAX_LOAD full: when it
 *   is, the head moves on early.
 */

export const ENTRY_HEADER = 16;
/** Index bytes per slot without values: Int32 hash + Uint16 segment + Int32 offset. */
export const SLOT_BYTES = 10;
/** Extra index bytes per slot with values: one tagged pointer in a JavaScript array. */
export const VALUE_SLOT_BYTES = 8;
const MAX_LOAD = 0.75;
const SEGMENT_MAX = 128 * 1024;
const MIN_SEGMENT = 1024;
const MIN_SEGMENTS = 16;
const MAX_SEGMENTS = 65535;
const MAX_SLOTS = 1 << 26;
const EMPTY = Buffer.alloc(0);

export interface RingTableStats {
  /** Memory held: allocated segments + index. Never above `limit`. */
  readonly bytes: number;
  readonly limit: number;
  readonly entries: number;
  /** Bytes of the entries in the arena (<= the allocated segments). */
  readonly entryBytes: number;
  readonly inserts: number;
  /** Entries dropped to make room (not counting clear()). */
  readonly evictions: number;
}

/** FNV-1a over `b[start, end)` with a final mix, as the index uses the low bits. */
export function hashBytes(b: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x45d9f3b);
  return h ^ (h >>> 16);
}

/** hashBytes of a latin1 string's bytes. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x45d9f3b);
  return h ^ (h >>> 16);
}

export class RingTable<V = never> {
  readonly limit: number;
  readonly segmentSize: number;
  private readonly nSeg: number;
  private readonly segs: Buffer[];
  private readonly segEnd: Int32Array;
  private allocated = 0;
  private hs = 0;
  private ho = 0;

  private readonly mask: number;
  private readonly maxEntries: number;
  private readonly slotBytes: number;
  private readonly slotHash: Int32Array;
  private readonly slotSeg: Uint16Array;
  private readonly slotOff: Int32Array;
  private readonly values: Array<V | undefined> | null;

  private count = 0;
  private liveBytes = 0;
  private inserts = 0;
  private evictions = 0;

  /** The entry found by the last successful find or made by the last add: segment and fields. */
  seg: Buffer = EMPTY;
  /** Offset of the entry's body in `seg`. */
  body = 0;
  len = 0;
  flags = 0;
  aux = 0;
  value: V | undefined = undefined;

  /**
   * `bytes`: the table's whole budget (index + arena). `bytesPerSlot`: budget bytes per index slot
   * (rounded so the slot count is a power of two at or above bytes / bytesPerSlot): about the size
   * of an entry divided by MAX_LOAD; smaller entries fill the index first, larger ones the arena.
   */
  constructor(opts: { bytes: number; bytesPerSlot: number; values?: boolean }) {
    const bytes = Math.max(0, Math.floor(opts.bytes));
    this.limit = bytes;
    this.slotBytes = SLOT_BYTES + (opts.values ? VALUE_SLOT_BYTES : 0);
    let slots = 64;
    while (slots < bytes / opts.bytesPerSlot && slots < MAX_SLOTS) slots *= 2;
    const arena = bytes - slots * this.slotBytes;
    // At least MIN_SEGMENTS segments, so that moving into one evicts at most 1/16 of the entries.
    let segmentSize = Math.min(SEGMENT_MAX, Math.floor(arena / MIN_SEGMENTS));
    segmentSize = Math.max(segmentSize, Math.ceil(arena / MAX_SEGMENTS));
    if (segmentSize < MIN_SEGMENT) { slots = 0; segmentSize = 0; } // too small to be useful: keeps nothing
    this.segmentSize = segmentSize;
    this.nSeg = segmentSize > 0 ? Math.floor(arena / segmentSize) : 0;
    this.segs = new Array<Buffer>(this.nSeg).fill(EMPTY);
    this.segEnd = new Int32Array(this.nSeg);
    this.mask = Math.max(0, slots - 1);
    this.maxEntries = Math.floor(slots * MAX_LOAD);
    this.slotHash = new Int32Array(slots);
    this.slotSeg = new Uint16Array(slots);
    this.slotOff = new Int32Array(slots);
    this.values = opts.values && slots > 0 ? new Array<V | undefined>(slots).fill(undefined) : null;
  }

  /** Finds the entry whose key is `key[start, end)` (h = hashBytes of it). */
  findBytes(key: Uint8Array, start: number, end: number, h: number): boolean {
    if (this.maxEntries === 0) return false;
    const mask = this.mask, klen = end - start;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const s = this.slotSeg[i]!;
      if (s === 0) return false;
      if (this.slotHash[i] === h) {
        const seg = this.segs[s - 1]!;
        const e = this.slotOff[i]!;
        if (((seg[e + 8]! << 8) | seg[e + 9]!) === klen && seg.compare(key, start, end, e + ENTRY_HEADER, e + ENTRY_HEADER + klen) === 0) {
          this.found(seg, e, klen, i);
          return true;
        }
      }
    }
  }

  /** Finds the entry whose key is the latin1 string `key` (h = hashString(key)). */
  findString(key: string, h: number): boolean {
    if (this.maxEntries === 0) return false;
    const mask = this.mask, klen = key.length;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const s = this.slotSeg[i]!;
      if (s === 0) return false;
      if (this.slotHash[i] === h) {
        const seg = this.segs[s - 1]!;
        const e = this.slotOff[i]!;
        if (((seg[e + 8]! << 8) | seg[e + 9]!) === klen) {
          let k = 0;
          const base = e + ENTRY_HEADER;
          while (k < klen && seg[base + k] === key.charCodeAt(k)) k++;
          if (k === klen) {
            this.found(seg, e, klen, i);
            return true;
          }
        }
      }
    }
  }

  /**
   * Adds an entry (its key must not be in the table) with `room` body bytes, which the caller
   * writes at `this.seg[this.body ...]`; len (u16), flags and aux (u8) are the caller's to define.
   * False when it cannot be kept (larger than a segment).
   */
  addBytes(key: Uint8Array, start: number, end: number, h: number, room: number, len: number, flags: number, aux: number, value?: V): boolean {
    const klen = end - start;
    const at = this.reserve(ENTRY_HEADER + klen + room);
    if (at < 0) return false;
    this.seg.set(key.subarray(start, end), at + ENTRY_HEADER);
    this.link(at, h, klen, room, len, flags, aux, value);
    return true;
  }

  /** addBytes with the latin1 string `key`. */
  addString(key: string, h: number, room: number, len: number, flags: number, aux: number, value?: V): boolean {
    const klen = key.length;
    const at = this.reserve(ENTRY_HEADER + klen + room);
    if (at < 0) return false;
    const seg = this.seg;
    for (let k = 0, o = at + ENTRY_HEADER; k < klen; k++) seg[o + k] = key.charCodeAt(k);
    this.link(at, h, klen, room, len, flags, aux, value);
    return true;
  }

  /** Forgets every entry; the segments stay allocated for reuse. */
  clear(): void {
    if (this.inserts > 0) {
      this.slotSeg.fill(0);
      this.segEnd.fill(0);
      this.values?.fill(undefined);
    }
    this.hs = 0;
    this.ho = 0;
    this.count = 0;
    this.liveBytes = 0;
    this.seg = EMPTY;
    this.value = undefined;
  }

  stats(): RingTableStats {
    return {
      bytes: this.allocated * this.segmentSize + this.slotHash.length * this.slotBytes,
      limit: this.limit, entries: this.count, entryBytes: this.liveBytes,
      inserts: this.inserts, evictions: this.evictions,
    };
  }

  /** Drops the entry the last successful find found (its arena bytes go with its segment). */
  removeFound(): void {
    const i = this.foundSlot;
    if (i < 0 || this.slotSeg[i] === 0) return;
    this.unlink(this.slotHash[i]!, this.slotSeg[i]! - 1, this.slotOff[i]!);
    this.evictions--; // not dropped to make room
    this.foundSlot = -1;
  }

  private foundSlot = -1;

  private found(seg: Buffer, e: number, klen: number, slot: number): void {
    this.foundSlot = slot;
    this.seg = seg;
    this.len = (seg[e + 10]! << 8) | seg[e + 11]!;
    this.flags = seg[e + 12]!;
    this.aux = seg[e + 13]!;
    this.body = e + ENTRY_HEADER + klen;
    if (this.values) this.value = this.values[slot];
  }

  /** Room for `size` bytes at the write head (evicting as needed): its offset, or -1. */
  private reserve(size: number): number {
    if (size > this.segmentSize || this.maxEntries === 0) return -1;
    // Bounded: each advance empties one segment; after nSeg of them the table is empty.
    for (let i = 0; i < this.nSeg && (this.count >= this.maxEntries || this.ho + size > this.segmentSize); i++) this.advance();
    if (this.count >= this.maxEntries || this.ho + size > this.segmentSize) return -1;
    if (this.segs[this.hs] === EMPTY) {
      this.segs[this.hs] = Buffer.allocUnsafeSlow(this.segmentSize);
      this.allocated++;
    }
    this.seg = this.segs[this.hs]!;
    const at = this.ho;
    this.ho += size;
    this.segEnd[this.hs] = this.ho;
    this.liveBytes += size;
    return at;
  }

  /** Writes the header of the entry at `at` in the head segment and indexes it. */
  private link(at: number, h: number, klen: number, room: number, len: number, flags: number, aux: number, value: V | undefined): void {
    const seg = this.seg;
    seg.writeUInt32BE(ENTRY_HEADER + klen + room, at);
    seg.writeInt32BE(h, at + 4);
    seg.writeUInt16BE(klen, at + 8);
    seg.writeUInt16BE(len, at + 10);
    seg[at + 12] = flags;
    seg[at + 13] = aux;
    seg[at + 14] = 0;
    seg[at + 15] = 0;
    const mask = this.mask;
    let i = h & mask;
    while (this.slotSeg[i] !== 0) i = (i + 1) & mask;
    this.slotHash[i] = h;
    this.slotSeg[i] = this.hs + 1;
    this.slotOff[i] = at;
    if (this.values) this.values[i] = value;
    this.count++;
    this.inserts++;
    this.flags = flags;
    this.aux = aux;
    this.len = len;
    this.body = at + ENTRY_HEADER + klen;
    this.value = value;
  }

  /** Moves the write head to the next segment and evicts what that segment held. */
  private advance(): void {
    this.hs = this.hs + 1 === this.nSeg ? 0 : this.hs + 1;
    this.ho = 0;
    const seg = this.segs[this.hs]!;
    const end = this.segEnd[this.hs]!;
    for (let e = 0; e < end;) {
      const size = seg.readUInt32BE(e);
      this.unlink(seg.readInt32BE(e + 4), this.hs, e);
      this.liveBytes -= size;
      e += size;
    }
    this.segEnd[this.hs] = 0;
  }

  /** Removes the index slot of the entry at (s, at), shifting the rest of its probe run back. */
  private unlink(h: number, s: number, at: number): void {
    const mask = this.mask;
    const values = this.values;
    let i = h & mask;
    for (;;) {
      const t = this.slotSeg[i]!;
      if (t === 0) return; // not indexed (cannot happen: every entry in the arena is indexed once)
      if (t === s + 1 && this.slotOff[i] === at) break;
      i = (i + 1) & mask;
    }
    this.count--;
    this.evictions++;
    for (let j = (i + 1) & mask; this.slotSeg[j] !== 0; j = (j + 1) & mask) {
      const home = this.slotHash[j]! & mask;
      // The entry at j may move back to i unless its home slot lies cyclically in (i, j].
      if (((j - home) & mask) >= ((j - i) & mask)) {
        this.slotHash[i] = this.slotHash[j]!;
        this.slotSeg[i] = this.slotSeg[j]!;
        this.slotOff[i] = this.slotOff[j]!;
        if (values) values[i] = values[j];
        i = j;
      }
    }
    this.slotSeg[i] = 0;
    if (values) values[i] = undefined;
  }
}
