/**
 * Adversarial peers over real sockets (the server in-process on 127.0.0.1 port 0): connection
 * floods, huge garbage frames, pipelining with a slow reader, header-count lies, maximal names,
 * other classes, tiny EDNS sizes, zone transfers over UDP, trailing bytes (FORMERR), reflected responses.
 *
 * Every socket a test opens is destroyed on every path; every server is closed in afterAll or in
 * a finally next to where it was started.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import packet from 'dns-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seededRandom } from '../support/cases.js';
import { buildQuery, decode, tcpExchange, udpQuery, udpRaw } from '../support/dns-client.js';
import { startServer, type TestServer } from '../support/server.js';

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
const rcodeOf = (r: Buffer) => r.readUInt16BE(2) & 0x0f;
const counts = (r: Buffer) => [4, 6, 8, 10].map((o) => r.readUInt16BE(o));

const u16 = (v: number) => { const b = Buffer.alloc(2); b.writeUInt16BE(v); return b; };
const frame = (m: Buffer) => Buffer.concat([u16(m.length), m]);

/** Wire labels from raw label strings (so a label may hold a '.' byte). */
const wireLabels = (labels: readonly string[]) =>
  Buffer.concat([...labels.flatMap((l) => [Buffer.from([l.length]), Buffer.from(l, 'latin1')]), Buffer.from([0])]);

/** A query built byte by byte: header counts as given, then question, then the raw records. */
function rawQuery(o: { id: number; flags?: number; qd?: number; an?: number; ns?: number; ar?: number; question?: Buffer; rest?: Buffer }): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt16BE(o.id, 0);
  h.writeUInt16BE(o.flags ?? 0x0100, 2);
  h.writeUInt16BE(o.qd ?? 1, 4);
  h.writeUInt16BE(o.an ?? 0, 6);
  h.writeUInt16BE(o.ns ?? 0, 8);
  h.writeUInt16BE(o.ar ?? 0, 10);
  return Buffer.concat([h, o.question ?? Buffer.alloc(0), o.rest ?? Buffer.alloc(0)]);
}
const question = (name: Buffer, qtype: number, qclass = 1) => Buffer.concat([name, u16(qtype), u16(qclass)]);

/** The question section of a reply (bytes 12 .. end of the first question), assuming QDCOUNT 1. */
function questionBytes(r: Buffer): Buffer {
  let p = 12;
  while (r[p] !== 0) p += r[p]! + 1;
  return r.subarray(12, p + 5);
}

/** One TCP connection that collects replies; for tests that need more control than tcpExchange. */
class TcpPeer {
  readonly sock: Socket;
  readonly replies: Buffer[] = [];
  closed = false;
  private buf = Buffer.alloc(0);
  private waiters: Array<() => void> = [];

