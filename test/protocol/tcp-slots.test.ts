/**
 * TCP connection slots over real sockets (RFC 7766 6.2.2 and 6.2.3; src/transport/tcp.ts, README
 * "DNS behaviour"): clients that hold connections without using them (slowloris) cannot keep fresh
 * clients out.
 *
 * - a query frame must be whole `tcp_frame_timeout` after its first byte, however often bytes come;
 * - one address holds at most `tcp_max_connections_per_client`;
 * - at `tcp_max_connections` a newcomer takes the slot of the longest-idle connection, else of the
 *   longest-stalled one, else of the address holding the most; only then is it refused;
 * - nothing a peer does can throw out of the connection handlers.
 *
 * Clients bind 127.0.0.2-127.0.0.6 as their source to be other addresses (all of 127/8 is
 * loopback on Linux). Most tests run the whole App (startServer); the ones that need "every slot is
 * busy" to hold for as long as they run use a TcpServer with a long stall grace. Every socket is
 * destroyed and every server closed in a finally or afterAll next to where it was started; every
 * wait is bounded.
 */
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { validateCatalog } from '../../src/catalog/catalog.js';
import { loadConfig } from '../../src/config.js';
import { DnsCounters } from '../../src/dns/counters.js';
import { QueryHandler } from '../../src/dns/handler.js';
import { silentLogger } from '../../src/log.js';
import { TcpServer, type TcpOptions } from '../../src/transport/tcp.js';
import { buildZone } from '../../src/zone/build.js';
import { buildQuery, decode, tcpExchange } from '../support/dns-client.js';
import { DEMO_CATALOG, startServer, type TestServer } from '../support/server.js';

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const frame = (m: Buffer) => Buffer.concat([Buffer.from([m.length >> 8, m.length & 255]), m]);
const query = (id: number) => buildQuery('web.service.consul', 'A', { id });

/** Polls `cond` every 20 ms for at most `ms`; returns its last value. */
async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await sleep(20);
  return cond();
}

/** A TCP client from a chosen loopback address that collects replies and notices the close. */
class Peer {
  readonly replies: Buffer[] = [];
  closed = false;
  private buf = Buffer.alloc(0);
  private dribbler: NodeJS.Timeout | null = null;

  private constructor(readonly sock: Socket) {
    sock.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= 2 && this.buf.length >= 2 + this.buf.readUInt16BE(0)) {
        this.replies.push(Buffer.from(this.buf.subarray(2, 2 + this.buf.readUInt16BE(0))));
        this.buf = this.buf.subarray(2 + this.buf.readUInt16BE(0));
      }
    });
    sock.on('error', () => {});
    sock.on('close', () => { this.closed = true; this.stop(); });
  }

  /** Resolves once connected (the server may still close it at once: refused). */
  static open(port: number, from = '127.0.0.1'): Promise<Peer> {
    const p = new Peer(connect({ port, host: '127.0.0.1', localAddress: from }));
    return new Promise((resolve, reject) => {
      p.sock.once('connect', () => resolve(p));
      p.sock.once('error', reject);
    });
  }

  write(bytes: Buffer): void {
    if (!this.closed) this.sock.write(bytes);
  }

  /** Sends `bytes` one at a time, one every `everyMs`, starting now (a slowloris client). */
  dribble(bytes: Buffer, everyMs: number): void {
    let i = 0;
    const next = () => { if (i < bytes.length) this.write(bytes.subarray(i, ++i)); else this.stop(); };
    next();
    this.dribbler = setInterval(next, everyMs);
  }

  stop(): void {
    if (this.dribbler) clearInterval(this.dribbler);
    this.dribbler = null;
  }

  /** True once `n` replies arrived; false on close or after `ms`. */
  replied(n: number, ms = 5000): Promise<boolean> {
    return until(() => this.replies.length >= n || this.closed, ms).then(() => this.replies.length >= n);
  }

  /** One query, one reply with its ID. */
  async ask(id: number): Promise<boolean> {
    const n = this.replies.length;
    this.write(frame(query(id)));
    return (await this.replied(n + 1)) && decode(this.replies[n]!).id === id;
  }

  destroy(): void {
    this.stop();
    this.sock.destroy();
  }
}

/** Peers opened by a test, destroyed after it whatever happens. */
const peers: Peer[] = [];
async function peer(port: number, from = '127.0.0.1'): Promise<Peer> {
  const p = await Peer.open(port, from);
  peers.push(p);
  return p;
}
afterEach(() => {
  for (const p of peers.splice(0)) p.destroy();
});

/** A fresh client from 127.0.0.1: one query on a new connection. True if answered. */
async function freshClientServed(port: number, id: number): Promise<boolean> {
  try {
    const [r] = await tcpExchange(port, [query(id)], 1, 5000);
    return decode(r!).id === id;
  } catch {
    return false;
  }
}

