/**
 * The raw-header gate and question parser (NSD's habit: check the header before any parsing).
 * Never throws on peer input: returns a Query or a Reject saying what to do.
 */
import { OPCODE_QUERY, RCODE } from './wire.js';

export interface Edns {
  readonly udpSize: number;
  readonly version: number;
  readonly dnssecOk: boolean;
  /** ECS option to echo (family, source prefix, scope 0, address), or null. */
  readonly ecs: Buffer | null;
  /** The OPT carried options (cookies, ECS, padding, ...): such queries vary per client. */
  readonly hasOptions: boolean;
}

export interface Query {
  readonly ok: true;
  readonly msg: Buffer;
  readonly id: number;
  /** Header bits copied to the reply: RD (0x0100) and CD (0x0010). */
  readonly copyFlags: number;
  /** End offset of the question section (12 + qname + 4). */
  readonly questionEnd: number;
  readonly qtype: number;
  readonly qclass: number;
  /** Lower-cased wire-format qname as a latin1 string (see zone/wireKey). */
  readonly key: string;
  readonly edns: Edns | null;
}

export type RejectKind = 'drop' | 'formerr' | 'notimp' | 'refused' | 'badvers';

export interface Reject {
  readonly ok: false;
  readonly msg: Buffer;
  readonly kind: RejectKind;
  readonly reason: string;
  readonly id: number;
  readonly opcode: number;
  readonly copyFlags: number;
  /** End of a well-formed question to echo, or 12 when there is none. */
  readonly questionEnd: number;
  readonly edns: Edns | null;
}

const MAX_ADDITIONAL_SCAN = 16;
const HAS_UPPER = /[A-Z]/;
const UPPER = /[A-Z]/g;
const lower = (c: string) => String.fromCharCode(c.charCodeAt(0) | 0x20);

const reject = (kind: RejectKind, reason: string, msg: Buffer, questionEnd = 12, edns: Edns | null = null): Reject => ({
  ok: false, msg, kind, reason, id: msg.length >= 2 ? msg.readUInt16BE(0) : 0,
  opcode: msg.length >= 3 ? (msg[2]! >> 3) & 0x0f : 0,
  copyFlags: msg.length >= 4 ? msg.readUInt16BE(2) & 0x0110 : 0,
  questionEnd, edns,
});

/** Skips a possibly compressed name; returns the offset after it, or -1. */
function skipName(msg: Buffer, off: number): number {
  let hops = 0;
  while (off < msg.length) {
    const len = msg[off]!;
    if (len === 0) return off + 1;
    if ((len & 0xc0) === 0xc0) return off + 2 <= msg.length && hops++ < 64 ? off + 2 : -1;
    if (len & 0xc0) return -1;
    off += len + 1;
  }
  return -1;
}

