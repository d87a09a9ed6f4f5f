/**
 * UDP listener: one datagram in, at most one datagram out.
 *
 * Nothing a peer sends can end the process: a reply that cannot be sent (source port 0, a send
 * that throws, a reply over the size bound) is dropped and counted in `sendErrors`; the handler
 * never throws (see QueryHandler.handle). With response rate limiting on (README "Response rate
 * limiting"), the reply the handler returned, cached or not, is charged to the client's prefix
 * and sent, replaced by a minimal TC=1 reply, or dropped.
 *
 * The query log (query-log.ts), when on, wraps the one datagram listener in a second one that times
 * it and logs what was sent; off, that second listener is not installed, so it costs nothing.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIP } from 'node:net';
import type { DnsCounters } from '../dns/counters.js';
import { HELD, type QueryHandler } from '../dns/handler.js';
import type { QueryLog } from '../dns/query-log.js';
import { RRL_DROP, RRL_OK, RRL_SLIP, slipReply, type ResponseRateLimiter } from '../dns/rrl.js';
import { CatalogDnsError } from '../errors.js';
import type { Logger } from '../log.js';

/** The largest UDP payload over IPv4 (65535 - 20 - 8): the default reply bound. */
const MAX_UDP_PAYLOAD = 65507;
/** Queries held for the complete zone during a start (HELD): at most this many, and bytes. */
const MAX_HELD = 16384;
const MAX_HELD_BYTES = 4 * 1024 * 1024;

export interface UdpOptions {
  readonly host: string;
  readonly port: number;
  readonly handler: QueryHandler;
  readonly counters: DnsCounters;
  readonly logger: Logger;
  /**
   * Largest reply sent (the handler never builds a larger one: max_udp_size, at least 512); a
   * larger one is a bug, dropped and counted rather than sent as fragments. Default 65507.
   */
  readonly maxReplySize?: number;
  /** Response rate limiting; null or absent = off. */
  readonly rrl?: ResponseRateLimiter | null;
  /** One log line per query (query_log); null or absent = off. See setQueryLog. */
  readonly queryLog?: QueryLog | null;
}

type Serve = (msg: Buffer, rinfo: RemoteInfo) => Buffer | null;

export class UdpServer {
  private socket: Socket | null = null;
  private readonly log: Logger;
  private oversizeLogged = false;
  /** The datagram listener installed: `serve` itself, or `serve` wrapped by the query log. */
  private listener: ((msg: Buffer, rinfo: RemoteInfo) => unknown) | null = null;
  private serve: Serve | null = null;
  private queryLog: QueryLog | null;
  /** Datagrams held until the complete zone is built (see QueryHandler HELD), and their bytes. */
  private held: Array<[Buffer, RemoteInfo]> = [];
  private heldBytes = 0;

  constructor(private readonly opts: UdpOptions) {
    this.log = opts.logger.child({ component: 'udp' });
    this.queryLog = opts.queryLog ?? null;
  }

  /**
   * Turns the query log on (a QueryLog) or off (null), also while serving (SIGHUP): the datagram
   * listener is swapped, so the path without the log has no check for it.
   */
  setQueryLog(q: QueryLog | null): void {
    this.queryLog = q;
    const socket = this.socket, serve = this.serve;
    if (!socket || !serve) return;
    if (this.listener) socket.off('message', this.listener);
    this.listener = q === null ? serve : (msg: Buffer, rinfo: RemoteInfo) => {
      const t0 = performance.now();
      const sent = serve(msg, rinfo);
      if (sent !== HELD) q.line('udp', rinfo.address, rinfo.port, msg, sent, t0);
    };
    socket.on('message', this.listener);
  }

