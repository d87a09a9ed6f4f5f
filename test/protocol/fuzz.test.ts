/**
 * A deterministic fuzz of the DNS layer, in-process (QueryHandler, no sockets).
 *
 * A corpus of valid queries (every qtype we answer, EDNS with and without options, long names,
 * mixed case, tags, RFC 2782, reverse names, out of zone) is mutated with a seeded PRNG: truncation
 * at every length, bit flips, byte insert/delete, header counts, label length bytes, compression
 * pointers in the question and in the additional section, pointer loops, two OPTs, OPTs with bad
 * option lengths. Every input goes to the handler over UDP and TCP, and every reply is checked by
 * an independent strict wire walker (not dns-packet alone, which ignores trailing bytes):
 *
 *   - no throw; null (dropped) only when counted in `dropped`;
 *   - a reply has QR set, the query's ID and opcode, and counts that match the bytes exactly;
 *     every name is valid and every compression pointer points backwards at a valid name;
 *   - the question section is the query's own bytes (0x20 spelling echoed);
 *   - UDP: at most max(512, min(client EDNS size, 1232)) bytes; TCP: at most 65535;
 *   - UDP and TCP agree on the rcode; a repeated UDP query (the response cache) agrees too;
 *   - counters.internalErrors stays 0.
 */
import { readFileSync } from 'node:fs';
import packet from 'dns-packet';
import { describe, expect, it } from 'vitest';
import { instanceDoc, makeServer, nodeDoc, seededRandom, type Server } from '../support/cases.js';

// ---------------------------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------------------------

const DEMO = JSON.parse(readFileSync(new URL('../../fixtures/demo-catalog.json', import.meta.url), 'utf8')) as {
  datacenters: Record<string, { nodes: unknown[]; services: Record<string, unknown[]> }>;
};

/** The demo catalog plus `big`: 40 instances with node meta and tags (truncation, glue, shuffling). */
function bigDoc(): unknown {
  const doc = structuredClone(DEMO);
  const dc1 = doc.datacenters.dc1!;
  const list: unknown[] = [];
  for (let i = 0; i < 40; i++) {
    const n = nodeDoc(`big-${i}`, `10.9.0.${i + 1}`, { meta: { rack: `r${i % 4}`, 'rfc1035-x': 'y'.repeat(i % 7) } });
    dc1.nodes.push(n);
    list.push(instanceDoc(n, 'big', { port: 9000 + i, tags: [`t${i % 3}`, 'all'] }));
  }
  dc1.services.big = list;
  return doc;
}

const MAX_UDP = 1232; // the default max_udp_size, which both servers use

const servers: Array<{ name: string; s: Server }> = [
  { name: 'demo rfc', s: makeServer(DEMO, {}, 1) },
  { name: 'big consul-compat a_record_limit 5', s: makeServer(bigDoc(), { compat: 'consul', a_record_limit: 5 }, 2) },
];

// ---------------------------------------------------------------------------------------------
// Building queries by hand (byte-exact control; dns-packet cannot write broken messages)
// ---------------------------------------------------------------------------------------------

const T = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33, OPT: 41, IXFR: 251, AXFR: 252, ANY: 255 } as const;

function wireName(name: string): Buffer {
  if (name === '' || name === '.') return Buffer.from([0]);
  const parts = name.replace(/\.$/, '').split('.').map((l) => Buffer.from(l, 'latin1'));
  return Buffer.concat([...parts.flatMap((p) => [Buffer.from([p.length]), p]), Buffer.from([0])]);
}

const u16 = (v: number) => { const b = Buffer.alloc(2); b.writeUInt16BE(v & 0xffff); return b; };

interface OptSpec {
  readonly size: number;
  readonly dnssecOk?: boolean;
  readonly version?: number;
  readonly options?: ReadonlyArray<readonly [number, Buffer]>;
}

function optRR(o: OptSpec, owner: Buffer = Buffer.from([0])): Buffer {
  const rdata = Buffer.concat((o.options ?? []).flatMap(([code, data]) => [u16(code), u16(data.length), data]));
  const ttl = Buffer.from([0, o.version ?? 0, o.dnssecOk ? 0x80 : 0, 0]);
  return Buffer.concat([owner, u16(T.OPT), u16(o.size), ttl, u16(rdata.length), rdata]);
}