/**
 * `n` slowloris connections from `sources` (round robin), each dribbling a query one byte every
 * `everyMs` and reconnecting `reconnectMs` after the server closes it, until stopped.
 */
function slowloris(port: number, n: number, sources: readonly string[], everyMs: number, reconnectMs: number): { stop(): void; opened(): number } {
  let stopped = false, opened = 0;
  const timers = new Set<NodeJS.Timeout>();
  const live = new Set<Peer>();
  const open = (i: number) => {
    if (stopped) return;
    Peer.open(port, sources[i % sources.length]).then((p) => {
      if (stopped) { p.destroy(); return; }
      opened++;
      live.add(p);
      p.dribble(frame(query(0x5105)), everyMs);
      p.sock.on('close', () => {
        live.delete(p);
        if (stopped) return;
        const t = setTimeout(() => { timers.delete(t); open(i); }, reconnectMs);
        timers.add(t);
      });
    }, () => {
      if (stopped) return;
      const t = setTimeout(() => { timers.delete(t); open(i); }, reconnectMs);
      timers.add(t);
    });
  };
  for (let i = 0; i < n; i++) open(i);
  return {
    stop() {
      stopped = true;
      for (const t of timers) clearTimeout(t);
      for (const p of live) p.destroy();
    },
    opened: () => opened,
  };
}

/** A TcpServer alone on 127.0.0.1 port 0 answering from the demo catalog. */
async function startTcp(opts: Partial<TcpOptions> & { handler?: QueryHandler } = {}): Promise<{ tcp: TcpServer; port: number; counters: DnsCounters }> {
  const config = loadConfig({ object: {} });
  const { catalog } = validateCatalog(JSON.parse(readFileSync(DEMO_CATALOG, 'utf8')));
  const zone = buildZone(catalog, { config, serialFor: () => 1 });
  const counters = opts.counters ?? new DnsCounters();
  const handler = opts.handler ?? new QueryHandler({ store: { current: () => zone }, config, logger: silentLogger(), counters });
  const tcp = new TcpServer({
    host: '127.0.0.1', port: 0, handler, counters, logger: silentLogger(),
    idleTimeoutMs: 30_000, frameTimeoutMs: 30_000, maxConnections: 4, maxConnectionsPerClient: 0, ...opts,
  });
  const port = await tcp.start();
  return { tcp, port, counters };
}

// ---------------------------------------------------------------------------------------------
// Slowloris at small scale
// ---------------------------------------------------------------------------------------------

describe('slowloris: many connections dribbling bytes', () => {
  it('from one address (127.0.0.2): it gets its per-client share, fresh clients from 127.0.0.1 are served', async () => {
    const s = await startServer({ config: { tcp_max_connections: 16, tcp_max_connections_per_client: 8, tcp_frame_timeout: 1 } });
    const attack = slowloris(s.port, 40, ['127.0.0.2'], 100, 50);
    try {
      expect(await until(() => s.app.counters.tcpRejectedPerClient > 0, 10_000), 'the per-client cap engaged').toBe(true);
      const served: boolean[] = [];
      for (let i = 0; i < 10; i++) {
        served.push(await freshClientServed(s.port, 1000 + i));
        await sleep(150);
      }
      expect(served).toEqual(Array(10).fill(true));
      // The admitted dribblers do not keep their slots: their frames never arrive whole in time.
      expect(await until(() => s.app.counters.tcpFrameTimeouts > 0, 10_000)).toBe(true);
    } finally {
      attack.stop();
      await s.close();
    }
  }, 60_000);

  it('from five addresses, more than tcp_max_connections in all: a newcomer takes a slot and fresh clients are served', async () => {
    const s = await startServer({ config: { tcp_max_connections: 16, tcp_max_connections_per_client: 8, tcp_frame_timeout: 1 } });
    const sources = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5', '127.0.0.6'];
    const attack = slowloris(s.port, 40, sources, 100, 50);
    const c = s.app.counters;
    const evictions = () => c.tcpEvictedIdle + c.tcpEvictedStalled + c.tcpEvictedFairShare;
    try {
      expect(await until(() => evictions() + c.tcpRejected > 0, 10_000), 'all slots taken at least once').toBe(true);
      const served: boolean[] = [];
      for (let i = 0; i < 10; i++) {
        served.push(await freshClientServed(s.port, 2000 + i));
        await sleep(150);
      }
      expect(served).toEqual(Array(10).fill(true));
      expect(evictions()).toBeGreaterThan(0);
    } finally {
      attack.stop();
      await s.close();
    }
  }, 60_000);
});

// ---------------------------------------------------------------------------------------------
// Frame deadline
// ---------------------------------------------------------------------------------------------