  async start(): Promise<number> {
    const { host, port, handler, counters } = this.opts;
    const maxReply = this.opts.maxReplySize ?? MAX_UDP_PAYLOAD;
    const rrl = this.opts.rrl ?? null;
    const log = this.log;
    const family = isIP(host) === 6 ? 6 : 4;
    const socket = createSocket({
      type: family === 6 ? 'udp6' : 'udp4',
      recvBufferSize: 4 * 1024 * 1024,
      // Replies go to the sender's IP: skip dns.lookup's deferred callback (one tick per reply).
      // The socket's family is the sender's family, so the lookup is the identity.
      lookup: (address: string, _f: unknown, cb: (e: Error | null, a: string, f: number) => void) => cb(null, address, family),
    } as Parameters<typeof createSocket>[0]);
    this.socket = socket;
    // The reply sent for one datagram, or null when none was (the query log's view of it).
    this.serve = (msg, rinfo) => {
      const rport = rinfo.port;
      // A datagram from port 0 (legal on the wire, RFC 768) cannot be answered: socket.send
      // throws ERR_SOCKET_BAD_PORT for it. Not worth answering either.
      if (!(rport > 0 && rport <= 65535)) {
        counters.sendErrors++;
        return null;
      }
      let resp = handler.handle(msg, false);
      if (resp === null) return null;
      if (resp === HELD) {
        this.hold(msg, rinfo);
        return HELD;
      }
      if (rrl !== null) {
        const v = rrl.check(resp, rinfo.address);
        if (v !== RRL_OK) {
          if (v === RRL_DROP) {
            counters.rrlDropped++;
            return null;
          }
          if (v === RRL_SLIP) {
            counters.rrlSlipped++;
            resp = slipReply(resp);
          }
        }
      }
      if (resp.length > maxReply) {
        counters.sendErrors++;
        // A bug, not a peer's doing: said once, counted always.
        if (!this.oversizeLogged) log.error({ bytes: resp.length, max: maxReply }, 'udp reply over the size bound; dropped (logged once)');
        this.oversizeLogged = true;
        return null;
      }
      try {
        // No callback: libuv may then send at once without a completion request. A failed send is a
        // lost datagram, which the client retries like any other loss. Only argument and state
        // checks throw synchronously (a closed socket, a bad port or address): counted, dropped.
        socket.send(resp, rport, rinfo.address);
        return resp;
      } catch (e) {
        counters.sendErrors++;
        if (log.isLevelEnabled('debug')) log.debug({ err: e }, 'udp reply not sent');
        return null;
      }
    };
    this.setQueryLog(this.queryLog);
    await new Promise<void>((resolve, reject) => {
      const fail = (e: Error) => reject(new CatalogDnsError('CDNS_ERR_BIND', `cannot bind UDP ${host}:${port}: ${e.message}`, { cause: e }));
      socket.once('error', fail);
      socket.bind(port, host, () => {
        socket.off('error', fail);
        resolve();
      });
    });
    socket.on('error', (e) => this.log.error({ err: e }, 'udp socket error'));
    return socket.address().port;
  }

  /**
   * Keeps a query that only the complete zone can answer (a start) and hands it in again once the
   * zone is built, through the listener installed then. Past the bounds it is dropped and counted.
   */
  private hold(msg: Buffer, rinfo: RemoteInfo): void {
    if (this.held.length >= MAX_HELD || this.heldBytes + msg.length > MAX_HELD_BYTES) {
      this.opts.counters.dropped++;
      return;
    }
    this.held.push([msg, rinfo]);
    this.heldBytes += msg.length;
    if (this.held.length === 1) void this.opts.handler.whenBuilt().then(() => this.release());
  }

  private release(): void {
    const held = this.held;
    this.held = [];
    this.heldBytes = 0;
    const listener = this.listener;
    if (!this.socket || !listener) return;
    for (const [msg, rinfo] of held) listener(msg, rinfo);
  }

  close(): Promise<void> {
    this.held = [];
    this.heldBytes = 0;
    const s = this.socket;
    this.socket = null;
    if (!s) return Promise.resolve();
    return new Promise((resolve) => s.close(() => resolve()));
  }
}
