/**
 * Small wire-format helpers on top of dns-packet. dns-packet encodes RDATA correctly but neither
 * validates names nor compresses them, so names are encoded here (validated) and owner names are
 * written as compression pointers where the response layout allows it.
 */
import packet from 'dns-packet';

export const QTYPE = {
  A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33, OPT: 41,
  IXFR: 251, AXFR: 252, ANY: 255,
} as const;

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
export const OPCODE_QUERY = 0;

/** Pointer to the question name, which always starts at offset 12. */
export const QNAME_POINTER = Buffer.from([0xc0, 0x0c]);

/** Encodes a presentation name ("a.b.c", no escapes) as uncompressed wire labels; throws on invalid names. */
export function nameToWire(name: string): Buffer {
  const n = name.endsWith('.') ? name.slice(0, -1) : name;
  if (n === '') return Buffer.from([0]);
  const labels = n.split('.').map((l) => Buffer.from(l, 'utf8'));
  let len = 1;
  for (const l of labels) {
    if (l.length === 0 || l.length > 63) throw new RangeError(`invalid DNS name ${JSON.stringify(name)}: label of ${l.length} bytes`);
    len += 1 + l.length;
  }
  if (len > 255) throw new RangeError(`invalid DNS name ${JSON.stringify(name)}: ${len} bytes on the wire`);
  const out = Buffer.allocUnsafe(len);
  let o = 0;
  for (const l of labels) {
    out[o++] = l.length;
    l.copy(out, o);
    o += l.length;
  }
  out[o] = 0;
  return out;
}

/** dns-packet's record codec (exported at runtime, not in its type definitions). */
const answerCodec = (packet as unknown as { answer: { encode(a: unknown): Buffer } }).answer;

/** TYPE, CLASS, TTL, RDLENGTH and RDATA of a record (everything after the owner name). */
export function rrTail(type: string, ttl: number, data: unknown): Buffer {
  const full = answerCodec.encode({ name: '.', type, class: 'IN', ttl, data });
  return Buffer.from(full.subarray(1)); // drop the root owner byte
}

/** A complete record with an uncompressed owner. */
export function rrAt(owner: Buffer, type: string, ttl: number, data: unknown): Buffer {
  return Buffer.concat([owner, rrTail(type, ttl, data)]);
}

/** TXT character-strings: split long texts at 255 bytes (RFC 1035 §3.3). */
export function txtStrings(text: string): Buffer[] {
  const b = Buffer.from(text, 'utf8');
  if (b.length === 0) return [b];
  const out: Buffer[] = [];
  for (let i = 0; i < b.length; i += 255) out.push(b.subarray(i, i + 255));
  return out;
}

