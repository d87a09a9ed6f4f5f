/**
 * A quiet window with a maximum wait, as consul-template's `wait { min, max }`: after a change, one
 * commit happens once the input has been quiet for `minMs`, and at the latest `maxMs` after the
 * first change not yet committed, however long a stream of changes goes on. A plain debounce (restart
 * the timer on every change) never commits while changes keep coming faster than its delay.
 *
 * One timer at a time, re-armed only when it fires (never cleared per change), so a burst of
 * thousands of changes costs a clock read each. Timers and clock come in through `timers` so tests
 * can drive it without waiting.
 */

/** The clock and timers the window runs on (real ones by default). */
export interface Timers {
  /** Monotonic milliseconds. */
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realTimers: Timers = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export interface QuietWindowOptions {
  /** Commit once the input has been quiet this long. */
  readonly minMs: number;
  /** Commit at the latest this long after the first uncommitted change (>= minMs). */
  readonly maxMs: number;
  /** Called once per window; changes during the call open the next window. */
  readonly onCommit: () => void;
  readonly timers?: Timers;
}

export class QuietWindow {
  readonly minMs: number;
  readonly maxMs: number;
  private readonly onCommit: () => void;
  private readonly timers: Timers;
  private timer: unknown = null;
  private first = 0;
  private last = 0;
  private closed = false;
  /** Changes seen and commits made (plain counters for metrics). */
  changes = 0;
  commits = 0;

  constructor(opts: QuietWindowOptions) {
    if (!(opts.minMs >= 0) || !(opts.maxMs >= opts.minMs)) {
      throw new RangeError(`quiet window: need 0 <= minMs <= maxMs, got min ${opts.minMs}, max ${opts.maxMs}`);
    }
    this.minMs = opts.minMs;
    this.maxMs = opts.maxMs;
    this.onCommit = opts.onCommit;
    this.timers = opts.timers ?? realTimers;
  }

  /** True while a change waits for its commit. */
  get pending(): boolean {
    return this.timer !== null;
  }

  /** Records a change. */
  touch(): void {
    if (this.closed) return;
    this.changes++;
    this.last = this.timers.now();
    if (this.timer === null) {
      this.first = this.last;
      this.arm(this.minMs);
    }
  }

  /** Drops the pending change without committing (the caller is about to act on it anyway). */
  cancel(): void {
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timer = null;
  }

  /** Cancels and ignores every later change. */
  close(): void {
    this.cancel();
    this.closed = true;
  }

  private arm(ms: number): void {
    this.timer = this.timers.setTimeout(this.fire, ms);
  }

  private readonly fire = (): void => {
    this.timer = null;
    const now = this.timers.now();
    const due = Math.min(this.last + this.minMs, this.first + this.maxMs);
    if (now < due) {
      this.arm(due - now);
      return;
    }
    this.commits++;
    this.onCommit();
  };
}
