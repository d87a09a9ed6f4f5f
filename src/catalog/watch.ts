/**
 * One blocking-query loop over a Consul endpoint, following Consul's rules for blocking queries:
 * wait past the last X-Consul-Index; start over from 0 when the index goes backwards (snapshot
 * restore, upgrades); never send an index below 1; a token bucket per watch so an endpoint that
 * changes constantly cannot make the loop spin; exponential backoff with full jitter on errors,
 * reset after a success. A response whose index did not move is not reported (a timeout or an
 * idempotent write); the data of one that did is.
 *
 * A read with index 0 (the first, and the first after a reset) is not a blocking one and goes over
 * the client's shared pool; the blocking queries wait on the watch's own connection (its lane),
 * opened when the first of them goes out, after `beforeBlocking` lets it (see ConsulCatalogSource:
 * the first catalog is read and committed before thousands of connections are opened).
 */
import { STOPPED, type ConsulClient, type ConsulLane, type ConsulResponse, type QueryOptions } from './consul-client.js';

export interface WatchTiming {
  /**
   * Blocking wait sent to Consul (default 45 s). Short enough that a Consul that accepts and never
   * answers is noticed within a minute by the blocking queries too (the wait, Consul's jitter of up
   * to wait/16, and the client's 10 s margin: 58 s); cheap because the connections are few (a
   * bounded budget, not one per service).
   */
  readonly waitMs: number;
  /** Backoff after the first error, doubled per error up to `maxBackoffMs` (defaults 250 ms, 10 s). */
  readonly backoffMs: number;
  readonly maxBackoffMs: number;
  /** Token bucket: `burst` requests at once, refilled at `ratePerSec` (defaults 2 and 2/s). */
  readonly burst: number;
  readonly ratePerSec: number;
}

/**
 * Defaults: consul-template's 250 ms first backoff, but at most 10 s (not 1 min): a DNS layer must
 * notice quickly that Consul is back; the jitter spreads the retries of many watches.
 */
export const DEFAULT_TIMING: WatchTiming = { waitMs: 45_000, backoffMs: 250, maxBackoffMs: 10_000, burst: 2, ratePerSec: 2 };

export interface WatchDeps {
  readonly now?: () => number;
  readonly sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  readonly random?: () => number;
  /**
   * Awaited once, before the first blocking query (which opens the watch's connection); resolves
   * at once when the signal aborts. Default: no wait.
   */
  readonly beforeBlocking?: (signal: AbortSignal) => Promise<void>;
  /**
   * Keep the last body and hand it to the client, so that a wake bringing the same bytes is not
   * parsed again (ConsulResponse.same). For list endpoints, whose index moves with every change.
   */
  readonly reuseSameBody?: boolean;
  /**
   * The index to wait past from the start (a service read before, now given a watch of its own):
   * the first request is then a blocking one. Default 0: read first.
   */
  readonly startIndex?: number;
  /**
   * Never block: read (non-blocking, over the shared pool) every `pollMs`. For a watch the
   * connection budget has no lane for.
   */
  readonly pollMs?: number;
}

const realSleep = (ms: number, signal: AbortSignal) => new Promise<void>((resolve) => {
  if (signal.aborted) { resolve(); return; }
  const t = setTimeout(done, ms);
  function done() { clearTimeout(t); signal.removeEventListener('abort', done); resolve(); }
  signal.addEventListener('abort', done, { once: true });
});

export class BlockingWatch<T> {
  private readonly abort = new AbortController();
  private index = 0;
  private tokens: number;
  private refilledAt: number;
  private failures = 0;
  private running: Promise<void> | null = null;
  /** The watch's connection, made at its first blocking query (a polling watch has none). */
  private lane: ConsulLane | null = null;
  private beforeBlocking: ((signal: AbortSignal) => Promise<void>) | null;
  private readonly reuseSameBody: boolean;
  private previous: { raw: Buffer; body: unknown } | null = null;
  private readonly now: () => number;
  private readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  private readonly random: () => number;
  private readonly pollMs: number;
  /** Responses received, and those whose index went backwards. */
  responses = 0;
  resets = 0;
  /** Failures since the last response (0: the watch is fine). */
  get failing(): number {
    return this.failures;
  }

