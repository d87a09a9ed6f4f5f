/**
 * Encoding a prepared Answer into a response: shuffle, apply the answer limits, fit the size,
 * and copy the prepared fragments. Deciding what goes in the answer happened at zone build time.
 */
import type { Answer } from '../zone/zone.js';
import { writeBlock } from './pack.js';
import type { Edns, Query, Reject } from './query.js';

export interface Limits {
  /** Largest message allowed (512, the EDNS size capped by the server, or 65535 on TCP). */
  readonly maxSize: number;
  /** Answer count limit (udp_answer_limit for 512-byte UDP), or Infinity. */
  readonly maxAnswers: number;
  /** a_record_limit, 0 = none. */
  readonly aRecordLimit: number;
  /** Set TC when records were dropped. */
  readonly setTruncated: boolean;
  /**
   * Fill the answer section first and add glue while it fits (TCP: a complete RRset matters more
   * than glue, RFC 2181 §9). Otherwise an answer only goes in with its glue (Consul's UDP shape).
   */
  readonly answersBeforeGlue?: boolean;
}

export interface Written {
  readonly buf: Buffer;
  readonly truncated: boolean;
  readonly answers: number;
  /** Where the answer records and glue pointers are in `buf`, so it can be re-ordered cheaply. */
  readonly layout: Layout | null;
}

/**
 * The positions needed to re-order the answer records of an encoded response without encoding it
 * again: answer record i spans [starts[i], starts[i + 1]); glue record g's owner is a pointer at
 * gluePos[g] to the RDATA name at offset targetAt[glueOf[g]] inside answer record glueOf[g].
 */
export interface Layout {
  readonly starts: Int32Array;
  readonly targetAt: Int32Array;
  readonly gluePos: Int32Array;
  readonly glueOf: Int32Array;
}

/**
 * Bytes of a layout written by writeLayout: [answers u16][glue u16][starts u16 x (answers + 1)]
 * [targetAt u16 x answers][gluePos u16 x glue][glueOf u16 x glue]. Every value is an offset inside
 * a UDP response (< 65536) or an answer index.
 */
export function layoutBytes(l: Layout): number {
  return 4 + 2 * (l.starts.length + l.targetAt.length) + 4 * l.gluePos.length;
}

/** Writes `l` at `buf[at]` in the form ResponseWriter.reorder reads. */
export function writeLayout(l: Layout, buf: Buffer, at: number): void {
  let o = at;
  const put = (v: number) => { buf[o++] = v >> 8; buf[o++] = v & 0xff; };
  put(l.targetAt.length);
  put(l.gluePos.length);
  for (const v of l.starts) put(v);
  for (const v of l.targetAt) put(v);
  for (const v of l.gluePos) put(v);
  for (const v of l.glueOf) put(v);
}

const FLAG_QR = 0x8000, FLAG_AA = 0x0400, FLAG_TC = 0x0200;

/** The response's OPT RR (RFC 6891): echoes the client's UDP size, copies DO, carries ECS and extended rcode. */
export function optRecord(edns: Edns, extRcode = 0): Buffer {
  const ecsLen = edns.ecs ? edns.ecs.length : 0;
  const b = Buffer.alloc(11 + ecsLen);
  b[0] = 0;
  b.writeUInt16BE(41, 1);
  b.writeUInt16BE(edns.udpSize, 3);
  b[5] = extRcode >> 4;
  b[6] = 0;
  b.writeUInt16BE(edns.dnssecOk ? 0x8000 : 0, 7);
  b.writeUInt16BE(ecsLen, 9);
  if (edns.ecs) edns.ecs.copy(b, 11);
  return b;
}

/**
 * Writes responses. Owns the scratch state for shuffling and glue de-duplication, so one writer
 * serves one server (no module-level state).
 */
export class ResponseWriter {
  private order = new Uint32Array(64);
  private pick = new Uint32Array(64);
  private carriers = new Int32Array(64);
  private glueCosts = new Int32Array(64);
  private stamps = new Uint32Array(256);
  private gen = 0;
  private readonly random: () => number;

  constructor(opts: { random?: () => number } = {}) {
    this.random = opts.random ?? Math.random;
  }