function rawQuery(id: number, qname: Buffer, qtype: number, o: { qclass?: number; flags?: number; an?: Buffer[]; ns?: Buffer[]; ar?: Buffer[] } = {}): Buffer {
  const an = o.an ?? [], ns = o.ns ?? [], ar = o.ar ?? [];
  const h = Buffer.alloc(12);
  h.writeUInt16BE(id, 0);
  h.writeUInt16BE(o.flags ?? 0x0100, 2);
  h.writeUInt16BE(1, 4);
  h.writeUInt16BE(an.length, 6);
  h.writeUInt16BE(ns.length, 8);
  h.writeUInt16BE(ar.length, 10);
  return Buffer.concat([h, qname, u16(qtype), u16(o.qclass ?? 1), ...an, ...ns, ...ar]);
}

// EDNS variants: sizes below 512, at 512, typical, above the server's cap; DO; options.
const COOKIE = Buffer.from('0123456789abcdef', 'hex');
const EDNS: ReadonlyArray<OptSpec | null> = [
  null,
  { size: 512 },
  { size: 100 },
  { size: 0 },
  { size: 1232, dnssecOk: true },
  { size: 4096 },
  { size: 65535 },
  { size: 1232, options: [[10, COOKIE]] }, // client cookie
  { size: 1232, options: [[10, Buffer.concat([COOKIE, Buffer.alloc(16, 7)])]] }, // client + server cookie
  { size: 4096, options: [[8, Buffer.from([0, 1, 24, 0, 10, 1, 2])]] }, // ECS 10.1.2.0/24
  { size: 1232, options: [[8, Buffer.from([0, 2, 56, 0, 0x20, 1, 0x0d, 0xb8, 0, 0, 0])]] }, // ECS v6 /56
  { size: 1232, options: [[8, Buffer.from([0, 1, 0, 0])]] }, // ECS /0
  { size: 1232, options: [[12, Buffer.alloc(40)], [11, Buffer.alloc(0)], [65001, Buffer.from('xyz')]] }, // padding, keepalive, unknown
  { size: 1232, options: [[10, COOKIE], [8, Buffer.from([0, 1, 32, 0, 10, 0, 1, 11])]] },
];

const long = (fill: string, labels: number, len: number) => Array.from({ length: labels }, (_, i) => `${fill}${i}`.padEnd(len, fill)).join('.');
const NAME_TYPES: ReadonlyArray<readonly [string, readonly number[]]> = [
  ['consul', [T.SOA, T.NS, T.ANY, T.A, T.AAAA, T.TXT, T.MX, T.AXFR, T.IXFR, T.CNAME, T.PTR]],
  ['CoNsUl', [T.SOA, T.NS, T.ANY]],
  ['web.service.consul', [T.A, T.AAAA, T.SRV, T.ANY, T.TXT, T.MX, T.NS, T.SOA]],
  ['WeB.sErViCe.CoNsUl', [T.A, T.SRV]],
  ['v1.web.service.consul', [T.A, T.SRV]],
  ['http.web.service.dc1.consul', [T.SRV]],
  ['web.service.dc2.consul', [T.A, T.SRV]],
  ['web.service.dc2.dc.consul', [T.A]],
  ['_web._tcp.service.consul', [T.SRV]],
  ['_web._v1.service.consul', [T.SRV]],
  ['_web._tcp.consul', [T.SRV, T.A]],
  ['_db._primary.consul', [T.SRV]],
  ['_tcp.service.consul', [T.SRV]],
  ['v15.primary.db.service.consul', [T.A, T.SRV]],
  ['primary.db.service.consul', [T.A]],
  ['redis.service.consul', [T.A, T.AAAA, T.SRV]],
  ['api.service.consul', [T.A, T.AAAA, T.SRV, T.ANY]],
  ['big.service.consul', [T.A, T.SRV, T.ANY, T.TXT]],
  ['T1.Big.Service.Consul', [T.SRV, T.A]],
  ['nosuch.service.consul', [T.A, T.SRV]],
  ['web-1.node.consul', [T.A, T.AAAA, T.TXT, T.ANY]],
  ['consul-server-1.node.dc1.consul', [T.A, T.ANY]],
  ['cache-1.node.consul', [T.AAAA, T.A]],
  ['big-7.node.consul', [T.A, T.TXT]],
  ['ns.consul', [T.A, T.AAAA]],
  ['0a000b0b.addr.dc1.consul', [T.A, T.AAAA, T.TXT]],
  ['20010db8000000030000000000000031.addr.dc1.consul', [T.AAAA, T.A]],
  ['service.consul', [T.A]],
  ['dc1.consul', [T.A]],
  ['web.connect.consul', [T.A, T.SRV]],
  ['web.virtual.consul', [T.A]],
  ['web.query.consul', [T.A]],
  ['11.1.0.10.in-addr.arpa', [T.PTR, T.ANY, T.A]],
  ['1.3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.3.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa', [T.PTR]],
  ['10.in-addr.arpa', [T.SOA, T.NS, T.PTR]],
  ['in-addr.arpa', [T.SOA]],
  ['example.com', [T.A, T.SOA]],
  ['', [T.NS, T.SOA]],
  ['arpa', [T.NS]],
  ['xconsul', [T.A]],
  [`${long('a', 3, 63)}.${long('b', 1, 54)}.consul`, [T.A, T.SOA]], // 255 bytes on the wire
  [`${long('x', 58, 3)}.${long('y', 5, 2)}.consul`, [T.A, T.NS]], // 64 labels, 255 bytes
  [`${long('c', 2, 63)}.node.consul`, [T.A]],
];

