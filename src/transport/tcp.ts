/**
 * TCP listener (RFC 7766): 2-byte length framing, several queries pipelined on one connection and
 * answered in order, backpressure when the peer reads slowly, and slot management against clients
 * that hold connections without using them (slowloris):
 *
 * - every open connection is in exactly one state, kept in one insertion-ordered queue per state,
 *   oldest first:
 *     new      accepted, nothing received yet;
 *     idle     answered, no partial query and no reply waiting (RFC 7766 6.2.3's "idle");
 *     reading  part of a query frame has arrived, the rest has not;
 *     writing  a reply is waiting for the peer to read (the socket is paused meanwhile);
 * - deadlines, checked by one sweep timer (no timer per connection or per query): a new or idle
 *   connection is closed `idleTimeoutMs` after it became so; a frame must arrive whole within
 *   `frameTimeoutMs` of its first byte (so dribbling bytes does not keep a slot, as it did when
 *   every byte reset the idle timer); a pending reply must be taken within `idleTimeoutMs`;
 * - at most `maxConnectionsPerClient` connections per client address (RFC 7766 6.2.2 allows
 *   servers such limits, and asks that they be loose: one address may be a NAT or many resolvers);
 * - at `maxConnections`, a new connection takes the slot of an idle one, the longest-idle first;
 *   with none idle, of the one stalled longest mid-frame or mid-reply; failing that, of the address
 *   holding the most (see evictOne). Only when none of these applies is the newcomer refused. The
 *   cap is enforced here, not by server.maxConnections (which only drops newcomers).
 *
 * Nothing a peer sends can throw out of these handlers: the query handler is called behind a
 * boundary (a throw is logged, counted and closes that connection), and every socket has an
 * 'error' listener before anything else is done with it.
 *
 * The query log (query-log.ts), when on, logs each frame answered or dropped; off, it costs one
 * null check per frame.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { DnsCounters } from '../dns/counters.js';
import { HELD, type QueryHandler } from '../dns/handler.js';
import type { QueryLog } from '../dns/query-log.js';
import { CatalogDnsError } from '../errors.js';
import type { Logger } from '../log.js';

export interface TcpOptions {
  readonly host: string;
  readonly port: number;
  readonly handler: QueryHandler;
  readonly counters: DnsCounters;
  readonly logger: Logger;
  readonly idleTimeoutMs: number;
  readonly maxConnections: number;
  /** A query frame must be whole this long after its first byte arrived. */
  readonly frameTimeoutMs: number;
  /** Concurrent connections from one client address; 0 = no limit. */
  readonly maxConnectionsPerClient: number;
  /** Monotonic milliseconds (default performance.now). */
  readonly clock?: () => number;
  /** Default STALL_GRACE_MS; tests lengthen it to make "every slot busy" hold for as long as they need. */
  readonly stallGraceMs?: number;
  /** One log line per query (query_log); null or absent = off. See setQueryLog. */
  readonly queryLog?: QueryLog | null;
}

/**
 * At the cap, a new connection silent this long, or one stalled this long mid-frame or mid-reply,
 * may be closed to admit another. A real client sends its query right after connecting, in one
 * segment, and reads its reply at once, so it is busy for a round trip or two; a slot silent or busy
 * for a second under pressure is more likely held than used.
 */
export const STALL_GRACE_MS = 1000;
/** The largest DNS message a 2-byte length can frame. */
const MAX_FRAME = 65535;
/** A pressure episode (evictions or refusals) is reported over after this long without one. */
const PRESSURE_QUIET_MS = 10_000;

const NEW = 0, IDLE = 1, READING = 2, WRITING = 3, CLOSED = 4;
type State = typeof NEW | typeof IDLE | typeof READING | typeof WRITING | typeof CLOSED;
type OpenState = Exclude<State, typeof CLOSED>;

const EMPTY = Buffer.alloc(0);
const ignore = (): void => {};

class Connection {
  state: State = NEW;
  /** When the connection entered its state: accepted, idle since, frame's first byte, reply blocked since. */
  since: number;
  /** Bytes read and not yet answered: complete frames while writing, else part of one frame. */
  buf: Buffer = EMPTY;
  /** Closing gracefully (a frame shorter than a header, or the server stopping): nothing more is read. */
  ending = false;
  constructor(readonly socket: Socket, readonly client: string, now: number) {
    this.since = now;
  }
}

