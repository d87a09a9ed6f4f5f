/** UDP listener: one datagram in, at most one datagram out. */
import { createSocket, type Socket } from 'node:dgram';
import { isIP } from 'node:net';
import type { DnsCounters } from '../dns/counters.js';
import type { QueryHandler } from '../dns/handler.js';
import { CatalogDnsError } from '../errors.js';
import type { Logger } from '../log.js';

export class UdpServer {
  private socket: Socket | null = null;
  private readonly log: Logger;

  constructor(private readonly opts: { host: string; port: number; handler: QueryHandler; counters: DnsCounters; logger: Logger }) {
    this.log = opts.logger.child({ component: 'udp' });
  }

  async start(): Promise<number> {
    const { host, port, handler, counters } = this.opts;
    const family = isIP(host) === 6 ? 6 : 4;
    const socket = createSocket({
      type: family === 6 ? 'udp6' : 'udp4',
      recvBufferSize: 4 * 1024 * 1024,
      // Replies go to the sender's IP: skip dns.lookup's deferred callback (one tick per reply).
      // The socket's family is the sender's family, so the lookup is the identity.
      lookup: (address: string, _f: unknown, cb: (e: Error | null, a: string, f: number) => void) => cb(null, address, family),
    } as Parameters<typeof createSocket>[0]);
    this.socket = socket;
    socket.on('message', (msg, rinfo) => {
      const resp = handler.handle(msg, false);
      // No callback: libuv may then send at once without a completion request. A failed send is a
      // lost datagram, which the client retries like any other loss.
      if (resp) socket.send(resp, rinfo.port, rinfo.address);
    });
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

  close(): Promise<void> {
    const s = this.socket;
    this.socket = null;
    if (!s) return Promise.resolve();
    return new Promise((resolve) => s.close(() => resolve()));
  }
}