export function parseQuery(msg: Buffer): Query | Reject {
  if (msg.length < 12) return reject('drop', 'shorter than a DNS header', msg);
  const flags = msg.readUInt16BE(2);
  if (flags & 0x8000) return reject('drop', 'QR set (a response, not a query)', msg);
  const opcode = (flags >> 11) & 0x0f;
  const qdcount = msg.readUInt16BE(4);
  if (opcode !== OPCODE_QUERY) return reject('notimp', `opcode ${opcode}`, msg);
  if (qdcount !== 1) return reject('formerr', `QDCOUNT ${qdcount}`, msg);

  // Question name: uncompressed labels only (a pointer could only point into the header).
  let off = 12;
  for (;;) {
    if (off >= msg.length) return reject('formerr', 'question name runs past the end', msg);
    const len = msg[off]!;
    if (len === 0) { off++; break; }
    if (len > 63) return reject('formerr', 'compressed or invalid label in the question', msg);
    if (off + 1 + len > msg.length) return reject('formerr', 'label runs past the end', msg);
    off += len + 1;
    if (off - 12 > 254) return reject('formerr', 'question name longer than 255 bytes', msg);
  }
  // The map key: the wire name as latin1 with ASCII letters lower-cased (length bytes are < 64,
  // so they are never letters; bytes >= 0x80 are left alone, as DNS case folding is ASCII only).
  let key = msg.toString('latin1', 12, off);
  if (HAS_UPPER.test(key)) key = key.replace(UPPER, lower);
  if (off + 4 > msg.length) return reject('formerr', 'question type/class missing', msg);
  const qtype = msg.readUInt16BE(off);
  const qclass = msg.readUInt16BE(off + 2);
  const questionEnd = off + 4;
  const copyFlags = flags & 0x0110;

  // Skip answer and authority records, then look for OPT among the additional records.
  const an = msg.readUInt16BE(6), ns = msg.readUInt16BE(8), ar = msg.readUInt16BE(10);
  if (an + ns + ar > MAX_ADDITIONAL_SCAN) return reject('formerr', 'too many records in a query', msg, questionEnd);
  let p = questionEnd;
  let edns: Edns | null = null;
  for (let i = 0; i < an + ns + ar; i++) {
    const nameStart = p;
    p = skipName(msg, p);
    if (p < 0 || p + 10 > msg.length) return reject('formerr', 'truncated record', msg, questionEnd, edns);
    const type = msg.readUInt16BE(p);
    const rdlen = msg.readUInt16BE(p + 8);
    const rdStart = p + 10;
    if (rdStart + rdlen > msg.length) return reject('formerr', 'record data runs past the end', msg, questionEnd, edns);
    if (type === 41) {
      if (i < an + ns) return reject('formerr', 'OPT outside the additional section', msg, questionEnd);
      if (edns) return reject('formerr', 'more than one OPT record', msg, questionEnd, edns);
      if (msg[nameStart] !== 0) return reject('formerr', 'OPT owner is not the root', msg, questionEnd);
      const udpSize = Math.max(512, msg.readUInt16BE(p + 2));
      const version = msg[p + 5]!;
      const dnssecOk = (msg.readUInt16BE(p + 6) & 0x8000) !== 0;
      let ecs: Buffer | null = null;
      for (let o = rdStart; o < rdStart + rdlen;) {
        if (o + 4 > rdStart + rdlen) return reject('formerr', 'truncated EDNS option', msg, questionEnd);
        const code = msg.readUInt16BE(o), olen = msg.readUInt16BE(o + 2);
        if (o + 4 + olen > rdStart + rdlen) return reject('formerr', 'EDNS option runs past the end', msg, questionEnd);
        if (code === 8) {
          // RFC 7871 client subnet: validate, echo with SCOPE PREFIX-LENGTH 0.
          const fam = olen >= 4 ? msg.readUInt16BE(o + 4) : 0;
          const src = olen >= 4 ? msg[o + 6]! : 0;
          const max = fam === 1 ? 32 : fam === 2 ? 128 : -1;
          if (max < 0 || src > max || olen - 4 !== Math.ceil(src / 8)) {
            return reject('formerr', 'malformed EDNS client subnet option', msg, questionEnd);
          }
          // RFC 7871 §6: address bits beyond SOURCE PREFIX-LENGTH must be zero.
          if (src % 8 !== 0 && (msg[o + 4 + olen - 1]! & (0xff >> (src % 8))) !== 0) {
            return reject('formerr', 'EDNS client subnet address has bits beyond its prefix', msg, questionEnd);
          }
          ecs = Buffer.from(msg.subarray(o, o + 4 + olen));
          ecs[7] = 0;
        }
        o += 4 + olen; // other options (cookies, padding, ...) are ignored, as RFC 6891 asks
      }
      edns = { udpSize, version, dnssecOk, ecs, hasOptions: rdlen > 0 };
    }
    p = rdStart + rdlen;
  }
  // Bytes after the last record the header counts: the message is not what its header says.
  // FORMERR, as Knot DNS answers (NSD 4.6 and BIND 9.18 ignore them); before the checks below,
  // since a malformed message has no version or class to judge.
  if (p !== msg.length) return reject('formerr', `${msg.length - p} bytes after the last record`, msg, questionEnd, edns);
  // After the scan, so that a second OPT is FORMERR whatever the first one's version.
  if (edns && edns.version !== 0) return reject('badvers', `EDNS version ${edns.version}`, msg, questionEnd, edns);
  if (qclass !== 1 && qclass !== 255) return reject('refused', `class ${qclass}`, msg, questionEnd, edns);
  // Meta types are not questions (RFC 6895 §3.1): OPT, TSIG and type 0 are malformed; TKEY
  // negotiation and the obsolete MAILA/MAILB are not implemented.
  if (qtype === 0 || qtype === 41 || qtype === 250) return reject('formerr', `qtype ${qtype} is not a question`, msg, questionEnd, edns);
  if (qtype === 249 || qtype === 253 || qtype === 254) return reject('notimp', `qtype ${qtype}`, msg, questionEnd, edns);
  return { ok: true, msg, id: msg.readUInt16BE(0), copyFlags, questionEnd, qtype, qclass, key, edns };
}

export const REJECT_RCODE: Record<Exclude<RejectKind, 'drop'>, number> = {
  formerr: RCODE.FORMERR, notimp: RCODE.NOTIMP, refused: RCODE.REFUSED, badvers: 16,
};
