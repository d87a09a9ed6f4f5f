/**
 * A small client for the Consul HTTP API reads a catalog follower makes: GETs with Consul's blocking
 * query parameters (`index`, `wait`, `stale`, `dc`), the token in `X-Consul-Token` (never in a URL,
 * never logged), failover across several addresses, timeouts that fit a blocking query, and errors
 * with a stable `code` a caller can branch on.
 */
import { Agent, type Dispatcher } from 'undici';
import { CatalogDnsError, type ErrorCode } from '../errors.js';

/**
 * UNAVAILABLE: refused, reset, TLS (the address cannot be reached); TIMEOUT: no answer in time (a
 * hung agent); HTTP: 5xx and other statuses (500 "No cluster leader"); RATE_LIMITED: 429; ACL: 403
 * (unknown token, permission denied); BAD_RESPONSE: a body that is not JSON, or cut off.
 */
export type ConsulErrorCode = Extract<ErrorCode, `CDNS_ERR_CONSUL_${string}`>;

export class ConsulError extends CatalogDnsError {
  declare readonly code: ConsulErrorCode;
  readonly status: number;
  readonly address: string;
  constructor(code: ConsulErrorCode, address: string, message: string, status = 0, options?: { cause?: unknown }) {
    super(code, message, options);
    this.status = status;
    this.address = address;
    this.name = 'ConsulError';
  }
}

export interface ConsulTls {
  readonly ca?: string | Buffer;
  readonly cert?: string | Buffer;
  readonly key?: string | Buffer;
  readonly servername?: string;
}

export interface ConsulClientOptions {
  /** Base URLs (`http://127.0.0.1:8500`, `https://consul.example:8501`), tried in order, failing over. */
  readonly addresses: readonly string[];
  readonly token?: string | null;
  readonly tls?: ConsulTls;
  /** Timeout of a non-blocking request (default 10 s). */
  readonly timeoutMs?: number;
}

export interface QueryOptions {
  readonly dc?: string;
  /** Blocking query: the index to wait past (omitted or 0: no blocking). */
  readonly index?: number;
  /** Blocking wait in ms (Consul caps it at 10 min and adds up to wait/16 of jitter). */
  readonly waitMs?: number;
  readonly stale?: boolean;
  readonly signal?: AbortSignal;
}

export interface ConsulResponse<T> {
  readonly body: T;
  /** X-Consul-Index (0 when absent). */
  readonly index: number;
  readonly knownLeader: boolean | null;
  /** X-Consul-LastContact in ms, or null. */
  readonly lastContact: number | null;
  /** X-Consul-Results-Filtered-By-ACLs: the token could not read everything. */
  readonly filteredByAcls: boolean;
  readonly bytes: number;
  readonly address: string;
}

/** Consul accepts Go durations: `wait=300000ms`. */
const goDuration = (ms: number) => `${Math.max(1, Math.round(ms))}ms`;

export class ConsulClient {
  private readonly addresses: readonly URL[];
  private readonly dispatcher: Agent;
  private readonly token: string | null;
  private readonly timeoutMs: number;
  /** The address requests go to; moves on to the next one on a failure that says "this address". */
  private current = 0;
  requests = 0;
  bytesReceived = 0;
  errors = 0;
  /** Called on every successful response (liveness: a blocking query that times out is contact too). */
  onSuccess: (() => void) | null = null;

  constructor(opts: ConsulClientOptions) {
    if (opts.addresses.length === 0) throw new CatalogDnsError('CDNS_ERR_CONFIG', 'consul: no address given');
    this.addresses = opts.addresses.map((a) => new URL(a));
    this.token = opts.token ?? null;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.dispatcher = new Agent({
      // Each parked blocking query holds a connection: no per-origin cap here; callers cap watches.
      connections: null,
      pipelining: 1,
      keepAliveTimeout: 60_000,
      connect: opts.tls ? { ca: opts.tls.ca, cert: opts.tls.cert, key: opts.tls.key, servername: opts.tls.servername } : {},
    });
  }

  /** The address in use. */
  get address(): string {
    return this.addresses[this.current]!.origin;
  }

