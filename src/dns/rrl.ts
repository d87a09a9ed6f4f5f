/**
 * Response rate limiting (RRL) for UDP, after BIND 9's `rate-limit` (also in NSD and Knot DNS):
 * spoofed queries cannot turn this server into a flood aimed at their victim, while a real client
 * that is limited still gets some TC=1 replies and retries over TCP (which is never limited).
 *
 * Every UDP response is charged to an account keyed by the client's address prefix (IPv4 /24,
 * IPv6 /56 by default) and the response's class:
 *   - a positive answer: the question name (case-folded, so 0x20 spelling does not dodge it) and
 *     type;
 *   - NXDOMAIN, and NODATA: the zone (catalog-dns serves one), so random subdomains of the zone
 *     share one account per prefix and kind;
 *   - errors (REFUSED, FORMERR, SERVFAIL, NOTIMP, BADVERS): one account per prefix.
 * An account holds a credit, as in BIND: it starts at `responsesPerSecond`, earns that many per
 * second up to the same amount, and each response costs 1. A response with no credit left is
 * limited; the debt is floored at -window x rate, so a client that keeps asking faster than the
 * rate stays limited and one that stops is forgiven within `window` seconds (an account idle for
 * longer than the window starts over). Of the limited responses, the 1st, (slip+1)th, (2 slip+1)th
 * ... are slipped (sent as a TC=1 reply with no records), the others dropped; slip 0 drops them
 * all, slip 1 slips them all.
 *
 * The accounts live in a table of fixed size (typed arrays, allocated once): a full table reuses
 * its least recently charged account, so memory does not grow with the number of clients. An
 * account is found by two seeded 32-bit hashes of its key (a collision of both only merges two
 * accounts). Nothing is allocated per response.
 */

import { performance } from 'node:perf_hooks';

export const RRL_OK = 0;
export const RRL_DROP = 1;
export const RRL_SLIP = 2;
export type RrlVerdict = typeof RRL_OK | typeof RRL_DROP | typeof RRL_SLIP;

/** The response classes (accounts are per prefix and class). */
export const RRL_CLASS = { POSITIVE: 1, NXDOMAIN: 2, NODATA: 3, ERROR: 4 } as const;

export interface RrlOptions {
  /** Responses per second per account; must be > 0 (0 means "off": build no limiter). */
  readonly responsesPerSecond: number;
  /** Every slip-th limited response is a TC=1 reply, the others are dropped (0 = drop all). */
  readonly slip: number;
  /** Seconds over which the rate is enforced (BIND's `window`). */
  readonly windowSeconds: number;
  readonly ipv4Prefix: number;
  readonly ipv6Prefix: number;
  /** Accounts kept (rounded up to a power of two); default 32768 (about 1.3 MB). */
  readonly entries?: number;
  /** Milliseconds from a monotonic clock; default performance.now. */
  readonly clock?: () => number;
  /** Hash seed; default random (so that a peer cannot aim names at one hash chain). */
  readonly seed?: number;
}

export const RRL_DEFAULT_ENTRIES = 32768;

const FNV_PRIME = 0x01000193;
const MIX_PRIME = 0x85ebca6b;

export class ResponseRateLimiter {
  private readonly rate: number;
  private readonly slip: number;
  private readonly windowMs: number;
  private readonly minBalance: number;
  private readonly v4Mask: number;
  private readonly v6Mask = new Uint32Array(4);
  private readonly clock: () => number;
  private readonly seed1: number;
  private readonly seed2: number;

  // The table: slot i is one account.
  private readonly size: number;
  private readonly fp1: Uint32Array;
  private readonly fp2: Uint32Array;
  private readonly balance: Float64Array;
  private readonly last: Float64Array;
  private readonly slipCount: Uint8Array;
  /** Hash chains: heads[h1 & (size-1)] -> slot -> chain[slot] ... -1. */
  private readonly heads: Int32Array;
  private readonly chain: Int32Array;
  /** Recency list: newest at lruHead, oldest (next to reuse) at lruTail. */
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  private lruHead = -1;
  private lruTail = -1;
  private used = 0;

  // Scratch for address parsing (no allocation per response).
  private readonly groups = new Uint16Array(8);
  private readonly addr = new Uint32Array(4);

