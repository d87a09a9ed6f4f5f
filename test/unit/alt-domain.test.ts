// alt_domain's name rewriting on prepared wire fragments (src/dns/alt-domain.ts): records, packed
// blocks (compressed again), and which domains may be an alt domain.
import packet from 'dns-packet';
import { describe, expect, it } from 'vitest';
import { altDomainProblem } from '../../src/config.js';
import { SuffixRewrite } from '../../src/dns/alt-domain.js';
import { packBlock, writeBlock, type PackRecord } from '../../src/dns/pack.js';
import { QNAME_POINTER, nameToWire, rrAt, rrTail } from '../../src/dns/wire.js';

const rw = new SuffixRewrite(nameToWire('consul'), nameToWire('example.internal'));

/** Decodes one complete record (owner uncompressed) with dns-packet. */
function decodeRecord(rr: Buffer): packet.Answer {
  const msg = packet.encode({ type: 'response', id: 1, flags: 0, questions: [], answers: [] });
  msg.writeUInt16BE(1, 6); // ANCOUNT
  return packet.decode(Buffer.concat([msg, rr])).answers![0]!;
}

/** A question for `name`, then `block` written after it, decoded with dns-packet. */
function decodeBlock(name: string, block: ReturnType<typeof packBlock>): packet.DecodedPacket {
  const q = packet.encode({ type: 'query', id: 1, questions: [{ name, type: 'SOA', class: 'IN' }] });
  const out = Buffer.alloc(q.length + block.bytes.length);
  q.copy(out);
  writeBlock(block, out, q.length);
  out.writeUInt16BE(0x8400, 2);
  out.writeUInt16BE(block.an, 6);
  out.writeUInt16BE(block.ns, 8);
  out.writeUInt16BE(block.ar, 10);
  return packet.decode(out);
}

describe('altDomainProblem', () => {
  it.each([
    ['consul', 'example.internal', null],
    ['consul', 'consul.example', null],
    ['consul', 'consul', 'is the domain itself'],
    ['consul', 'alt.consul', 'inside the domain'],
    ['consul.example.com', 'example.com', 'contains the domain'],
    ['consul', '10.in-addr.arpa', 'reverse-lookup name'],
    ['consul', 'arpa', 'reverse-lookup name'],
  ])('domain %s, alt %s -> %s', (domain, alt, problem) => {
    const p = altDomainProblem(domain, alt);
    if (problem === null) expect(p).toBeNull();
    else expect(p).toContain(problem);
  });
});

describe('SuffixRewrite.record', () => {
  it('rewrites an SRV target behind a question-pointer owner and fixes RDLENGTH; the target offset follows', () => {
    const rr = Buffer.concat([QNAME_POINTER, rrTail('SRV', 30, { priority: 1, weight: 2, port: 8080, target: 'web-1.node.dc1.consul' })]);
    const { bytes, rdataAt } = rw.record(rr, true);
    expect(bytes.subarray(0, 2)).toEqual(QNAME_POINTER);
    expect(rdataAt).toBe(12);
    expect(bytes.readUInt16BE(10)).toBe(bytes.length - 12);
    expect(bytes.subarray(rdataAt + 6)).toEqual(nameToWire('web-1.node.dc1.example.internal'));
  });

  it('rewrites absolute owners and SOA MNAME/RNAME, keeps TTL, serial and timers', () => {
    const soa = { mname: 'ns.consul', rname: 'hostmaster.consul', serial: 7, refresh: 1, retry: 2, expire: 3, minimum: 4 };
    const rr = rrAt(nameToWire('consul'), 'SOA', 60, soa);
    const d = decodeRecord(rw.record(rr, true).bytes);
    expect(d).toMatchObject({ name: 'example.internal', type: 'SOA', ttl: 60, data: { mname: 'ns.example.internal', rname: 'hostmaster.example.internal', serial: 7, refresh: 1, retry: 2, expire: 3, minimum: 4 } });
  });

  it.each([
    ['CNAME', 'db.node.dc1.consul', 'db.node.dc1.example.internal'],
    ['CNAME', 'db.example.com', 'db.example.com'], // outside the domain: untouched
    ['NS', 'CONSUL-server-1.node.dc1.CoNsUl', 'CONSUL-server-1.node.dc1.example.internal'], // case-insensitive (RFC 4343)
    ['PTR', 'web-1.node.dc1.xconsul', 'web-1.node.dc1.xconsul'], // not at a label boundary
    ['PTR', 'consul', 'example.internal'], // the apex itself
  ])('%s %s -> %s', (type, target, want) => {
    const rr = rrAt(nameToWire('a.consul'), type, 0, target);
    const d = decodeRecord(rw.record(rr, true).bytes);
    expect(d.name).toBe('a.example.internal');
    expect(d.data).toBe(want);
  });

  it('copies RDATA without names (A, AAAA, TXT) and rewrites glue tails (no owner)', () => {
    const txt = rrAt(nameToWire('web-1.node.dc1.consul'), 'TXT', 0, [Buffer.from('consul=consul')]);
    expect(decodeRecord(rw.record(txt, true).bytes)).toMatchObject({ name: 'web-1.node.dc1.example.internal', data: [Buffer.from('consul=consul')] });
    const a = rrTail('A', 5, '10.0.0.1');
    expect(rw.record(a, false).bytes).toEqual(a);
    const cname = rrTail('CNAME', 5, 'x.node.dc1.consul');
    const out = rw.record(cname, false).bytes;
    expect(decodeRecord(Buffer.concat([Buffer.from([0]), out])).data).toBe('x.node.dc1.example.internal');
  });

  it('keeps the primary domain in a name that would grow past 255 bytes', () => {
    const long = new SuffixRewrite(nameToWire('consul'), nameToWire(`${'a'.repeat(63)}.${'b'.repeat(63)}.internal`));
    const target = `${'x'.repeat(63)}.${'y'.repeat(63)}.node.dc1.consul`;
    const rr = rrAt(nameToWire('c'), 'CNAME', 0, target);
    expect(decodeRecord(long.record(rr, true).bytes).data).toBe(target);
  });

  it('refuses records it cannot read (compression inside a fragment, wrong RDLENGTH)', () => {
    expect(() => rw.record(Buffer.concat([Buffer.from([1, 0x61, 0xc0, 0x0c]), rrTail('A', 0, '10.0.0.1')]), true)).toThrow(RangeError);
    const bad = rrTail('A', 0, '10.0.0.1');
    expect(() => rw.record(bad.subarray(0, bad.length - 1), false)).toThrow(RangeError);
  });
});

