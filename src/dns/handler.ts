/**
 * One query in, one response out (or null: drop). The single place where lookup outcomes become
 * rcodes, and the boundary that turns an unexpected throw into SERVFAIL, a log line and a counter.
 */
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import type { Zone } from '../zone/zone.js';
import type { DnsCounters } from './counters.js';
import { parseQuery, REJECT_RCODE, type Query } from './query.js';
import { ResponseWriter, writeError, type Limits } from './response.js';
import { QTYPE, RCODE } from './wire.js';

export interface ZoneReader {
  current(): Zone | null;
}

const MAX_UDP_ANSWER_LIMIT = 8; // Consul's hard cap (maxUDPAnswerLimit)
const TCP_MAX = 65535;

export class QueryHandler {
  private readonly store: ZoneReader;
  private readonly config: Config;
  private readonly log: Logger;
  private readonly counters: DnsCounters;
  private readonly writer: ResponseWriter;
  private readonly udpAnswerLimit: number;

  constructor(opts: { store: ZoneReader; config: Config; logger: Logger; counters: DnsCounters; random?: () => number }) {
    this.store = opts.store;
    this.config = opts.config;
    this.log = opts.logger.child({ component: 'dns' });
    this.counters = opts.counters;
    this.writer = new ResponseWriter(opts.random ? { random: opts.random } : {});
    this.udpAnswerLimit = Math.min(MAX_UDP_ANSWER_LIMIT, opts.config.udpAnswerLimit);
  }

  handle(msg: Buffer, tcp: boolean): Buffer | null {
    if (tcp) this.counters.queriesTcp++;
    else this.counters.queriesUdp++;
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
      return this.answer(q, tcp);
    } catch (e) {
      this.counters.internalErrors++;
      this.counters.response(RCODE.SERVFAIL);
      this.log.error({ err: e }, 'internal error answering a query');
      return writeError(q, RCODE.SERVFAIL);
    }
  }

  private answer(q: Query, tcp: boolean): Buffer {
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
    const w = this.writer.write(q, ans, this.limits(q, tcp));
    if (w.truncated) this.counters.truncated++;
    this.counters.response(ans.rcode);
    return w.buf;
  }

  private limits(q: Query, tcp: boolean): Limits {
    const cfg = this.config;
    if (tcp) return { maxSize: TCP_MAX, maxAnswers: Infinity, aRecordLimit: cfg.aRecordLimit, setTruncated: cfg.enableTruncate };
    const maxSize = q.edns ? Math.min(q.edns.udpSize, cfg.maxUdpSize) : 512;
    return {
      maxSize,
      // Consul applies udp_answer_limit to 512-byte responses (no EDNS, or EDNS 512).
      maxAnswers: maxSize <= 512 ? this.udpAnswerLimit : Infinity,
      aRecordLimit: cfg.aRecordLimit,
      setTruncated: cfg.enableTruncate,
    };
  }
}
