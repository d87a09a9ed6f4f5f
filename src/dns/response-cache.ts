/**
 * The UDP response cache: encoded responses kept for repeated questions, keyed by the query's bytes
 * after the ID (identical bytes parse identically, so a hit skips parsing, lookup and encoding).
 * One zone version at a time: the handler clears it when the zone is swapped.
 *
 * Memory is bounded by what it holds, not by an estimate per entry: there are no per-entry
 * JavaScript objects, strings or Buffers, only
 * - an arena of segments (`segmentSize` bytes each, allocated on first use) holding the entries back
 *   to back, each a copy of exactly what a hit needs (no reference to the query's buffer):
 *     [entry size u32][hash i32][key length u16][body length u16][flags u8][rcode u8][0 u16]
 *     [key: the query after its ID][body][layout]
 *   The body is the reply (its ID bytes are overwritten on every hit), followed by its layout
 *   (response.ts: where the answer records are, to re-order them) when it has one; or, for replies
 *   that carry a random subset of the answers, the few fields needed to write a new subset
 *   (answer id, question end, header flags to copy, EDNS size and DO bit);
 * - an open-addressing index with linear probing, INDEX_SLOT_BYTES per slot (hash, segment, offset),
 *   one slot per INDEX_ARENA_BYTES_PER_SLOT bytes of budget;
 * - a table of the Answers that subset entries refer to (ANSWER_ID_BYTES each, at most 1/64 of
 *   the budget).
 * The arena is written as a ring of segments: when the write head moves into a segment, every entry
 * it held is evicted (FIFO by segment: a hot entry evicted this way is re-inserted on its next miss).
 * `bytes` reports the segments allocated plus the index plus the answer table: the memory held.
 */
import { ANSWER_ID_BYTES } from '../cache-budget.js';
import type { Answer } from '../zone/zone.js';
import { layoutBytes, writeLayout, type Layout } from './response.js';

export const ENTRY_TRUNCATED = 1;
/** The body holds subset parameters, not a reply: write a new random subset per hit. */
export const ENTRY_SUBSET = 2;
/** The reply is followed by its layout: re-order its answers per hit. */
export const ENTRY_LAYOUT = 4;

const HEADER = 16;
const SUBSET_BODY = 9;
const INDEX_SLOT_BYTES = 10; // Int32 hash + Uint16 segment + Int32 offset
const INDEX_ARENA_BYTES_PER_SLOT = 128;
/** At most 3/4 of the slots in use: linear probing stays short. */
const MAX_LOAD = 0.75;
const SEGMENT_MAX = 128 * 1024;
const MAX_SEGMENTS = 65535; // segment numbers are stored +1 in a Uint16Array
const MAX_SLOTS = 1 << 26;
const EMPTY = Buffer.alloc(0);

export interface ResponseCacheStats {
  /** Memory held: allocated segments + index + answer table. Never above `limit`. */
  readonly bytes: number;
  readonly limit: number;
  readonly entries: number;
  /** Bytes of the entries currently in the arena (<= the segments' bytes). */
  readonly entryBytes: number;
  readonly hits: number;
  readonly misses: number;
  readonly inserts: number;
  readonly evictions: number;
}

export class ResponseCache {
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
  private readonly slotHash: Int32Array;
  private readonly slotSeg: Uint16Array;
  private readonly slotOff: Int32Array;

  private readonly maxAnswerIds: number;
  private answers: Answer[] = [];
  private answerIds = new Map<Answer, number>();

  private count = 0;
  private liveBytes = 0;
  private hits = 0;
  private misses = 0;
  private inserts = 0;
  private evictions = 0;

  /** The entry found by the last successful find(): its segment, flags, rcode, and body. */
  seg: Buffer = EMPTY;
  flags = 0;
  rcode = 0;
  body = 0;
  bodyLen = 0;

