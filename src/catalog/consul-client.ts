/**
 * A small client for the Consul HTTP API reads a catalog follower makes: GETs with Consul's blocking
 * query parameters (`index`, `wait`, `stale`, `dc`), the token in `X-Consul-Token` (never in a URL,
 * never logged), failover across several addresses, timeouts that fit a blocking query, and errors
 * with a stable `code` a caller can branch on.
 */
import { createRequire } from 'node:module';
import type { Agent, Client, Dispatcher } from 'undici';
import { CatalogDnsError, type ErrorCode } from '../errors.js';

/**
 * undici, loaded when the first Consul client is made, not at start: a server that reads a catalog
 * file never loads it (about 0.2 s of a start).
 */
let undiciModule: typeof import('undici') | null = null;
const undici = (): typeof import('undici') => (undiciModule ??= createRequire(import.meta.url)('undici') as typeof import('undici'));

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
  /**
   * Connections shared by the non-blocking requests (first reads, re-reads after an index reset,
   * the liveness probe); more requests than that wait their turn (default 32).
   */
  readonly connections?: number;
}

export interface QueryOptions {
  readonly dc?: string;
  /** Blocking query: the index to wait past (omitted or 0: no blocking). */
  readonly index?: number;
  /** Blocking wait in ms (Consul caps it at 10 min and adds up to wait/16 of jitter). */
  readonly waitMs?: number;
  readonly stale?: boolean;
  readonly signal?: AbortSignal;
  /** The connection a blocking query waits on (its watch's own); a non-blocking read ignores it. */
  readonly lane?: ConsulLane;
  /**
   * The previous response's bytes and body: a body byte-for-byte equal to it is not parsed again,
   * and the response says `same`. (A blocking query on a list returns whenever its index moves, and
   * at 10,000 services most of those wakes bring the same 400 KB.)
   */
  readonly previous?: { readonly raw: Buffer; readonly body: unknown };
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
  /** The body's bytes as received. */
  readonly raw: Buffer;
  /** The body is byte-for-byte the `previous` one given in the query (and `body` is that body). */
  readonly same: boolean;
}

/**
 * The one error every request ended by us carries (a stopped watch, a closed client). One object,
 * made once: a stop ends thousands of parked requests, and an error (with its stack) per request
 * was most of the stop's time.
 */
export const STOPPED: Error = Object.assign(new Error('request ended: stopped'), { name: 'AbortError', code: 'UND_ERR_ABORTED' });

/** The response failed after its status line (reset, timeout, abort while reading the body). */
class BodyCutOff extends Error {
  constructor(readonly status: number, readonly error: Error) {
    super(error.message, { cause: error });
  }
}

interface Reply {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
}

/**
 * One request, its whole body collected: undici's `dispatch` with a handler of our own. (Its
 * `request()` wraps every response in a stream, an abort signal and several promises: at 10,000
 * reads that cost more CPU than the reads' JSON.) Rejects with undici's error, wrapped in a
 * BodyCutOff after the status line; an abort rejects with an AbortError.
 */
function exchange(dispatcher: Dispatcher, opts: Dispatcher.DispatchOptions, signal?: AbortSignal): Promise<Reply> {
  return new Promise<Reply>((resolve, reject) => {
    if (signal?.aborted) { reject(STOPPED); return; }
    let controller: Dispatcher.DispatchController | null = null;
    let settled = false;
    let status = 0;
    let headers: Record<string, string | string[] | undefined> = {};
    const chunks: Buffer[] = [];
    let size = 0;
    const settle = (e: Error | null): void => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      if (e) reject(status ? new BodyCutOff(status, e) : e);
      else resolve({ status, headers, body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size) });
    };
    const onAbort = (): void => {
      // Still queued (no controller yet): it is aborted as soon as it starts.
      controller?.abort(STOPPED);
      status = 0;
      settle(STOPPED);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      dispatcher.dispatch(opts, {
        onRequestStart(c) { controller = c; if (settled) c.abort(STOPPED); },
        onResponseStart(_c, code, h) { if (code >= 200) { status = code; headers = h; } },
        onResponseData(_c, chunk) { chunks.push(chunk); size += chunk.length; },
        onResponseEnd() { settle(null); },
        onResponseError(_c, e) { settle(e); },
      });
    } catch (e) {
      settle(e as Error);
    }
  });
}