describe('a query frame must be whole tcp_frame_timeout after its first byte', () => {
  let s: TestServer;
  // Idle timeout 60 s: a connection closed within the waits below (at most 20 s) was closed by the
  // frame deadline, not as idle.
  beforeAll(async () => { s = await startServer({ config: { tcp_idle_timeout: '60s', tcp_frame_timeout: '1s' } }); });
  afterAll(() => s.close());

  it('a length prefix and part of a query, then silence: closed at the deadline, counted, not as idle', async () => {
    const c = s.app.counters;
    const [frames, idle] = [c.tcpFrameTimeouts, c.tcpIdleClosed];
    const p = await peer(s.port);
    p.write(frame(query(1)).subarray(0, 9));
    expect(await until(() => p.closed, 20_000)).toBe(true);
    expect(p.replies).toEqual([]);
    expect(c.tcpFrameTimeouts).toBe(frames + 1);
    expect(c.tcpIdleClosed).toBe(idle);
  }, 30_000);

  it('a query dribbled one byte every 100 ms: each byte is activity, and it is still closed at the deadline', async () => {
    const before = s.app.counters.tcpFrameTimeouts;
    const p = await peer(s.port);
    p.dribble(frame(query(2)), 100); // 38 bytes: 3.8 s, the deadline is 1 s
    expect(await until(() => p.closed, 20_000)).toBe(true);
    expect(p.replies).toEqual([]);
    expect(s.app.counters.tcpFrameTimeouts).toBe(before + 1);
  }, 30_000);

  it('a query in two writes is answered, and the next query on the same connection too', async () => {
    const p = await peer(s.port);
    const f = frame(query(3));
    p.write(f.subarray(0, 5));
    await sleep(50);
    p.write(f.subarray(5));
    expect(await p.replied(1)).toBe(true);
    expect(decode(p.replies[0]!).id).toBe(3);
    expect(await p.ask(4)).toBe(true);
    expect(p.closed).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------
// At tcp_max_connections
// ---------------------------------------------------------------------------------------------

describe('at tcp_max_connections, idle connections make room first', () => {
  let s: TestServer | null = null;
  afterEach(async () => { await s?.close(); s = null; });

  it('all slots held by answered, idle connections: a new client is served and the longest-idle one is closed', async () => {
    s = await startServer({ config: { tcp_max_connections: 4 } });
    const held: Peer[] = [];
    for (let i = 0; i < 4; i++) {
      const p = await peer(s.port);
      expect(await p.ask(10 + i)).toBe(true);
      held.push(p);
    }
    expect(await freshClientServed(s.port, 20)).toBe(true);
    expect(await until(() => held[0]!.closed, 5000), 'the longest-idle connection is closed').toBe(true);
    expect(s.app.counters.tcpEvictedIdle).toBe(1);
    for (const [i, p] of held.slice(1).entries()) {
      expect(p.closed).toBe(false);
      expect(await p.ask(30 + i)).toBe(true);
    }
  });

  it('all slots held by connections that never asked: once they have been silent a second, a new client is served', async () => {
    s = await startServer({ config: { tcp_max_connections: 4 } });
    const silent: Peer[] = [];
    for (let i = 0; i < 4; i++) silent.push(await peer(s.port, '127.0.0.2'));
    await sleep(1500); // past the 1 s a new connection gets to ask before it counts as idle
    expect(await freshClientServed(s.port, 40)).toBe(true);
    expect(await until(() => silent.some((p) => p.closed), 5000)).toBe(true);
    expect(silent.filter((p) => p.closed)).toEqual([silent[0]]);
    expect(s.app.counters.tcpEvictedIdle).toBe(1);
  });
});

describe('at tcp_max_connections with every slot busy (stall grace 60 s)', () => {
  it('a newcomer from the address holding the slots is refused; one from another address takes that address\'s oldest slot', async () => {
    const { tcp, port, counters } = await startTcp({ maxConnections: 4, stallGraceMs: 60_000 });
    try {
      const busy: Peer[] = [];
      for (let i = 0; i < 4; i++) {
        const p = await peer(port);
        p.write(frame(query(50 + i)).subarray(0, 7)); // mid-frame: busy, not idle
        busy.push(p);
      }
      expect(await until(() => tcp.connections === 4, 5000)).toBe(true);
      const refused = await peer(port);
      refused.write(frame(query(60)));
      expect(await until(() => refused.closed, 5000)).toBe(true);
      expect(refused.replies).toEqual([]);
      expect(counters.tcpRejected).toBe(1);
      // 127.0.0.2 holds none, 127.0.0.1 holds four: a fair share for the newcomer.
      const other = await peer(port, '127.0.0.2');
      expect(await other.ask(61)).toBe(true);
      expect(await until(() => busy[0]!.closed, 5000)).toBe(true);
      expect(busy.slice(1).map((p) => p.closed)).toEqual([false, false, false]);
      expect(counters.tcpEvictedFairShare).toBe(1);
      // The three left finish their queries and are answered.
      for (const [i, p] of busy.slice(1).entries()) {
        p.write(frame(query(51 + i)).subarray(7));
        expect(await p.replied(1)).toBe(true);
        expect(decode(p.replies[0]!).id).toBe(51 + i);
      }
    } finally {
      tcp.destroy();
    }
  });

  it('a just-accepted connection is not taken for idle before it had the grace period to ask', async () => {
    const { tcp, port, counters } = await startTcp({ maxConnections: 2, stallGraceMs: 60_000 });
    try {
      const young = [await peer(port), await peer(port)];
      expect(await until(() => tcp.connections === 2, 5000)).toBe(true);
      const refused = await peer(port);
      expect(await until(() => refused.closed, 5000)).toBe(true);
      expect(counters.tcpRejected).toBe(1);
      expect(counters.tcpEvictedIdle).toBe(0);
      for (const [i, p] of young.entries()) expect(await p.ask(70 + i)).toBe(true);
    } finally {
      tcp.destroy();
    }
  });
});

describe('tcp_max_connections_per_client', () => {
  it('an address at its cap is refused, another address is served, and the slot comes back when one closes', async () => {
    const s = await startServer({ config: { tcp_max_connections_per_client: 2 } });
    try {
      const before = s.app.counters.tcpRejectedPerClient;
      const mine = [await peer(s.port, '127.0.0.2'), await peer(s.port, '127.0.0.2')];
      for (const [i, p] of mine.entries()) expect(await p.ask(80 + i)).toBe(true);
      const third = await peer(s.port, '127.0.0.2');
      third.write(frame(query(82)));
      expect(await until(() => third.closed, 5000)).toBe(true);
      expect(third.replies).toEqual([]);
      expect(s.app.counters.tcpRejectedPerClient).toBe(before + 1);
      expect(await freshClientServed(s.port, 83)).toBe(true);
      mine[0]!.destroy();
      let served = false;
      for (let i = 0; i < 50 && !served; i++) {
        const p = await peer(s.port, '127.0.0.2');
        served = await p.ask(84);
        p.destroy();
        if (!served) await sleep(50);
      }
      expect(served).toBe(true);
    } finally {
      await s.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Nothing a peer does throws out of the connection handlers
// ---------------------------------------------------------------------------------------------

describe('the connection handlers never throw', () => {
  it('a handler that throws, or returns more than a frame can carry: that connection closes, counted; the server serves on', async () => {
    const config = loadConfig({ object: {} });
    const { catalog } = validateCatalog(JSON.parse(readFileSync(DEMO_CATALOG, 'utf8')));
    const zone = buildZone(catalog, { config, serialFor: () => 1 });
    const counters = new DnsCounters();
    // A real handler with two faults injected by query ID, to reach the TCP layer's own boundary.
    class FaultyHandler extends QueryHandler {
      override handle(msg: Buffer, tcp: boolean): Buffer | null {
        const id = msg.readUInt16BE(0);
        if (id === 0xdead) throw new Error('injected');
        if (id === 0xbeef) return Buffer.alloc(70_000);
        return super.handle(msg, tcp);
      }
    }
    const handler = new FaultyHandler({ store: { current: () => zone }, config, logger: silentLogger(), counters });
    const { tcp, port } = await startTcp({ handler, counters });
    try {
      for (const [n, id] of [[1, 0xdead], [2, 0xbeef]] as const) {
        const p = await peer(port);
        p.write(Buffer.concat([frame(query(id)), frame(query(1))]));
        expect(await until(() => p.closed, 5000)).toBe(true);
        expect(p.replies).toEqual([]);
        expect(counters.internalErrors).toBe(n);
        expect(counters.tcpHandlerErrors).toBe(n);
        expect(await freshClientServed(port, 90 + n)).toBe(true);
      }
      expect(await until(() => tcp.connections === 0, 5000)).toBe(true);
    } finally {
      tcp.destroy();
    }
  });

  it('connections reset at once by their peer (some before the server looks at them) leave no slot behind', async () => {
    const { tcp, port } = await startTcp({ maxConnections: 8 });
    try {
      for (let round = 0; round < 5; round++) {
        await Promise.all(Array.from({ length: 20 }, () => Peer.open(port).then((p) => { p.sock.resetAndDestroy(); }, () => {})));
      }
      expect(await until(() => tcp.connections === 0, 5000)).toBe(true);
      expect(await freshClientServed(port, 99)).toBe(true);
    } finally {
      tcp.destroy();
    }
  });
});
