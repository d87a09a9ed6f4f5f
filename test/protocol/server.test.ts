/**
 * The real server in-process on 127.0.0.1 port 0, over real UDP and TCP sockets.
 */
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import packet from 'dns-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildQuery, decode, tcpExchange, tcpQuery, udpQuery, udpRaw } from '../support/dns-client.js';
import { DEMO_CATALOG, startServer, type TestServer } from '../support/server.js';

const demo = JSON.parse(readFileSync(DEMO_CATALOG, 'utf8'));

describe('UDP and TCP answers', () => {
  let s: TestServer;
  beforeAll(async () => { s = await startServer(); });
  afterAll(() => s.close());

  it('answers A over UDP with AA, no RA, the question echoed and the ID kept', async () => {
    const r = await udpQuery(s.port, 'web.service.consul', 'A', { id: 4242 });
    expect(r.id).toBe(4242);
    expect(r.rcode).toBe('NOERROR');
    expect(r.flag_aa).toBe(true);
    expect(r.flag_ra).toBe(false);
    expect(r.questions).toEqual([{ name: 'web.service.consul', type: 'A', class: 'IN' }]);
    expect(r.answers.map((a) => a.data).sort()).toEqual(['10.0.1.11', '10.0.1.12', '10.0.1.13']);
  });

  it('echoes the spelling of a mixed-case question (0x20)', async () => {
    const r = await udpQuery(s.port, 'WeB.sErViCe.CoNsUl', 'A');
    expect(r.questions[0]!.name).toBe('WeB.sErViCe.CoNsUl');
    expect(r.answers.length).toBe(3);
    expect(r.answers.every((a) => a.name === 'WeB.sErViCe.CoNsUl')).toBe(true);
  });

  it('answers SRV over TCP with every record, and over 512-byte UDP with TC and at most udp_answer_limit', async () => {
    const t = await tcpQuery(s.port, '_web._tcp.service.consul', 'SRV');
    expect(t.answers.length).toBe(4);
    expect(t.flag_tc).toBe(false);
    const u = await udpQuery(s.port, '_web._tcp.service.consul', 'SRV');
    expect(u.answers.length).toBe(3);
    expect(u.flag_tc).toBe(true);
    expect(u.raw.length).toBeLessThanOrEqual(512);
  });

  it('returns REFUSED without AA for names outside the zone', async () => {
    const r = await udpQuery(s.port, 'example.com', 'A');
    expect(r.rcode).toBe('REFUSED');
    expect(r.flag_aa).toBe(false);
    expect(r.answers).toEqual([]);
  });

  it('echoes an OPT, keeps DO, tolerates a cookie and echoes ECS with scope 0', async () => {
    const cookie = { code: 10, data: Buffer.from('0123456789abcdef', 'hex') };
    const ecs = { code: 8, data: Buffer.from([0, 1, 24, 0, 10, 1, 2]) };
    const r = await udpQuery(s.port, 'web-1.node.consul', 'A', { edns: 1232, dnssecOk: true, ednsOptions: [cookie, ecs] });
    expect(r.rcode).toBe('NOERROR');
    const opt = r.additionals.find((a) => a.type === 'OPT') as unknown as { udpPayloadSize: number; flags: number; options: Array<{ code: number; data: Buffer }> };
    expect(opt).toBeDefined();
    expect(opt.udpPayloadSize).toBe(1232);
    expect(opt.flags & packet.DNSSEC_OK).toBeTruthy();
    expect(opt.options.map((o) => o.code)).toEqual([8]);
    expect([...opt.options[0]!.data]).toEqual([0, 1, 24, 0, 10, 1, 2]);
  });

  it('answers EDNS version 1 with BADVERS and an OPT of version 0', async () => {
    const q = buildQuery('web.service.consul', 'A', { edns: 1232 });
    // OPT TTL field: extended rcode (1 byte), version (1 byte); OPT is the last 11 bytes.
    q[q.length - 11 + 6] = 1;
    const r = await udpRaw(s.port, q);
    const d = decode(r!);
    const opt = d.additionals.find((a) => a.type === 'OPT') as unknown as { extendedRcode: number; ednsVersion: number };
    expect((d.flags & 0x0f) | (opt.extendedRcode << 4)).toBe(16);
    expect(opt.ednsVersion).toBe(0);
  });

  it('honours the EDNS size up to max_udp_size: a 4096-byte client gets at most 1232 bytes', async () => {
    const big = await startBig(60);
    try {
      const r = await udpQuery(big.port, 'big.service.consul', 'SRV', { edns: 4096 });
      expect(r.raw.length).toBeLessThanOrEqual(1232);
      expect(r.raw.length).toBeGreaterThan(900);
      expect(r.flag_tc).toBe(true);
      const t = await tcpQuery(big.port, 'big.service.consul', 'SRV');
      expect(t.answers.length).toBe(60);
      expect(new Set(t.additionals.filter((a) => a.type === 'A').map((a) => a.name)).size).toBe(60);
    } finally {
      await big.close();
    }
  });
});