  constructor(
    private readonly client: ConsulClient,
    private readonly path: string,
    private readonly query: Omit<QueryOptions, 'index' | 'waitMs' | 'signal'>,
    private readonly onData: (r: ConsulResponse<T>) => void,
    private readonly onError: (e: unknown, failures: number) => void,
    private readonly timing: WatchTiming = DEFAULT_TIMING,
    deps: WatchDeps = {},
  ) {
    this.now = deps.now ?? Date.now;
    this.sleep = deps.sleep ?? realSleep;
    this.random = deps.random ?? Math.random;
    this.beforeBlocking = deps.beforeBlocking ?? null;
    this.reuseSameBody = deps.reuseSameBody ?? false;
    this.pollMs = deps.pollMs ?? 0;
    this.index = deps.startIndex ?? 0;
    this.tokens = timing.burst;
    this.refilledAt = this.now();
  }

  /** The last index seen (0 before the first response). */
  get lastIndex(): number {
    return this.index;
  }

  start(): void {
    this.running ??= this.loop();
  }

  /** Stops the loop, ends the request in flight and closes the watch's connection, now. */
  async stop(): Promise<void> {
    this.abort.abort(STOPPED);
    await Promise.all([this.lane?.destroy(), this.running]);
  }

  private async loop(): Promise<void> {
    const signal = this.abort.signal;
    while (!signal.aborted) {
      if (this.index > 0 && this.beforeBlocking) {
        const gate = this.beforeBlocking;
        this.beforeBlocking = null;
        await gate(signal);
        if (signal.aborted) return;
      }
      await this.take(signal);
      if (signal.aborted) return;
      let r: ConsulResponse<T>;
      const blocking = this.index > 0 && this.pollMs === 0;
      try {
        // A blocking query is ended by destroying the lane (stop): no abort listener per request,
        // and no error object per request when thousands stop at once.
        r = await this.client.get<T>(this.path, {
          ...this.query, index: blocking ? this.index : 0, waitMs: this.timing.waitMs, requireIndex: true,
          ...(blocking ? { lane: this.lane ??= this.client.lane() } : {}),
          ...(blocking ? {} : { signal }), ...(this.previous ? { previous: this.previous } : {}),
        });
      } catch (e) {
        if (signal.aborted) return;
        this.failures++;
        this.onError(e, this.failures);
        // Full jitter: a random wait up to the exponential bound, so many watches do not retry together.
        const bound = Math.min(this.timing.maxBackoffMs, this.timing.backoffMs * 2 ** Math.min(this.failures - 1, 20));
        await this.sleep(bound * (0.5 + this.random() / 2), signal);
        continue;
      }
      this.failures = 0;
      this.responses++;
      if (this.reuseSameBody) this.previous = { raw: r.raw, body: r.body };
      const idx = Math.max(1, r.index); // Consul never returns 0; a proxy might
      if (idx < this.index) {
        // The index went backwards: everything is suspect, start over (and report the data).
        this.resets++;
        this.index = 0;
        this.onData(r);
        continue;
      }
      if (idx !== this.index) {
        this.index = idx;
        this.onData(r);
      } else {
        this.onSame?.(r); // a timeout or an idempotent write: nothing new (but Consul answered)
      }
      if (this.pollMs) await this.sleep(this.pollMs, signal);
    }
  }

  /** Called for a response whose index did not move (contact, leader status). */
  onSame: ((r: ConsulResponse<T>) => void) | null = null;

  /** Waits for a token of the bucket. */
  private async take(signal: AbortSignal): Promise<void> {
    const t = this.now();
    this.tokens = Math.min(this.timing.burst, this.tokens + ((t - this.refilledAt) / 1000) * this.timing.ratePerSec);
    this.refilledAt = t;
    if (this.tokens >= 1) { this.tokens -= 1; return; }
    const waitMs = ((1 - this.tokens) / this.timing.ratePerSec) * 1000;
    await this.sleep(waitMs, signal);
    this.tokens = 0;
    this.refilledAt = this.now();
  }
}
