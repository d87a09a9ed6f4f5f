/**
 * A clock and timers that move only when the test says so, for unit tests of timer logic
 * (QuietWindow, ProcessLifecycle): no real time passes, nothing is left running.
 */
export class ManualTimers {
  private t = 0;
  private seq = 0;
  private readonly due = new Map<number, { at: number; fn: () => void }>();
  /** setTimeout and clearTimeout calls so far. */
  set = 0;
  cleared = 0;

  now = (): number => this.t;

  setTimeout = (fn: () => void, ms: number): unknown => {
    this.set++;
    const id = ++this.seq;
    this.due.set(id, { at: this.t + Math.max(0, ms), fn });
    return id;
  };

  clearTimeout = (handle: unknown): void => {
    if (this.due.delete(handle as number)) this.cleared++;
  };

  /** Timers set and not yet fired or cleared. */
  get pending(): number {
    return this.due.size;
  }

  /** Moves the clock forward by `ms`, firing every timer that falls due on the way, in order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (let fired = 0; ; fired++) {
      if (fired > 1_000_000) throw new Error('ManualTimers: timers keep re-arming without the clock moving');
      let next: [number, { at: number; fn: () => void }] | null = null;
      for (const e of this.due) if (e[1].at <= end && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      this.due.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = end;
  }
}
