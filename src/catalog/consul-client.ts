/**
 * A small client for the Consul HTTP API reads a catalog follower makes: GETs with Consul's blocking
 * query parameters (`index`, `wait`, `stale`, `dc`), the token in `X-Consul-Token` (never in a URL,
 * never logged), failover across several addresses, timeouts that fit a blocking query, and errors
 * with a stable `code` a caller can branch on.
 *
 * It keeps within the agent's limits and survives a broken one:
 * - a connection budget (`maxConnections`, per address): a small shared pool for non-blocking reads,
 *   and at most `laneCapacity` lanes (one connection each) for blocking queries. A Consul agent allows
 *   `limits.http_max_conns_per_client` (200 by default) connections per client address and answers
 *   429 beyond (go-connlimit); a 429 is counted and reported (`onRateLimited`), never a fail-over;
 * - a cap on a response's size (`maxResponseBytes`), a deadline for a whole body once its status
 *   line is in (a blocking answer comes at once when it starts), bodies parsed in slices with a depth
 *   limit (json-slices.ts), and an `X-Consul-Index` that must be a positive integer where asked for.
 */
import { createRequire } from 'node:module';
import type { Agent, Client, Dispatcher } from 'undici';
import { CatalogDnsError, type ErrorCode } from '../errors.js';
import { parseJsonSliced } from './json-slices.js';

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
   * Connections shared by the non-blocking requests (first reads, re-reads, sweeps, the liveness
   * probe); more requests than that wait their turn (default: an eighth of `maxConnections`, 2-16).
   */
  readonly connections?: number;
  /**
   * Connections this client may hold open to one address, all uses counted (default 100: half of a
   * Consul agent's default `limits.http_max_conns_per_client`, leaving room for the host's other
   * clients). Blocking queries get what the read pool leaves (`laneCapacity`).
   */
  readonly maxConnections?: number;
  /** Largest response body accepted (default 64 MiB); a larger one is cut off and is an error. */
  readonly maxResponseBytes?: number;
  /** Once the status line is in, the whole body must arrive within this (default 30 s). */
  readonly bodyDeadlineMs?: number;
}

/** Default of `maxConnections`. */
export const DEFAULT_MAX_CONNECTIONS = 100;
/** Default of `maxResponseBytes`. */
export const DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

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
  /**
   * The endpoint carries Consul's `X-Consul-Index` (catalog and health reads, blocking or not):
   * one that is missing, 0 or not an integer is a bad response (a proxy in the way, a broken agent);
   * following it would ignore changes or spin.
   */
  readonly requireIndex?: boolean;
  /**
   * The index of the data the caller already has: a 200 at exactly that index is read off the
   * connection without being kept or parsed, and comes back `same`, with no body. (A sweep reads
   * thousands of services of which a few changed.)
   */
  readonly unchangedAt?: number;
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
  /** The body was read and dropped (BodyLimits.skip said so). */
  readonly skipped: boolean;
}

const NO_BYTES = Buffer.alloc(0);

/** Why we ended a response ourselves (the cap, the body deadline): reported as a bad response. */
class EndedByUs extends Error {
  constructor(readonly code: 'CDNS_TOO_LARGE' | 'CDNS_BODY_DEADLINE', message: string) {
    super(message);
  }
}

interface BodyLimits {
  readonly maxBytes: number;
  readonly deadlineMs: number;
  /** Looks at a 200's headers: true reads the body off the connection without keeping it. */
  readonly skip?: ((headers: Record<string, string | string[] | undefined>) => boolean) | undefined;
}

/**
 * One request, its whole body collected: undici's `dispatch` with a handler of our own. (Its
 * `request()` wraps every response in a stream, an abort signal and several promises: at 10,000
 * reads that cost more CPU than the reads' JSON.) Rejects with undici's error, wrapped in a
 * BodyCutOff after the status line; an abort rejects with an AbortError. A body over
 * `limits.maxBytes`, or not complete `limits.deadlineMs` after the status line, is ended (EndedByUs).
 */
