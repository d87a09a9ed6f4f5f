/**
 * The command's signals, from the first moment to the exit (README "Signals and exit codes").
 *
 * Constructed before anything else is loaded, so that SIGHUP and SIGUSR1 arriving while the server
 * starts are honoured instead of taking their default action: SIGHUP would end the process, and
 * SIGUSR1 would open Node's inspector on 127.0.0.1:9229, through which any local user could run code
 * in the process. A SIGUSR1 listener replaces the inspector's own handler (Node 20 has no
 * --disable-sigusr1), so it stays installed for the life of the process.
 *
 * - SIGTERM, SIGINT: caught from `catchStopSignals()`, called just before the server starts (until
 *   then nothing runs that needs stopping, and their default action ends the process even while the
 *   start blocks, e.g. reading a --config FIFO). Graceful stop: close, then exit 0; a stop asked for
 *   during the start happens as soon as the start is over. A second SIGTERM/SIGINT, or a stop not
 *   finished within `stopTimeoutMs`, ends the process at once.
 * - SIGHUP: reload the catalog (once after the start if it came during it).
 * - SIGUSR1: ignored, logged.
 *
 * "At once" is the signal's default action (the process dies by that signal), not process.exit():
 * exit joins libuv's threads, and one stuck in a read on a hung file system would hold it forever.
 * As PID 1 of a container without an init, where the default action is never taken, it falls back to
 * process.exit(1) (and the container runtime's SIGKILL).
 *
 * Only types are imported here, so loading this module loads nothing else.
 */
import type { Logger } from './log.js';

/** What the lifecycle drives once started (the App). */
export interface Stoppable {
  close(): Promise<void>;
  reload(): Promise<void>;
  /** A file system call that close() did not wait for is still out. */
  readonly ioPending: boolean;
}

/** The parts of `process` used (a stand-in in unit tests). */
export interface ProcessLike {
  readonly pid: number;
  on(signal: NodeJS.Signals, listener: () => void): unknown;
  removeAllListeners(signal: NodeJS.Signals): unknown;
  kill(pid: number, signal: NodeJS.Signals): unknown;
  exit(code: number): void;
}

export interface LifecycleTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface LifecycleOptions {
  readonly process: ProcessLike;
  /** Longest graceful stop; then the process ends anyway. Default 5 s (under Docker's 10 s). */
  readonly stopTimeoutMs?: number;
  readonly timers?: LifecycleTimers;
  /** Where messages go before a logger is set. Default: stderr. */
  readonly stderr?: (line: string) => void;
}

export const DEFAULT_STOP_TIMEOUT_MS = 5000;

type Phase = 'starting' | 'running' | 'stopping' | 'exited';
type Level = 'info' | 'warn' | 'error';

export class ProcessLifecycle {
  readonly stopTimeoutMs: number;
  private readonly proc: ProcessLike;
  private readonly timers: LifecycleTimers;
  private readonly stderr: (line: string) => void;
  private phase: Phase = 'starting';
  private stopSignal: NodeJS.Signals | null = null;
  private reloadAsked = false;
  private app: Stoppable | null = null;
  private log: Logger | null = null;
  private early: Array<[Level, object, string]> = [];
  private deadline: unknown = null;
  private stopsCaught = false;
  /** Signals received, by name (plain counters). */
  readonly received: Record<string, number> = { SIGTERM: 0, SIGINT: 0, SIGHUP: 0, SIGUSR1: 0 };