/** A server for a catalog with one service of n instances on n nodes. */
async function startBig(n: number, config: Record<string, unknown> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'cdns-big-'));
  const nodes = Array.from({ length: n }, (_, i) => ({ Node: `n${i}`, Address: `10.9.${i >> 8}.${i & 255}`, Meta: {} }));
  const doc = {
    datacenter: 'dc1',
    datacenters: { dc1: { nodes, services: { big: nodes.map((nd, i) => ({ Node: nd, Service: { ID: `big${i}`, Service: 'big', Port: 1000 + i }, Checks: [] })) } } },
  };
  const file = join(dir, 'catalog.json');
  writeFileSync(file, JSON.stringify(doc));
  const srv = await startServer({ catalogFile: file, config });
  return { port: srv.port, close: async () => { await srv.close(); rmSync(dir, { recursive: true, force: true }); } };
}

describe('malformed input', () => {
  let s: TestServer;
  beforeAll(async () => { s = await startServer(); });
  afterAll(() => s.close());

  it('drops an 11-byte datagram and a response (QR=1), counts them, and keeps serving', async () => {
    const before = s.app.counters.dropped;
    expect(await udpRaw(s.port, Buffer.alloc(11), 300)).toBeNull();
    const resp = buildQuery('web.service.consul', 'A');
    resp[2]! |= 0x80;
    expect(await udpRaw(s.port, resp, 300)).toBeNull();
    expect(s.app.counters.dropped).toBe(before + 2);
    expect((await udpQuery(s.port, 'web.service.consul', 'A')).rcode).toBe('NOERROR');
  });

  it('answers FORMERR for two questions, a cut question, a compressed question and an oversized label', async () => {
    const two = Buffer.from(buildQuery('web.service.consul', 'A'));
    two.writeUInt16BE(2, 4);
    const cut = buildQuery('web.service.consul', 'A').subarray(0, 20);
    const ptr = Buffer.concat([buildQuery('x', 'A').subarray(0, 12), Buffer.from([0xc0, 0x0c, 0, 1, 0, 1])]);
    const long = Buffer.concat([buildQuery('x', 'A').subarray(0, 12), Buffer.from([64]), Buffer.alloc(64, 97), Buffer.from([0, 0, 1, 0, 1])]);
    for (const m of [two, cut, ptr, long]) {
      const r = await udpRaw(s.port, m);
      expect(r, m.toString('hex')).not.toBeNull();
      expect(r!.readUInt16BE(0)).toBe(m.readUInt16BE(0));
      expect(r!.readUInt16BE(2) & 0x800f).toBe(0x8001); // QR + FORMERR
    }
  });

  it('answers NOTIMP for opcodes other than QUERY (UPDATE, STATUS)', async () => {
    for (const opcode of [2, 5]) {
      const q = Buffer.from(buildQuery('consul', 'SOA'));
      q.writeUInt16BE((q.readUInt16BE(2) & ~0x7800) | (opcode << 11), 2);
      const r = await udpRaw(s.port, q);
      expect(r!.readUInt16BE(2) & 0x000f).toBe(4);
      expect((r!.readUInt16BE(2) >> 11) & 0x0f).toBe(opcode);
    }
  });

  it('survives a burst of random datagrams without a crash', async () => {
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    for (let i = 0; i < 300; i++) {
      const len = Math.floor(rnd() * 80);
      const b = Buffer.alloc(len);
      for (let j = 0; j < len; j++) b[j] = Math.floor(rnd() * 256);
      if (len > 2) b[2]! &= 0x7f; // mostly queries, so they reach the parser
      await udpRaw(s.port, b, 20);
    }
    expect((await udpQuery(s.port, 'web.service.consul', 'A')).rcode).toBe('NOERROR');
    expect(s.app.counters.internalErrors).toBe(0);
  });
});

