/**
 * One query in, one response out (or null: drop). The single place where lookup outcomes become
 * rcodes, and the boundary that turns an unexpected throw into SERVFAIL, a log line and a counter.
 */
import { cacheBudget } from '../cache-budget.js';
import type { RingTableStats } from '../ring-table.js';
import { MAX_UDP_ANSWER_LIMIT, type Config } from '../config.js';
import type { Logger } from '../log.js';
import { NOT_YET, type Liveness, type Verdict, type Zone } from '../zone/zone.js';
import { AltDomain } from './alt-domain.js';
import type { DnsCounters } from './counters.js';
import { parseQuery, REJECT_RCODE, type Edns, type Query } from './query.js';
import { ResponseCache, ENTRY_LAYOUT, ENTRY_SUBSET, ENTRY_TRUNCATED, type ResponseCacheStats } from './response-cache.js';
import { ResponseWriter, writeError, type Limits } from './response.js';
import { QTYPE, RCODE } from './wire.js';

export interface ZoneReader {
  current(): Zone | null;
  /** While the first zone is built, the provisional zone (zone/provisional.ts); ZoneStore has them. */
  provisional?(): Zone | null;
  /** Settles when the provisional zone is gone (the first zone is built, or failed). */
  whenBuilt?(): Promise<void>;
}

/**
 * Returned by handle() for a query only the complete zone can answer, while a provisional one serves
 * (a start): the listener holds the query and hands it in again once `whenBuilt()` settles. It was not
 * counted; it will be when handed in again.
 */
export const HELD: Buffer = Buffer.alloc(0);

/** What the response cache and the current zone's name memo hold against `response_cache_mb`. */
export interface CacheMemory {
  /** The setting in bytes (0: no response cache). */
  readonly budget: number;
  readonly responses: ResponseCacheStats | null;
  readonly names: RingTableStats | null;
}

/** The one place lookup verdicts become rcodes. */
const RCODE_OF: Readonly<Record<Verdict, number>> = {
  answer: RCODE.NOERROR, nodata: RCODE.NOERROR, empty: RCODE.NOERROR, nxdomain: RCODE.NXDOMAIN,
};

const TCP_MAX = 65535;
const EMPTY = Buffer.alloc(0);

/** The mutable query the subset path writes from on a cache hit (its fields come from the entry). */
interface HitQuery { ok: true; msg: Buffer; id: number; copyFlags: number; questionEnd: number; qtype: number; qclass: number; key: string; edns: Edns | null }
interface HitEdns { udpSize: number; version: number; dnssecOk: boolean; ecs: Buffer | null; hasOptions: boolean }

export class QueryHandler {
  private readonly store: ZoneReader;
  private config: Config;
  private readonly log: Logger;
  private readonly counters: DnsCounters;
  private readonly writer: ResponseWriter;
  private udpAnswerLimit: number;
  private readonly budget: number;
  /**
   * UDP responses for repeated questions (response-cache.ts), kept across commits while the answers
   * they were made from hold (zone Liveness). Shuffled answers
   * are re-ordered on every hit (ResponseWriter.reorder), so each query still gets its own order.
   */
  private readonly cache: ResponseCache | null;
  private cacheLiveness: Liveness | null = null;
  private tick = 0;
  private readonly onSample: ((seconds: number) => void) | null;
  private tcpLimits: Limits;
  private readonly udpLimitsBySize = new Map<number, Limits>();
  private readonly hitEdns: HitEdns = { udpSize: 512, version: 0, dnssecOk: false, ecs: null, hasOptions: false };
  private readonly hitQuery: HitQuery = { ok: true, msg: EMPTY, id: 0, copyFlags: 0, questionEnd: 12, qtype: 0, qclass: 1, key: '', edns: null };
  /** alt_domain (alt-domain.ts), asked only for names the zone refuses; null when unset. */
  private alt: AltDomain | null;

  constructor(opts: {
    store: ZoneReader; config: Config; logger: Logger; counters: DnsCounters; random?: () => number;
    /** `response_cache_mb` in bytes (0 = no response cache); default from the config. */
    cacheBytes?: number;
    /** Receives the time (s) a sample of queries (one in 32) took to answer. */
    onSample?: (seconds: number) => void;
  }) {
    this.onSample = opts.onSample ?? null;
    this.store = opts.store;
    this.config = opts.config;
    this.log = opts.logger.child({ component: 'dns' });
    this.counters = opts.counters;
    this.writer = new ResponseWriter(opts.random ? { random: opts.random } : {});
    this.udpAnswerLimit = Math.min(MAX_UDP_ANSWER_LIMIT, opts.config.udpAnswerLimit);
    this.budget = opts.cacheBytes ?? opts.config.responseCacheBytes;
    const share = cacheBudget(this.budget).responses;
    this.cache = share === 0 ? null : new ResponseCache(share);
    const cfg = opts.config;
    this.tcpLimits = { maxSize: TCP_MAX, maxAnswers: Infinity, aRecordLimit: cfg.aRecordLimit, setTruncated: cfg.enableTruncate, answersBeforeGlue: true };
    this.alt = cfg.altDomain === null ? null : new AltDomain(cfg.altDomain);
  }

