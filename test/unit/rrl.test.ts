/**
 * Response rate limiting (src/dns/rrl.ts), with an injected clock: rates and the window, the slip
 * pattern, client prefixes, the response classes (NXDOMAIN and NODATA charged to the zone), the
 * bounded table, and the slipped reply.
 */
import { describe, expect, it } from 'vitest';
import {
  parseIpv4, parseIpv6, responseClass, ResponseRateLimiter, RRL_CLASS, RRL_DROP, RRL_OK, RRL_SLIP, slipReply,
  type RrlOptions, type RrlVerdict,
} from '../../src/dns/rrl.js';

const NOERROR = 0, FORMERR = 1, SERVFAIL = 2, NXDOMAIN = 3, NOTIMP = 4, REFUSED = 5;
const A = 1, SRV = 33, AAAA = 28;

/**
 * A response as the handler writes it: header (QR, AA unless `aa: false`, rcode, counts), the
 * question, then `an` placeholder bytes (the limiter reads only the header and the question).
 */
function response(o: { qname?: string; qtype?: number; rcode?: number; an?: number; aa?: boolean; id?: number; ar?: number }): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt16BE(o.id ?? 0x1234, 0);
  h.writeUInt16BE(0x8000 | (o.aa === false ? 0 : 0x0400) | 0x0100 | (o.rcode ?? NOERROR), 2);
  h.writeUInt16BE(o.qname === undefined && o.rcode === FORMERR ? 0 : 1, 4);
  h.writeUInt16BE(o.an ?? 0, 6);
  h.writeUInt16BE(0, 8);
  h.writeUInt16BE(o.ar ?? 0, 10);
  if (o.qname === undefined && o.rcode === FORMERR) return h;
  const labels = (o.qname ?? 'web.service.consul').split('.').filter(Boolean);
  const name = Buffer.concat([...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'latin1')])), Buffer.from([0])]);
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(o.qtype ?? A, 0);
  tail.writeUInt16BE(1, 2);
  return Buffer.concat([h, name, tail, Buffer.alloc(16 * (o.an ?? 0), 0xab)]);
}

const positive = (qname = 'web.service.consul', qtype = A) => response({ qname, qtype, an: 1 });
const nxdomain = (qname: string) => response({ qname, rcode: NXDOMAIN });
const nodata = (qname: string, qtype = AAAA) => response({ qname, qtype, rcode: NOERROR, an: 0 });

/** A limiter on a clock the test moves (milliseconds). */
function limiter(o: Partial<RrlOptions> = {}) {
  let now = 1_000_000;
  const l = new ResponseRateLimiter({
    responsesPerSecond: 5, slip: 2, windowSeconds: 15, ipv4Prefix: 24, ipv6Prefix: 56, seed: 42,
    ...o, clock: () => now,
  });
  return {
    l,
    advance(ms: number) { now += ms; },
    /** `n` responses at the current instant: their verdicts. */
    charge(n: number, resp: Buffer = positive(), addr = '192.0.2.1'): RrlVerdict[] {
      return Array.from({ length: n }, () => l.check(resp, addr));
    },
  };
}

const V = { '.': RRL_OK, D: RRL_DROP, S: RRL_SLIP } as const;
/** Verdicts as a string: '.' sent, 'S' slipped, 'D' dropped. */
const pattern = (vs: readonly RrlVerdict[]) => vs.map((v) => (v === RRL_OK ? '.' : v === RRL_SLIP ? 'S' : 'D')).join('');
const okCount = (vs: readonly RrlVerdict[]) => vs.filter((v) => v === V['.']).length;

