/**
 * ProcessLifecycle against a stand-in process and manual timers: which signal does what in which
 * phase, the stop deadline, the second signal, and ending by the signal when a read is stuck. The
 * real process is exercised in test/protocol/lifecycle.test.ts.
 */
import { EventEmitter } from 'node:events';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ProcessLifecycle, type Stoppable } from '../../src/lifecycle.js';
import { createLogger } from '../../src/log.js';
import { ManualTimers } from '../support/manual-timers.js';

class FakeProcess extends EventEmitter {
  readonly pid = 4242;
  readonly kills: Array<[number, string]> = [];
  readonly exits: number[] = [];
  kill(pid: number, signal: string): boolean { this.kills.push([pid, signal]); return true; }
  exit(code: number): void { this.exits.push(code); }
  signal(name: NodeJS.Signals): void { this.emit(name); }
}

class FakeApp implements Stoppable {
  closes = 0;
  reloads = 0;
  ioPending = false;
  private finishClose: (() => void) | null = null;
  private failClose: ((e: Error) => void) | null = null;
  close(): Promise<void> {
    this.closes++;
    return new Promise((resolve, reject) => { this.finishClose = resolve; this.failClose = reject; });
  }
  reload(): Promise<void> { this.reloads++; return Promise.resolve(); }
  closed(): void { this.finishClose!(); }
  closeFailed(): void { this.failClose!(new Error('boom')); }
}