  constructor(o: RrlOptions) {
    if (!(o.responsesPerSecond > 0)) throw new RangeError('responsesPerSecond must be > 0');
    this.rate = o.responsesPerSecond;
    this.slip = o.slip;
    this.windowMs = o.windowSeconds * 1000;
    this.minBalance = -o.windowSeconds * o.responsesPerSecond;
    this.v4Mask = prefixMask(o.ipv4Prefix);
    for (let w = 0; w < 4; w++) this.v6Mask[w] = prefixMask(Math.min(32, Math.max(0, o.ipv6Prefix - 32 * w)));
    this.clock = o.clock ?? (() => performance.now()); // the module binding: no global getter per call
    const seed = o.seed ?? Math.floor(Math.random() * 0x100000000);
    this.seed1 = (seed ^ 0x811c9dc5) >>> 0;
    this.seed2 = Math.imul(seed ^ 0x9e3779b9, MIX_PRIME) >>> 0;
    let size = 1;
    while (size < Math.max(2, o.entries ?? RRL_DEFAULT_ENTRIES)) size *= 2;
    this.size = size;
    this.fp1 = new Uint32Array(size);
    this.fp2 = new Uint32Array(size);
    this.balance = new Float64Array(size);
    this.last = new Float64Array(size);
    this.slipCount = new Uint8Array(size);
    this.heads = new Int32Array(size).fill(-1);
    this.chain = new Int32Array(size);
    this.prev = new Int32Array(size);
    this.next = new Int32Array(size);
  }

  /** Accounts in use (at most the table size). */
  get accounts(): number {
    return this.used;
  }

  /** The table size (accounts kept at most). */
  get capacity(): number {
    return this.size;
  }

  /**
   * Charges the UDP response `resp` for the client at `address` (as dgram's rinfo.address gives
   * it: dotted IPv4, or IPv6 text, IPv4-mapped included) and says whether to send it, drop it,
   * or slip it (send slipReply(resp) instead). An address that does not parse is not limited.
   */
  check(resp: Buffer, address: string): RrlVerdict {
    if (resp.length < 12) return RRL_OK;
    let h1 = this.seed1, h2 = this.seed2;
    // The prefix.
    const fam = this.prefix(address);
    if (fam === 0) return RRL_OK;
    const a = this.addr;
    const words = fam === 4 ? 1 : 4;
    h1 = Math.imul(h1 ^ fam, FNV_PRIME); h2 = Math.imul(h2 ^ fam, MIX_PRIME) ^ (h2 >>> 15);
    for (let w = 0; w < words; w++) {
      const x = a[w]!;
      h1 = Math.imul(h1 ^ x, FNV_PRIME); h2 = Math.imul(h2 ^ x, MIX_PRIME) ^ (h2 >>> 15);
    }
    // The class, and for positive answers the question.
    let cls = responseClass(resp);
    if (cls === RRL_CLASS.POSITIVE) {
      // Find the end of the question name (uncompressed: the handler echoes the query's bytes).
      let p = 12;
      for (let hops = 0; p < resp.length && resp[p] !== 0; hops++) {
        const len = resp[p]!;
        if (len > 63 || hops > 127) { p = resp.length; break; }
        p += len + 1;
      }
      if (p + 5 > resp.length) {
        cls = RRL_CLASS.ERROR;
      } else {
        // The wire name ASCII-folded (length bytes are below 0x41, so only letters change), four
        // bytes per mixing step, then the type.
        let w = 0;
        for (let i = 12; i <= p; i++) {
          let c = resp[i]!;
          if (c >= 0x41 && c <= 0x5a) c |= 0x20;
          w = (w << 8) | c;
          if ((i & 3) === 3) {
            h1 = Math.imul(h1 ^ w, FNV_PRIME); h2 = Math.imul(h2 ^ w, MIX_PRIME) ^ (h2 >>> 15);
            w = 0;
          }
        }
        h1 = Math.imul(h1 ^ w, FNV_PRIME); h2 = Math.imul(h2 ^ w, MIX_PRIME) ^ (h2 >>> 15);
        const qtype = resp.readUInt16BE(p + 1);
        h1 = Math.imul(h1 ^ qtype, FNV_PRIME); h2 = Math.imul(h2 ^ qtype, MIX_PRIME) ^ (h2 >>> 15);
      }
    }
    h1 = fmix32(Math.imul(h1 ^ cls, FNV_PRIME));
    h2 = fmix32(Math.imul(h2 ^ cls, MIX_PRIME) ^ (h2 >>> 15));
    return this.charge(h1, h2);
  }