/** The seed corpus: each (name, qtype) with no EDNS and two EDNS variants, plus a few classes/flags. */
function corpus(): Buffer[] {
  const rnd = seededRandom(0xc0ffee);
  const out: Buffer[] = [];
  let id = 1;
  for (const [name, types] of NAME_TYPES) {
    const qn = wireName(name);
    for (const qt of types) {
      const variants = [EDNS[0]!, EDNS[1 + Math.floor(rnd() * (EDNS.length - 1))]!, EDNS[1 + Math.floor(rnd() * (EDNS.length - 1))]!];
      for (const e of variants) out.push(rawQuery(id++, qn, qt, e ? { ar: [optRR(e)] } : {}));
    }
  }
  for (const e of EDNS) if (e) out.push(rawQuery(id++, wireName('web.service.consul'), T.SRV, { ar: [optRR(e)] }));
  const web = wireName('web.service.consul');
  out.push(rawQuery(id++, web, T.A, { qclass: 255 }));
  out.push(rawQuery(id++, web, T.A, { qclass: 3 }));
  out.push(rawQuery(id++, wireName('version.bind'), T.TXT, { qclass: 3 }));
  out.push(rawQuery(id++, web, T.A, { flags: 0x0110 })); // RD + CD
  out.push(rawQuery(id++, web, T.A, { flags: 0x0000 }));
  out.push(rawQuery(id++, web, 0));
  out.push(rawQuery(id++, web, 65535));
  out.push(rawQuery(id++, web, T.OPT));
  return out;
}

// ---------------------------------------------------------------------------------------------
// The oracle: an independent strict walker for replies, and the checks on every exchange
// ---------------------------------------------------------------------------------------------

/** Reads a (possibly compressed) name; pointers must point strictly backwards at a valid name. */
function readName(buf: Buffer, off: number, depth = 0): { end: number; len: number } | string {
  let len = 1; // the root byte
  let p = off;
  for (;;) {
    if (p >= buf.length) return `name at ${off} runs past the end`;
    const b = buf[p]!;
    if (b === 0) return { end: p + 1, len };
    if ((b & 0xc0) === 0xc0) {
      if (p + 2 > buf.length) return `pointer at ${p} cut`;
      const target = buf.readUInt16BE(p) & 0x3fff;
      if (target >= p) return `pointer at ${p} to ${target} does not point backwards`;
      if (target < 12) return `pointer at ${p} into the header (${target})`;
      if (depth > 32) return `pointer chain too deep at ${p}`;
      const t = readName(buf, target, depth + 1);
      if (typeof t === 'string') return `pointer at ${p}: ${t}`;
      if (len - 1 + t.len > 255) return `name at ${off} longer than 255 bytes`;
      return { end: p + 2, len: len - 1 + t.len };
    }
    if (b & 0xc0) return `label type 0x${b.toString(16)} at ${p}`;
    len += b + 1;
    if (len > 255) return `name at ${off} longer than 255 bytes`;
    p += b + 1;
  }
}