/** Consul accepts Go durations: `wait=300000ms`. */
const goDuration = (ms: number) => `${Math.max(1, Math.round(ms))}ms`;

/**
 * The connection of one blocking-query loop. A parked blocking query holds its connection for up to
 * the wait, so every watch has its own: an undici Client (one socket, no pipelining) per lane, made
 * when the first blocking query goes out and replaced when the client fails over to another address.
 * (One shared pool would do too, but undici's Pool looks for a free connection by walking all of its
 * connections on every request: with 10,000 parked queries that walk was most of the start's CPU.)
 */
export class ConsulLane {
  private client: Client | null = null;
  private origin = '';
  private destroyed = false;

  constructor(private readonly owner: ConsulClient, private readonly options: Client.Options) {}

  /** The lane's connection to `origin` (a new one after a fail-over: the old one is dropped). */
  dispatcher(origin: string): Dispatcher {
    if (this.destroyed) throw new ConsulError('CDNS_ERR_CONSUL_UNAVAILABLE', origin, `${origin}: the connection was closed`);
    if (this.client && this.origin === origin) return this.client;
    if (this.client) void this.client.destroy(STOPPED).catch(() => {});
    this.origin = origin;
    this.client = new (undici().Client)(origin, this.options);
    return this.client;
  }

  /** Ends the request in flight (if any) and the connection, now. */
  async destroy(): Promise<void> {
    this.destroyed = true;
    this.owner.forget(this);
    const c = this.client;
    this.client = null;
    if (c) await c.destroy(STOPPED).catch(() => {});
  }
}