  write(q: Query, ans: Answer, rcode: number, lim: Limits, withLayout = false): Written {
    const opt = q.edns ? this.opt(q.edns) : null;
    const optLen = opt ? opt.length : 0;
    const qEnd = q.questionEnd;
    const packed = ans.packed;
    if (packed && packed.an <= lim.maxAnswers && qEnd + packed.bytes.length + optLen <= lim.maxSize) {
      const out = Buffer.allocUnsafe(qEnd + packed.bytes.length + optLen);
      out.set(q.msg.subarray(0, qEnd), 0);
      const end = writeBlock(packed, out, qEnd);
      if (opt) out.set(opt, end);
      this.header(out, q, rcode, false, packed.an, packed.ns, packed.ar + (opt ? 1 : 0));
      return { buf: out, truncated: false, answers: packed.an, layout: null };
    }

    const units = ans.units;
    const n = units.length;
    this.ensureScratch(n);
    const order = this.order;
    for (let i = 0; i < n; i++) order[i] = i;
    if (++this.gen === 0xffffffff) { this.stamps.fill(0); this.gen = 1; }
    const gen = this.gen;
    let size = qEnd + optLen;
    let limit = n;
    let truncated = false;
    if (ans.addressLimit && lim.aRecordLimit > 0 && limit > lim.aRecordLimit) limit = lim.aRecordLimit;
    if (limit > lim.maxAnswers) { limit = lim.maxAnswers; truncated = true; }

    // Pick answers (partial Fisher-Yates when shuffling) while they and their glue fit.
    let picked = 0;
    let answerEnd = qEnd;
    for (let i = 0; i < limit; i++) {
      if (ans.shuffle) {
        const j = i + Math.floor(this.random() * (n - i));
        const t = order[i]!; order[i] = order[j]!; order[j] = t;
      }
      const u = units[order[i]!]!;
      let glueCost = 0;
      let carrier = -1;
      if (u.glueId >= 0) {
        if (u.glueId >= this.stamps.length) this.growStamps(u.glueId);
        if (this.stamps[u.glueId] !== gen) {
          const targetAbs = answerEnd + u.targetAt;
          const ownerLen = targetAbs <= 0x3fff ? 2 : u.glueOwner!.length;
          for (const g of u.glue) glueCost += ownerLen + g.length;
          carrier = targetAbs;
        }
      }
      const cost = u.rr.length + (lim.answersBeforeGlue ? 0 : glueCost);
      if (size + cost > lim.maxSize) { truncated = true; break; }
      size += cost;
      answerEnd += u.rr.length;
      if (carrier >= 0) this.stamps[u.glueId] = gen;
      this.pick[picked] = order[i]!;
      this.carriers[picked] = carrier;
      this.glueCosts[picked] = glueCost;
      picked++;
    }
    if (lim.answersBeforeGlue) {
      // Glue, in answer order, while it fits; leaving glue out does not make the answer incomplete.
      for (let i = 0; i < picked; i++) {
        if (this.carriers[i]! < 0) continue;
        if (size + this.glueCosts[i]! <= lim.maxSize) size += this.glueCosts[i]!;
        else this.carriers[i] = -1;
      }
    }

    let authSize = 0;
    for (const r of ans.authority) authSize += r.length;
    const withAuthority = ans.authority.length > 0 && size + authSize <= lim.maxSize;
    if (withAuthority) size += authSize;
    let extraCount = 0;
    const extras: Buffer[] = [];
    for (const r of ans.additional) {
      if (size + r.length > lim.maxSize) break;
      size += r.length;
      extras.push(r);
    }

    // Encode.
    const buf = Buffer.allocUnsafe(size);
    // TypedArray.set is the cheapest copy for these small fragments (Buffer.copy adds checks).
    buf.set(q.msg.subarray(0, qEnd), 0);
    let o = qEnd;
    let layout: { starts: Int32Array; targetAt: Int32Array; gluePos: number[]; glueOf: number[] } | null =
      withLayout && picked > 1 ? { starts: new Int32Array(picked + 1), targetAt: new Int32Array(picked), gluePos: [], glueOf: [] } : null;
    for (let i = 0; i < picked; i++) {
      const u = units[this.pick[i]!]!;
      if (layout) { layout.starts[i] = o; layout.targetAt[i] = u.targetAt; }
      buf.set(u.rr, o);
      o += u.rr.length;
    }
    if (layout) layout.starts[picked] = o;
    if (withAuthority) for (const r of ans.authority) { buf.set(r, o); o += r.length; }
    for (let i = 0; i < picked; i++) {
      const targetAbs = this.carriers[i]!;
      if (targetAbs < 0) continue;
      const u = units[this.pick[i]!]!;
      for (const g of u.glue) {
        if (targetAbs <= 0x3fff) {
          if (layout) { layout.gluePos.push(o); layout.glueOf.push(i); }
          buf[o] = 0xc0 | (targetAbs >> 8);
          buf[o + 1] = targetAbs & 0xff;
          o += 2;
        } else {
          layout = null; // an uncompressed owner: this response is not re-orderable in place
          buf.set(u.glueOwner!, o);
          o += u.glueOwner!.length;
        }
        buf.set(g, o);
        o += g.length;
        extraCount++;
      }
    }
    for (const r of extras) { buf.set(r, o); o += r.length; }
    if (opt) { buf.set(opt, o); o += opt.length; extraCount++; }

    this.header(buf, q, rcode, truncated && lim.setTruncated, picked, withAuthority ? ans.authority.length : 0, extraCount + extras.length);
    return {
      buf, truncated, answers: picked,
      layout: layout && { starts: layout.starts, targetAt: layout.targetAt, gluePos: Int32Array.from(layout.gluePos), glueOf: Int32Array.from(layout.glueOf) },
    };
  }