function exchange(dispatcher: Dispatcher, opts: Dispatcher.DispatchOptions, limits: BodyLimits, signal?: AbortSignal): Promise<Reply> {
  return new Promise<Reply>((resolve, reject) => {
    if (signal?.aborted) { reject(STOPPED); return; }
    let controller: Dispatcher.DispatchController | null = null;
    let settled = false;
    let status = 0;
    let headers: Record<string, string | string[] | undefined> = {};
    let chunks: Buffer[] = [];
    let size = 0;
    let deadline: NodeJS.Timeout | null = null;
    let skipped = false;
    const settle = (e: Error | null): void => {
      if (settled) return;
      settled = true;
      if (deadline) clearTimeout(deadline);
      signal?.removeEventListener('abort', onAbort);
      if (e) { chunks = []; reject(status ? new BodyCutOff(status, e) : e); }
      else resolve({ status, headers, skipped, body: skipped ? NO_BYTES : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size) });
    };
    const endOurselves = (e: EndedByUs): void => {
      controller?.abort(e);
      settle(e);
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
        onResponseStart(_c, code, h) {
          if (code < 200) return;
          status = code;
          headers = h;
          const length = Number(h['content-length']);
          if (length > limits.maxBytes) { endOurselves(new EndedByUs('CDNS_TOO_LARGE', `response of ${length} bytes is over the limit of ${limits.maxBytes}`)); return; }
          deadline = setTimeout(() => endOurselves(new EndedByUs('CDNS_BODY_DEADLINE', `response body not complete ${limits.deadlineMs} ms after its status line`)), limits.deadlineMs);
          skipped = code === 200 && limits.skip !== undefined && limits.skip(h);
        },
        onResponseData(_c, chunk) {
          if (settled) return;
          size += chunk.length;
          if (size > limits.maxBytes) { endOurselves(new EndedByUs('CDNS_TOO_LARGE', `response over the limit of ${limits.maxBytes} bytes`)); return; }
          if (!skipped) chunks.push(chunk);
        },
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
  /** Over HTTP/2: the shared connection this lane's stream goes over. */
  private shared: SharedConnection | null = null;
  private origin = '';
  private destroyed = false;
  private readonly ended = new AbortController();

  constructor(private readonly owner: ConsulClient, private readonly options: Client.Options) {}

  /** Aborted when the lane is destroyed (over HTTP/2 this ends the lane's stream, not the connection). */
  get signal(): AbortSignal {
    return this.ended.signal;
  }

  /** The lane's connection to `origin` (a new one after a fail-over: the old one is dropped). */
  dispatcher(origin: string): Dispatcher {
    if (this.destroyed) throw new ConsulError('CDNS_ERR_CONSUL_UNAVAILABLE', origin, `${origin}: the connection was closed`);
    if (this.owner.http2) {
      if (this.shared && this.shared.origin === origin) return this.shared.client;
      if (this.shared) this.owner.release(this.shared);
      this.shared = this.owner.share(origin);
      return this.shared.client;
    }
    if (this.client && this.origin === origin) return this.client;
    if (this.client) void this.client.destroy(STOPPED).catch(() => {});
    this.origin = origin;
    this.client = new (undici().Client)(origin, this.options);
    return this.client;
  }

  /** Ends the request in flight (if any) and the connection (its stream over HTTP/2), now. */
  async destroy(): Promise<void> {
    this.destroyed = true;
    this.owner.forget(this);
    this.ended.abort(STOPPED);
    if (this.shared) { this.owner.release(this.shared); this.shared = null; }
    const c = this.client;
    this.client = null;
    if (c) await c.destroy(STOPPED).catch(() => {});
  }
}

/** An HTTP/2 connection shared by up to STREAMS_PER_CONNECTION lanes. */
interface SharedConnection {
  readonly origin: string;
  readonly client: Client;
  lanes: number;
}

/**
 * Blocking queries per HTTP/2 connection: below the 250 concurrent streams Go's HTTP/2 server
 * (Consul's) allows a connection by default.
 */
export const STREAMS_PER_CONNECTION = 200;

export class ConsulClient {
  private readonly addresses: readonly URL[];
  /** Non-blocking requests: a small shared pool. */
  private readonly dispatcher: Agent;
  private readonly laneOptions: Client.Options;
  private readonly lanes = new Set<ConsulLane>();
  private readonly headers: Readonly<Record<string, string>>;
  private readonly timeoutMs: number;
  private readonly limits: BodyLimits;
  /** The connection budget per address, and the part of it the read pool takes. */
  readonly maxConnections: number;
  readonly readConnections: number;
  /** The address requests go to; moves on to the next one on a failure that says "this address". */
  private current = 0;
  requests = 0;
  bytesReceived = 0;
  errors = 0;
  /** 429 answers (go-connlimit's per-client connection limit, or Consul's request rate limit). */
  rateLimited = 0;
  /**
   * Called on every 429. `connections`: it is the agent's per-client connection limit (go-connlimit's
   * answer, sent before the request is read), so the caller should use fewer connections; otherwise
   * it is Consul's request rate limit, which backing off answers.
   */
  onRateLimited: ((connections: boolean) => void) | null = null;
  /** The agent speaks HTTP/2 (an HTTPS agent, learned by detectHttp2): lanes share connections. */
  http2 = false;
  private readonly shared: SharedConnection[] = [];
  private readonly tls: ConsulTls | null;

  constructor(opts: ConsulClientOptions) {
    if (opts.addresses.length === 0) throw new CatalogDnsError('CDNS_ERR_CONFIG', 'consul: no address given');
    this.addresses = opts.addresses.map((a) => new URL(a));
    // The token goes in a header only (never in a URL, never logged).
    this.headers = opts.token ? { accept: 'application/json', 'x-consul-token': opts.token } : { accept: 'application/json' };
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.maxConnections = Math.max(2, opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS);
    this.readConnections = Math.min(this.maxConnections - 1, Math.max(1, opts.connections ?? Math.min(16, Math.max(2, Math.floor(this.maxConnections / 8)))));
    this.limits = { maxBytes: opts.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES, deadlineMs: opts.bodyDeadlineMs ?? 30_000 };
    this.tls = opts.tls ?? null;
    const connect = opts.tls ? { ca: opts.tls.ca, cert: opts.tls.cert, key: opts.tls.key, servername: opts.tls.servername } : {};
    this.dispatcher = new (undici().Agent)({
      connections: this.readConnections,
      pipelining: 1,
      // Idle connections go after 10 s: the pool is busy at the start (the first reads) and during
      // sweeps, and at rest only the liveness probe (every 5 s) keeps one of them.
      keepAliveTimeout: 10_000,
      connect,
    });
    // A watch's next blocking query follows the last one on the same connection at once.
    this.laneOptions = { pipelining: 1, keepAliveTimeout: 60_000, connect };
  }

  /**
   * Lanes (blocking queries at once) the budget allows next to the read pool: one per connection
   * over HTTP/1.1, STREAMS_PER_CONNECTION per connection over HTTP/2.
   */
  get laneCapacity(): number {
    // One connection of the budget stays free: the agent counts a connection closed only once it has
    // read the close, so a lane given up just before another is taken could briefly count twice.
    return Math.max(1, this.maxConnections - this.readConnections - 1) * (this.http2 ? STREAMS_PER_CONNECTION : 1);
  }

  /**
   * Whether the agent at the first address speaks HTTP/2 (ALPN over TLS; a plain-HTTP agent never
   * does: Consul serves h2 only over TLS). Sets `http2`; any failure means no.
   */
  async detectHttp2(timeoutMs = 5000): Promise<boolean> {
    const url = this.addresses[this.current]!;
    if (url.protocol !== 'https:') return (this.http2 = false);
    const { connect } = await import('node:tls');
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const h2 = await new Promise<boolean>((resolve) => {
      const t = this.tls;
      const sock = connect({
        host, port: Number(url.port || 443), ALPNProtocols: ['h2', 'http/1.1'],
        ...(t?.ca ? { ca: t.ca } : {}), ...(t?.cert ? { cert: t.cert } : {}), ...(t?.key ? { key: t.key } : {}),
        servername: t?.servername ?? (/^[0-9.:]+$/.test(host) ? undefined : host),
      });
      const done = (v: boolean) => { clearTimeout(timer); sock.destroy(); resolve(v); };
      const timer = setTimeout(() => done(false), timeoutMs);
      sock.once('secureConnect', () => done(sock.alpnProtocol === 'h2'));
      sock.once('error', () => done(false));
    });
    return (this.http2 = h2);
  }

  /** @internal (ConsulLane): a place for one more stream on an HTTP/2 connection to `origin`. */
  share(origin: string): SharedConnection {
    let c = this.shared.find((x) => x.origin === origin && x.lanes < STREAMS_PER_CONNECTION);
    if (!c) {
      // undici runs at most `pipelining` requests at once on a Client, over HTTP/2 too: the lanes'
      // `pipelining: 1` would queue their streams one behind the other on the shared connection.
      c = { origin, lanes: 0, client: new (undici().Client)(origin, { ...this.laneOptions, allowH2: true, maxConcurrentStreams: STREAMS_PER_CONNECTION + 50, pipelining: STREAMS_PER_CONNECTION + 50 }) };
      this.shared.push(c);
    }
    c.lanes++;
    return c;
  }

  /** @internal (ConsulLane): its stream is over; a connection no lane uses is closed. */
  release(c: SharedConnection): void {
    if (--c.lanes > 0) return;
    const i = this.shared.indexOf(c);
    if (i >= 0) this.shared.splice(i, 1);
    void c.client.destroy(STOPPED).catch(() => {});
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

  /** A token is sent (without one Consul uses the anonymous token, or the agent's default token). */
  get hasToken(): boolean {
    return 'x-consul-token' in this.headers;
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
    // Over HTTP/2 a lane's stream is ended by its signal (its connection is shared).
    const signal = q.signal ?? (blocking && q.lane && this.http2 ? q.lane.signal : undefined);
    let res: Reply;
    try {
      res = await exchange(dispatcher, {
        // Silence between two chunks of a body: the whole body has its own deadline (limits).
        origin, path: target, method: 'GET', headers: this.headers, headersTimeout: timeout, bodyTimeout: Math.min(timeout, this.limits.deadlineMs),
      }, q.unchangedAt ? { ...this.limits, skip: (hs) => { const v = hs['x-consul-index']; return (Array.isArray(v) ? v[0] : v) === String(q.unchangedAt); } } : this.limits, signal);
    } catch (x) {
      // Ended by us: the caller stopped it and wants no report (and no error object per request).
      if (x === STOPPED || (x instanceof BodyCutOff && x.error === STOPPED) || signal?.aborted) throw STOPPED;
      const cut = x instanceof BodyCutOff ? x : null;
      const e = cut ? cut.error : x;
      const code = (e as { code?: string }).code ?? '';
      this.errors++;
      if (e instanceof EndedByUs) {
        // The address answered, badly: not a reason to move on to another one.
        throw new ConsulError('CDNS_ERR_CONSUL_BAD_RESPONSE', origin, `${origin}${path}: ${e.message}`, cut?.status ?? 0, { cause: e });
      }
      // Ended by us (a stopped watch, a closed client): not a failure of this address.
      const ours = (e as Error).name === 'AbortError' || code === 'UND_ERR_DESTROYED' || code === 'UND_ERR_ABORTED';
      if (!ours) this.failover(at);
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
      const text = res.body.subarray(0, 400).toString('utf8');
      this.errors++;
      const msg = `${origin}${path}: HTTP ${res.status} ${text.trim().slice(0, 200)}`;
      if (res.status === 403) throw new ConsulError('CDNS_ERR_CONSUL_ACL', origin, msg, 403);
      if (res.status === 429) {
        // Too many connections from this address (go-connlimit) or requests (Consul's rate limit):
        // the same would happen at any agent, so no fail-over; the caller uses fewer.
        this.rateLimited++;
        // The two limits differ only in their text: go-connlimit's fixed body, or Consul's limiter's.
        this.onRateLimited?.(/too many concurrent connections/i.test(text));
        throw new ConsulError('CDNS_ERR_CONSUL_RATE_LIMITED', origin, msg, 429);
      }
      if (res.status >= 500) this.failover(at);
      throw new ConsulError('CDNS_ERR_CONSUL_HTTP', origin, msg, res.status);
    }
    const h = (n: string) => { const v = res.headers[n]; return Array.isArray(v) ? v[0] : v; };
    const rawIndex = h('x-consul-index');
    const index = rawIndex !== undefined && /^[0-9]{1,16}$/.test(rawIndex) ? Number(rawIndex) : 0;
    if (q.requireIndex && index < 1) {
      this.errors++;
      throw new ConsulError('CDNS_ERR_CONSUL_BAD_RESPONSE', origin,
        `${origin}${path}: X-Consul-Index ${rawIndex === undefined ? 'missing' : JSON.stringify(rawIndex.slice(0, 40))} (Consul always sends a positive integer)`, 200);
    }
    const same = res.skipped || (q.previous !== undefined && q.previous.raw.equals(res.body));
    let body: T;
    try {
      body = res.skipped ? undefined as T : same ? q.previous!.body as T : await parseJsonSliced(res.body, q.signal ? { signal: q.signal } : {}) as T;
    } catch (e) {
      if (q.signal?.aborted) throw STOPPED;
      this.errors++;
      throw new ConsulError('CDNS_ERR_CONSUL_BAD_RESPONSE', origin, `${origin}${path}: not JSON Consul would send (${(e as Error).message.slice(0, 200)})`, 200, { cause: e });
    }
    const leader = h('x-consul-knownleader');
    const contact = h('x-consul-lastcontact');
    const contactMs = contact === undefined ? NaN : Number(contact);
    return {
      body, index,
      knownLeader: leader === undefined ? null : leader === 'true',
      lastContact: Number.isFinite(contactMs) && contactMs >= 0 ? contactMs : null,
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
    await Promise.all([this.dispatcher.destroy(STOPPED), ...lanes.map((l) => l.destroy()), ...this.shared.map((c) => c.client.destroy(STOPPED).catch(() => {}))]);
  }
}
