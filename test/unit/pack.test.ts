import packet from 'dns-packet';
import { describe, expect, it } from 'vitest';
import { packBlock, withFirstOwner, writeBlock, type PackRecord } from '../../src/dns/pack.js';
import { nameToWire } from '../../src/dns/wire.js';

const soa: PackRecord = { owner: 'consul', type: 'SOA', ttl: 5, data: { mname: 'ns.consul', rname: 'hostmaster.consul', serial: 7, refresh: 1, retry: 2, expire: 3, minimum: 4 } };
const ns: PackRecord[] = ['a', 'b'].map((n) => ({ owner: 'consul', type: 'NS', ttl: 9, data: `${n}.node.dc1.consul` }));
const glue: PackRecord[] = [
  { owner: 'a.node.dc1.consul', type: 'A', ttl: 9, data: '10.0.0.1' },
  { owner: 'b.node.dc1.consul', type: 'AAAA', ttl: 9, data: '2001:db8::1' },
];

/** A message: header + question of `qname` + the block, as the response writer lays it out. */
function message(qname: string, block: ReturnType<typeof packBlock>): Buffer {
  const q = packet.encode({ type: 'response', id: 1, flags: 0, questions: [{ name: qname, type: 'SOA', class: 'IN' }] } as unknown as packet.Packet);
  const out = Buffer.alloc(q.length + block.bytes.length);
  q.copy(out);
  out.writeUInt16BE(block.an, 6);
  out.writeUInt16BE(block.ns, 8);
  out.writeUInt16BE(block.ar, 10);
  expect(writeBlock(block, out, q.length)).toBe(out.length);
  return out;
}

describe('packBlock', () => {
  it('round-trips SOA, NS and glue through dns-packet at any offset', () => {
    const block = packBlock([soa], ns, glue);
    for (const qname of ['consul', 'a.much.longer.question.name.under.consul']) {
      const d = packet.decode(message(qname, block));
      expect(d.answers).toMatchObject([{ name: 'consul', type: 'SOA', ttl: 5, data: { mname: 'ns.consul', rname: 'hostmaster.consul', serial: 7, minimum: 4 } }]);
      expect(d.authorities!.map((r) => `${r.name} ${r.type} ${r.data}`)).toEqual(['consul NS a.node.dc1.consul', 'consul NS b.node.dc1.consul']);
      expect(d.additionals!.map((r) => `${r.name} ${r.type} ${r.data}`)).toEqual(['a.node.dc1.consul A 10.0.0.1', 'b.node.dc1.consul AAAA 2001:db8::1']);
    }
  });

  it('compresses: the block is the uncompressed size minus what the pointers save', () => {
    const block = packBlock([soa], ns, glue);
    const plain = [soa, ...ns, ...glue].reduce((n, r) => n + packet.answer.encodingLength({ name: r.owner, type: r.type, ttl: r.ttl, data: r.data } as never), 0);
    // consul(8) once; every later "consul" is a 2-byte pointer (6 saved), node.dc1.consul reused, owners of glue are pointers.
    expect(block.bytes.length).toBeLessThan(plain - 60);
    expect(block.relocs.length).toBeGreaterThan(5);
  });

  it('rejects an address of the wrong family', () => {
    expect(() => packBlock([], [], [{ owner: 'x.consul', type: 'A', ttl: 0, data: '::1' }])).toThrow(/not an A address/);
  });
});

describe('withFirstOwner', () => {
  it('gives the same records as packing with that owner, at any offset', () => {
    const template = packBlock([], [{ ...soa, owner: '.' }], []);
    for (const owner of ['1.0.10.in-addr.arpa', '8.b.d.0.1.0.0.2.ip6.arpa', 'consul']) {
      const block = withFirstOwner(template, nameToWire(owner));
      const direct = packBlock([], [{ ...soa, owner }], []);
      for (const qname of ['x.in-addr.arpa', 'a.much.longer.question.name.under.consul']) {
        expect(packet.decode(message(qname, block)).authorities).toEqual(packet.decode(message(qname, direct)).authorities);
      }
      expect(packet.decode(message('x', block)).authorities).toMatchObject([{ name: owner, type: 'SOA', data: { mname: 'ns.consul', rname: 'hostmaster.consul' } }]);
    }
  });

  it('needs a template whose first owner is the root', () => {
    expect(() => withFirstOwner(packBlock([soa], [], []), nameToWire('x'))).toThrow(/not the root/);
  });
});
