/**
 * query_log (README "Query log"): one line per query over real UDP and TCP sockets, with the
 * client's address and port, the transport, the question as spelled, the rcode, the reply's size and
 * the time taken; dropped queries too. Off (the default): no line. Switched by a reload (SIGHUP).
 */
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { App } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/log.js';
import { buildQuery, decode } from '../support/dns-client.js';
import { DEMO_CATALOG } from '../support/server.js';

type Line = Record<string, unknown>;

interface Logged {
  readonly app: App;
  readonly port: number;
  readonly lines: Line[];
  /** Sets the configuration a reload reads. */
  setFile(f: Record<string, unknown>): void;
}

async function start(file: Record<string, unknown>): Promise<Logged> {
  const lines: Line[] = [];
  const logger = createLogger('info', new Writable({ write(c, _e, cb) { lines.push(JSON.parse(String(c)) as Line); cb(); } }));
  let current = { dns: '127.0.0.1:0', http: 'off', catalog_file: DEMO_CATALOG, ...file };
  const load = () => loadConfig({ object: current });
  const app = new App({ config: load(), logger, reloadConfig: load });
  await app.start();
  return { app, port: app.dnsAddress.port, lines, setFile: (f) => { current = { dns: '127.0.0.1:0', http: 'off', catalog_file: DEMO_CATALOG, ...f }; } };
}

const queryLines = (lines: Line[]) => lines.filter((l) => l.component === 'query');

/** Sends one datagram from a socket of our own; resolves with its port and the reply (null: none within `waitMs`). */
function udpFrom(port: number, msg: Buffer, waitMs = 2000): Promise<{ port: number; reply: Buffer | null }> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    let mine = 0;
    const t = setTimeout(() => { s.close(); resolve({ port: mine, reply: null }); }, waitMs);
    s.on('message', (m) => { clearTimeout(t); s.close(); resolve({ port: mine, reply: m }); });
    s.on('error', (e) => { clearTimeout(t); s.close(); reject(e); });
    s.bind(0, '127.0.0.1', () => {
      mine = s.address().port;
      s.send(msg, port, '127.0.0.1');
    });
  });
}

/** Pipelines `msgs` on one TCP connection; resolves with its local port and the replies. */
function tcpFrom(port: number, msgs: Buffer[]): Promise<{ port: number; replies: Buffer[] }> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    const replies: Buffer[] = [];
    let buf = Buffer.alloc(0);
    const t = setTimeout(() => { sock.destroy(); reject(new Error(`TCP: ${replies.length}/${msgs.length} replies`)); }, 5000);
    sock.on('connect', () => sock.write(Buffer.concat(msgs.map((m) => { const l = Buffer.alloc(2); l.writeUInt16BE(m.length); return Buffer.concat([l, m]); }))));
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        replies.push(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        buf = buf.subarray(2 + buf.readUInt16BE(0));
      }
      if (replies.length === msgs.length) {
        clearTimeout(t);
        const local = sock.localPort!;
        sock.destroy();
        resolve({ port: local, replies });
      }
    });
    sock.on('error', (e) => { clearTimeout(t); reject(e); });
  });
}

/** The line's fields other than time and duration; the duration checked to be a small non-negative number. */
function fields(l: Line): Line {
  const { time: _t, level, ms, ...rest } = l;
  expect(level).toBe(30);
  expect(typeof ms).toBe('number');
  expect(ms as number).toBeGreaterThanOrEqual(0);
  return rest;
}