describe('rates: a credit of responsesPerSecond, earned back over time, debt floored at -window x rate', () => {
  it.each([
    // rate, burst at one instant -> how many are sent
    [1, 10, 1],
    [5, 10, 5],
    [5, 5, 5],
    [50, 200, 50],
  ])('rate %i: a burst of %i at one instant sends %i', (rate, burst, sent) => {
    const t = limiter({ responsesPerSecond: rate });
    expect(okCount(t.charge(burst))).toBe(sent);
  });

  it('credit comes back at the rate (5/s: one response per 200 ms), never above one second of it', () => {
    const t = limiter({ responsesPerSecond: 5 });
    expect(pattern(t.charge(5))).toBe('.....');
    t.advance(200);
    expect(pattern(t.charge(2))).toBe('.S');
    t.advance(400); // 2 credits earned, 1 owed: one response
    expect(okCount(t.charge(3))).toBe(1);
    t.advance(10_000); // capped at 5, not 50
    expect(okCount(t.charge(10))).toBe(5);
  });

  it('a client asking faster than the rate stays limited: the debt carries over', () => {
    const t = limiter({ responsesPerSecond: 5, windowSeconds: 15 });
    expect(okCount(t.charge(10))).toBe(5); // 5 owed
    // 10 per second for 10 s: twice the rate; the debt grows by 5 every second.
    let sent = 0;
    for (let s = 0; s < 10; s++) {
      t.advance(1000);
      sent += okCount(t.charge(10));
    }
    expect(sent).toBe(0);
  });

  it('the debt is floored at -window x rate: a client that stops is answered again within the window', () => {
    const t = limiter({ responsesPerSecond: 2, windowSeconds: 3 });
    t.charge(1000); // 998 over, floored at -6
    t.advance(3000); // +6: back to 0, not yet a whole response
    expect(pattern(t.charge(1))).not.toBe('.'); // -1
    t.advance(1000); // +2
    expect(pattern(t.charge(1))).toBe('.'); // 4 s after a burst of 1000, not 500 s
  });

  it('an account idle for longer than the window starts over (full credit, slip count reset)', () => {
    const t = limiter({ responsesPerSecond: 3, windowSeconds: 2, slip: 3 });
    expect(pattern(t.charge(5))).toBe('...SD');
    t.advance(2001);
    expect(pattern(t.charge(5))).toBe('...SD');
  });

  it('a clock going backwards earns nothing', () => {
    const t = limiter({ responsesPerSecond: 2 });
    expect(pattern(t.charge(2))).toBe('..');
    t.advance(-5000);
    expect(pattern(t.charge(1))).toBe('S');
    t.advance(5000); // back where it was: still no time has passed since the last charge
    expect(pattern(t.charge(1))).toBe('D');
  });
});

describe('slip: the 1st, (N+1)th, (2N+1)th ... limited response is a TC=1 reply, the others dropped', () => {
  it.each([
    [0, 'DDDDDDDDDD'],
    [1, 'SSSSSSSSSS'],
    [2, 'SDSDSDSDSD'],
    [3, 'SDDSDDSDDS'],
    [10, 'SDDDDDDDDD'],
  ])('slip %i', (slip, want) => {
    const t = limiter({ responsesPerSecond: 1, slip });
    const vs = t.charge(11);
    expect(pattern(vs)).toBe(`.${want}`);
  });

  it('the slip pattern goes on across responses that were sent in between', () => {
    const t = limiter({ responsesPerSecond: 1, slip: 3 });
    expect(pattern(t.charge(3))).toBe('.SD');
    t.advance(5000); // +5 from -2, capped at the rate: one sent, then limited where the pattern stopped
    expect(pattern(t.charge(2))).toBe('.D'); // the third of S D D
  });
});