  async get<T>(path: string, q: QueryOptions = {}): Promise<ConsulResponse<T>> {
    const base = this.addresses[this.current]!;
    const at = this.current;
    const url = new URL(path, base);
    if (q.dc) url.searchParams.set('dc', q.dc);
    if (q.stale) url.searchParams.set('stale', '');
    const blocking = q.index !== undefined && q.index > 0;
    if (blocking) {
      url.searchParams.set('index', String(q.index));
      url.searchParams.set('wait', goDuration(q.waitMs ?? 300_000));
    }
    // A blocking query may take wait + wait/16 (Consul's jitter); allow a margin on top.
    const timeout = blocking ? (q.waitMs ?? 300_000) * (17 / 16) + this.timeoutMs : this.timeoutMs;
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.token) headers['x-consul-token'] = this.token;
    this.requests++;
    let res: Dispatcher.ResponseData;
    try {
      res = await this.dispatcher.request({
        origin: url.origin, path: `${url.pathname}${url.search}`, method: 'GET', headers,
        headersTimeout: timeout, bodyTimeout: timeout, ...(q.signal ? { signal: q.signal } : {}),
      });
    } catch (e) {
      this.errors++;
      const code = (e as { code?: string }).code ?? '';
      const timedOut = code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT';
      if ((e as Error).name !== 'AbortError') this.failover(at);
      throw new ConsulError(timedOut ? 'CDNS_ERR_CONSUL_TIMEOUT' : 'CDNS_ERR_CONSUL_UNAVAILABLE', base.origin,
        `${base.origin}${url.pathname}: ${(e as Error).message}${code ? ` (${code})` : ''}`, 0, { cause: e });
    }
    let text: string;
    try {
      text = await res.body.text();
    } catch (e) {
      this.errors++;
      this.failover(at);
      throw new ConsulError('CDNS_ERR_CONSUL_BAD_RESPONSE', base.origin, `${base.origin}${url.pathname}: body cut off (${(e as Error).message})`, res.statusCode, { cause: e });
    }
    this.bytesReceived += Buffer.byteLength(text);
    if (res.statusCode !== 200) {
      this.errors++;
      const msg = `${base.origin}${url.pathname}: HTTP ${res.statusCode} ${text.trim().slice(0, 200)}`;
      if (res.statusCode === 403) throw new ConsulError('CDNS_ERR_CONSUL_ACL', base.origin, msg, 403);
      if (res.statusCode === 429) { this.failover(at); throw new ConsulError('CDNS_ERR_CONSUL_RATE_LIMITED', base.origin, msg, 429); }
      if (res.statusCode >= 500) this.failover(at);
      throw new ConsulError('CDNS_ERR_CONSUL_HTTP', base.origin, msg, res.statusCode);
    }
    let body: T;
    try {
      body = JSON.parse(text) as T;
    } catch (e) {
      this.errors++;
      throw new ConsulError('CDNS_ERR_CONSUL_BAD_RESPONSE', base.origin, `${base.origin}${url.pathname}: not JSON (${(e as Error).message})`, 200, { cause: e });
    }
    this.onSuccess?.();
    const h = (n: string) => { const v = res.headers[n]; return Array.isArray(v) ? v[0] : v; };
    const index = Number(h('x-consul-index') ?? 0);
    const leader = h('x-consul-knownleader');
    const contact = h('x-consul-lastcontact');
    return {
      body, index: Number.isFinite(index) && index > 0 ? index : 0,
      knownLeader: leader === undefined ? null : leader === 'true',
      lastContact: contact === undefined ? null : Number(contact),
      filteredByAcls: h('x-consul-results-filtered-by-acls') === 'true',
      bytes: Buffer.byteLength(text), address: base.origin,
    };
  }

  private failover(failedAt: number): void {
    // Only the first failure at an address moves on (concurrent requests fail together).
    if (this.addresses.length > 1 && this.current === failedAt) this.current = (this.current + 1) % this.addresses.length;
  }

  /** Ends every request now (parked blocking queries included). */
  async destroy(): Promise<void> {
    await this.dispatcher.destroy();
  }
}