function setup(stopTimeoutMs = 5000) {
  const proc = new FakeProcess();
  const timers = new ManualTimers();
  const stderr: string[] = [];
  const lines: Array<{ msg: string; signal?: string; why?: string }> = [];
  const logger = createLogger('info', new Writable({ write(chunk, _enc, cb) { lines.push(JSON.parse(String(chunk))); cb(); } }));
  const life = new ProcessLifecycle({ process: proc, timers, stopTimeoutMs, stderr: (l) => stderr.push(l) });
  const app = new FakeApp();
  return { proc, timers, life, app, logger, lines, stderr };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('ProcessLifecycle', () => {
  it('listens to SIGHUP and SIGUSR1 from construction, to SIGTERM and SIGINT from catchStopSignals', () => {
    const { proc, life } = setup();
    expect(['SIGHUP', 'SIGUSR1', 'SIGTERM', 'SIGINT'].map((s) => proc.listenerCount(s))).toEqual([1, 1, 0, 0]);
    life.catchStopSignals();
    life.catchStopSignals();
    expect(['SIGHUP', 'SIGUSR1', 'SIGTERM', 'SIGINT'].map((s) => proc.listenerCount(s))).toEqual([1, 1, 1, 1]);
  });

  it('SIGTERM while running: closes, then exits 0', async () => {
    const { proc, life, app, timers } = setup();
    life.catchStopSignals();
    life.attach(app);
    proc.signal('SIGTERM');
    expect(app.closes).toBe(1);
    expect(proc.exits).toEqual([]);
    app.closed();
    await tick();
    expect(proc.exits).toEqual([0]);
    expect(proc.kills).toEqual([]);
    expect(timers.pending).toBe(0); // the deadline was cleared
  });

  it('a stop asked for during the start happens once the start is over', async () => {
    const { proc, life, app } = setup();
    life.catchStopSignals();
    proc.signal('SIGINT');
    expect(app.closes).toBe(0);
    life.attach(app);
    expect(app.closes).toBe(1);
    expect(app.reloads).toBe(0);
    app.closed();
    await tick();
    expect(proc.exits).toEqual([0]);
  });

  it('SIGHUP reloads while running, once after the start if it came during it, never while stopping', () => {
    const { proc, life, app } = setup();
    life.catchStopSignals();
    proc.signal('SIGHUP');
    proc.signal('SIGHUP');
    expect(app.reloads).toBe(0);
    life.attach(app);
    expect(app.reloads).toBe(1);
    proc.signal('SIGHUP');
    expect(app.reloads).toBe(2);
    proc.signal('SIGTERM');
    proc.signal('SIGHUP');
    expect(app.reloads).toBe(2);
  });

  it('SIGUSR1 is only logged, in any phase', () => {
    const { proc, life, app, logger, lines } = setup();
    proc.signal('SIGUSR1');
    life.setLogger(logger);
    life.catchStopSignals();
    life.attach(app);
    proc.signal('SIGUSR1');
    expect(lines.filter((l) => l.msg.startsWith('SIGUSR1 ignored'))).toHaveLength(2);
    expect([app.closes, app.reloads, proc.exits.length, proc.kills.length]).toEqual([0, 0, 0, 0]);
  });

  it('a second SIGTERM/SIGINT while stopping ends the process by that signal at once', () => {
    const { proc, life, app, logger, lines } = setup();
    life.setLogger(logger);
    life.catchStopSignals();
    life.attach(app);
    proc.signal('SIGTERM');
    proc.signal('SIGINT');
    expect(proc.listenerCount('SIGINT')).toBe(0); // so the signal takes its default action
    expect(proc.kills).toEqual([[4242, 'SIGINT']]);
    // The stand-in survived its kill (as PID 1 in a container would): the ordinary exit follows.
    expect(proc.exits).toEqual([1]);
    expect(lines.map((l) => l.msg)).toEqual(['stopping', 'second stop signal: stopping now']);
  });

  it('a second signal during the start also ends the process at once', () => {
    const { proc, life, stderr } = setup();
    life.catchStopSignals();
    proc.signal('SIGTERM');
    proc.signal('SIGTERM');
    expect(proc.kills).toEqual([[4242, 'SIGTERM']]);
    expect(stderr).toEqual(['catalog-dns: stopped by SIGTERM\n']); // no logger yet
  });

  it('a stop that does not finish within the deadline ends the process by the signal', () => {
    const { proc, life, app, timers, logger, lines } = setup(3000);
    life.setLogger(logger);
    life.catchStopSignals();
    life.attach(app);
    proc.signal('SIGTERM');
    timers.advance(2999);
    expect(proc.kills).toEqual([]);
    timers.advance(1);
    expect(proc.kills).toEqual([[4242, 'SIGTERM']]);
    expect(lines.at(-1)).toMatchObject({ msg: 'stop did not finish in time: stopping now', ms: 3000 });
    app.closed(); // too late: nothing more happens
    proc.signal('SIGTERM');
    expect(proc.kills).toHaveLength(1);
  });

  it('the deadline also covers a start that never finishes', () => {
    const { proc, life, timers } = setup();
    life.catchStopSignals();
    proc.signal('SIGTERM');
    timers.advance(5000);
    expect(proc.kills).toEqual([[4242, 'SIGTERM']]);
  });

  it('ends by the signal instead of exit(0) when a file read is still out after close', async () => {
    const { proc, life, app } = setup();
    life.catchStopSignals();
    life.attach(app);
    app.ioPending = true;
    proc.signal('SIGTERM');
    app.closed();
    await tick();
    expect(proc.kills).toEqual([[4242, 'SIGTERM']]);
  });

  it('exits 1 when close fails', async () => {
    const { proc, life, app } = setup();
    life.catchStopSignals();
    life.attach(app);
    proc.signal('SIGTERM');
    app.closeFailed();
    await tick();
    expect(proc.exits).toEqual([1]);
  });

  it('writes messages from before the logger once it is set, with component "process"', () => {
    const { proc, life, logger, lines } = setup();
    proc.signal('SIGHUP');
    proc.signal('SIGUSR1');
    expect(lines).toEqual([]);
    life.setLogger(logger);
    expect(lines.map((l) => [l.msg, (l as { component?: string }).component])).toEqual([['SIGUSR1 ignored: the inspector cannot be opened by a signal', 'process']]);
  });

  it('exit(code) ends the process once', () => {
    const { proc, life } = setup();
    life.exit(2);
    life.exit(0);
    expect(proc.exits).toEqual([2]);
  });
});
