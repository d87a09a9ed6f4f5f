// The query log's reading of queries and replies (src/dns/query-log.ts), and its line.
import { Writable } from 'node:stream';
import packet from 'dns-packet';
import { describe, expect, it } from 'vitest';
import { QueryLog, questionOf, rcodeName, rcodeOf, typeName } from '../../src/dns/query-log.js';
import { createLogger } from '../../src/log.js';

const query = (name: string, type: string) => packet.encode({ type: 'query', id: 7, questions: [{ name, type, class: 'IN' } as packet.Question] });

describe('questionOf', () => {
  it('gives the name as spelled, with a trailing dot, and the type', () => {
    expect(questionOf(query('WeB.service.consul', 'SRV'))).toEqual({ name: 'WeB.service.consul.', type: 33 });
    expect(questionOf(query('.', 'NS'))).toEqual({ name: '.', type: 2 });
  });

  it('escapes dots and backslashes inside labels and bytes outside printable ASCII (RFC 1035 §5.1)', () => {
    const msg = Buffer.concat([Buffer.alloc(12), Buffer.from([4, 0x61, 0x2e, 0x5c, 0x20, 2, 0xff, 0x22, 0]), Buffer.from([0, 1, 0, 1])]);
    msg.writeUInt16BE(1, 4);
    expect(questionOf(msg)).toEqual({ name: 'a\\.\\\\\\032.\\255\\034.', type: 1 });
  });

  it('is null without a readable question', () => {
    expect(questionOf(Buffer.alloc(5))).toBeNull();
    expect(questionOf(Buffer.alloc(12))).toBeNull(); // QDCOUNT 0
    const cut = query('web.service.consul', 'A');
    expect(questionOf(cut.subarray(0, 20))).toBeNull();
    const ptr = Buffer.concat([Buffer.alloc(12), Buffer.from([0xc0, 0x0c, 0, 1, 0, 1])]);
    ptr.writeUInt16BE(1, 4);
    expect(questionOf(ptr)).toBeNull();
  });
});

describe('rcodeOf', () => {
  it('reads the header rcode, and the extended bits from an OPT record (BADVERS = 16)', () => {
    const nx = packet.encode({ type: 'response', id: 1, flags: 3, questions: [{ name: 'x.consul', type: 'A', class: 'IN' }] });
    expect(rcodeOf(nx)).toBe(3);
    const badvers = packet.encode({
      type: 'response', id: 1, flags: 0, questions: [{ name: 'x.consul', type: 'A', class: 'IN' }],
      additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, extendedRcode: 1, ednsVersion: 0, flags: 0, options: [] } as unknown as packet.Answer],
    });
    expect(rcodeOf(badvers)).toBe(16);
  });

  it('names types and rcodes, unknown ones in the generic form', () => {
    expect([typeName(1), typeName(33), typeName(65), typeName(65280)]).toEqual(['A', 'SRV', 'HTTPS', 'TYPE65280']);
    expect([rcodeName(0), rcodeName(5), rcodeName(16), rcodeName(9)]).toEqual(['NOERROR', 'REFUSED', 'BADVERS', 'RCODE9']);
  });
});

describe('QueryLog.line', () => {
  it('writes one info line with the fixed fields, and `dropped` when nothing was sent', () => {
    const lines: Array<Record<string, unknown>> = [];
    const log = new QueryLog(createLogger('info', new Writable({ write(c, _e, cb) { lines.push(JSON.parse(String(c))); cb(); } })));
    const q = query('web.service.consul', 'A');
    const reply = Buffer.from(q);
    reply.writeUInt16BE(0x8403, 2);
    log.line('udp', '127.0.0.1', 5353, q, reply, performance.now());
    log.line('tcp', '::1', 40000, q, null, performance.now());
    expect(lines.map(({ time: _t, ms, ...rest }) => ({ ...rest, ms: typeof ms }))).toEqual([
      { level: 30, name: 'catalog-dns', component: 'query', client: '127.0.0.1:5353', proto: 'udp', qname: 'web.service.consul.', qtype: 'A', rcode: 'NXDOMAIN', size: q.length, ms: 'number', msg: 'query' },
      { level: 30, name: 'catalog-dns', component: 'query', client: '[::1]:40000', proto: 'tcp', qname: 'web.service.consul.', qtype: 'A', dropped: true, ms: 'number', msg: 'query' },
    ]);
  });
});