export class ConsulClient {
  private readonly addresses: readonly URL[];
  /** Non-blocking requests: a small shared pool. */
  private readonly dispatcher: Agent;
  private readonly laneOptions: Client.Options;
  private readonly lanes = new Set<ConsulLane>();
  private readonly headers: Readonly<Record<string, string>>;
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
    // The token goes in a header only (never in a URL, never logged).
    this.headers = opts.token ? { accept: 'application/json', 'x-consul-token': opts.token } : { accept: 'application/json' };
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    const connect = opts.tls ? { ca: opts.tls.ca, cert: opts.tls.cert, key: opts.tls.key, servername: opts.tls.servername } : {};
    this.dispatcher = new (undici().Agent)({
      connections: opts.connections ?? 32,
      pipelining: 1,
      // Idle connections go after 10 s: the pool is busy at the start (the first reads), and at
      // rest only the liveness probe (every 5 s) keeps one of them.
      keepAliveTimeout: 10_000,
      connect,
    });
    // A watch's next blocking query follows the last one on the same connection at once.
    this.laneOptions = { pipelining: 1, keepAliveTimeout: 60_000, connect };
  }

  /** A connection of its own for a blocking-query loop (see ConsulLane); destroyed with the client. */
  lane(): ConsulLane {
    const l = new ConsulLane(this, this.laneOptions);
    this.lanes.add(l);
    return l;
  }

  /** @internal (ConsulLane.destroy) */
  forget(l: ConsulLane): void {
    this.lanes.delete(l);
  }

  /** Lanes not destroyed yet (each holds at most one connection). */
  get laneCount(): number {
    return this.lanes.size;
  }

  /** The address in use. */
  get address(): string {
    return this.addresses[this.current]!.origin;
  }

  async get<T>(path: string, q: QueryOptions = {}): Promise<ConsulResponse<T>> {
    const origin = this.addresses[this.current]!.origin;
    const at = this.current;
    let query = '';
    if (q.dc) query += `&dc=${encodeURIComponent(q.dc)}`;
    if (q.stale) query += '&stale=';
    const blocking = q.index !== undefined && q.index > 0;
    if (blocking) query += `&index=${q.index}&wait=${goDuration(q.waitMs ?? 300_000)}`;
    const target = query ? `${path}${path.includes('?') ? '&' : '?'}${query.slice(1)}` : path;
    // A blocking query may take wait + wait/16 (Consul's jitter); allow a margin on top.
    const timeout = blocking ? (q.waitMs ?? 300_000) * (17 / 16) + this.timeoutMs : this.timeoutMs;
    this.requests++;
    // A blocking query waits on its watch's own connection; everything else shares the pool.
    const dispatcher = blocking && q.lane ? q.lane.dispatcher(origin) : this.dispatcher;
    let res: Reply;
    try {
      res = await exchange(dispatcher, {
        origin, path: target, method: 'GET', headers: this.headers, headersTimeout: timeout, bodyTimeout: timeout,
      }, q.signal);
    } catch (x) {
      // Ended by us: the caller stopped it and wants no report (and no error object per request).
      if (x === STOPPED || (x instanceof BodyCutOff && x.error === STOPPED) || q.signal?.aborted) throw STOPPED;
      const cut = x instanceof BodyCutOff ? x : null;
      const e = cut ? cut.error : x;
      const code = (e as { code?: string }).code ?? '';
      // Ended by us (a stopped watch, a closed client): not a failure of this address.
      const ours = (e as Error).name === 'AbortError' || code === 'UND_ERR_DESTROYED' || code === 'UND_ERR_ABORTED';
      if (!ours) {
        this.errors++;
        this.failover(at);
      }
      if (cut) {
        throw new ConsulError('CDNS_ERR_CONSUL_BAD_RESPONSE', origin, `${origin}${path}: body cut off (${(e as Error).message})`, cut.status, { cause: e });
      }
      const timedOut = code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT';
      throw new ConsulError(timedOut ? 'CDNS_ERR_CONSUL_TIMEOUT' : 'CDNS_ERR_CONSUL_UNAVAILABLE', origin,
        `${origin}${path}: ${(e as Error).message}${code ? ` (${code})` : ''}`, 0, { cause: e });
    }
    const bytes = res.body.length;
    this.bytesReceived += bytes;
    if (res.status !== 200) {
      const text = res.body.toString('utf8');
      this.errors++;
      const msg = `${origin}${path}: HTTP ${res.status} ${text.trim().slice(0, 200)}`;
      if (res.status === 403) throw new ConsulError('CDNS_ERR_CONSUL_ACL', origin, msg, 403);
      if (res.status === 429) { this.failover(at); throw new ConsulError('CDNS_ERR_CONSUL_RATE_LIMITED', origin, msg, 429); }
      if (res.status >= 500) this.failover(at);
      throw new ConsulError('CDNS_ERR_CONSUL_HTTP', origin, msg, res.status);
    }
    const same = q.previous !== undefined && q.previous.raw.equals(res.body);
    let body: T;
    try {
      body = same ? q.previous!.body as T : JSON.parse(res.body.toString('utf8')) as T;
    } catch (e) {
      this.errors++;
      throw new ConsulError('CDNS_ERR_CONSUL_BAD_RESPONSE', origin, `${origin}${path}: not JSON (${(e as Error).message})`, 200, { cause: e });
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
      bytes, address: origin, raw: res.body, same,
    };
  }

  private failover(failedAt: number): void {
    // Only the first failure at an address moves on (concurrent requests fail together).
    if (this.addresses.length > 1 && this.current === failedAt) this.current = (this.current + 1) % this.addresses.length;
  }

  /** Ends every request now (parked blocking queries included) and closes every connection. */
  async destroy(): Promise<void> {
    const lanes = [...this.lanes];
    await Promise.all([this.dispatcher.destroy(STOPPED), ...lanes.map((l) => l.destroy())]);
  }
}