interface Walked {
  readonly id: number;
  readonly flags: number;
  readonly rcode: number; // with the OPT's extended bits
  readonly qd: number;
  readonly an: number;
  readonly ns: number;
  readonly ar: number;
  readonly qEnd: number;
  readonly opt: boolean;
}

/** Walks a reply exactly: header, question, every record; the last byte must end the last record. */
function walkReply(buf: Buffer): Walked | string {
  if (buf.length < 12) return `reply of ${buf.length} bytes`;
  const flags = buf.readUInt16BE(2);
  const [qd, an, ns, ar] = [4, 6, 8, 10].map((o) => buf.readUInt16BE(o)) as [number, number, number, number];
  if (qd > 1) return `QDCOUNT ${qd}`;
  let p = 12;
  for (let i = 0; i < qd; i++) {
    const n = readName(buf, p);
    if (typeof n === 'string') return `question: ${n}`;
    p = n.end + 4;
    if (p > buf.length) return 'question cut';
  }
  const qEnd = p;
  let opt = false;
  let rcode = flags & 0x0f;
  for (let i = 0; i < an + ns + ar; i++) {
    const start = p;
    const n = readName(buf, p);
    if (typeof n === 'string') return `record ${i}: ${n}`;
    p = n.end;
    if (p + 10 > buf.length) return `record ${i} header cut`;
    const type = buf.readUInt16BE(p), cls = buf.readUInt16BE(p + 2), rdlen = buf.readUInt16BE(p + 8);
    const rd = p + 10;
    if (rd + rdlen > buf.length) return `record ${i} rdata runs past the end`;
    if (type === T.OPT) {
      if (i < an + ns) return 'OPT outside ADDITIONAL';
      if (opt) return 'two OPT records';
      if (buf[start] !== 0) return 'OPT owner is not the root';
      opt = true;
      rcode |= buf[p + 4]! << 4;
    } else if (cls !== 1) {
      return `record ${i} of class ${cls}`;
    }
    // RDATA names must be valid too (compression pointers relocated right).
    const rdataNames: Record<number, readonly number[]> = { [T.NS]: [0], [T.CNAME]: [0], [T.PTR]: [0], [T.SRV]: [6], [T.SOA]: [0, -1] };
    const fixed: Record<number, number> = { [T.A]: 4, [T.AAAA]: 16 };
    if (fixed[type] !== undefined && rdlen !== fixed[type]) return `record ${i} type ${type} rdlength ${rdlen}`;
    const names = rdataNames[type];
    if (names) {
      let q = rd + names[0]!;
      for (let k = 0; k < names.length; k++) {
        const r = readName(buf.subarray(0, rd + rdlen), q);
        if (typeof r === 'string') return `record ${i} type ${type} rdata: ${r}`;
        q = r.end;
      }
      const end = type === T.SOA ? q + 20 : q;
      if (end !== rd + rdlen) return `record ${i} type ${type}: rdata names end at ${end}, rdlength says ${rd + rdlen}`;
    }
    p = rd + rdlen;
  }
  if (p !== buf.length) return `${buf.length - p} trailing bytes after the last record`;
  return { id: buf.readUInt16BE(0), flags, rcode, qd, an, ns, ar, qEnd, opt };
}

/** The client's EDNS UDP size read independently from the query (first OPT in ADDITIONAL), or null. */
function clientUdpSize(q: Buffer): number | null {
  if (q.length < 12) return null;
  const [qd, an, ns, ar] = [4, 6, 8, 10].map((o) => q.readUInt16BE(o)) as [number, number, number, number];
  let p = 12;
  for (let i = 0; i < qd; i++) {
    const n = readName(q, p);
    if (typeof n === 'string') return null;
    p = n.end + 4;
  }
  for (let i = 0; i < an + ns + ar && i < 64; i++) {
    if (p > q.length) return null;
    const n = readName(q, p);
    if (typeof n === 'string') {
      // Skip a name the strict reader refuses (forward pointers): a length-prefixed walk.
      let s = p;
      while (s < q.length && q[s] !== 0 && (q[s]! & 0xc0) !== 0xc0) s += q[s]! + 1;
      if (s >= q.length) return null;
      p = q[s] === 0 ? s + 1 : s + 2;
    } else {
      p = n.end;
    }
    if (p + 10 > q.length) return null;
    if (q.readUInt16BE(p) === T.OPT && i >= an + ns) return q.readUInt16BE(p + 2);
    p += 10 + q.readUInt16BE(p + 8);
  }
  return null;
}