  /** Finds or makes the account (h1, h2), credits it for the time passed, debits one response. */
  private charge(h1: number, h2: number): RrlVerdict {
    const now = this.clock();
    const rate = this.rate;
    let i = this.find(h1, h2);
    if (i < 0) {
      i = this.insert(h1, h2);
      this.balance[i] = rate;
      this.last[i] = now;
      this.slipCount[i] = 0;
    } else {
      const elapsed = now - this.last[i]!;
      if (elapsed > 0) {
        // A clock going backwards is no time at all; an account idle longer than the window
        // starts over (BIND).
        if (elapsed > this.windowMs) {
          this.balance[i] = rate;
          this.slipCount[i] = 0;
        } else {
          this.balance[i] = Math.min(rate, this.balance[i]! + (elapsed * rate) / 1000);
        }
        this.last[i] = now;
      }
    }
    const b = this.balance[i]! - 1;
    this.balance[i] = b < this.minBalance ? this.minBalance : b;
    if (b >= 0) return RRL_OK;
    const slip = this.slip;
    if (slip === 0) return RRL_DROP;
    const n = this.slipCount[i]!;
    this.slipCount[i] = n + 1 >= slip ? 0 : n + 1;
    return n === 0 ? RRL_SLIP : RRL_DROP;
  }

  private find(h1: number, h2: number): number {
    const fp1 = this.fp1, fp2 = this.fp2, chain = this.chain;
    for (let i = this.heads[h1 & (this.size - 1)]!; i >= 0; i = chain[i]!) {
      if (fp1[i] === h1 && fp2[i] === h2) {
        this.touch(i);
        return i;
      }
    }
    return -1;
  }

  /** A slot for a new account: a free one, else the least recently charged one. */
  private insert(h1: number, h2: number): number {
    const mask = this.size - 1;
    let i: number;
    if (this.used < this.size) {
      i = this.used++;
    } else {
      i = this.lruTail;
      this.unlinkRecency(i);
      // Unhook from its hash chain.
      const b = this.fp1[i]! & mask;
      let p = this.heads[b]!;
      if (p === i) this.heads[b] = this.chain[i]!;
      else {
        while (this.chain[p]! !== i) p = this.chain[p]!;
        this.chain[p] = this.chain[i]!;
      }
    }
    this.fp1[i] = h1;
    this.fp2[i] = h2;
    const b = h1 & mask;
    this.chain[i] = this.heads[b]!;
    this.heads[b] = i;
    this.pushRecency(i);
    return i;
  }

  private touch(i: number): void {
    if (this.lruHead === i) return;
    this.unlinkRecency(i);
    this.pushRecency(i);
  }

  private unlinkRecency(i: number): void {
    const p = this.prev[i]!, n = this.next[i]!;
    if (p >= 0) this.next[p] = n; else this.lruHead = n;
    if (n >= 0) this.prev[n] = p; else this.lruTail = p;
  }

  private pushRecency(i: number): void {
    this.prev[i] = -1;
    this.next[i] = this.lruHead;
    if (this.lruHead >= 0) this.prev[this.lruHead] = i;
    this.lruHead = i;
    if (this.lruTail < 0) this.lruTail = i;
  }

  /**
   * Parses `address` into this.addr, masked to the configured prefix: one word for IPv4
   * (IPv4-mapped IPv6 included), four for IPv6. Returns 4, 6, or 0 when it does not parse.
   */
  private prefix(address: string): number {
    const a = this.addr;
    let end = address.length;
    const v4 = parseIpv4(address, 0, end);
    if (v4 >= 0) {
      a[0] = v4 & this.v4Mask;
      return 4;
    }
    const pct = address.indexOf('%'); // a zone index (fe80::1%eth0)
    if (pct >= 0) end = pct;
    const g = this.groups;
    if (!parseIpv6(address, end, g)) return 0;
    if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
      a[0] = ((g[6]! << 16) | g[7]!) & this.v4Mask;
      return 4;
    }
    for (let w = 0; w < 4; w++) a[w] = ((g[2 * w]! << 16) | g[2 * w + 1]!) & this.v6Mask[w]!;
    return 6;
  }
}