  /**
   * Never throws: an unexpected throw while answering a parsed query is SERVFAIL (see below); one
   * anywhere else (cache hit, parsing, writing a reject) drops the query, counted as an internal
   * error, so that nothing a peer sends can escape into a transport's event handler.
   */
  handle(msg: Buffer, tcp: boolean): Buffer | null {
    try {
      // One query in 32 is timed (for the answer-time histogram); the others pay one increment.
      if ((++this.tick & 31) !== 0 || !this.onSample) return this.handleQuery(msg, tcp);
      const t0 = performance.now();
      const r = this.handleQuery(msg, tcp);
      this.onSample((performance.now() - t0) / 1000);
      return r;
    } catch (e) {
      this.counters.internalErrors++;
      this.counters.dropped++;
      this.log.error({ err: e }, 'internal error handling a query; dropped');
      return null;
    }
  }

  private handleQuery(msg: Buffer, tcp: boolean): Buffer | null {
    if (tcp) this.counters.queriesTcp++;
    else this.counters.queriesUdp++;
    let hash: number | null = null;
    const cache = this.cache;
    if (!tcp && cache && msg.length >= 12 && msg.length <= 512) {
      const zone = this.zone();
      // Entries outlive commits (each is checked against the liveness of its answer); only a zone
      // with other liveness numbering (another store, or none) empties the cache.
      const live = zone ? zone.data.liveness : null;
      if (live !== this.cacheLiveness) {
        cache.clear();
        this.cacheLiveness = live;
      }
      hash = live ? cache.hash(msg) : null;
      if (live && cache.find(msg, hash!, live.gens)) {
        const t = cache.qtype;
        this.counters.qtypesUdp[t < 256 ? t : 256]! += 1;
        return this.fromCache(cache, msg);
      }
    }
    const q = parseQuery(msg);
    if (!q.ok) {
      if (q.kind === 'drop') {
        this.counters.dropped++;
        return null;
      }
      const rcode = REJECT_RCODE[q.kind];
      this.counters.response(rcode);
      if (this.log.isLevelEnabled('debug')) this.log.debug({ reason: q.reason, rcode }, 'query rejected');
      return writeError(q, rcode);
    }
    (tcp ? this.counters.qtypesTcp : this.counters.qtypesUdp)[q.qtype < 256 ? q.qtype : 256]! += 1;
    try {
      return this.answer(q, tcp, hash);
    } catch (e) {
      this.counters.internalErrors++;
      this.counters.response(RCODE.SERVFAIL);
      this.log.error({ err: e }, 'internal error answering a query');
      return writeError(q, RCODE.SERVFAIL);
    }
  }

  /** Memory held by the response cache and the current zone's name memo, by their own accounting. */
  cacheMemory(): CacheMemory {
    return { budget: this.budget, responses: this.cache ? this.cache.stats() : null, names: this.store.current()?.memoStats() ?? null };
  }

  /** The reply for the entry the cache just found, under the query's ID. */
  private fromCache(c: ResponseCache, msg: Buffer): Buffer {
    let out: Buffer;
    let truncated = (c.flags & ENTRY_TRUNCATED) !== 0;
    if (c.flags & ENTRY_SUBSET) {
      // Only some answers fit: each query gets its own random subset, as in Consul (parsing and
      // lookup are still skipped).
      const q = this.hitQuery;
      q.msg = msg;
      q.questionEnd = c.subsetQuestionEnd();
      q.copyFlags = c.subsetCopyFlags();
      const udpSize = c.subsetUdpSize();
      if (udpSize > 0) {
        this.hitEdns.udpSize = udpSize;
        this.hitEdns.dnssecOk = c.subsetDnssecOk();
        q.edns = this.hitEdns;
      } else {
        q.edns = null;
      }
      const w = this.writer.write(q, c.subsetAnswer(), c.aux, this.udpLimits(q.edns));
      q.msg = EMPTY;
      out = w.buf;
      truncated = w.truncated;
    } else if (c.flags & ENTRY_LAYOUT) {
      out = this.writer.reorder(c.seg, c.body, c.len);
    } else {
      out = Buffer.allocUnsafe(c.len);
      out.set(c.seg.subarray(c.body, c.body + c.len));
    }
    out[0] = msg[0]!;
    out[1] = msg[1]!;
    this.counters.response(c.aux);
    if (truncated) this.counters.truncated++;
    return out;
  }

