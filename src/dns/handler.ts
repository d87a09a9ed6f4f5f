/**
 * One query in, one response out (or null: drop). The single place where lookup outcomes become
 * rcodes, and the boundary that turns an unexpected throw into SERVFAIL, a log line and a counter.
 */
import { LRUCache } from 'lru-cache';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import type { Answer, Verdict, Zone } from '../zone/zone.js';
import type { DnsCounters } from './counters.js';
import { parseQuery, REJECT_RCODE, type Query } from './query.js';
import { ResponseWriter, writeError, type Layout, type Limits } from './response.js';
import { QTYPE, RCODE } from './wire.js';

export interface ZoneReader {
  current(): Zone | null;
}

/** The one place lookup verdicts become rcodes. */
const RCODE_OF: Readonly<Record<Verdict, number>> = {
  answer: RCODE.NOERROR, nodata: RCODE.NOERROR, empty: RCODE.NOERROR, nxdomain: RCODE.NXDOMAIN,
};

const MAX_UDP_ANSWER_LIMIT = 8; // Consul's hard cap (maxUDPAnswerLimit)
const TCP_MAX = 65535;
/**
 * A UDP response cache keyed by the query's bytes after the ID: identical bytes parse identically,
 * so a hit skips parsing, lookup and encoding. Shuffled answers are re-ordered on every hit from the
 * cached encoding (ResponseWriter.reorder), so each query still gets its own order. Per zone
 * version (cleared on swap).
 */
interface CacheEntry {
  readonly q: Query;
  readonly ans: Answer;
  readonly rcode: number;
  readonly lim: Limits;
  readonly buf: Buffer;
  readonly layout: Layout | null;
  truncated: boolean;
  /** The cached reply holds a subset of the answers: pick a new one per query. */
  readonly subset: boolean;
}

export class QueryHandler {
  private readonly store: ZoneReader;
  private readonly config: Config;
  private readonly log: Logger;
  private readonly counters: DnsCounters;
  private readonly writer: ResponseWriter;
  private readonly udpAnswerLimit: number;
  private readonly cache: LRUCache<string, CacheEntry> | null;
  private cacheZone: Zone | null = null;

  constructor(opts: {
    store: ZoneReader; config: Config; logger: Logger; counters: DnsCounters; random?: () => number;
    /** Bytes of encoded responses kept for repeated UDP questions (0 = no cache); default from the config. */
    cacheBytes?: number;
  }) {
    this.store = opts.store;
    this.config = opts.config;
    this.log = opts.logger.child({ component: 'dns' });
    this.counters = opts.counters;
    this.writer = new ResponseWriter(opts.random ? { random: opts.random } : {});
    this.udpAnswerLimit = Math.min(MAX_UDP_ANSWER_LIMIT, opts.config.udpAnswerLimit);
    const cacheBytes = opts.cacheBytes ?? opts.config.responseCacheBytes;
    this.cache = cacheBytes === 0 ? null : new LRUCache<string, CacheEntry>({
      maxSize: cacheBytes,
      sizeCalculation: (e, key) => key.length + 300 + 2 * e.buf.length,
    });
  }

  /**
   * Never throws: an unexpected throw while answering a parsed query is SERVFAIL (see below); one
   * anywhere else (cache hit, parsing, writing a reject) drops the query, counted as an internal
   * error, so that nothing a peer sends can escape into a transport's event handler.
   */
  handle(msg: Buffer, tcp: boolean): Buffer | null {
    try {
      return this.handleQuery(msg, tcp);
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
    let key: string | null = null;
    if (!tcp && this.cache && msg.length >= 12 && msg.length <= 512) {
      const zone = this.store.current();
      if (zone !== this.cacheZone) {
        this.cache.clear();
        this.cacheZone = zone;
      }
      key = msg.toString('latin1', 2);
      const e = this.cache.get(key);
      if (e) return this.fromCache(e, msg);
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
    try {
      return this.answer(q, tcp, key);
    } catch (e) {
      this.counters.internalErrors++;
      this.counters.response(RCODE.SERVFAIL);
      this.log.error({ err: e }, 'internal error answering a query');
      return writeError(q, RCODE.SERVFAIL);
    }
  }

  private fromCache(e: CacheEntry, msg: Buffer): Buffer {
    let out: Buffer;
    if (e.subset) {
      // Only some answers fit: each query gets its own random subset, as in Consul (parsing and
      // lookup are still skipped).
      const w = this.writer.write(e.q, e.ans, e.rcode, e.lim);
      out = w.buf;
      e.truncated = w.truncated;
    } else if (e.layout) {
      out = this.writer.reorder(e.buf, e.layout);
    } else {
      out = Buffer.allocUnsafe(e.buf.length);
      out.set(e.buf);
    }
    out[0] = msg[0]!;
    out[1] = msg[1]!;
    this.counters.response(e.rcode);
    if (e.truncated) this.counters.truncated++;
    return out;
  }

  private answer(q: Query, tcp: boolean, cacheKey: string | null = null): Buffer {
    const zone = this.store.current();
    if (!zone) {
      this.counters.response(RCODE.SERVFAIL);
      return writeError(q, RCODE.SERVFAIL);
    }
    const qt = q.qtype;
    const ans = zone.answer(q.key, qt);
    if (!ans) {
      this.counters.response(RCODE.REFUSED);
      return writeError(q, RCODE.REFUSED);
    }
    if (qt === QTYPE.AXFR || qt === QTYPE.IXFR) {
      this.counters.response(RCODE.NOTIMP);
      return writeError(q, RCODE.NOTIMP, { aa: true });
    }
    const lim = this.limits(q, tcp);
    const rcode = RCODE_OF[ans.verdict];
    const cacheable = cacheKey !== null && this.cache !== null && !(q.edns && q.edns.hasOptions);
    const w = this.writer.write(q, ans, rcode, lim, cacheable && ans.shuffle);
    if (w.truncated) this.counters.truncated++;
    this.counters.response(rcode);
    // Per-client EDNS options (cookies, ECS) would only fill the cache with one-off entries.
    if (cacheable) {
      this.cache!.set(cacheKey!, {
        q, ans, rcode, lim, buf: w.buf, layout: w.layout, truncated: w.truncated,
        subset: ans.shuffle && w.answers < ans.units.length,
      });
    }
    return w.buf;
  }

  private limits(q: Query, tcp: boolean): Limits {
    const cfg = this.config;
    if (tcp) return { maxSize: TCP_MAX, maxAnswers: Infinity, aRecordLimit: cfg.aRecordLimit, setTruncated: cfg.enableTruncate, answersBeforeGlue: true };
    // 65507: the largest UDP payload over IPv4.
    const maxSize = q.edns ? Math.min(q.edns.udpSize, cfg.maxUdpSize, 65507) : 512;
    return {
      maxSize,
      // Consul applies udp_answer_limit to 512-byte responses (no EDNS, or EDNS 512).
      maxAnswers: maxSize <= 512 ? this.udpAnswerLimit : Infinity,
      aRecordLimit: cfg.aRecordLimit,
      setTruncated: cfg.enableTruncate,
    };
  }
}