describe('accounts are per client prefix', () => {
  /** Exhausts the account of `a` (rate 1), then says whether `b` still gets its own credit. */
  function shares(a: string, b: string, o: Partial<RrlOptions> = {}): boolean {
    const t = limiter({ responsesPerSecond: 1, ...o });
    expect(t.l.check(positive(), a)).toBe(RRL_OK);
    expect(t.l.check(positive(), a)).not.toBe(RRL_OK);
    return t.l.check(positive(), b) !== RRL_OK;
  }

  it.each([
    // a, b, shares one account (defaults: IPv4 /24, IPv6 /56)
    ['192.0.2.1', '192.0.2.1', true],
    ['192.0.2.1', '192.0.2.254', true],
    ['192.0.2.1', '192.0.3.1', false],
    ['192.0.2.1', '10.0.2.1', false],
    ['192.0.2.1', '::ffff:192.0.2.77', true], // IPv4-mapped on a dual-stack socket is IPv4
    ['::ffff:192.0.2.1', '192.0.2.99', true],
    ['2001:db8:0:ab00::1', '2001:db8:0:abff:ffff:ffff:ffff:ffff', true], // same /56
    ['2001:db8:0:ab00::1', '2001:db8:0:ac00::1', false],
    ['2001:db8::1', '2001:DB8:0:0:0:0:0:2', true], // spelling does not matter
    ['fe80::1%eth0', 'fe80::2%lo', true], // zone index ignored
    ['2001:db8::1', '192.0.2.1', false],
    ['::', '::1', true],
    ['0.0.0.0', '::', false], // families never share
  ] as const)('%s and %s: %s', (a, b, same) => {
    expect(shares(a, b)).toBe(same);
  });

  it.each([
    [{ ipv4Prefix: 32 }, '192.0.2.1', '192.0.2.2', false],
    [{ ipv4Prefix: 16 }, '192.0.2.1', '192.0.99.2', true],
    [{ ipv4Prefix: 0 }, '192.0.2.1', '203.0.113.9', true],
    [{ ipv4Prefix: 25 }, '192.0.2.1', '192.0.2.127', true],
    [{ ipv4Prefix: 25 }, '192.0.2.1', '192.0.2.128', false],
    [{ ipv6Prefix: 64 }, '2001:db8:0:ab00::1', '2001:db8:0:ab01::1', false],
    [{ ipv6Prefix: 48 }, '2001:db8:1:ab00::1', '2001:db8:1:ffff::1', true],
    [{ ipv6Prefix: 128 }, '2001:db8::1', '2001:db8::2', false],
    [{ ipv6Prefix: 0 }, '2001:db8::1', '3fff::2', true],
  ] as const)('configurable: %j, %s and %s: %s', (o, a, b, same) => {
    expect(shares(a, b, o)).toBe(same);
  });

  it('an address that does not parse is not limited', () => {
    const t = limiter({ responsesPerSecond: 1 });
    expect(okCount(t.charge(5, positive(), 'not-an-address'))).toBe(5);
    expect(t.l.accounts).toBe(0);
  });
});

describe('response classes: what an account is keyed by besides the prefix', () => {
  it.each([
    ['an answer', response({ an: 2 }), RRL_CLASS.POSITIVE],
    ['NXDOMAIN', nxdomain('nosuch.service.consul'), RRL_CLASS.NXDOMAIN],
    ['NODATA', nodata('web.service.consul'), RRL_CLASS.NODATA],
    ['REFUSED', response({ qname: 'example.com', rcode: REFUSED, aa: false }), RRL_CLASS.ERROR],
    ['FORMERR without a question', response({ rcode: FORMERR, aa: false }), RRL_CLASS.ERROR],
    ['SERVFAIL', response({ rcode: SERVFAIL, aa: false }), RRL_CLASS.ERROR],
    ['NOTIMP (AXFR, with AA)', response({ qtype: 252, rcode: NOTIMP }), RRL_CLASS.ERROR],
    ['BADVERS (NOERROR in the header, no AA)', response({ rcode: NOERROR, aa: false, ar: 1 }), RRL_CLASS.ERROR],
  ] as const)('%s', (_what, resp, cls) => {
    expect(responseClass(resp)).toBe(cls);
  });

  /** Exhausts the account of `a` (rate 1, one client), then says whether `b` is charged to it. */
  function shares(a: Buffer, b: Buffer): boolean {
    const t = limiter({ responsesPerSecond: 1 });
    expect(t.l.check(a, '192.0.2.1')).toBe(RRL_OK);
    expect(t.l.check(a, '192.0.2.1')).not.toBe(RRL_OK);
    return t.l.check(b, '192.0.2.1') !== RRL_OK;
  }

  it.each([
    ['same answer', positive('web.service.consul', A), positive('web.service.consul', A), true],
    ['the same name spelt in another case (0x20)', positive('web.service.consul'), positive('WeB.SerVICE.consul'), true],
    ['another qtype', positive('web.service.consul', A), positive('web.service.consul', SRV), false],
    ['another name', positive('web.service.consul'), positive('db.service.consul'), false],
    ['NXDOMAIN for two random names (charged to the zone)', nxdomain('x7f3.service.consul'), nxdomain('q91k.node.consul'), true],
    ['NXDOMAIN in the zone and in a reverse tree (one zone served)', nxdomain('nosuch.service.consul'), nxdomain('9.9.9.10.in-addr.arpa'), true],
    ['NODATA for two names and types', nodata('web.service.consul', AAAA), nodata('db.node.consul', 15), true],
    ['NXDOMAIN and NODATA', nxdomain('nosuch.service.consul'), nodata('web.service.consul'), false],
    ['an answer and NXDOMAIN', positive('web.service.consul'), nxdomain('web.service.consul'), false],
    ['REFUSED and FORMERR (one error account per prefix)', response({ qname: 'example.com', rcode: REFUSED, aa: false }), response({ rcode: FORMERR, aa: false }), true],
    ['REFUSED for two names', response({ qname: 'a.example', rcode: REFUSED, aa: false }), response({ qname: 'b.example', rcode: REFUSED, aa: false }), true],
    ['an error and an answer', response({ rcode: SERVFAIL, aa: false }), positive(), false],
  ] as const)('%s: %s', (_what, a, b, same) => {
    expect(shares(a, b)).toBe(same);
  });

  it('random subdomains from one client: one NXDOMAIN account, limited at the rate', () => {
    const t = limiter({ responsesPerSecond: 5, slip: 0 });
    const vs = Array.from({ length: 100 }, (_, i) => t.l.check(nxdomain(`r${i}x.service.consul`), '192.0.2.1'));
    expect(okCount(vs)).toBe(5);
    expect(t.l.accounts).toBe(1);
  });
});

