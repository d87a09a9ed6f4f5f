/**
 * The UDP response cache: encoded responses kept for repeated questions, keyed by the query's bytes
 * after the ID (identical bytes parse identically, so a hit skips parsing, lookup and encoding).
 * Entries outlive commits: each carries the liveness slot and generation of the answer it was made
 * from (zone/zone.ts Liveness), and a hit whose answer has changed since is dropped as a miss.
 *
 * A RingTable (ring-table.ts): memory is what the budget says, with no per-entry JavaScript objects.
 * An entry is a copy of what a hit needs and nothing else (no reference to the query's buffer):
 * - flags ENTRY_TRUNCATED / ENTRY_LAYOUT, aux = rcode, len = the reply's length, body = the reply
 *   (its ID bytes are replaced on every hit), followed by its layout (response.ts) when its answers
 *   are re-ordered per hit;
 * - flags ENTRY_SUBSET for replies that carry a random subset of the answers: the body holds what
 *   is needed to write a new subset per hit (answer id, question end, header flags to copy, EDNS
 *   size, DO bit). The answer ids index a table of the zone's Answers, ANSWER_ID_BYTES each, with
 *   room reserved for 1/64 of the budget (beyond that, such replies are not cached).
 */
import { ANSWER_ID_BYTES } from '../cache-budget.js';
import { RingTable, hashBytes, type RingTableStats } from '../ring-table.js';
import type { Answer } from '../zone/zone.js';
import { layoutBytes, writeLayout, type Layout } from './response.js';

export const ENTRY_TRUNCATED = 1;
export const ENTRY_SUBSET = 2;
export const ENTRY_LAYOUT = 4;

const SUBSET_BODY = 9;
/** Every entry's body starts with the liveness slot and generation (u32 each) of its answer, and the qtype (u16). */
const TAG = 10;
/**
 * Index sizing: a slot per 64-128 budget bytes (RingTable rounds to a power of two). Replies to the
 * usual questions are 60-600 bytes and their keys 30-60, so the arena fills before the index (at
 * most 3/4 full) unless entries average under ~100-170 bytes; the index costs 8-16% of the budget.
 */
const BYTES_PER_SLOT = 128;

export interface ResponseCacheStats extends RingTableStats {
  readonly hits: number;
  readonly misses: number;
  readonly stale: number;
}

export class ResponseCache extends RingTable {
  private readonly maxAnswerIds: number;
  private answers: Answer[] = [];
  private answerIds = new Map<Answer, number>();
  private hits = 0;
  private misses = 0;
  /** Entries found but made from an answer that has changed since (dropped, counted as misses). */
  private stale = 0;

  /** `bytes`: the response cache's part of the budget (cache-budget.ts). */
  constructor(bytes: number) {
    const maxAnswerIds = Math.min(65536, Math.floor(bytes / 64 / ANSWER_ID_BYTES));
    super({ bytes: bytes - maxAnswerIds * ANSWER_ID_BYTES, bytesPerSlot: BYTES_PER_SLOT });
    this.maxAnswerIds = maxAnswerIds;
  }

  hash(msg: Buffer): number {
    return hashBytes(msg, 2, msg.length);
  }

  /**
   * Looks the query up (h = hash(msg)); on a hit, seg/body/len/flags/aux (rcode) describe it. An
   * entry whose answer has changed since (its slot's generation in `gens` moved on) is dropped and
   * this is a miss.
   */
  find(msg: Buffer, h: number, gens: Uint32Array): boolean {
    if (this.findBytes(msg, 2, msg.length, h)) {
      const seg = this.seg, b = this.body;
      const slot = ((seg[b]! << 24) | (seg[b + 1]! << 16) | (seg[b + 2]! << 8) | seg[b + 3]!) >>> 0;
      const gen = ((seg[b + 4]! << 24) | (seg[b + 5]! << 16) | (seg[b + 6]! << 8) | seg[b + 7]!) >>> 0;
      if (gens[slot] === gen) {
        this.qtype = (seg[b + 8]! << 8) | seg[b + 9]!;
        this.body = b + TAG;
        this.hits++;
        return true;
      }
      this.removeFound();
      this.stale++;
    }
    this.misses++;
    return false;
  }

  /** The qtype of the question of the entry last found (for the per-qtype counters). */
  qtype = 0;

  /** Writes the tag (the answer's liveness slot and generation, the qtype) in front of an entry's body. */
  private tag(slot: number, gen: number, qtype: number): void {
    this.seg.writeUInt32BE(slot, this.body);
    this.seg.writeUInt32BE(gen, this.body + 4);
    this.seg.writeUInt16BE(qtype, this.body + 8);
    this.body += TAG;
  }

  /** Keeps a reply, and its layout to re-order its answers per hit. */
  putReply(msg: Buffer, h: number, rcode: number, truncated: boolean, reply: Buffer, layout: Layout | null, slot: number, gen: number, qtype: number): void {
    const flags = (truncated ? ENTRY_TRUNCATED : 0) | (layout ? ENTRY_LAYOUT : 0);
    if (!this.addBytes(msg, 2, msg.length, h, TAG + reply.length + (layout ? layoutBytes(layout) : 0), reply.length, flags, rcode)) return;
    this.tag(slot, gen, qtype);
    this.seg.set(reply, this.body);
    if (layout) writeLayout(layout, this.seg, this.body + reply.length);
  }

  /** Keeps what is needed to write a new random subset of `ans` per hit. */
  putSubset(msg: Buffer, h: number, rcode: number, ans: Answer, questionEnd: number, copyFlags: number, udpSize: number, dnssecOk: boolean, qtype: number): void {
    const slot = ans.slot, gen = ans.gen;
    let id = this.answerIds.get(ans);
    if (id === undefined) {
      if (this.answers.length >= this.maxAnswerIds) return;
      id = this.answers.length;
      this.answers.push(ans);
      this.answerIds.set(ans, id);
    }
    if (!this.addBytes(msg, 2, msg.length, h, TAG + SUBSET_BODY, 0, ENTRY_SUBSET, rcode)) return;
    this.tag(slot, gen, qtype);
    const seg = this.seg, b = this.body;
    seg.writeUInt16BE(id, b);
    seg.writeUInt16BE(questionEnd, b + 2);
    seg.writeUInt16BE(copyFlags, b + 4);
    seg.writeUInt16BE(udpSize, b + 6);
    seg[b + 8] = dnssecOk ? 1 : 0;
  }

  /** Subset fields of the entry just found. */
  subsetAnswer(): Answer { return this.answers[this.u16(this.body)]!; }
  subsetQuestionEnd(): number { return this.u16(this.body + 2); }
  subsetCopyFlags(): number { return this.u16(this.body + 4); }
  /** The query's EDNS UDP size (>= 512), or 0 without EDNS. */
  subsetUdpSize(): number { return this.u16(this.body + 6); }
  subsetDnssecOk(): boolean { return this.seg[this.body + 8] === 1; }

  override clear(): void {
    super.clear();
    this.answers = [];
    this.answerIds = new Map();
  }

  override stats(): ResponseCacheStats {
    const s = super.stats();
    return { ...s, bytes: s.bytes + this.answers.length * ANSWER_ID_BYTES, limit: s.limit + this.maxAnswerIds * ANSWER_ID_BYTES, hits: this.hits, misses: this.misses, stale: this.stale };
  }

  private u16(at: number): number {
    return (this.seg[at]! << 8) | this.seg[at + 1]!;
  }
}