describe('query_log on', () => {
  let s: Logged;
  beforeAll(async () => { s = await start({ query_log: true }); });
  afterAll(() => s.app.close());

  it('logs UDP queries, a response-cache hit like a miss', async () => {
    const q = buildQuery('WeB.service.consul', 'A');
    const a = await udpFrom(s.port, q);
    const b = await udpFrom(s.port, q); // the same bytes after the ID: a cache hit
    expect(a.reply).not.toBeNull();
    expect(b.reply).not.toBeNull();
    await vi.waitFor(() => expect(queryLines(s.lines).length).toBeGreaterThanOrEqual(2), { timeout: 5000 });
    const [la, lb] = queryLines(s.lines).slice(-2).map(fields);
    const base = { name: 'catalog-dns', component: 'query', proto: 'udp', qname: 'WeB.service.consul.', qtype: 'A', rcode: 'NOERROR', msg: 'query' };
    expect(la).toEqual({ ...base, client: `127.0.0.1:${a.port}`, size: a.reply!.length });
    expect(lb).toEqual({ ...base, client: `127.0.0.1:${b.port}`, size: b.reply!.length });
  });

  it('logs FORMERR, REFUSED, BADVERS and NXDOMAIN with their rcodes', async () => {
    const two = buildQuery('web.service.consul', 'A');
    two.writeUInt16BE(2, 4); // QDCOUNT 2: FORMERR
    const badvers = buildQuery('web.service.consul', 'A', { edns: 1232 });
    badvers[badvers.length - 11 + 6] = 1; // OPT VERSION 1
    const cases: Array<[Buffer, string, string, string]> = [
      [two, 'FORMERR', 'web.service.consul.', 'A'],
      [buildQuery('example.com', 'A'), 'REFUSED', 'example.com.', 'A'],
      [badvers, 'BADVERS', 'web.service.consul.', 'A'],
      [buildQuery('nope.service.consul', 'SRV'), 'NXDOMAIN', 'nope.service.consul.', 'SRV'],
    ];
    for (const [msg, rcode, qname, qtype] of cases) {
      const n = queryLines(s.lines).length;
      const r = await udpFrom(s.port, msg);
      expect(r.reply, rcode).not.toBeNull();
      await vi.waitFor(() => expect(queryLines(s.lines).length).toBe(n + 1), { timeout: 5000 });
      expect(fields(queryLines(s.lines)[n]!)).toMatchObject({ proto: 'udp', client: `127.0.0.1:${r.port}`, qname, qtype, rcode, size: r.reply!.length });
    }
  });

  it('logs a dropped query (no reply) as dropped, without rcode and size', async () => {
    const q = buildQuery('web.service.consul', 'A');
    q[2]! |= 0x80; // QR set: a response, not a query
    const n = queryLines(s.lines).length;
    const r = await udpFrom(s.port, q, 300);
    expect(r.reply).toBeNull();
    await vi.waitFor(() => expect(queryLines(s.lines).length).toBe(n + 1), { timeout: 5000 });
    const l = fields(queryLines(s.lines)[n]!);
    expect(l).toEqual({ name: 'catalog-dns', component: 'query', msg: 'query', proto: 'udp', client: `127.0.0.1:${r.port}`, qname: 'web.service.consul.', qtype: 'A', dropped: true });
  });

  it('logs a TCP frame shorter than a header as dropped, without a question', async () => {
    const n = queryLines(s.lines).length;
    const local = await new Promise<number>((resolve, reject) => {
      const sock = connect(s.port, '127.0.0.1');
      let port = 0;
      const t = setTimeout(() => { sock.destroy(); reject(new Error('the server did not close the connection')); }, 5000);
      sock.on('connect', () => { port = sock.localPort!; sock.write(Buffer.from([0, 5, 1, 2, 3, 4, 5])); });
      sock.on('data', () => {});
      sock.on('error', () => {});
      sock.on('close', () => { clearTimeout(t); resolve(port); });
    });
    await vi.waitFor(() => expect(queryLines(s.lines).length).toBe(n + 1), { timeout: 5000 });
    expect(fields(queryLines(s.lines)[n]!)).toEqual({ name: 'catalog-dns', component: 'query', msg: 'query', proto: 'tcp', client: `127.0.0.1:${local}`, dropped: true });
  });

  it('logs each query pipelined on a TCP connection, with the connection\'s port', async () => {
    const n = queryLines(s.lines).length;
    const t = await tcpFrom(s.port, [buildQuery('_web._tcp.service.consul', 'SRV'), buildQuery('nope.node.consul', 'A')]);
    expect(t.replies.map((r) => decode(r).rcode)).toEqual(['NOERROR', 'NXDOMAIN']);
    await vi.waitFor(() => expect(queryLines(s.lines).length).toBe(n + 2), { timeout: 5000 });
    expect(queryLines(s.lines).slice(n).map(fields)).toEqual([
      { name: 'catalog-dns', component: 'query', msg: 'query', proto: 'tcp', client: `127.0.0.1:${t.port}`, qname: '_web._tcp.service.consul.', qtype: 'SRV', rcode: 'NOERROR', size: t.replies[0]!.length },
      { name: 'catalog-dns', component: 'query', msg: 'query', proto: 'tcp', client: `127.0.0.1:${t.port}`, qname: 'nope.node.consul.', qtype: 'A', rcode: 'NXDOMAIN', size: t.replies[1]!.length },
    ]);
  });
});

describe('query_log off (the default), and switched by a reload', () => {
  let s: Logged;
  beforeAll(async () => { s = await start({}); });
  afterAll(() => s.app.close());

  it('writes no line per query when off; a reload turns it on and off again', async () => {
    const q = buildQuery('web.service.consul', 'A');
    const nxq = buildQuery('example.com', 'A');
    for (const m of [q, q, nxq]) expect((await udpFrom(s.port, m)).reply).not.toBeNull();
    await tcpFrom(s.port, [q]);
    expect(queryLines(s.lines)).toEqual([]);

    s.setFile({ query_log: true });
    await s.app.reload();
    const on = await udpFrom(s.port, q);
    await tcpFrom(s.port, [q]);
    await vi.waitFor(() => expect(queryLines(s.lines).map((l) => l.proto)).toEqual(['udp', 'tcp']), { timeout: 5000 });
    expect(queryLines(s.lines)[0]).toMatchObject({ client: `127.0.0.1:${on.port}`, rcode: 'NOERROR' });

    s.setFile({});
    await s.app.reload();
    for (const m of [q, nxq]) expect((await udpFrom(s.port, m)).reply).not.toBeNull();
    await tcpFrom(s.port, [q]);
    expect(queryLines(s.lines).length).toBe(2);
  });
});