  constructor(opts: LifecycleOptions) {
    this.proc = opts.process;
    this.stopTimeoutMs = opts.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS;
    this.timers = opts.timers ?? { setTimeout: (fn, ms) => setTimeout(fn, ms), clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout) };
    this.stderr = opts.stderr ?? ((line) => void process.stderr.write(line));
    for (const signal of ['SIGHUP', 'SIGUSR1'] as const) this.proc.on(signal, () => this.onSignal(signal));
  }

  /** From now on SIGTERM and SIGINT stop the server gracefully (call just before starting it). */
  catchStopSignals(): void {
    if (this.stopsCaught) return;
    this.stopsCaught = true;
    for (const signal of ['SIGTERM', 'SIGINT'] as const) this.proc.on(signal, () => this.onSignal(signal));
  }

  /**
   * From now on, messages go to `logger` (those from before it are written now). Ending by a signal
   * skips the flush an ordinary exit does, so the logger should write synchronously.
   */
  setLogger(logger: Logger): void {
    this.log = logger.child({ component: 'process' });
    for (const [level, fields, msg] of this.early) this.log[level](fields, msg);
    this.early = [];
  }

  /** The server has started: signals act on it now, and a stop or reload asked for meanwhile happens. */
  attach(app: Stoppable): void {
    if (this.phase !== 'starting') return;
    this.app = app;
    this.phase = 'running';
    if (this.stopSignal) this.stop(this.stopSignal);
    else if (this.reloadAsked) this.reload('SIGHUP during the start');
  }

  /** Ends the process with `code` now (--help, a failed start). */
  exit(code: number): void {
    if (this.phase === 'exited') return;
    this.phase = 'exited';
    this.clearDeadline();
    this.proc.exit(code);
  }

  private onSignal(signal: NodeJS.Signals): void {
    this.received[signal] = (this.received[signal] ?? 0) + 1;
    if (signal === 'SIGUSR1') {
      this.note('warn', { signal }, 'SIGUSR1 ignored: the inspector cannot be opened by a signal');
      return;
    }
    if (signal === 'SIGHUP') {
      if (this.phase === 'starting') this.reloadAsked = true;
      else if (this.phase === 'running') this.reload('SIGHUP');
      return;
    }
    // SIGTERM, SIGINT
    if (this.phase === 'exited') return;
    if (this.stopSignal) {
      this.note('warn', { signal }, 'second stop signal: stopping now');
      this.hardExit(signal);
      return;
    }
    this.stopSignal = signal;
    this.armDeadline();
    if (this.phase === 'running') this.stop(signal);
    else this.note('info', { signal }, 'stop requested during the start');
  }

  private reload(why: string): void {
    this.note('info', { why }, 'reloading the catalog');
    void this.app?.reload().catch((e: unknown) => this.note('error', { err: e }, 'reload failed'));
  }

  private stop(signal: NodeJS.Signals): void {
    const app = this.app!;
    this.phase = 'stopping';
    this.note('info', { signal }, 'stopping');
    app.close().then(
      () => this.finish(0),
      (e: unknown) => { this.note('error', { err: e }, 'stop failed'); this.finish(1); },
    );
  }

  private finish(code: number): void {
    if (this.phase === 'exited') return;
    if (this.app?.ioPending) {
      // process.exit would wait for the stuck thread-pool thread; end the way a second signal does.
      this.note('warn', {}, 'a file read has not returned; not waiting for it');
      this.hardExit(this.stopSignal ?? 'SIGTERM');
      return;
    }
    this.exit(code);
  }

  private armDeadline(): void {
    this.deadline = this.timers.setTimeout(() => {
      this.deadline = null;
      this.note('error', { ms: this.stopTimeoutMs }, 'stop did not finish in time: stopping now');
      this.hardExit(this.stopSignal ?? 'SIGTERM');
    }, this.stopTimeoutMs);
  }

  private clearDeadline(): void {
    if (this.deadline !== null) this.timers.clearTimeout(this.deadline);
    this.deadline = null;
  }

  private hardExit(signal: NodeJS.Signals): void {
    if (this.phase === 'exited') return;
    this.phase = 'exited';
    this.clearDeadline();
    if (!this.log) this.stderr(`catalog-dns: stopped by ${signal}\n`);
    this.proc.removeAllListeners(signal);
    this.proc.kill(this.proc.pid, signal);
    // Still running: PID 1 in a PID namespace, where a signal without a handler is not delivered.
    this.proc.exit(1);
  }

  private note(level: Level, fields: object, msg: string): void {
    if (this.log) this.log[level](fields, msg);
    else if (this.early.length < 32) this.early.push([level, fields, msg]);
  }
}