  /**
   * A copy of the encoded response `src[at, at + len)` with its answer records in a new random
   * order (Fisher-Yates) and the glue owner pointers moved with them: a per-query shuffle for the
   * price of a copy. The response's layout follows it in `src` (writeLayout).
   */
  reorder(src: Buffer, at: number, len: number): Buffer {
    const out = Buffer.allocUnsafe(len);
    // One native copy of everything; then only the answer records are rewritten, in a new order.
    out.set(src.subarray(at, at + len));
    const l = at + len;
    const p = (src[l]! << 8) | src[l + 1]!;
    const g = (src[l + 2]! << 8) | src[l + 3]!;
    const starts = l + 4, targetAt = starts + 2 * (p + 1), gluePos = targetAt + 2 * p, glueOf = gluePos + 2 * g;
    this.ensureScratch(p);
    const order = this.order;
    const newTarget = this.carriers;
    for (let i = 0; i < p; i++) order[i] = i;
    let o = (src[starts]! << 8) | src[starts + 1]!;
    for (let i = 0; i < p; i++) {
      const j = i + Math.floor(this.random() * (p - i));
      const k = order[j]!; order[j] = order[i]!; order[i] = k;
      const sk = starts + 2 * k;
      const s = (src[sk]! << 8) | src[sk + 1]!, e = (src[sk + 2]! << 8) | src[sk + 3]!;
      if (s !== o) for (let b = s; b < e; b++) out[o + b - s] = src[at + b]!;
      newTarget[k] = o + ((src[targetAt + 2 * k]! << 8) | src[targetAt + 2 * k + 1]!);
      o += e - s;
    }
    for (let i = 0; i < g; i++) {
      const gi = glueOf + 2 * i, pi = gluePos + 2 * i;
      const t = newTarget[(src[gi]! << 8) | src[gi + 1]!]!;
      const pos = (src[pi]! << 8) | src[pi + 1]!;
      out[pos] = 0xc0 | (t >> 8);
      out[pos + 1] = t & 0xff;
    }
    return out;
  }

  private header(buf: Buffer, q: Query, rcode: number, tc: boolean, an: number, ns: number, ar: number): void {
    buf.writeUInt16BE(FLAG_QR | FLAG_AA | (tc ? FLAG_TC : 0) | q.copyFlags | (rcode & 0x0f), 2);
    buf.writeUInt16BE(1, 4);
    buf.writeUInt16BE(an, 6);
    buf.writeUInt16BE(ns, 8);
    buf.writeUInt16BE(ar, 10);
  }

  /** OPT records without options are the same for every query with the same size and DO bit. */
  private readonly optCache = new Map<number, Buffer>();
  private opt(edns: Edns): Buffer {
    if (edns.ecs) return optRecord(edns);
    const k = edns.udpSize * 2 + (edns.dnssecOk ? 1 : 0);
    let b = this.optCache.get(k);
    if (!b) {
      if (this.optCache.size > 64) this.optCache.clear();
      this.optCache.set(k, (b = optRecord(edns)));
    }
    return b;
  }

  /** Scratch arrays for n answer records, grown (never shrunk) as needed. */
  private ensureScratch(n: number): void {
    if (this.order.length >= n) return;
    this.order = new Uint32Array(n * 2);
    this.pick = new Uint32Array(n * 2);
    this.carriers = new Int32Array(n * 2);
    this.glueCosts = new Int32Array(n * 2);
  }

  private growStamps(id: number): void {
    const s = new Uint32Array(Math.max(id + 1, this.stamps.length * 2));
    s.set(this.stamps);
    this.stamps = s;
  }
}

/** A header-only (plus question, plus OPT) response for rejects and fixed rcodes. */
export function writeError(r: Reject | Query, rcode: number, opts: { aa?: boolean } = {}): Buffer {
  const qEnd = r.questionEnd;
  const opt = r.edns ? optRecord(r.edns, rcode) : null;
  const buf = Buffer.alloc(qEnd + (opt ? opt.length : 0));
  if (qEnd > 12) r.msg.copy(buf, 0, 0, qEnd);
  buf.writeUInt16BE(r.id, 0);
  const opcode = 'opcode' in r ? r.opcode : 0;
  buf.writeUInt16BE(FLAG_QR | (opcode << 11) | (opts.aa ? FLAG_AA : 0) | r.copyFlags | (rcode & 0x0f), 2);
  buf.writeUInt16BE(qEnd > 12 ? 1 : 0, 4);
  buf.writeUInt16BE(0, 6); // the query's own answer/authority records (IXFR's SOA) are not echoed
  buf.writeUInt16BE(0, 8);
  buf.writeUInt16BE(opt ? 1 : 0, 10);
  if (opt) opt.copy(buf, qEnd);
  return buf;
}