/** The RRL class of an encoded response (see the module comment). */
export function responseClass(resp: Buffer): number {
  const rcode = resp[3]! & 0x0f;
  if (rcode === 3) return RRL_CLASS.NXDOMAIN;
  if (rcode !== 0) return RRL_CLASS.ERROR;
  // NOERROR without AA is not an answer from the zone: BADVERS (its extended rcode is in the OPT).
  if ((resp[2]! & 0x04) === 0) return RRL_CLASS.ERROR;
  return resp.readUInt16BE(6) > 0 ? RRL_CLASS.POSITIVE : RRL_CLASS.NODATA;
}

/**
 * The slipped form of a response: its header and question only, TC set, the rcode kept, no
 * records (no OPT either), so that a real client retries over TCP. A new buffer.
 */
export function slipReply(resp: Buffer): Buffer {
  let end = 12;
  if (resp.readUInt16BE(4) > 0) {
    let p = 12;
    while (p < resp.length && resp[p] !== 0 && resp[p]! <= 63) p += resp[p]! + 1;
    if (p < resp.length && resp[p] === 0 && p + 5 <= resp.length) end = p + 5;
  }
  const out = Buffer.allocUnsafe(end);
  resp.copy(out, 0, 0, end);
  out[2] = out[2]! | 0x02; // TC
  out.writeUInt16BE(end > 12 ? 1 : 0, 4);
  out.writeUInt32BE(0, 6); // ANCOUNT, NSCOUNT
  out.writeUInt16BE(0, 10); // ARCOUNT
  return out;
}

/** A 32-bit mask with the top `bits` bits set (0-32). */
function prefixMask(bits: number): number {
  return bits <= 0 ? 0 : bits >= 32 ? 0xffffffff : (0xffffffff << (32 - bits)) >>> 0;
}

/** murmur3's finaliser: spreads every input bit over the low bits used as the chain index. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Dotted-quad IPv4 in s[start, end) as an unsigned 32-bit number, or -1. */
export function parseIpv4(s: string, start: number, end: number): number {
  let v = 0, part = 0, digits = 0, dots = 0;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (++digits > 3) return -1;
      part = part * 10 + (c - 48);
      if (part > 255) return -1;
    } else if (c === 46) {
      if (digits === 0 || ++dots > 3) return -1;
      v = v * 256 + part;
      part = 0;
      digits = 0;
    } else return -1;
  }
  if (dots !== 3 || digits === 0) return -1;
  return v * 256 + part;
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  c |= 0x20;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/**
 * IPv6 text (RFC 4291 2.2: hex groups, one "::", an IPv4 tail) in s[0, end) into eight 16-bit
 * groups. Returns false when it does not parse.
 */
export function parseIpv6(s: string, end: number, g: Uint16Array): boolean {
  let i = 0, n = 0, gap = -1;
  if (end >= 2 && s.charCodeAt(0) === 58 && s.charCodeAt(1) === 58) {
    gap = 0;
    i = 2;
  } else if (end >= 1 && s.charCodeAt(0) === 58) return false;
  while (i < end) {
    if (n === 8) return false;
    const start = i;
    let v = 0;
    while (i < end && i - start < 5) {
      const h = hexValue(s.charCodeAt(i));
      if (h < 0) break;
      v = v * 16 + h;
      i++;
    }
    if (i < end && s.charCodeAt(i) === 46) {
      // An IPv4 tail ends the address and fills two groups.
      if (n > 6) return false;
      const v4 = parseIpv4(s, start, end);
      if (v4 < 0) return false;
      g[n++] = v4 >>> 16;
      g[n++] = v4 & 0xffff;
      i = end;
      break;
    }
    const len = i - start;
    if (len === 0 || len > 4) return false;
    g[n++] = v;
    if (i === end) break;
    if (s.charCodeAt(i) !== 58) return false;
    i++;
    if (i < end && s.charCodeAt(i) === 58) {
      if (gap >= 0) return false;
      gap = n;
      i++;
    } else if (i === end) return false;
  }
  if (gap < 0) return n === 8;
  if (n > 7) return false;
  const tail = n - gap;
  for (let k = 0; k < tail; k++) g[7 - k] = g[n - 1 - k]!;
  for (let k = gap; k < 8 - tail; k++) g[k] = 0;
  return true;
}