  /** `bytes`: the response cache's part of the budget (cache-budget.ts). */
  constructor(bytes: number) {
    this.limit = bytes;
    let slots = 64;
    while (slots * 2 <= bytes / INDEX_ARENA_BYTES_PER_SLOT && slots < MAX_SLOTS) slots *= 2;
    this.mask = slots - 1;
    this.maxEntries = Math.floor(slots * MAX_LOAD);
    this.slotHash = new Int32Array(slots);
    this.slotSeg = new Uint16Array(slots);
    this.slotOff = new Int32Array(slots);
    this.maxAnswerIds = Math.min(65536, Math.floor(bytes / 64 / ANSWER_ID_BYTES));
    const arena = bytes - slots * INDEX_SLOT_BYTES - this.maxAnswerIds * ANSWER_ID_BYTES;
    let segmentSize = Math.min(SEGMENT_MAX, Math.floor(arena / 2));
    segmentSize = Math.max(segmentSize, Math.ceil(arena / MAX_SEGMENTS));
    this.segmentSize = Math.max(0, segmentSize);
    this.nSeg = segmentSize >= 1024 ? Math.floor(arena / segmentSize) : 0;
    this.segs = new Array<Buffer>(this.nSeg).fill(EMPTY);
    this.segEnd = new Int32Array(this.nSeg);
  }

  /** FNV-1a over the query after its ID, with a final mix for the low bits the index uses. */
  hash(msg: Buffer): number {
    let h = 0x811c9dc5;
    for (let i = 2; i < msg.length; i++) h = Math.imul(h ^ msg[i]!, 0x01000193);
    h ^= h >>> 16;
    h = Math.imul(h, 0x45d9f3b);
    return h ^ (h >>> 16);
  }