describe('the table is bounded: fixed size, least recently charged account reused', () => {
  it('10,000 clients in a table of 64: never more than 64 accounts', () => {
    const t = limiter({ entries: 64 });
    expect(t.l.capacity).toBe(64);
    for (let i = 0; i < 10_000; i++) t.l.check(positive(), `10.${(i >> 8) & 255}.${i & 255}.1`);
    expect(t.l.accounts).toBe(64);
  });

  it('rounds the size up to a power of two', () => {
    expect(limiter({ entries: 1000 }).l.capacity).toBe(1024);
    expect(new ResponseRateLimiter({ responsesPerSecond: 1, slip: 2, windowSeconds: 15, ipv4Prefix: 24, ipv6Prefix: 56 }).capacity).toBe(32768);
  });

  it('a full table reuses the oldest account, not one charged recently', () => {
    const t = limiter({ responsesPerSecond: 1, entries: 4 });
    const X = '192.0.2.1';
    const others = (from: number, n: number) => { for (let i = from; i < from + n; i++) t.l.check(positive(), `10.0.${i}.1`); };
    expect(pattern(t.charge(2, positive(), X))).toBe('.S'); // X is limited
    others(0, 3); // table full: X + 3
    expect(t.charge(1, positive(), X)).not.toEqual([RRL_OK]); // X kept, and now the newest
    others(3, 1); // reuses the oldest (10.0.0.1), not X
    expect(t.charge(1, positive(), X)).not.toEqual([RRL_OK]);
    others(4, 4); // four new clients: X is the oldest of the table at some point, and goes
    expect(t.charge(1, positive(), X)).toEqual([RRL_OK]); // a fresh account
    expect(t.l.accounts).toBe(4);
  });

  it('many accounts with colliding chain slots are all found again (chains of a small table)', () => {
    const t = limiter({ responsesPerSecond: 1, slip: 0, entries: 8 });
    const names = Array.from({ length: 8 }, (_, i) => positive(`s${i}.service.consul`));
    for (const n of names) expect(t.l.check(n, '192.0.2.1')).toBe(RRL_OK);
    for (const n of names) expect(t.l.check(n, '192.0.2.1')).toBe(RRL_DROP);
    expect(t.l.accounts).toBe(8);
  });
});