const hex = (b: Buffer) => b.toString('hex');

interface Outcome { readonly rcode: number | null; readonly problems: string[] }

/** One exchange and every check on it. `input` is never mutated (the UDP cache keeps a reference). */
function exchange(s: Server, input: Buffer, tcp: boolean): Outcome {
  const problems: string[] = [];
  const dropped = s.counters.dropped;
  let reply: Buffer | null;
  try {
    reply = s.handle(input, tcp);
  } catch (e) {
    return { rcode: null, problems: [`threw ${(e as Error).stack}`] };
  }
  if (reply === null) {
    if (s.counters.dropped !== dropped + 1) problems.push('dropped without counting it');
    return { rcode: null, problems };
  }
  if (!Buffer.isBuffer(reply)) return { rcode: null, problems: ['reply is not a Buffer'] };
  const w = walkReply(reply);
  if (typeof w === 'string') return { rcode: null, problems: [`malformed reply: ${w}`] };
  if (!(w.flags & 0x8000)) problems.push('QR not set');
  if (input.length >= 2 && w.id !== input.readUInt16BE(0)) problems.push(`ID ${w.id}, query ID ${input.readUInt16BE(0)}`);
  if (input.length >= 3 && ((w.flags >> 11) & 0x0f) !== ((input[2]! >> 3) & 0x0f)) problems.push('opcode not echoed');
  if (w.qd === 1 && !reply.subarray(12, w.qEnd).equals(input.subarray(12, w.qEnd))) {
    problems.push(`question not echoed byte for byte: ${hex(reply.subarray(12, w.qEnd))} vs ${hex(input.subarray(12, w.qEnd))}`);
  }
  if (tcp) {
    if (reply.length > 65535) problems.push(`TCP reply of ${reply.length} bytes`);
    if (w.flags & 0x0200) problems.push('TC set over TCP');
  } else {
    const size = clientUdpSize(input);
    const bound = Math.max(512, Math.min(size ?? 512, MAX_UDP));
    if (reply.length > bound) problems.push(`UDP reply of ${reply.length} bytes, bound ${bound}`);
  }
  if (w.rcode === 2) problems.push('SERVFAIL');
  if (w.rcode !== 0 && w.rcode !== 3 && w.an + w.ns > 0) problems.push(`rcode ${w.rcode} with records`);
  try {
    packet.decode(reply);
  } catch (e) {
    problems.push(`dns-packet cannot decode the reply: ${(e as Error).message}`);
  }
  return { rcode: w.rcode, problems };
}