  private constructor(port: number) {
    this.sock = connect(port, '127.0.0.1');
    this.sock.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= 2 && this.buf.length >= 2 + this.buf.readUInt16BE(0)) {
        const len = this.buf.readUInt16BE(0);
        this.replies.push(Buffer.from(this.buf.subarray(2, 2 + len)));
        this.buf = this.buf.subarray(2 + len);
      }
      this.wake();
    });
    this.sock.on('error', () => {});
    this.sock.on('close', () => { this.closed = true; this.wake(); });
  }

  static open(port: number): Promise<TcpPeer> {
    const p = new TcpPeer(port);
    return new Promise((resolve, reject) => {
      p.sock.once('connect', () => resolve(p));
      p.sock.once('error', reject);
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Resolves once `n` replies arrived, the connection closed, or `ms` passed. */
  async waitFor(n: number, ms = 3000): Promise<void> {
    const deadline = Date.now() + ms;
    while (this.replies.length < n && !this.closed && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
  }

  send(...msgs: Buffer[]): void {
    this.sock.write(Buffer.concat(msgs.map(frame)));
  }

  destroy(): void {
    this.sock.destroy();
  }
}

/** A catalog of one service `big` with n instances on n nodes (large answers, many glue records). */
async function startBig(n: number, config: Record<string, unknown> = {}): Promise<{ s: TestServer; close: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'cdns-adv-'));
  const nodes = Array.from({ length: n }, (_, i) => ({ Node: `n${i}`, Address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, Meta: {} }));
  const doc = {
    datacenter: 'dc1',
    datacenters: { dc1: { nodes, services: { big: nodes.map((nd, i) => ({ Node: nd, Service: { ID: `big${i}`, Service: 'big', Port: 1000 + (i % 5000) }, Checks: [] })) } } },
  };
  const file = join(dir, 'catalog.json');
  writeFileSync(file, JSON.stringify(doc));
  try {
    const s = await startServer({ catalogFile: file, config });
    return { s, close: async () => { await s.close(); rmSync(dir, { recursive: true, force: true }); } };
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

/** The records of a decoded section, typed loosely (dns-packet's union types lack `data` on OPT). */
interface Rec { readonly name: string; readonly type: string; readonly class?: string; readonly data?: unknown; readonly udpPayloadSize?: number }
const recs = (rrs: readonly unknown[] | undefined): Rec[] => (rrs ?? []) as Rec[];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Connection floods and TCP framing
// ---------------------------------------------------------------------------------------------

describe('TCP: more connections than tcp_max_connections', () => {
  let s: TestServer;
  const peers: TcpPeer[] = [];
  beforeAll(async () => { s = await startServer({ config: { tcp_max_connections: 5 } }); });
  afterAll(async () => { for (const p of peers) p.destroy(); await s.close(); });

  it('each newcomer takes the slot of the longest-idle connection: all are served, the oldest go, UDP keeps answering', async () => {
    // Five connections, each answered once and then idle. (Busy slots, per-client caps and refusals:
    // tcp-slots.test.ts.)
    for (let i = 0; i < 5; i++) {
      const p = await TcpPeer.open(s.port);
      peers.push(p);
      p.send(buildQuery('web.service.consul', 'A', { id: 100 + i }));
      await p.waitFor(1);
      expect(decode(p.replies[0]!).id).toBe(100 + i);
    }
    const evictedBefore = s.app.counters.tcpEvictedIdle;
    // Twelve more, one after the other, each kept open after its answer: every one is served, and
    // each one's arrival closed the connection idle longest, so the first five are gone.
    for (let i = 0; i < 12; i++) {
      const p = await TcpPeer.open(s.port);
      peers.push(p);
      p.send(buildQuery('web.service.consul', 'A', { id: 200 + i }));
      await p.waitFor(1);
      expect(p.replies.map((r) => decode(r).id)).toEqual([200 + i]);
    }
    for (const p of peers.slice(0, 5)) await p.waitFor(2, 2000);
    expect(peers.slice(0, 5).map((p) => p.closed)).toEqual([true, true, true, true, true]);
    expect(s.app.counters.tcpEvictedIdle - evictedBefore).toBe(12);
    expect(s.app.counters.tcpRejected).toBe(0);
    // The last five still hold the slots and answer.
    for (const [i, p] of peers.slice(-5).entries()) {
      p.send(buildQuery('consul', 'SOA', { id: 300 + i }));
      await p.waitFor(2);
      expect(p.closed).toBe(false);
      expect(decode(p.replies[1]!).id).toBe(300 + i);
    }
    expect((await udpQuery(s.port, 'web.service.consul', 'A')).rcode).toBe('NOERROR');
  });
});

describe('TCP: hostile frames', () => {
  let s: TestServer;
  beforeAll(async () => { s = await startServer(); });
  afterAll(() => s.close());

  it('a 65535-byte frame of garbage gets a well-formed error (or a close), never a crash; the server keeps serving', async () => {
    const rnd = seededRandom(0xbadf00d);
    const garbage = Buffer.alloc(65535);
    for (let i = 0; i < garbage.length; i++) garbage[i] = Math.floor(rnd() * 256);
    garbage.writeUInt16BE(0x4242, 0);
    garbage.writeUInt16BE(0x0100, 2); // a QUERY, so it reaches the parser
    garbage.writeUInt16BE(1, 4);
    const p = await TcpPeer.open(s.port);
    try {
      p.send(garbage, buildQuery('web.service.consul', 'A', { id: 2 }));
      await p.waitFor(2);
      if (p.replies.length > 0) {
        const r = p.replies[0]!;
        expect(r.readUInt16BE(0)).toBe(0x4242);
        expect(r.readUInt16BE(2) & 0x8000).toBe(0x8000);
        expect([RCODE.FORMERR, RCODE.NOTIMP, RCODE.REFUSED, RCODE.NXDOMAIN, RCODE.NOERROR]).toContain(rcodeOf(r));
        expect(r.length).toBeLessThan(600); // an error: header, question at most, OPT at most
      }
      if (!p.closed) {
        expect(p.replies.length).toBe(2);
        expect(decode(p.replies[1]!)).toMatchObject({ id: 2, rcode: 'NOERROR' });
      }
    } finally {
      p.destroy();
    }
    expect(decode((await tcpExchange(s.port, [buildQuery('consul', 'SOA', { id: 3 })]))[0]!).rcode).toBe('NOERROR');
    expect((await udpQuery(s.port, 'consul', 'SOA')).rcode).toBe('NOERROR');
    expect(s.app.counters.internalErrors).toBe(0);
  });

  it('a 65535-byte frame with QR set is dropped without a reply, and the connection goes on', async () => {
    const big = Buffer.alloc(65535, 0xa5);
    big.writeUInt16BE(0x1111, 0);
    big.writeUInt16BE(0x8400, 2); // QR + AA: a response
    const dropped = s.app.counters.dropped;
    const [r] = await tcpExchange(s.port, [big, buildQuery('consul', 'NS', { id: 5 })], 1);
    expect(decode(r!).id).toBe(5);
    expect(s.app.counters.dropped).toBe(dropped + 1);
  });
});

describe('TCP: a client that half-closes after its queries', () => {
  let s: TestServer;
  beforeAll(async () => { s = await startServer(); });
  afterAll(() => s.close());

  it('gets every answer before the server closes (RFC 7766 6.2.4)', async () => {
    const p = await TcpPeer.open(s.port);
    try {
      p.sock.end(Buffer.concat([1, 2, 3].map((id) => frame(buildQuery('web.service.consul', 'SRV', { id })))));
      await p.waitFor(3);
      expect(p.replies.map((r) => r.readUInt16BE(0))).toEqual([1, 2, 3]);
      await p.waitFor(4, 2000); // then the server closes its side too
      expect(p.closed).toBe(true);
    } finally {
      p.destroy();
    }
  });
});

describe('TCP: 500 pipelined queries in one write, read slowly', () => {
  let big: Awaited<ReturnType<typeof startBig>>;
  beforeAll(async () => { big = await startBig(500); }, 30_000);
  afterAll(() => big.close());

  it('answers every query in order with its own ID, although the client stops reading for a while', async () => {
    // Every 4th query is the 500-instance SRV (about 30 KiB over TCP), so the server's writes
    // back up while the client is paused.
    const names: Array<[string, string]> = [['big.service.consul', 'SRV'], ['n1.node.consul', 'A'], ['nosuch.service.consul', 'A'], ['consul', 'SOA']];
    const qs = Array.from({ length: 500 }, (_, i) => buildQuery(names[i % 4]![0], names[i % 4]![1], { id: (i * 7919) & 0xffff }));
    const p = await TcpPeer.open(big.s.port);
    try {
      p.sock.pause();
      p.sock.write(Buffer.concat(qs.map(frame)));
      await sleep(300);
      p.sock.resume();
      await p.waitFor(500, 15_000);
      expect(p.closed).toBe(false);
      expect(p.replies.length).toBe(500);
      for (let i = 0; i < 500; i++) {
        const r = p.replies[i]!;
        expect(r.readUInt16BE(0), `reply ${i}`).toBe((i * 7919) & 0xffff);
        expect(questionBytes(r).equals(questionBytes(qs[i]!)), `reply ${i} question`).toBe(true);
      }
      // The big answer is complete (no TC on TCP) and its glue owners are right even past the
      // 14-bit pointer range (offsets > 0x3fff use the uncompressed target name).
      const srv = decode(p.replies[0]!);
      expect(srv.flag_tc).toBe(false);
      expect(srv.raw.length).toBeGreaterThan(0x3fff + 5000);
      expect(recs(srv.answers).length).toBe(500);
      const targets = new Set(recs(srv.answers).map((a) => (a.data as { target: string }).target));
      const glue = recs(srv.additionals).filter((a) => a.type === 'A');
      expect(glue.length).toBe(500);
      expect(glue.every((g) => targets.has(g.name))).toBe(true);
      expect(glue.every((g) => g.data === `10.0.${Number(g.name.split('.')[0]!.slice(1)) >> 8}.${Number(g.name.split('.')[0]!.slice(1)) & 255}`)).toBe(true);
    } finally {
      p.destroy();
    }
    expect(big.s.app.counters.internalErrors).toBe(0);
  }, 30_000);
});

describe('TCP: a peer that sends many queries and reads nothing (RFC 7766 backpressure)', () => {
  let big: Awaited<ReturnType<typeof startBig>>;
  beforeAll(async () => { big = await startBig(500); }, 30_000);
  afterAll(() => big.close());

  /** Sends 1000 queries (40 KiB, one loopback segment) for the 30 KiB answer in one write; reads nothing for `ms`. */
  async function flood(ms: number): Promise<{ answeredWhileNotReading: number; warnings: string[] }> {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
    process.on('warning', onWarning);
    const before = big.s.app.counters.queriesTcp;
    const q = buildQuery('big.service.consul', 'SRV', { id: 1 });
    const p = await TcpPeer.open(big.s.port);
    try {
      p.sock.pause();
      p.sock.write(Buffer.concat(Array.from({ length: 1000 }, () => frame(q))));
      await sleep(ms);
      return { answeredWhileNotReading: big.s.app.counters.queriesTcp - before, warnings };
    } finally {
      p.destroy();
      await sleep(20); // let a warning emitted on this tick arrive before the listener goes
      process.off('warning', onWarning);
    }
  }

  it('stops taking queries off the connection while its replies cannot be written', async () => {
    // 1000 x 30 KiB = 30 MiB of replies for 40 KiB of queries: answering every frame already read
    // into memory would let a peer amplify. The server stops at the first write the socket cannot
    // take and goes on after 'drain'; loopback socket buffers hold a few MiB, so it answers about
    // 130 here, far below 1000.
    const { answeredWhileNotReading } = await flood(500);
    expect(answeredWhileNotReading).toBeLessThan(1000);
  }, 30_000);

  it('adds one drain listener per blocked connection, not one per reply (no MaxListenersExceededWarning)', async () => {
    const { warnings } = await flood(300);
    expect(warnings.filter((w) => w.includes('MaxListenersExceeded'))).toEqual([]);
  }, 30_000);
});

// ---------------------------------------------------------------------------------------------
// Odd but parseable queries over UDP
// ---------------------------------------------------------------------------------------------

describe('UDP: odd queries', () => {
  let s: TestServer;
  beforeAll(async () => { s = await startServer(); });
  afterAll(() => s.close());

  it('QDCOUNT=0 with ANCOUNT=1: FORMERR with the ID, no question and no records echoed (UDP and TCP)', async () => {
    const rr = Buffer.concat([Buffer.from([0]), u16(1), u16(1), Buffer.alloc(4), u16(4), Buffer.from([1, 2, 3, 4])]);
    const q = rawQuery({ id: 0x0a0a, qd: 0, an: 1, rest: rr });
    const r = await udpRaw(s.port, q);
    expect(r).not.toBeNull();
    expect(r!.readUInt16BE(0)).toBe(0x0a0a);
    expect(r!.readUInt16BE(2) & 0x800f).toBe(0x8000 | RCODE.FORMERR);
    expect(counts(r!)).toEqual([0, 0, 0, 0]);
    expect(r!.length).toBe(12);
    const [t] = await tcpExchange(s.port, [q]);
    expect(t!.equals(r!)).toBe(true);
  });

  it('a 64-label name of 255 bytes is answered (NXDOMAIN, question echoed byte for byte); 256 bytes is FORMERR', async () => {
    // 58 labels of 3 bytes, 5 of 2, then "consul": 58*4 + 5*3 + 7 + 1 = 255 bytes, 64 labels.
    const labels = [...Array.from({ length: 58 }, (_, i) => `X${String(i).padStart(2, '0')}`), ...Array.from({ length: 5 }, (_, i) => `y${i}`), 'CoNsUl'];
    const name = wireLabels(labels);
    expect(name.length).toBe(255);
    expect(labels.length).toBe(64);
    const q = rawQuery({ id: 255, question: question(name, 1) });
    const r = (await udpRaw(s.port, q))!;
    expect(rcodeOf(r)).toBe(RCODE.NXDOMAIN);
    expect(r.readUInt16BE(2) & 0x0400).toBe(0x0400); // AA
    expect(questionBytes(r).equals(question(name, 1))).toBe(true);
    expect(recs(decode(r).authorities).map((a) => a.type)).toEqual(['SOA']);
    expect(r.length).toBeLessThanOrEqual(512);

    const tooLong = wireLabels(['z', ...labels]); // 257 bytes
    const r2 = (await udpRaw(s.port, rawQuery({ id: 256, question: question(tooLong, 1) })))!;
    expect(r2.readUInt16BE(0)).toBe(256);
    expect(rcodeOf(r2)).toBe(RCODE.FORMERR);
    const exactly256 = wireLabels(['zzzz', ...labels.slice(1)]); // a 4-byte label for a 3-byte one
    expect(exactly256.length).toBe(256);
    const r3 = (await udpRaw(s.port, rawQuery({ id: 257, question: question(exactly256, 1) })))!;
    expect(rcodeOf(r3)).toBe(RCODE.FORMERR);
  });

  it('a label that contains a "." byte is one label: 11\\.1\\.0\\.10.in-addr.arpa and v15\\.primary.db.service.consul do not exist', async () => {
    // RFC 1035 §3.1, RFC 2181 §11: a label is any octets; "11.1.0.10" as ONE label is a different
    // name from the four labels 11.1.0.10 (and in no reverse zone served: REFUSED), and the tag
    // label "v15.primary" is not the two labels of the dotted tag v15.primary.
    const ptr = rawQuery({ id: 501, question: question(wireLabels(['11.1.0.10', 'in-addr', 'arpa']), 12) });
    const rp = (await udpRaw(s.port, ptr))!;
    expect(counts(rp)[1], 'PTR answers for a 3-label name').toBe(0);
    expect(rcodeOf(rp)).toBe(RCODE.REFUSED);
    const tag = rawQuery({ id: 502, question: question(wireLabels(['v15.primary', 'db', 'service', 'consul']), 1) });
    const rt = (await udpRaw(s.port, tag))!;
    expect(counts(rt)[1], 'A answers for tag label "v15.primary"').toBe(0);
    expect(rcodeOf(rt)).toBe(RCODE.NXDOMAIN);
  });

  it('CHAOS class (version.bind, hostname.bind, id.server TXT CH) is REFUSED without AA', async () => {
    for (const [i, n] of ['version.bind', 'hostname.bind', 'id.server'].entries()) {
      const q = rawQuery({ id: 60 + i, question: question(wireLabels(n.split('.')), 16, 3) });
      const r = (await udpRaw(s.port, q))!;
      expect(r.readUInt16BE(0)).toBe(60 + i);
      expect(rcodeOf(r)).toBe(RCODE.REFUSED);
      expect(r.readUInt16BE(2) & 0x0400).toBe(0);
      expect(counts(r).slice(1)).toEqual([0, 0, 0]);
      expect(questionBytes(r).equals(q.subarray(12))).toBe(true);
    }
  });

  it('class ANY (255) is answered with the IN data and the question echoed as asked', async () => {
    const q = rawQuery({ id: 77, question: question(wireLabels(['web', 'service', 'consul']), 1, 255) });
    const r = (await udpRaw(s.port, q))!;
    expect(rcodeOf(r)).toBe(RCODE.NOERROR);
    expect(questionBytes(r).equals(q.subarray(12))).toBe(true);
    const d = decode(r);
    expect(recs(d.answers).map((a) => `${a.class} ${a.type} ${String(a.data)}`).sort()).toEqual(['IN A 10.0.1.11', 'IN A 10.0.1.12', 'IN A 10.0.1.13']);
  });

  it('AXFR and IXFR over UDP are not served: an error rcode, no records, a small reply', async () => {
    const axfr = (await udpRaw(s.port, buildQuery('consul', 'AXFR', { id: 91 })))!;
    const soa = { name: 'consul', type: 'SOA', ttl: 0, data: { mname: 'ns.consul', rname: 'hostmaster.consul', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 0 } };
    const ixfrQuery = packet.encode({ type: 'query', id: 92, flags: 0, questions: [{ name: 'consul', type: 'IXFR', class: 'IN' }], authorities: [soa] } as unknown as packet.Packet);
    const ixfr = (await udpRaw(s.port, ixfrQuery))!;
    for (const [r, id] of [[axfr, 91], [ixfr, 92]] as const) {
      expect(r.readUInt16BE(0)).toBe(id);
      expect([RCODE.NOTIMP, RCODE.REFUSED, RCODE.FORMERR]).toContain(rcodeOf(r));
      expect(counts(r).slice(1)).toEqual([0, 0, 0]);
      expect(r.length).toBeLessThanOrEqual(512);
    }
  });

  it('bytes after the last counted record are FORMERR (UDP and TCP), the question echoed, never answered from the cache', async () => {
    // The clean query first, so that its answer is in the response cache.
    const clean = buildQuery('consul', 'SOA', { id: 93 });
    expect(rcodeOf((await udpRaw(s.port, clean))!)).toBe(RCODE.NOERROR);
    const withEdns = buildQuery('consul', 'SOA', { id: 94, edns: 1232 });
    const cases: Array<[string, Buffer, number]> = [
      ['one byte after the question', Buffer.concat([clean, Buffer.from([0xab])]), clean.length],
      ['eleven zero bytes (an OPT record ARCOUNT does not count)', Buffer.concat([clean, Buffer.alloc(11)]), clean.length],
      ['a byte after the OPT record', Buffer.concat([withEdns, Buffer.from([0])]), withEdns.length - 11],
    ];
    for (const [what, q, qEnd] of cases) {
      for (const r of [(await udpRaw(s.port, q))!, (await tcpExchange(s.port, [q]))[0]!]) {
        expect(r.readUInt16BE(0), what).toBe(q.readUInt16BE(0));
        expect(rcodeOf(r), what).toBe(RCODE.FORMERR);
        expect(questionBytes(r).equals(q.subarray(12, qEnd)), what).toBe(true);
        const d = decode(r); // every count matches the bytes
        expect(d.answers, what).toHaveLength(0);
        expect(r.includes(Buffer.from([0xab]), 12 + 12)).toBe(false);
      }
    }
  });

  it('a response (QR=1) gets no reply over UDP or TCP (no reflection loops), and is counted', async () => {
    const resp = Buffer.from(buildQuery('web.service.consul', 'A', { id: 94 }));
    resp.writeUInt16BE(resp.readUInt16BE(2) | 0x8400, 2); // QR + AA, like a real answer
    const dropped = s.app.counters.dropped;
    expect(await udpRaw(s.port, resp, 300)).toBeNull();
    // Also a complete, well-formed answer packet (what a reflected reply from another server looks like).
    const answer = packet.encode({
      type: 'response', id: 95, flags: packet.AUTHORITATIVE_ANSWER,
      questions: [{ name: 'web.service.consul', type: 'A', class: 'IN' }],
      answers: [{ name: 'web.service.consul', type: 'A', ttl: 0, data: '10.0.1.11' }],
    } as unknown as packet.Packet);
    expect(await udpRaw(s.port, answer, 300)).toBeNull();
    const [r] = await tcpExchange(s.port, [resp, buildQuery('consul', 'SOA', { id: 96 })], 1);
    expect(decode(r!).id).toBe(96);
    expect(s.app.counters.dropped).toBe(dropped + 3);
  });
});

describe('UDP: EDNS sizes and options (RFC 6891, RFC 7871)', () => {
  let s: TestServer;
  beforeAll(async () => { s = await startServer(); });
  afterAll(() => s.close());

  it('an EDNS UDP size below 512 (100) is treated as 512: at most 512 bytes, udp_answer_limit and TC apply', async () => {
    const small = await udpQuery(s.port, '_web._tcp.service.consul', 'SRV', { edns: 100 });
    const plain = await udpQuery(s.port, '_web._tcp.service.consul', 'SRV');
    expect(small.raw.length).toBeLessThanOrEqual(512);
    expect(recs(small.answers).length).toBe(recs(plain.answers).length);
    expect(recs(small.answers).length).toBe(3);
    expect(small.flag_tc).toBe(true);
    const opt = recs(small.additionals).find((a) => a.type === 'OPT');
    expect(opt).toBeDefined();
    expect(opt!.udpPayloadSize).toBeGreaterThanOrEqual(512);
    // EDNS size 0 too.
    const zero = await udpQuery(s.port, '_web._tcp.service.consul', 'SRV', { edns: 0 });
    expect(zero.raw.length).toBeLessThanOrEqual(512);
    expect(zero.rcode).toBe('NOERROR');
  });

  it('the OPT in a reply echoes the client\'s UDP size (as Consul does), while replies stay within max_udp_size', async () => {
    // README "Protocol": Consul echoes the requestor's size (its TestDNS_EDNS0: 12345 in, 12345
    // out). RFC 6891 reads the field as the sender's own maximum, which is advisory for a server
    // that only ever receives small queries; what matters is that no reply is larger than
    // min(client size, max_udp_size).
    for (const edns of [4096, 65535]) {
      const r = await udpQuery(s.port, 'web.service.consul', 'A', { edns });
      const opt = recs(r.additionals).find((a) => a.type === 'OPT');
      expect(opt?.udpPayloadSize, `client offered ${edns}`).toBe(edns);
      expect(r.raw.length).toBeLessThanOrEqual(1232);
    }
  });

  it('an ECS option with address bits set beyond SOURCE PREFIX-LENGTH is FORMERR (RFC 7871 §6)', async () => {
    // 10.1.255.0/20 written as 3 octets 0a 01 ff: the low 4 bits of the third octet lie beyond /20.
    const r = await udpQuery(s.port, 'web.service.consul', 'A', { edns: 1232, ednsOptions: [{ code: 8, data: Buffer.from([0, 1, 20, 0, 10, 1, 0xff]) }] });
    expect(r.rcode).toBe('FORMERR');
  });

  it('max_udp_size stops at 4096, so a client offering 65535 gets a TC reply within it, never an unsendable datagram', async () => {
    // 4200 A records = 67 KB. The largest IPv4 UDP payload is 65507 bytes: when max_udp_size went
    // up to 65535, this reply could not be sent (EMSGSIZE, silently without a send callback) and
    // the client got nothing. max_udp_size is now at most 4096 (config.ts: larger replies fragment
    // and amplify spoofed queries), so the reply is trimmed to fit and sets TC.
    await expect(startBig(1, { max_udp_size: 65535 })).rejects.toMatchObject({ code: 'CDNS_ERR_CONFIG' });
    const b = await startBig(4200, { max_udp_size: 4096 });
    try {
      const r = await udpRaw(b.s.port, buildQuery('big.service.consul', 'A', { id: 7, edns: 65535 }), 1500);
      expect(r, 'no UDP reply at all').not.toBeNull();
      expect(r!.length).toBeLessThanOrEqual(4096);
      expect(decode(r!).flag_tc).toBe(true);
    } finally {
      await b.close();
    }
  }, 30_000);
});