describe('TCP connections', () => {
  let s: TestServer;
  beforeAll(async () => { s = await startServer({ config: { tcp_idle_timeout: '1s', tcp_frame_timeout: '1s' } }); });
  afterAll(() => s.close());

  it('answers several pipelined queries on one connection, in order', async () => {
    const qs = [
      buildQuery('web.service.consul', 'A', { id: 1 }),
      buildQuery('_web._tcp.service.consul', 'SRV', { id: 2 }),
      buildQuery('nosuch.service.consul', 'A', { id: 3 }),
      buildQuery('consul', 'SOA', { id: 4 }),
    ];
    const replies = (await tcpExchange(s.port, qs)).map(decode);
    expect(replies.map((r) => r.id)).toEqual([1, 2, 3, 4]);
    expect(replies.map((r) => r.rcode)).toEqual(['NOERROR', 'NOERROR', 'NXDOMAIN', 'NOERROR']);
  });

  it('reassembles a query sent one byte at a time', async () => {
    const q = buildQuery('web-1.node.consul', 'A', { id: 99 });
    const frame = Buffer.concat([Buffer.from([q.length >> 8, q.length & 255]), q]);
    const reply = await new Promise<Buffer>((resolve, reject) => {
      const sock = connect(s.port, '127.0.0.1');
      let buf = Buffer.alloc(0);
      sock.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) { sock.destroy(); resolve(buf.subarray(2)); }
      });
      sock.on('error', reject);
      sock.on('connect', async () => {
        for (const byte of frame) { sock.write(Buffer.from([byte])); await new Promise((r) => setTimeout(r, 2)); }
      });
    });
    const d = decode(reply);
    expect(d.id).toBe(99);
    expect(d.answers[0]).toMatchObject({ type: 'A', data: '10.0.1.11' });
  });

  it('closes an idle connection, and one that sends a length prefix and stalls', async () => {
    const closedAfter = (bytes: Buffer) => new Promise<number>((resolve, reject) => {
      const t0 = Date.now();
      const sock = connect(s.port, '127.0.0.1', () => { if (bytes.length) sock.write(bytes); });
      const guard = setTimeout(() => { sock.destroy(); reject(new Error('not closed within 5 s')); }, 5000);
      sock.on('close', () => { clearTimeout(guard); resolve(Date.now() - t0); });
      sock.on('error', () => {});
      sock.resume();
    });
    const { tcpIdleClosed, tcpFrameTimeouts } = s.app.counters;
    const [idle, stalled] = await Promise.all([closedAfter(Buffer.alloc(0)), closedAfter(Buffer.from([0x00, 0x40, 0x12]))]);
    for (const ms of [idle, stalled]) {
      expect(ms).toBeGreaterThanOrEqual(900);
      expect(ms).toBeLessThan(4000);
    }
    // The stalled one is mid-frame, not idle: the frame deadline closed it (tcp-slots.test.ts).
    expect(s.app.counters.tcpIdleClosed).toBe(tcpIdleClosed + 1);
    expect(s.app.counters.tcpFrameTimeouts).toBe(tcpFrameTimeouts + 1);
  });

  it('closes the connection on a frame shorter than a DNS header and counts it', async () => {
    const before = s.app.counters.dropped;
    await expect(tcpExchange(s.port, [Buffer.alloc(5)], 1, 2000)).rejects.toThrow(/closed/);
    expect(s.app.counters.dropped).toBe(before + 1);
  });
});

