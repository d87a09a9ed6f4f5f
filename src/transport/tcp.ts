/**
 * TCP listener (RFC 7766): 2-byte length framing, several queries pipelined on one connection and
 * answered in order, an idle timeout, a connection cap, and backpressure when the peer reads slowly.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { DnsCounters } from '../dns/counters.js';
import type { QueryHandler } from '../dns/handler.js';
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
}

export class TcpServer {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private readonly log: Logger;

  constructor(private readonly opts: TcpOptions) {
    this.log = opts.logger.child({ component: 'tcp' });
  }

  async start(): Promise<number> {
    const { host, port } = this.opts;
    const server = createServer({ noDelay: true }, (s) => this.onConnection(s));
    this.server = server;
    server.maxConnections = this.opts.maxConnections;
    server.on('drop', () => this.opts.counters.tcpRejected++);
    await new Promise<void>((resolve, reject) => {
      const fail = (e: Error) => reject(new CatalogDnsError('CDNS_ERR_BIND', `cannot bind TCP ${host}:${port}: ${e.message}`, { cause: e }));
      server.once('error', fail);
      server.listen({ host, port, exclusive: true }, () => {
        server.off('error', fail);
        resolve();
      });
    });
    server.on('error', (e) => this.log.error({ err: e }, 'tcp server error'));
    const addr = server.address();
    return typeof addr === 'object' && addr ? addr.port : port;
  }

  private onConnection(socket: Socket): void {
    const { handler, counters, idleTimeoutMs } = this.opts;
    counters.tcpConnections++;
    this.sockets.add(socket);
    socket.setTimeout(idleTimeoutMs, () => {
      counters.tcpIdleClosed++;
      socket.destroy();
    });
    let buf: Buffer = Buffer.alloc(0);
    let blocked = false;
    // Answers the complete frames in `buf`, in order. Stops while the peer is not reading our
    // replies (RFC 7766 backpressure): reading resumes, and the rest is answered, on 'drain'.
    const drainFrames = (): void => {
      while (!blocked && buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) break;
        const msg = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        if (len < 12) {
          // Not even a header: nothing to answer with, and the stream cannot be trusted after it.
          // Answers already written still go out (end, not destroy); nothing more is read.
          counters.dropped++;
          buf = Buffer.alloc(0);
          blocked = true;
          socket.removeAllListeners('data');
          socket.end();
          return;
        }
        const resp = handler.handle(msg, true);
        if (!resp) continue;
        const frame = Buffer.allocUnsafe(2 + resp.length);
        frame.writeUInt16BE(resp.length, 0);
        frame.set(resp, 2);
        if (!socket.write(frame)) {
          blocked = true;
          socket.pause();
          socket.once('drain', () => {
            blocked = false;
            socket.resume();
            drainFrames();
          });
        }
      }
      if (buf.length > 0 && buf.byteOffset > 0 && buf.length < 4096) buf = Buffer.from(buf); // release the old chunk
    };
    socket.on('data', (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      drainFrames();
    });
    socket.on('error', () => {}); // resets from peers are routine
    socket.on('close', () => this.sockets.delete(socket));
  }

  /** Stops accepting, lets open connections finish their current writes, then closes them. */
  close(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return Promise.resolve();
    for (const sock of this.sockets) sock.end();
    return new Promise((resolve) => {
      const t = setTimeout(() => this.destroy(), 2000);
      t.unref();
      s.close(() => { clearTimeout(t); resolve(); });
    });
  }

  destroy(): void {
    for (const sock of this.sockets) sock.destroy();
    this.sockets.clear();
    this.server?.close();
    this.server = null;
  }
}