  /** The zone queries are answered from: the current one, else a provisional one (a start), else none. */
  private zone(): Zone | null {
    const z = this.store.current();
    return z !== null || !this.store.provisional ? z : this.store.provisional();
  }

  /** Settles when queries held (HELD) can be handed in again. */
  whenBuilt(): Promise<void> {
    return this.store.whenBuilt ? this.store.whenBuilt() : Promise.resolve();
  }

  private answer(q: Query, tcp: boolean, hash: number | null): Buffer {
    const zone = this.zone();
    if (!zone) {
      this.counters.response(RCODE.SERVFAIL);
      return writeError(q, RCODE.SERVFAIL);
    }
    const qt = q.qtype;
    let ans = zone.answer(q.key, qt);
    if (ans === NOT_YET) {
      // Counted when handed in again (handleQuery counted it by protocol and qtype).
      if (tcp) this.counters.queriesTcp--; else this.counters.queriesUdp--;
      (tcp ? this.counters.qtypesTcp : this.counters.qtypesUdp)[qt < 256 ? qt : 256]! -= 1;
      this.counters.held++;
      return HELD;
    }
    if (!ans) {
      // alt_domain (alt-domain.ts): only a name the zone refuses can be under the alt domain, so the
      // primary domain pays nothing for it. The alt answer is then written and cached like any other.
      if (this.alt !== null) ans = this.alt.answer(zone, q.key, qt);
      if (!ans) {
        this.counters.response(RCODE.REFUSED);
        return writeError(q, RCODE.REFUSED);
      }
    }
    if (qt === QTYPE.AXFR || qt === QTYPE.IXFR) {
      this.counters.response(RCODE.NOTIMP);
      return writeError(q, RCODE.NOTIMP, { aa: true });
    }
    const lim = tcp ? this.tcpLimits : this.udpLimits(q.edns);
    // Per-client EDNS options (cookies, ECS) would only fill the cache with one-off entries.
    const cacheable = hash !== null && !(q.edns && q.edns.hasOptions);
    const rcode = RCODE_OF[ans.verdict];
    const w = this.writer.write(q, ans, rcode, lim, cacheable && ans.shuffle);
    if (w.truncated) this.counters.truncated++;
    this.counters.response(rcode);
    if (cacheable) {
      if (ans.shuffle && w.answers < ans.units.length) {
        this.cache!.putSubset(q.msg, hash, rcode, ans, q.questionEnd, q.copyFlags, q.edns ? q.edns.udpSize : 0, q.edns ? q.edns.dnssecOk : false, q.qtype);
      } else {
        this.cache!.putReply(q.msg, hash, rcode, w.truncated, w.buf, w.layout, ans.slot, ans.gen, q.qtype);
      }
    }
    return w.buf;
  }

  /**
   * New answer limits (udp_answer_limit, a_record_limit, enable_truncate, max_udp_size) and
   * alt_domain from a reloaded configuration; cached responses were made under the old ones, so they go.
   */
  reconfigure(config: Config): void {
    this.config = config;
    this.alt = config.altDomain === null ? null : new AltDomain(config.altDomain);
    this.udpAnswerLimit = Math.min(MAX_UDP_ANSWER_LIMIT, config.udpAnswerLimit);
    this.tcpLimits = { maxSize: TCP_MAX, maxAnswers: Infinity, aRecordLimit: config.aRecordLimit, setTruncated: config.enableTruncate, answersBeforeGlue: true };
    this.udpLimitsBySize.clear();
    this.cache?.clear();
  }

  /** UDP limits by the query's EDNS size, prepared once per size seen. */
  private udpLimits(edns: Edns | null): Limits {
    const cfg = this.config;
    // 65507: the largest UDP payload over IPv4.
    const maxSize = edns ? Math.min(edns.udpSize, cfg.maxUdpSize, 65507) : 512;
    let lim = this.udpLimitsBySize.get(maxSize);
    if (!lim) {
      if (this.udpLimitsBySize.size >= 64) this.udpLimitsBySize.clear();
      lim = {
        maxSize,
        // Consul applies udp_answer_limit to 512-byte responses (no EDNS, or EDNS 512).
        maxAnswers: maxSize <= 512 ? this.udpAnswerLimit : Infinity,
        aRecordLimit: cfg.aRecordLimit,
        setTruncated: cfg.enableTruncate,
      };
      this.udpLimitsBySize.set(maxSize, lim);
    }
    return lim;
  }
}