describe('catalog file updates', () => {
  it('swaps in a valid new file, keeps serving the old zone on an invalid one, and bumps the serial only on change', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cdns-watch-'));
    const file = join(dir, 'catalog.json');
    writeFileSync(file, JSON.stringify(demo));
    const s = await startServer({ catalogFile: file });
    try {
      const soa = async () => ((await udpQuery(s.port, 'consul', 'SOA')).answers[0]!.data as { serial: number }).serial;
      const waitFor = async (pred: () => Promise<boolean>) => {
        for (let i = 0; i < 60; i++) { if (await pred()) return true; await new Promise((r) => setTimeout(r, 100)); }
        return false;
      };
      const s1 = await soa();
      // Same content rewritten: no new serial.
      writeFileSync(file, JSON.stringify(demo, null, 1));
      await new Promise((r) => setTimeout(r, 600));
      expect(await soa()).toBe(s1);
      // A new service appears.
      const next = structuredClone(demo);
      next.datacenters.dc1.services.extra = [{ Node: next.datacenters.dc1.nodes[0], Service: { ID: 'extra', Service: 'extra', Port: 1 }, Checks: [] }];
      writeFileSync(file, JSON.stringify(next));
      expect(await waitFor(async () => (await udpQuery(s.port, 'extra.service.consul', 'A')).rcode === 'NOERROR')).toBe(true);
      const s2 = await soa();
      expect(s2).not.toBe(s1);
      // An invalid file: logged, the zone stays.
      const bad = structuredClone(next);
      bad.datacenters.dc1.services.web[0].Service.Port = 'eighty';
      writeFileSync(file, JSON.stringify(bad));
      const okAt = s.app.store.lastSuccess;
      expect(await waitFor(async () => (s.app.source as unknown as { rejected: number }).rejected > 0)).toBe(true);
      expect((await udpQuery(s.port, 'extra.service.consul', 'A')).rcode).toBe('NOERROR');
      expect(await soa()).toBe(s2);
      // The store knows why the last sync failed and when it last succeeded (for health/metrics).
      expect(s.app.store.lastError?.message).toContain('datacenters.dc1.services.web[0].Service.Port');
      expect(s.app.store.lastSuccess).toBe(okAt);
    } finally {
      await s.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('follows a file replaced by rename (how editors and config tools write), more than once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cdns-rename-'));
    const file = join(dir, 'catalog.json');
    writeFileSync(file, JSON.stringify(demo));
    const s = await startServer({ catalogFile: file });
    try {
      for (const svc of ['first', 'second']) {
        const next = structuredClone(demo);
        next.datacenters.dc1.services[svc] = [{ Node: next.datacenters.dc1.nodes[0], Service: { ID: svc, Service: svc, Port: 1 }, Checks: [] }];
        writeFileSync(join(dir, 'catalog.json.tmp'), JSON.stringify(next));
        renameSync(join(dir, 'catalog.json.tmp'), file);
        let rcode = '';
        for (let i = 0; i < 60 && rcode !== 'NOERROR'; i++) {
          await new Promise((r) => setTimeout(r, 100));
          rcode = (await udpQuery(s.port, `${svc}.service.consul`, 'A')).rcode;
        }
        expect(rcode, svc).toBe('NOERROR');
      }
    } finally {
      await s.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps the serial across a restart with the same content, and raises it for new content (data_dir)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cdns-state-'));
    const file = join(dir, 'catalog.json');
    writeFileSync(file, JSON.stringify(demo));
    const serialOf = async (cfg: Record<string, unknown>) => {
      const s = await startServer({ catalogFile: file, config: cfg });
      try { return ((await udpQuery(s.port, 'consul', 'SOA')).answers[0]!.data as { serial: number }).serial; } finally { await s.close(); }
    };
    try {
      const cfg = { data_dir: join(dir, 'state') };
      const a = await serialOf(cfg);
      expect(await serialOf(cfg)).toBe(a);
      const next = structuredClone(demo);
      delete next.datacenters.dc1.services.redis;
      writeFileSync(file, JSON.stringify(next));
      const b = await serialOf(cfg);
      expect(b).not.toBe(a);
      expect(((b - a + 2 ** 32) % 2 ** 32)).toBeLessThan(2 ** 31); // greater in RFC 1982 terms
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('IPv6 listener', () => {
  it('serves UDP on [::1] when --dns is [::1]:PORT', async () => {
    const s = await startServer({ config: { dns: '[::1]:0' } });
    try {
      expect(s.app.dnsAddress.host).toBe('::1');
      const r = await udpRaw(s.port, buildQuery('web-2.node.consul', 'A'), 2000, '::1');
      expect(decode(r!).answers[0]).toMatchObject({ type: 'A', data: '10.0.1.12' });
    } finally {
      await s.close();
    }
  });
});

describe('error replies to queries that carry records', () => {
  it('answers an IXFR query (SOA in authority) with a well-formed NOTIMP: no records echoed', async () => {
    const s = await startServer();
    try {
      const q = packet.encode({
        type: 'query', id: 77, flags: 0,
        questions: [{ name: 'consul', type: 'IXFR', class: 'IN' }],
        authorities: [{ name: 'consul', type: 'SOA', ttl: 0, data: { mname: 'ns.consul', rname: 'hostmaster.consul', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 0 } }],
      } as unknown as packet.Packet);
      const [r] = await tcpExchange(s.port, [q]);
      const d = decode(r!);
      expect(d.id).toBe(77);
      expect(d.rcode).toBe('NOTIMP');
      expect([d.answers.length, d.authorities.length, d.additionals.length]).toEqual([0, 0, 0]);
      expect(r!.length).toBe(12 + 8 + 4);
    } finally {
      await s.close();
    }
  });
});

describe('host-name addresses (CNAME)', () => {
  let s: TestServer;
  beforeAll(async () => { s = await startServer({ catalogFile: new URL('../../fixtures/alias-catalog.json', import.meta.url).pathname }); });
  afterAll(() => s.close());
  const lines = (rrs: Array<{ name: string; type: string; data: unknown }>) =>
    rrs.filter((r) => r.type !== 'OPT').map((r) => `${r.name} ${r.type} ${typeof r.data === 'object' ? JSON.stringify(r.data) : r.data}`);

  it('answers a service whose address is another service with a CNAME and what it resolves to', async () => {
    const r = await udpQuery(s.port, 'alias.service.consul', 'A');
    expect(lines(r.answers)).toEqual(['alias.service.consul CNAME db.service.consul', 'db.service.consul A 10.1.1.1']);
  });

  it('follows nested aliases, and stops on a loop after 3 levels', async () => {
    const r = await udpQuery(s.port, 'alias2.service.consul', 'A');
    expect(lines(r.answers)).toEqual([
      'alias2.service.consul CNAME alias.service.consul', 'alias.service.consul CNAME db.service.consul', 'db.service.consul A 10.1.1.1',
    ]);
    const loop = await udpQuery(s.port, 'loop1.service.consul', 'A');
    expect(loop.rcode).toBe('NOERROR');
    expect(loop.answers.length).toBeLessThanOrEqual(4);
    expect(loop.answers.every((a) => a.type === 'CNAME')).toBe(true);
  });

  it('uses the node address when the service address names the service itself', async () => {
    expect(lines((await udpQuery(s.port, 'self.service.consul', 'A')).answers)).toEqual(['self.service.consul A 10.1.1.1']);
  });

  it('gives an external host as SRV target without glue, and a CNAME for a node with a host-name address', async () => {
    const srv = await udpQuery(s.port, 'external.service.consul', 'SRV', { edns: 1232 });
    expect(lines(srv.answers)).toEqual(['external.service.consul SRV {"priority":1,"weight":1,"port":443,"target":"www.example.com"}']);
    expect(lines(srv.additionals)).toEqual([]);
    expect(lines((await udpQuery(s.port, 'ext.node.consul', 'A')).answers)).toEqual(['ext.node.consul CNAME db.example.com']);
  });
});

describe('a catalog without consul servers', () => {
  it('delegates to ns.<domain> and answers its address with the listen address', async () => {
    const s = await startServer({ catalogFile: new URL('../../fixtures/alias-catalog.json', import.meta.url).pathname });
    try {
      const ns = await udpQuery(s.port, 'consul', 'NS');
      expect(ns.answers.map((a) => a.data)).toEqual(['ns.consul']);
      expect(ns.additionals.filter((a) => a.type === 'A').map((a) => `${a.name} ${a.data}`)).toEqual(['ns.consul 127.0.0.1']);
      const a = await udpQuery(s.port, 'ns.consul', 'A');
      expect(a.answers.map((r) => r.data)).toEqual(['127.0.0.1']);
      expect((await udpQuery(s.port, 'ns.consul', 'AAAA')).rcode).toBe('NOERROR');
    } finally {
      await s.close();
    }
  });
});

describe('large answers over TCP', () => {
  it('carries the whole SRV RRset of 1000 instances without TC, with glue while it fits', async () => {
    const big = await startBig(1000);
    try {
      const t = await tcpQuery(big.port, 'big.service.consul', 'SRV');
      expect(t.answers.length).toBe(1000);
      expect(t.flag_tc).toBe(false);
      const glue = t.additionals.filter((a) => a.type === 'A');
      expect(glue.length).toBeGreaterThan(0);
      expect(t.raw.length).toBeLessThanOrEqual(65535);
      // Every glue record belongs to an SRV target in the answer.
      const targets = new Set(t.answers.map((a) => (a.data as { target: string }).target));
      expect(glue.every((g) => targets.has(g.name))).toBe(true);
    } finally {
      await big.close();
    }
  });
});

describe('meta qtypes in the question', () => {
  it('answers OPT, TSIG and type 0 with FORMERR, and TKEY, MAILB, MAILA with NOTIMP', async () => {
    const s = await startServer();
    try {
      const rcodeFor = async (qtype: number) => {
        const q = Buffer.from(buildQuery('web.service.consul', 'A', { edns: 1232 }));
        q.writeUInt16BE(qtype, 12 + 20); // after the 20-byte qname of web.service.consul
        const r = decode((await udpRaw(s.port, q))!);
        return r.rcode;
      };
      for (const t of [0, 41, 250]) expect(await rcodeFor(t), `qtype ${t}`).toBe('FORMERR');
      for (const t of [249, 253, 254]) expect(await rcodeFor(t), `qtype ${t}`).toBe('NOTIMP');
      expect(await rcodeFor(1)).toBe('NOERROR');
    } finally {
      await s.close();
    }
  });
});