  /** Looks `msg` up (h = hash(msg)); on a hit, sets seg/flags/rcode/body/bodyLen. */
  find(msg: Buffer, h: number): boolean {
    const mask = this.mask, n = msg.length, klen = n - 2;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const s = this.slotSeg[i]!;
      if (s === 0) break;
      if (this.slotHash[i] === h) {
        const seg = this.segs[s - 1]!;
        const e = this.slotOff[i]!;
        if (((seg[e + 8]! << 8) | seg[e + 9]!) === klen && seg.compare(msg, 2, n, e + HEADER, e + HEADER + klen) === 0) {
          this.seg = seg;
          this.bodyLen = (seg[e + 10]! << 8) | seg[e + 11]!;
          this.flags = seg[e + 12]!;
          this.rcode = seg[e + 13]!;
          this.body = e + HEADER + klen;
          this.hits++;
          return true;
        }
      }
    }
    this.misses++;
    return false;
  }

  /** Keeps a reply (and its layout, to re-order it per hit). */
  putReply(msg: Buffer, h: number, rcode: number, truncated: boolean, reply: Buffer, layout: Layout | null): void {
    const klen = msg.length - 2;
    const size = HEADER + klen + reply.length + (layout ? layoutBytes(layout) : 0);
    const at = this.reserve(size);
    if (at < 0) return;
    const seg = this.segs[this.hs]!;
    this.header(seg, at, size, h, klen, reply.length, (truncated ? ENTRY_TRUNCATED : 0) | (layout ? ENTRY_LAYOUT : 0), rcode);
    seg.set(msg.subarray(2), at + HEADER);
    seg.set(reply, at + HEADER + klen);
    if (layout) writeLayout(layout, seg, at + HEADER + klen + reply.length);
    this.link(h, at);
  }

  /** Keeps what is needed to write a new random subset of `ans` per hit. */
  putSubset(msg: Buffer, h: number, rcode: number, ans: Answer, questionEnd: number, copyFlags: number, udpSize: number, dnssecOk: boolean): void {
    let id = this.answerIds.get(ans);
    if (id === undefined) {
      if (this.answers.length >= this.maxAnswerIds) return;
      id = this.answers.length;
      this.answers.push(ans);
      this.answerIds.set(ans, id);
    }
    const klen = msg.length - 2;
    const size = HEADER + klen + SUBSET_BODY;
    const at = this.reserve(size);
    if (at < 0) return;
    const seg = this.segs[this.hs]!;
    this.header(seg, at, size, h, klen, SUBSET_BODY, ENTRY_SUBSET, rcode);
    seg.set(msg.subarray(2), at + HEADER);
    const b = at + HEADER + klen;
    seg.writeUInt16BE(id, b);
    seg.writeUInt16BE(questionEnd, b + 2);
    seg.writeUInt16BE(copyFlags, b + 4);
    seg.writeUInt16BE(udpSize, b + 6);
    seg[b + 8] = dnssecOk ? 1 : 0;
    this.link(h, at);
  }

  /** Subset body fields of the last hit. */
  subsetAnswer(): Answer {
    return this.answers[this.u16(this.body)]!;
  }
  subsetQuestionEnd(): number { return this.u16(this.body + 2); }
  subsetCopyFlags(): number { return this.u16(this.body + 4); }
  /** The query's EDNS UDP size (>= 512), or 0 without EDNS. */
  subsetUdpSize(): number { return this.u16(this.body + 6); }
  subsetDnssecOk(): boolean { return this.seg[this.body + 8] === 1; }

  /** Forgets every entry (a new zone version); the segments stay allocated for reuse. */
  clear(): void {
    if (this.count > 0 || this.inserts > 0) {
      this.slotSeg.fill(0);
      this.segEnd.fill(0);
    }
    this.hs = 0;
    this.ho = 0;
    this.count = 0;
    this.liveBytes = 0;
    this.answers = [];
    this.answerIds = new Map();
    this.seg = EMPTY;
  }

  stats(): ResponseCacheStats {
    return {
      bytes: this.allocated * this.segmentSize + (this.mask + 1) * INDEX_SLOT_BYTES + this.answers.length * ANSWER_ID_BYTES,
      limit: this.limit, entries: this.count, entryBytes: this.liveBytes,
      hits: this.hits, misses: this.misses, inserts: this.inserts, evictions: this.evictions,
    };
  }

  private u16(at: number): number {
    return (this.seg[at]! << 8) | this.seg[at + 1]!;
  }

  private header(seg: Buffer, at: number, size: number, h: number, klen: number, bodyLen: number, flags: number, rcode: number): void {
    seg.writeUInt32BE(size, at);
    seg.writeInt32BE(h, at + 4);
    seg.writeUInt16BE(klen, at + 8);
    seg.writeUInt16BE(bodyLen, at + 10);
    seg[at + 12] = flags;
    seg[at + 13] = rcode;
    seg[at + 14] = 0;
    seg[at + 15] = 0;
  }

  /** Room for an entry of `size` bytes at the write head (evicting as needed); its offset, or -1. */
  private reserve(size: number): number {
    if (size > this.segmentSize || this.nSeg === 0) return -1;
    // Bounded: each advance empties one segment; after nSeg of them every entry is gone.
    for (let i = 0; i <= this.nSeg && (this.count >= this.maxEntries || this.ho + size > this.segmentSize); i++) this.advance();
    if (this.count >= this.maxEntries || this.ho + size > this.segmentSize) return -1;
    if (this.segs[this.hs] === EMPTY) {
      this.segs[this.hs] = Buffer.allocUnsafeSlow(this.segmentSize);
      this.allocated++;
    }
    const at = this.ho;
    this.ho += size;
    this.segEnd[this.hs] = this.ho;
    this.liveBytes += size;
    return at;
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

  private link(h: number, at: number): void {
    const mask = this.mask;
    let i = h & mask;
    while (this.slotSeg[i] !== 0) i = (i + 1) & mask;
    this.slotHash[i] = h;
    this.slotSeg[i] = this.hs + 1;
    this.slotOff[i] = at;
    this.count++;
    this.inserts++;
  }

  /** Removes the index slot of the entry at (s, at), shifting later slots of its probe run back. */
  private unlink(h: number, s: number, at: number): void {
    const mask = this.mask;
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
      // The slot at j may move back to i unless its home lies cyclically in (i, j].
      if (((j - home) & mask) >= ((j - i) & mask)) {
        this.slotHash[i] = this.slotHash[j]!;
        this.slotSeg[i] = this.slotSeg[j]!;
        this.slotOff[i] = this.slotOff[j]!;
        i = j;
      }
    }
    this.slotSeg[i] = 0;
  }
}