describe('SuffixRewrite.block', () => {
  const soa: PackRecord = { owner: 'consul', type: 'SOA', ttl: 0, data: { mname: 'ns.consul', rname: 'hostmaster.consul', serial: 9, refresh: 3600, retry: 600, expire: 86400, minimum: 0 } };
  const ns = ['consul-server-1', 'consul-server-2'].map((n): PackRecord => ({ owner: 'consul', type: 'NS', ttl: 0, data: `${n}.node.dc1.consul` }));
  const glue: PackRecord[] = [
    { owner: 'consul-server-1.node.dc1.consul', type: 'A', ttl: 0, data: '10.0.0.10' },
    { owner: 'consul-server-2.node.dc1.consul', type: 'AAAA', ttl: 0, data: '2001:db8::2' },
  ];
  const block = packBlock([soa], ns, glue);

  it('round trip: a rewrite onto the same domain packs the same bytes and pointers as pack.ts', () => {
    const same = new SuffixRewrite(nameToWire('consul'), nameToWire('consul')).block(block);
    expect(same.bytes).toEqual(block.bytes);
    expect([...same.relocs]).toEqual([...block.relocs]);
    expect([same.an, same.ns, same.ar]).toEqual([block.an, block.ns, block.ar]);
  });

  it('rewrites every name, compressed again, and decodes to the rewritten records', () => {
    const alt = rw.block(block);
    const d = decodeBlock('example.internal', alt);
    const names = (rs: packet.Answer[] | undefined) => (rs ?? []).map((r) => [r.name, r.type, typeof r.data === 'string' ? r.data : (r.data as { mname?: string }).mname ?? r.data]);
    expect(names(d.answers)).toEqual([['example.internal', 'SOA', 'ns.example.internal']]);
    expect((d.answers![0]!.data as { rname: string }).rname).toBe('hostmaster.example.internal');
    expect(names(d.authorities)).toEqual([
      ['example.internal', 'NS', 'consul-server-1.node.dc1.example.internal'],
      ['example.internal', 'NS', 'consul-server-2.node.dc1.example.internal'],
    ]);
    expect(names(d.additionals)).toEqual([
      ['consul-server-1.node.dc1.example.internal', 'A', '10.0.0.10'],
      ['consul-server-2.node.dc1.example.internal', 'AAAA', '2001:db8::2'],
    ]);
    // Compressed: "example.internal" is spelled out once.
    expect(alt.bytes.toString('latin1').split('internal').length - 1).toBe(1);
  });
});
