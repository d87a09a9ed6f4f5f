/**
 * The query log (`query_log`, off by default; README "Query log"): one line per query, like
 * CoreDNS's `log` plugin, at level info with a fixed set of fields:
 *
 *   {"component":"query","client":"127.0.0.1:53124","proto":"udp","qname":"web.service.consul.",
 *    "qtype":"A","rcode":"NOERROR","size":104,"ms":0.061,"msg":"query"}
 *
 * A query that got no reply has `"dropped":true` instead of rcode and size. `qname` and `qtype` are
 * the question as the client spelled it (absent when the query has none that can be read); not
 * `name`, which every line already has (the program's name).
 *
 * Off, it costs nothing on the query path: the transports hold no QueryLog then (see udp.ts and
 * tcp.ts). On, everything here is derived from the query's and the reply's bytes after the reply
 * was made, so the handler's fast paths (a response-cache hit skips parsing) are unchanged.
 */
import type { Logger } from '../log.js';

const TYPE_NAMES: Readonly<Record<number, string>> = {
  1: 'A', 2: 'NS', 5: 'CNAME', 6: 'SOA', 12: 'PTR', 13: 'HINFO', 15: 'MX', 16: 'TXT', 28: 'AAAA', 33: 'SRV',
  35: 'NAPTR', 39: 'DNAME', 41: 'OPT', 43: 'DS', 46: 'RRSIG', 47: 'NSEC', 48: 'DNSKEY', 50: 'NSEC3', 52: 'TLSA',
  64: 'SVCB', 65: 'HTTPS', 99: 'SPF', 249: 'TKEY', 250: 'TSIG', 251: 'IXFR', 252: 'AXFR', 253: 'MAILB',
  254: 'MAILA', 255: 'ANY', 257: 'CAA',
};

const RCODE_NAMES: Readonly<Record<number, string>> = {
  0: 'NOERROR', 1: 'FORMERR', 2: 'SERVFAIL', 3: 'NXDOMAIN', 4: 'NOTIMP', 5: 'REFUSED', 16: 'BADVERS',
};

/** A type's mnemonic, or TYPEnnn (RFC 3597 §5). */
export function typeName(t: number): string {
  return TYPE_NAMES[t] ?? `TYPE${t}`;
}

/** An rcode's mnemonic, or RCODEnnn. */
export function rcodeName(r: number): string {
  return RCODE_NAMES[r] ?? `RCODE${r}`;
}

/**
 * The question of a message in presentation form, as spelled (`web.service.consul.`, `.` for the
 * root; `.` and `\` inside a label escaped, other bytes outside printable ASCII as \DDD, RFC 1035
 * §5.1), with its type; null when there is no question that can be read.
 */
export function questionOf(msg: Buffer): { name: string; type: number } | null {
  if (msg.length < 12 || msg.readUInt16BE(4) === 0) return null;
  let off = 12;
  let name = '';
  for (;;) {
    if (off >= msg.length) return null;
    const len = msg[off]!;
    if (len === 0) { off++; break; }
    if (len > 63 || off + 1 + len > msg.length || off - 12 + len > 254) return null;
    for (let i = off + 1; i <= off + len; i++) {
      const c = msg[i]!;
      if (c === 0x2e || c === 0x5c) name += `\\${String.fromCharCode(c)}`;
      else if (c <= 0x20 || c >= 0x7f || c === 0x22) name += `\\${String(c).padStart(3, '0')}`;
      else name += String.fromCharCode(c);
    }
    name += '.';
    off += len + 1;
  }
  if (off + 2 > msg.length) return null;
  return { name: name === '' ? '.' : name, type: msg.readUInt16BE(off) };
}

/** Skips a possibly compressed name; returns the offset after it, or -1. */
function skipName(msg: Buffer, off: number): number {
  while (off < msg.length) {
    const len = msg[off]!;
    if (len === 0) return off + 1;
    if ((len & 0xc0) === 0xc0) return off + 2 <= msg.length ? off + 2 : -1;
    if (len & 0xc0) return -1;
    off += len + 1;
  }
  return -1;
}

/** The full rcode of a reply: the header's 4 bits and, with an OPT record, its extended bits (RFC 6891 §6.1.3). */
export function rcodeOf(reply: Buffer): number {
  if (reply.length < 12) return 0;
  const low = reply[3]! & 0x0f;
  const qd = reply.readUInt16BE(4);
  const records = reply.readUInt16BE(6) + reply.readUInt16BE(8);
  const ar = reply.readUInt16BE(10);
  if (ar === 0) return low;
  let o = 12;
  for (let i = 0; i < qd; i++) {
    o = skipName(reply, o);
    if (o < 0) return low;
    o += 4;
  }
  for (let i = 0; i < records + ar; i++) {
    o = skipName(reply, o);
    if (o < 0 || o + 10 > reply.length) return low;
    if (i >= records && reply.readUInt16BE(o) === 41) return (reply[o + 4]! << 4) | low;
    o += 10 + reply.readUInt16BE(o + 8);
  }
  return low;
}

export class QueryLog {
  private readonly log: Logger;

  constructor(logger: Logger) {
    this.log = logger.child({ component: 'query' });
  }

  /**
   * Logs one query: `reply` is what was sent (null: nothing was), `t0` the performance.now() at
   * which the query was taken up.
   */
  line(proto: 'udp' | 'tcp', address: string, port: number | undefined, query: Buffer, reply: Buffer | null, t0: number): void {
    const ms = Math.round((performance.now() - t0) * 1000) / 1000;
    const client = address.includes(':') ? `[${address}]:${port ?? 0}` : `${address}:${port ?? 0}`;
    const q = questionOf(query);
    const qname = q ? q.name : undefined;
    const qtype = q ? typeName(q.type) : undefined;
    if (reply === null) this.log.info({ client, proto, qname, qtype, dropped: true, ms }, 'query');
    else this.log.info({ client, proto, qname, qtype, rcode: rcodeName(rcodeOf(reply)), size: reply.length, ms }, 'query');
  }
}