export class TcpServer {
  private server: Server | null = null;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly grace: number;
  /** One queue per state, oldest first (Sets iterate in insertion order). */
  private readonly fresh = new Set<Connection>();
  private readonly idle = new Set<Connection>();
  private readonly reading = new Set<Connection>();
  private readonly writing = new Set<Connection>();
  /** Open connections per client address, oldest admitted first. */
  private readonly perClient = new Map<string, Set<Connection>>();
  private open = 0;
  private sweepTimer: NodeJS.Timeout | null = null;
  private pressureSince: number | null = null;
  private lastPressure = 0;
  private queryLog: QueryLog | null;

  constructor(private readonly opts: TcpOptions) {
    this.log = opts.logger.child({ component: 'tcp' });
    this.now = opts.clock ?? (() => performance.now());
    this.grace = opts.stallGraceMs ?? STALL_GRACE_MS;
    this.queryLog = opts.queryLog ?? null;
  }

  /** Turns the query log on (a QueryLog) or off (null), also while serving (SIGHUP). */
  setQueryLog(q: QueryLog | null): void {
    this.queryLog = q;
  }

  /** Open connections (for tests and metrics). */
  get connections(): number {
    return this.open;
  }

  async start(): Promise<number> {
    const { host, port } = this.opts;
    const server = createServer({ noDelay: true }, (s) => this.onConnection(s));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      const fail = (e: Error) => reject(new CatalogDnsError('CDNS_ERR_BIND', `cannot bind TCP ${host}:${port}: ${e.message}`, { cause: e }));
      server.once('error', fail);
      server.listen({ host, port, exclusive: true }, () => {
        server.off('error', fail);
        resolve();
      });
    });
    server.on('error', (e) => this.log.error({ err: e }, 'tcp server error'));
    // Deadlines are checked a few times per shortest timeout: a connection lives at most a quarter
    // of it (and no more than a second) past its deadline.
    const tick = Math.max(50, Math.min(1000, Math.floor(Math.min(this.opts.idleTimeoutMs, this.opts.frameTimeoutMs) / 4)));
    this.sweepTimer = setInterval(() => this.sweep(), tick);
    this.sweepTimer.unref();
    const addr = server.address();
    return typeof addr === 'object' && addr ? addr.port : port;
  }

  private onConnection(socket: Socket): void {
    socket.on('error', ignore); // resets from peers are routine; registered before anything can fail
    const { counters } = this.opts;
    const client = socket.remoteAddress;
    if (client === undefined) {
      // The peer is already gone (reset before we got to it): nothing to serve.
      socket.destroy();
      return;
    }
    const now = this.now();
    const perClientMax = this.opts.maxConnectionsPerClient;
    const held = this.perClient.get(client)?.size ?? 0;
    if (perClientMax > 0 && held >= perClientMax) {
      counters.tcpRejectedPerClient++;
      this.pressure(now);
      socket.destroy();
      return;
    }
    if (this.open >= this.opts.maxConnections && !this.evictOne(now, held)) {
      counters.tcpRejected++;
      this.pressure(now);
      socket.destroy();
      return;
    }
    counters.tcpConnections++;
    const c = new Connection(socket, client, now);
    this.open++;
    let mine = this.perClient.get(client);
    if (!mine) this.perClient.set(client, mine = new Set());
    mine.add(c);
    this.fresh.add(c);
    socket.on('data', (chunk: Buffer) => this.onData(c, chunk));
    socket.on('drain', () => this.onDrain(c));
    socket.on('close', () => this.forget(c));
  }

  private onData(c: Connection, chunk: Buffer): void {
    if (c.state === CLOSED || c.ending) return;
    c.buf = c.buf.length === 0 ? chunk : Buffer.concat([c.buf, chunk]);
    // Writing: the socket is paused; whatever was read before the pause waits for 'drain'.
    if (c.state !== WRITING) this.serve(c);
  }

  private onDrain(c: Connection): void {
    if (c.state !== WRITING || c.ending) return;
    c.socket.resume();
    this.serve(c);
  }

  /**
   * Answers the complete frames in `c.buf`, in order, then files the connection as idle, reading
   * or writing. Stops at the first reply the socket cannot take at once (RFC 7766 backpressure):
   * the socket is paused, and the rest is answered on 'drain'.
   */
  private serve(c: Connection): void {
    const { handler, counters } = this.opts;
    const socket = c.socket;
    let buf = c.buf;
    let frames = 0;
    while (buf.length >= 2) {
      const len = buf.readUInt16BE(0);
      if (buf.length < 2 + len) break;
      const whole = buf;
      const msg = buf.subarray(2, 2 + len);
      buf = buf.subarray(2 + len);
      frames++;
      if (len < 12) {
        // Not even a header: nothing to answer with, and the stream cannot be trusted after it.
        counters.dropped++;
        if (this.queryLog !== null) this.queryLog.line('tcp', c.client, socket.remotePort, msg, null, performance.now());
        this.end(c);
        return;
      }
      let resp: Buffer | null;
      try {
        // query_log: the one check it costs per frame when off.
        resp = this.queryLog === null ? handler.handle(msg, true) : this.handleLogged(this.queryLog, c, msg);
      } catch (e) {
        // The handler turns its own failures into SERVFAIL; a throw here is a bug. This connection
        // goes (the stream's state is unknown), the server stays.
        counters.internalErrors++;
        counters.tcpHandlerErrors++;
        this.log.error({ err: e }, 'internal error serving a TCP query');
        this.kill(c);
        return;
      }
      if (!resp) continue;
      if (resp === HELD) {
        // Only the complete zone can answer it (a start): wait for it as for a blocked write, this
        // frame and the rest kept, in order. The handler hands nothing back until then.
        c.buf = whole;
        socket.pause();
        this.enter(c, WRITING, this.now());
        void handler.whenBuilt().then(() => this.onDrain(c));
        return;
      }
      if (resp.length > MAX_FRAME) {
        // Cannot be framed (the handler caps TCP replies at 65535 bytes, so this is a bug too).
        counters.internalErrors++;
        counters.tcpHandlerErrors++;
        this.log.error({ bytes: resp.length }, 'TCP reply larger than 65535 bytes');
        this.kill(c);
        return;
      }
      const frame = Buffer.allocUnsafe(2 + resp.length);
      frame.writeUInt16BE(resp.length, 0);
      frame.set(resp, 2);
      if (!socket.write(frame)) {
        c.buf = buf;
        socket.pause();
        this.enter(c, WRITING, this.now());
        return;
      }
    }
    // Keep a small remainder in its own buffer, so the chunk it came in can be released.
    c.buf = buf.length === 0 ? EMPTY : buf.byteOffset > 0 && buf.length < 4096 ? Buffer.from(buf) : buf;
    if (buf.length === 0) this.enter(c, IDLE, this.now());
    // A new frame started (after answered ones, or on a new, idle or unblocked connection): its
    // clock starts now. The same partial frame keeps the time of its first byte.
    else if (frames > 0 || c.state !== READING) this.enter(c, READING, this.now());
  }

  /** handler.handle, timed and logged (query_log on). */
  private handleLogged(q: QueryLog, c: Connection, msg: Buffer): Buffer | null {
    const t0 = performance.now();
    const resp = this.opts.handler.handle(msg, true);
    if (resp !== HELD) q.line('tcp', c.client, c.socket.remotePort, msg, resp, t0);
    return resp;
  }

  /** Moves `c` to the end of the queue for `state`. */
  private enter(c: Connection, state: Exclude<OpenState, typeof NEW>, now: number): void {
    this.queue(c.state)?.delete(c);
    c.state = state;
    c.since = now;
    this.queue(state)!.add(c);
  }

  private queue(state: State): Set<Connection> | null {
    return state === NEW ? this.fresh : state === IDLE ? this.idle : state === READING ? this.reading : state === WRITING ? this.writing : null;
  }

  /** Answers already written go out (end, not destroy); nothing more is read. Bounded like a pending reply. */
  private end(c: Connection): void {
    c.ending = true;
    c.buf = EMPTY;
    this.enter(c, WRITING, this.now());
    c.socket.end(() => c.socket.destroy());
  }

  /** Closes now and frees the slot at once. */
  private kill(c: Connection): void {
    this.forget(c);
    c.socket.destroy();
  }

  /** Frees the slot of a connection that is closed or closing; idempotent. */
  private forget(c: Connection): void {
    if (c.state === CLOSED) return;
    this.queue(c.state)!.delete(c);
    c.state = CLOSED;
    c.buf = EMPTY;
    this.open--;
    const mine = this.perClient.get(c.client);
    if (mine && mine.delete(c) && mine.size === 0) this.perClient.delete(c.client);
  }

  /**
   * At the cap, makes room for a client that holds `held` connections, closing (first that applies):
   * - the longest-idle connection: idle after an answer (any age), or new and silent for
   *   STALL_GRACE_MS (a just-accepted connection gets that long to ask before it may go);
   * - the connection stalled longest in reading or writing, if for STALL_GRACE_MS;
   * - the oldest connection of the address holding the most, if that is at least two more than
   *   the newcomer's address holds (a fair share: one address's busy connections cannot lock out
   *   the others).
   * False: none may go.
   */
  private evictOne(now: number, held: number): boolean {
    const { counters } = this.opts;
    this.pressure(now);
    const idle = older(first(this.idle), this.aged(first(this.fresh), now));
    if (idle) {
      counters.tcpEvictedIdle++;
      this.kill(idle);
      return true;
    }
    const stalled = this.aged(older(first(this.reading), first(this.writing)), now);
    if (stalled) {
      counters.tcpEvictedStalled++;
      this.kill(stalled);
      return true;
    }
    let busiest: Set<Connection> | undefined;
    for (const conns of this.perClient.values()) if (!busiest || conns.size > busiest.size) busiest = conns;
    if (busiest && busiest.size >= held + 2) {
      counters.tcpEvictedFairShare++;
      this.kill(first(busiest)!);
      return true;
    }
    return false;
  }

  /** `c` if it has been in its state for the stall grace period. */
  private aged(c: Connection | undefined, now: number): Connection | undefined {
    return c && now - c.since >= this.grace ? c : undefined;
  }

  /** Closes the connections past their deadline; each queue is oldest first, so each scan stops at the first one in time. */
  private sweep(): void {
    const { counters, idleTimeoutMs, frameTimeoutMs } = this.opts;
    const now = this.now();
    for (const c of this.fresh) {
      if (now - c.since < idleTimeoutMs) break;
      counters.tcpIdleClosed++;
      this.kill(c);
    }
    for (const c of this.idle) {
      if (now - c.since < idleTimeoutMs) break;
      counters.tcpIdleClosed++;
      this.kill(c);
    }
    for (const c of this.reading) {
      if (now - c.since < frameTimeoutMs) break;
      counters.tcpFrameTimeouts++;
      this.kill(c);
    }
    for (const c of this.writing) {
      if (now - c.since < idleTimeoutMs) break;
      counters.tcpWriteTimeouts++;
      this.kill(c);
    }
    if (this.pressureSince !== null && now - this.lastPressure >= PRESSURE_QUIET_MS) {
      this.log.info({ open: this.open, seconds: Math.round((this.lastPressure - this.pressureSince) / 1000), ...this.pressureCounts() }, 'tcp connection pressure over');
      this.pressureSince = null;
    }
  }

  /** Logs the start of a pressure episode (a state transition, not every eviction or refusal). */
  private pressure(now: number): void {
    this.lastPressure = now;
    if (this.pressureSince !== null) return;
    this.pressureSince = now;
    this.log.warn({ open: this.open, max: this.opts.maxConnections, ...this.pressureCounts() },
      'tcp connection limit reached');
  }

  private pressureCounts(): Record<string, number> {
    const c = this.opts.counters;
    return { evictedIdle: c.tcpEvictedIdle, evictedStalled: c.tcpEvictedStalled, evictedFairShare: c.tcpEvictedFairShare, rejected: c.tcpRejected, rejectedPerClient: c.tcpRejectedPerClient };
  }

  private *all(): Iterable<Connection> {
    yield* this.fresh;
    yield* this.idle;
    yield* this.reading;
    yield* this.writing;
  }

  /** Stops accepting, lets open connections finish their current writes, then closes them. */
  close(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return Promise.resolve();
    for (const c of this.all()) {
      c.ending = true;
      c.socket.end();
    }
    return new Promise((resolve) => {
      const t = setTimeout(() => this.destroy(), 2000);
      t.unref();
      s.close(() => {
        clearTimeout(t);
        this.stopSweep();
        resolve();
      });
    });
  }

  destroy(): void {
    for (const c of [...this.all()]) this.kill(c);
    this.stopSweep();
    this.server?.close();
    this.server = null;
  }

  private stopSweep(): void {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
  }
}

function first<T>(set: Set<T>): T | undefined {
  for (const c of set) return c;
  return undefined;
}

/** The one of `a` and `b` in its state since longer. */
function older(a: Connection | undefined, b: Connection | undefined): Connection | undefined {
  return a && (!b || a.since <= b.since) ? a : b;
}
