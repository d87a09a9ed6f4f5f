/**
 * The HTTP endpoint for operators: `GET /healthcheck` (200 while answers are served, 503 before the
 * first zone or while max_stale withholds it) and `GET /metrics` (Prometheus text). Nothing else.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { CatalogSource } from '../catalog/source.js';
import { CatalogDnsError } from '../errors.js';
import type { Logger } from '../log.js';
import type { ZoneStore } from '../zone/store.js';
import type { Metrics } from './metrics.js';

export interface HealthSources {
  readonly store: ZoneStore;
  readonly source: CatalogSource;
  readonly metrics: Metrics;
  readonly logger: Logger;
}

interface ConsulState {
  readonly reachable: boolean | null;
  readonly lastContact: number | null;
  readonly degraded: boolean;
  datacenters(): ReadonlyMap<string, { readonly status: string; readonly lastFresh: number | null; readonly live: boolean; readonly services: number;
    readonly watched: number; readonly swept: number; readonly lastError: string | null }>;
}

/** The health document: what an operator (or a container's HEALTHCHECK) needs at a glance. */
export function health(s: HealthSources): { code: number; body: Record<string, unknown> } {
  const store = s.store;
  const zone = store.current();
  const consul = s.source.name === 'consul' ? (s.source as unknown as ConsulState) : null;
  const now = Date.now();
  // Stale: Consul unreachable, a datacenter not read or not answering (its watches failing, not only
  // the probe), or answering without a current leader; the last good zone answers.
  const status = store.withheld ? 'withheld' : !zone ? 'starting' : consul && consul.degraded ? 'stale' : 'ok';
  return {
    code: status === 'ok' || status === 'stale' ? 200 : 503,
    body: {
      status,
      serial: zone?.serial ?? null,
      records: zone?.stats.records ?? null,
      source: s.source.name,
      lastCommitSecondsAgo: store.lastSuccess === null ? null : (now - store.lastSuccess) / 1000,
      ...(consul ? {
        consul: {
          reachable: consul.reachable, lastContactSecondsAgo: consul.lastContact === null ? null : (now - consul.lastContact) / 1000,
          datacenters: Object.fromEntries([...consul.datacenters()].map(([dc, d]) => [dc, {
            status: d.status, live: d.live, lastFreshSecondsAgo: d.lastFresh === null ? null : (now - d.lastFresh) / 1000,
            services: d.services, watched: d.watched, swept: d.swept, lastError: d.lastError,
          }])),
        },
      } : {}),
      lastError: store.lastError ? { message: store.lastError.message, secondsAgo: (now - store.lastError.at) / 1000 } : null,
    },
  };
}

export class HttpServer {
  private server: Server | null = null;

  constructor(private readonly s: HealthSources, private readonly host: string, private readonly port: number) {}

  async start(): Promise<number> {
    const server = createServer((req, res) => { void this.route(req, res); });
    server.keepAliveTimeout = 5000;
    server.headersTimeout = 10_000;
    server.requestTimeout = 10_000;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      const fail = (e: Error) => reject(new CatalogDnsError('CDNS_ERR_BIND', `cannot bind HTTP ${this.host}:${this.port}: ${e.message}`, { cause: e }));
      server.once('error', fail);
      server.listen({ host: this.host, port: this.port }, () => { server.off('error', fail); resolve(); });
    });
    server.on('error', (e) => this.s.logger.error({ err: e }, 'http server error'));
    const a = server.address();
    return typeof a === 'object' && a ? a.port : this.port;
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    try {
      if (path === '/healthcheck') {
        const h = health(this.s);
        res.writeHead(h.code, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(`${JSON.stringify(h.body)}\n`);
      } else if (path === '/metrics') {
        const text = await this.s.metrics.registry.metrics();
        res.writeHead(200, { 'content-type': this.s.metrics.registry.contentType }).end(text);
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /healthcheck or /metrics\n');
      }
    } catch (e) {
      this.s.logger.error({ err: e }, 'http request failed');
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('internal error\n');
    }
  }

  close(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return Promise.resolve();
    s.closeAllConnections();
    return new Promise((resolve) => s.close(() => resolve()));
  }
}