describe('slipReply: header and question, TC=1, no records', () => {
  it('keeps ID, RD, AA and the rcode; sets TC; drops every record', () => {
    const full = response({ id: 0xbeef, qname: 'web.service.consul', qtype: SRV, an: 5, ar: 1 });
    const s = slipReply(full);
    expect(s.length).toBe(12 + 20 + 4);
    expect(s.readUInt16BE(0)).toBe(0xbeef);
    const flags = s.readUInt16BE(2);
    expect(flags & 0x8000).toBe(0x8000); // QR
    expect(flags & 0x0200).toBe(0x0200); // TC
    expect(flags & 0x0100).toBe(0x0100); // RD copied
    expect(flags & 0x000f).toBe(NOERROR);
    expect([4, 6, 8, 10].map((o) => s.readUInt16BE(o))).toEqual([1, 0, 0, 0]);
    expect(s.subarray(12)).toEqual(full.subarray(12, 36));
    expect(full.readUInt16BE(2) & 0x0200, 'the original is left alone').toBe(0);
  });

  it('keeps NXDOMAIN; a reply without a question stays header-only', () => {
    expect(slipReply(nxdomain('nosuch.service.consul')).readUInt16BE(2) & 0x020f).toBe(0x0200 | NXDOMAIN);
    const h = slipReply(response({ rcode: FORMERR, aa: false }));
    expect(h.length).toBe(12);
    expect(h.readUInt16BE(4)).toBe(0);
  });
});

describe('address parsing', () => {
  it.each([
    ['192.0.2.1', 0xc0000201],
    ['0.0.0.0', 0],
    ['255.255.255.255', 0xffffffff],
    ['1.2.3', -1],
    ['1.2.3.4.5', -1],
    ['256.1.1.1', -1],
    ['1..2.3', -1],
    ['1.2.3.', -1],
    ['01234.1.1.1', -1],
    ['::1', -1],
  ])('IPv4 %s -> %s', (s, v) => {
    expect(parseIpv4(s, 0, s.length)).toBe(v);
  });

  const hex = (g: Uint16Array) => Array.from(g, (x) => x.toString(16)).join(':');
  it.each([
    ['::', '0:0:0:0:0:0:0:0'],
    ['::1', '0:0:0:0:0:0:0:1'],
    ['1::', '1:0:0:0:0:0:0:0'],
    ['2001:db8::1', '2001:db8:0:0:0:0:0:1'],
    ['2001:DB8:0:AB00::1:2', '2001:db8:0:ab00:0:0:1:2'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
    ['1:2:3:4:5:6::8', '1:2:3:4:5:6:0:8'],
    ['::ffff:192.0.2.1', '0:0:0:0:0:ffff:c000:201'],
    ['64:ff9b::192.0.2.1', '64:ff9b:0:0:0:0:c000:201'],
    ['1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:102:304'],
  ])('IPv6 %s', (s, want) => {
    const g = new Uint16Array(8);
    expect(parseIpv6(s, s.length, g)).toBe(true);
    expect(hex(g)).toBe(want);
  });

  it.each(['', ':', ':1', '1:', '1:2', '1::2::3', '12345::', '1:2:3:4:5:6:7:8:9', 'g::1', '1:2:3:4:5:6:7::8', '::1.2.3', '1:2:3:4:5:6:7:1.2.3.4', '1.2.3.4'])(
    'not IPv6: %j', (s) => {
      expect(parseIpv6(s, s.length, new Uint16Array(8))).toBe(false);
    },
  );
});

describe('construction', () => {
  it('refuses a rate of 0 (off means no limiter at all)', () => {
    expect(() => new ResponseRateLimiter({ responsesPerSecond: 0, slip: 2, windowSeconds: 15, ipv4Prefix: 24, ipv6Prefix: 56 })).toThrow(RangeError);
  });

  it('a reply shorter than a DNS header is not charged', () => {
    const t = limiter({ responsesPerSecond: 1 });
    expect(okCount(t.charge(3, Buffer.alloc(5)))).toBe(3);
    expect(t.l.accounts).toBe(0);
  });
});