/** Runs an input through every server: UDP, UDP again under another ID (the cache), TCP. */
function check(input: Buffer, failures: string[]): void {
  for (const { name, s } of servers) {
    const udp = exchange(s, Buffer.from(input), false);
    const again = Buffer.from(input);
    if (again.length >= 2) again.writeUInt16BE(again.readUInt16BE(0) ^ 0x5a5a, 0);
    const udp2 = exchange(s, again, false);
    const tcp = exchange(s, Buffer.from(input), true);
    const all = [...udp.problems.map((p) => `udp: ${p}`), ...udp2.problems.map((p) => `udp again: ${p}`), ...tcp.problems.map((p) => `tcp: ${p}`)];
    if (udp.rcode !== udp2.rcode) all.push(`repeated UDP query: rcode ${udp.rcode} then ${udp2.rcode}`);
    if (udp.rcode !== tcp.rcode) all.push(`UDP rcode ${udp.rcode}, TCP rcode ${tcp.rcode}`);
    if (all.length > 0 && failures.length < 20) failures.push(`[${name}] ${hex(input)}\n    ${all.join('\n    ')}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Mutations
// ---------------------------------------------------------------------------------------------

type Rnd = () => number;
/** Adds to a header count (wrapping at 16 bits). */
const bump = (b: Buffer, at: number, n: number) => b.writeUInt16BE((b.readUInt16BE(at) + n) & 0xffff, at);
const int = (rnd: Rnd, n: number) => Math.floor(rnd() * n);

/** Offsets of the question's label length bytes (a valid corpus query). */
function labelOffsets(q: Buffer): number[] {
  const out: number[] = [];
  let p = 12;
  while (p < q.length && q[p] !== 0) { out.push(p); p += q[p]! + 1; }
  return out;
}
const questionEnd = (q: Buffer) => { let p = 12; while (p < q.length && q[p] !== 0) p += q[p]! + 1; return Math.min(p + 5, q.length); };

const MUTATORS: ReadonlyArray<readonly [string, (q: Buffer, rnd: Rnd) => Buffer]> = [
  ['bit flips', (q, rnd) => {
    const b = Buffer.from(q);
    for (let k = 1 + int(rnd, 3); k > 0; k--) { const i = int(rnd, b.length); b[i]! ^= 1 << int(rnd, 8); }
    return b;
  }],
  ['bit flip past the flags', (q, rnd) => { const b = Buffer.from(q); const i = 4 + int(rnd, b.length - 4); b[i]! ^= 1 << int(rnd, 8); return b; }],
  ['byte insert', (q, rnd) => { const i = int(rnd, q.length + 1); return Buffer.concat([q.subarray(0, i), Buffer.from([int(rnd, 256)]), q.subarray(i)]); }],
  ['byte delete', (q, rnd) => { const i = int(rnd, q.length); return Buffer.concat([q.subarray(0, i), q.subarray(i + 1)]); }],
  ['random byte', (q, rnd) => { const b = Buffer.from(q); b[int(rnd, b.length)] = int(rnd, 256); return b; }],
  ['header count', (q, rnd) => {
    const b = Buffer.from(q);
    const vals = [0, 1, 2, 3, 16, 17, 255, 0x8000, 0xffff];
    b.writeUInt16BE(vals[int(rnd, vals.length)]!, 4 + 2 * int(rnd, 4));
    return b;
  }],
  ['label length byte', (q, rnd) => {
    const b = Buffer.from(q);
    const offs = labelOffsets(b);
    const vals = [0, 1, 62, 63, 64, 0x3f + 1, 0x40, 0x7f, 0x80, 0xbf, 0xc0, 0xff, b[offs[0] ?? 12]! + 1, b[offs[0] ?? 12]! - 1];
    b[offs.length ? offs[int(rnd, offs.length)]! : 12] = vals[int(rnd, vals.length)]! & 0xff;
    return b;
  }],
  ['pointer in the question', (q, rnd) => {
    // Replace the tail of the question name from a label boundary with a pointer: to the start of
    // the name (loop), to itself, into the header, forward, or to a later copy of the name.
    const offs = labelOffsets(q);
    const at = offs.length ? offs[int(rnd, offs.length)]! : 12;
    const targets = [12, at, 0, 2, at + 2, q.length, 0x3fff];
    const t = targets[int(rnd, targets.length)]!;
    const qe = questionEnd(q);
    return Buffer.concat([q.subarray(0, at), Buffer.from([0xc0 | (t >> 8), t & 0xff]), q.subarray(qe - 4)]);
  }],
  ['pointer in ADDITIONAL', (q, rnd) => {
    // A record whose owner is a pointer: to the question, to itself (loop), forward, to a pointer.
    const b = Buffer.from(q);
    const at = b.length;
    const targets = [12, at, at + 2, 0, 0x3fff, at - 1];
    const t = targets[int(rnd, targets.length)]!;
    const type = rnd() < 0.5 ? T.OPT : T.A;
    const rr = Buffer.concat([Buffer.from([0xc0 | (t >> 8), t & 0xff]), u16(type), u16(1232), Buffer.alloc(4), u16(type === T.A ? 4 : 0), type === T.A ? Buffer.alloc(4) : Buffer.alloc(0)]);
    bump(b, 10, 1);
    return Buffer.concat([b, rr]);
  }],
  ['pointer loop in ADDITIONAL', (q) => {
    // Two pointers that point at each other, as the owner of an extra record.
    const b = Buffer.from(q);
    const at = b.length;
    bump(b, 10, 1);
    return Buffer.concat([b, Buffer.from([0x01, 0x61, 0xc0 | (at >> 8), at & 0xff]), u16(T.A), u16(1), Buffer.alloc(4), u16(0)]);
  }],
  ['OPT twice', (q, rnd) => {
    const b = Buffer.from(q);
    bump(b, 10, 2);
    return Buffer.concat([b, optRR({ size: 1232 }), optRR({ size: 512 + int(rnd, 4000) })]);
  }],
  ['OPT with a bad option length', (q, rnd) => {
    const b = Buffer.from(q);
    bump(b, 10, 1);
    const opt = optRR({ size: 1232, options: [[10, COOKIE], [8, Buffer.from([0, 1, 24, 0, 10, 1, 2])]] });
    const variant = int(rnd, 5);
    if (variant === 0) opt.writeUInt16BE(40, 11 + 2); // first option longer than RDATA
    else if (variant === 1) opt.writeUInt16BE(opt.readUInt16BE(9) - 3, 9); // RDLENGTH cuts the last option
    else if (variant === 2) opt.writeUInt16BE(opt.readUInt16BE(9) + 3, 9); // RDLENGTH past the end
    else if (variant === 3) opt.writeUInt16BE(0xffff, 11 + 4 + 8 + 2); // ECS length huge
    else opt.writeUInt16BE(2, 11 + 4 + 8 + 2); // ECS too short for its fields
    return Buffer.concat([b, opt]);
  }],
  ['malformed ECS', (q, rnd) => {
    const b = Buffer.from(q);
    bump(b, 10, 1);
    const bad = [
      [0, 3, 8, 0, 1], [0, 1, 33, 0, 1, 2, 3, 4, 5], [0, 1, 24, 0, 10, 1], [0, 1, 24, 0, 10, 1, 2, 3], [0, 2, 129, 0],
      [0, 1, 24, 24, 10, 1, 2], [0, 1, 20, 0, 10, 1, 0xff], [0, 0, 0, 0],
    ];
    return Buffer.concat([b, optRR({ size: 1232, options: [[8, Buffer.from(bad[int(rnd, bad.length)]!)]] })]);
  }],
  ['OPT in ANSWER / owner not root / version 1', (q, rnd) => {
    const b = Buffer.from(q);
    const v = int(rnd, 3);
    if (v === 0) { bump(b, 6, 1); return Buffer.concat([b.subarray(0, questionEnd(b)), optRR({ size: 1232 }), b.subarray(questionEnd(b))]); }
    bump(b, 10, 1);
    if (v === 1) return Buffer.concat([b, optRR({ size: 1232 }, wireName('consul'))]);
    return Buffer.concat([b, optRR({ size: 1232, version: 1 + int(rnd, 255) })]);
  }],
  ['trailing garbage', (q, rnd) => Buffer.concat([q, Buffer.from(Array.from({ length: 1 + int(rnd, 20) }, () => int(rnd, 256)))])],
  ['flags', (q, rnd) => { const b = Buffer.from(q); b.writeUInt16BE(int(rnd, 0x10000) & 0x7fff, 2); return b; }],
  ['splice', (q, rnd) => { const i = 12 + int(rnd, Math.max(1, q.length - 12)); return Buffer.concat([q.subarray(0, i), q.subarray(12 + int(rnd, Math.max(1, q.length - 12)))]); }],
];

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

const CORPUS = corpus();

describe('fuzzing the query handler (in-process, seeded)', () => {
  it('the corpus itself: every query is valid (dns-packet decodes it) and gets a well-formed answer', () => {
    const failures: string[] = [];
    for (const q of CORPUS) {
      expect(() => packet.decode(q), hex(q)).not.toThrow();
      check(q, failures);
    }
    expect(failures).toEqual([]);
    expect(CORPUS.length).toBeGreaterThan(250);
  });

  it('truncation at every length', () => {
    const failures: string[] = [];
    for (const q of CORPUS) for (let n = 0; n < q.length; n++) check(q.subarray(0, n), failures);
    expect(failures).toEqual([]);
  });

  for (const [name, mutate] of MUTATORS) {
    it(`mutation: ${name}`, () => {
      const rnd = seededRandom(0x5eed ^ name.length * 7919 ^ name.charCodeAt(0));
      const failures: string[] = [];
      for (let round = 0; round < 2; round++) for (const q of CORPUS) check(mutate(q, rnd), failures);
      expect(failures).toEqual([]);
    });
  }

  it('mutations stacked: three random mutations per input', () => {
    const rnd = seededRandom(0xabad1dea);
    const failures: string[] = [];
    for (let k = 0; k < 1500; k++) {
      let q = CORPUS[int(rnd, CORPUS.length)]!;
      for (let m = 0; m < 3 && q.length > 0; m++) q = MUTATORS[int(rnd, MUTATORS.length)]![1](q, rnd);
      check(q, failures);
    }
    expect(failures).toEqual([]);
  });

  it('random datagrams with a plausible header', () => {
    const rnd = seededRandom(0xd06);
    const failures: string[] = [];
    for (let k = 0; k < 2000; k++) {
      const b = Buffer.alloc(int(rnd, 300));
      for (let i = 0; i < b.length; i++) b[i] = int(rnd, 256);
      if (b.length > 5) { b[2]! &= 0x07; b[4] = 0; b[5] = 1; }
      check(b, failures);
    }
    expect(failures).toEqual([]);
  });

  it('merging two labels into one label holding a "." never yields a positive answer', () => {
    // "11.1.0.10" as one label is not the four labels 11, 1, 0, 10 (RFC 1035 §3.1, RFC 2181 §11),
    // and "v15.primary" as one label is not the tag "v15.primary", although the zone joins labels
    // with "." to look names up. SOA/NS are excluded: every in-zone name answers them with the
    // apex records.
    const failures = new Set<string>();
    for (const q of CORPUS) {
      const qtype = q.readUInt16BE(questionEnd(q) - 4);
      if (qtype === T.SOA || qtype === T.NS) continue;
      const offs = labelOffsets(q);
      for (let i = 0; i + 1 < offs.length; i++) {
        const a = offs[i]!, b = offs[i + 1]!;
        if (q[a]! + 1 + q[b]! > 63) continue;
        const m = Buffer.from(q);
        m[a] = q[a]! + 1 + q[b]!;
        m[b] = 0x2e; // the length byte of the second label becomes a '.' inside the first
        for (const { name, s } of servers) {
          const r = s.handle(Buffer.from(m), false);
          if (r && r.readUInt16BE(6) > 0) {
            const shown = presentation(m.subarray(12, questionEnd(m) - 4));
            failures.add(`[${name}] ${shown} type ${qtype}: rcode ${r.readUInt16BE(2) & 15}, ${r.readUInt16BE(6)} answers`);
          }
        }
      }
    }
    expect([...failures].slice(0, 12)).toEqual([]);
  });

  it('never counts an internal error', () => {
    for (const { s } of servers) expect(s.counters.internalErrors).toBe(0);
  });
});

describe('the fuzz oracle itself', () => {
  const good = servers[0]!.s.handle(rawQuery(9, wireName('consul'), T.SOA, { ar: [optRR({ size: 1232 })] }), false)!;

  it('accepts a real reply and reads its counts', () => {
    expect(walkReply(good)).toMatchObject({ id: 9, qd: 1, an: 1, ns: 3, ar: 4, opt: true });
  });

  it('rejects a trailing byte, a cut reply, a count that lies, a forward pointer and a pointer into the header', () => {
    const lie = Buffer.from(good); lie.writeUInt16BE(5, 6);
    const fwd = Buffer.from(good); fwd.writeUInt16BE(0xc000 | (good.length - 2), walkReplyFirstRecord(good));
    const hdr = Buffer.from(good); hdr.writeUInt16BE(0xc002, walkReplyFirstRecord(good));
    for (const [what, b] of [
      ['trailing byte', Buffer.concat([good, Buffer.from([0])])], ['cut', good.subarray(0, good.length - 1)],
      ['count lie', lie], ['forward pointer', fwd], ['pointer into the header', hdr],
    ] as const) {
      expect(typeof walkReply(b), what).toBe('string');
    }
  });

  it('reads the client UDP size from the first OPT, and none without one', () => {
    expect(clientUdpSize(rawQuery(1, wireName('consul'), T.SOA, { ar: [optRR({ size: 4096 })] }))).toBe(4096);
    expect(clientUdpSize(rawQuery(1, wireName('consul'), T.SOA))).toBeNull();
  });
});

/** Offset of the first record after the question of a reply. */
function walkReplyFirstRecord(buf: Buffer): number {
  let p = 12;
  while (buf[p] !== 0) p += buf[p]! + 1;
  return p + 5;
}

/** A wire name in presentation form, a '.' inside a label escaped as '\.'. */
function presentation(wire: Buffer): string {
  const labels: string[] = [];
  for (let p = 0; p < wire.length && wire[p] !== 0; p += wire[p]! + 1) {
    labels.push(wire.toString('latin1', p + 1, p + 1 + wire[p]!).replace(/[.\\]/g, (c) => `\\${c}`));
  }
  return `${labels.join('.')}.`;
}
