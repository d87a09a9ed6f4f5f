/**
 * The compiled command (dist/main.js) under signals and odd files, as an operator meets them: a FIFO
 * at the catalog path (at start and later), SIGUSR1 (never the inspector), signals during the start,
 * a second SIGTERM, data directories that cannot be used. Every process is started by PID and killed
 * in `finally` if a test leaves it running.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, constants, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { udpQuery } from '../support/dns-client.js';

const root = new URL('../..', import.meta.url).pathname;
const main = join(root, 'dist/main.js');
const demoPath = join(root, 'fixtures/demo-catalog.json');
const demo = JSON.parse(readFileSync(demoPath, 'utf8'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The command as a child process, its output collected line by line. */
class Cli {
  readonly proc: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(args: string[], opts: { uid?: number; gid?: number } = {}) {
    this.proc = spawn(process.execPath, [main, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    this.proc.stdout!.on('data', (d) => (this.stdout += d));
    this.proc.stderr!.on('data', (d) => (this.stderr += d));
    // 'close': after the exit and after all of stdout and stderr was read.
    this.exited = new Promise((r) => this.proc.on('close', (code, signal) => r({ code, signal })));
  }

  get pid(): number { return this.proc.pid!; }

  /** Log lines (pino JSON on stdout). */
  logs(): Array<Record<string, unknown>> {
    return this.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  async waitForLog(pred: (l: Record<string, unknown>) => boolean, what: string): Promise<Record<string, unknown>> {
    for (let i = 0; i < 200; i++) {
      const hit = this.logs().find(pred);
      if (hit) return hit;
      if (this.proc.exitCode !== null || this.proc.signalCode !== null) break;
      await sleep(50);
    }
    throw new Error(`no log line ${what}\nstdout:\n${this.stdout}\nstderr:\n${this.stderr}`);
  }

  signal(s: NodeJS.Signals): void { process.kill(this.pid, s); }

  /** How it ended; killed (and a failure) if it has not within `ms`. */
  async ended(ms = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.proc.kill('SIGKILL');
        reject(new Error(`still running after ${ms} ms\nstdout:\n${this.stdout}\nstderr:\n${this.stderr}`));
      }, ms);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Teardown: kill if still running. */
  async kill(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill('SIGKILL');
      await this.exited;
    }
  }
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/** TCP ports the process listens on (its sockets matched against /proc/net/tcp{,6} LISTEN entries). */
function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch { /* closed meanwhile */ }
  }
  const ports: number[] = [];
  for (const table of ['tcp', 'tcp6']) {
    for (const line of readFileSync(`/proc/${pid}/net/${table}`, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[3] === '0A' && inodes.has(f[9]!)) ports.push(parseInt(f[1]!.split(':')[1]!, 16));
    }
  }
  return ports.sort((a, b) => a - b);
}

/** Child processes of `pid`, and theirs (from /proc). */
function descendants(pid: number): number[] {
  let kids: number[] = [];
  try {
    kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch { /* gone */ }
  return kids.flatMap((k) => [k, ...descendants(k)]);
}

/** Waits until a process has the FIFO open for reading (so it is blocked in that read), returns a write end. */
async function fifoWriter(path: string): Promise<number> {
  for (let i = 0; i < 200; i++) {
    try {
      return openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENXIO') throw e;
      await sleep(50);
    }
  }
  throw new Error(`nobody opened ${path} for reading`);
}

let dir: string;
beforeAll(() => {
  execFileSync(process.execPath, [join(root, 'scripts/build-if-needed.mjs')], { cwd: root, stdio: 'inherit' });
  dir = mkdtempSync(join(tmpdir(), 'cdns-life-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('a FIFO at the catalog path', () => {
  it('at start: exit 2 with one line naming the path and the reason, without waiting for a writer', async () => {
    const fifo = join(dir, 'start-fifo.json');
    execFileSync('mkfifo', [fifo]);
    const cli = new Cli(['--catalog-file', fifo, '--dns', '127.0.0.1:0']);
    try {
      expect(await cli.ended()).toEqual({ code: 2, signal: null });
      expect(cli.stderr).toBe(`catalog-dns: cannot read catalog file ${fifo}: it is a FIFO, not a regular file\n`);
    } finally {
      await cli.kill();
    }
  });

  it('after start: rejected (also on SIGHUP) while the old zone serves; a valid file replaces it; SIGTERM exits 0', async () => {
    const sub = join(dir, 'later');
    mkdirSync(sub);
    const file = join(sub, 'catalog.json');
    writeFileSync(file, JSON.stringify(demo));
    const port = await freePort();
    const cli = new Cli(['--catalog-file', file, '--dns', `127.0.0.1:${port}`]);
    try {
      await cli.waitForLog((l) => l.msg === 'serving', '"serving"');
      // Replace the file by a FIFO (atomically, as a rename).
      execFileSync('mkfifo', [join(sub, 'fifo')]);
      renameSync(join(sub, 'fifo'), file);
      const rejections = () => cli.logs().filter((l) => l.msg === 'catalog file rejected; keeping the current zone');
      const rejected = (n: number) => cli.waitForLog(() => rejections().length >= n, `rejected x${n}`);
      await rejected(1);
      expect(rejections()[0]!.reason).toBe(`cannot read catalog file ${file}: it is a FIFO, not a regular file`);
      expect((await udpQuery(port, 'web.service.consul', 'A')).answers).toHaveLength(3);
      cli.signal('SIGHUP');
      await rejected(2);
      expect((await udpQuery(port, 'web.service.consul', 'A')).answers).toHaveLength(3);
      // A valid new version (with a new service) replaces the FIFO.
      const next = structuredClone(demo);
      next.datacenters.dc1.services.extra = [{ Node: next.datacenters.dc1.nodes[0], Service: { ID: 'extra', Service: 'extra', Port: 1 }, Checks: [] }];
      writeFileSync(join(sub, 'next.tmp'), JSON.stringify(next));
      renameSync(join(sub, 'next.tmp'), file);
      let rcode = '';
      for (let i = 0; i < 100 && rcode !== 'NOERROR'; i++) {
        await sleep(100);
        rcode = (await udpQuery(port, 'extra.service.consul', 'A')).rcode;
      }
      expect(rcode).toBe('NOERROR');
      cli.signal('SIGTERM');
      expect(await cli.ended()).toEqual({ code: 0, signal: null });
      expect(cli.stderr).toBe('');
    } finally {
      await cli.kill();
    }
  });
});

describe('signals', () => {
  it('SIGUSR1 does not open the inspector; the server keeps answering', async () => {
    const port = await freePort();
    const cli = new Cli(['--catalog-file', demoPath, '--dns', `127.0.0.1:${port}`]);
    try {
      await cli.waitForLog((l) => l.msg === 'serving', '"serving"');
      cli.signal('SIGUSR1');
      await cli.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('SIGUSR1 ignored'), 'SIGUSR1 ignored');
      cli.signal('SIGUSR1');
      await cli.waitForLog(() => cli.logs().filter((l) => l.signal === 'SIGUSR1').length === 2, 'second SIGUSR1 ignored');
      expect((await udpQuery(port, 'web.service.consul', 'A')).answers).toHaveLength(3);
      expect(cli.stderr).not.toContain('Debugger listening');
      expect(listeningPorts(cli.pid)).toEqual([port]); // DNS over TCP, and no inspector
      cli.signal('SIGTERM');
      expect(await cli.ended()).toEqual({ code: 0, signal: null });
    } finally {
      await cli.kill();
    }
  });

  it('SIGHUP reads the --config file again: what can change applies at once, an invalid file is refused, the rest waits for a restart', async () => {
    const port = await freePort();
    const cfg = join(dir, 'reload-config.json');
    writeFileSync(cfg, JSON.stringify({ soa: { min_ttl: 5 } }));
    const cli = new Cli(['--config', cfg, '--catalog-file', demoPath, '--dns', `127.0.0.1:${port}`]);
    const soaTtl = async () => (await udpQuery(port, 'consul', 'SOA')).answers[0]!.ttl;
    try {
      await cli.waitForLog((l) => l.msg === 'serving', '"serving"');
      expect(await soaTtl()).toBe(5);
      writeFileSync(cfg, JSON.stringify({ soa: { min_ttl: 30 }, udp_answer_limit: 2 }));
      cli.signal('SIGHUP');
      await cli.waitForLog((l) => l.msg === 'zone committed' && l.source === 'config', 'zone rebuilt under the new config');
      expect(await soaTtl()).toBe(30);
      expect((await udpQuery(port, 'web.service.consul', 'A')).answers).toHaveLength(2); // no EDNS: udp_answer_limit
      writeFileSync(cfg, JSON.stringify({ soa: { min_ttl: 'soon' } }));
      cli.signal('SIGHUP');
      const bad = await cli.waitForLog((l) => l.msg === 'configuration reload rejected; keeping the running configuration', 'reload rejected');
      expect(String(bad.reason)).toContain('soa.min_ttl');
      expect(await soaTtl()).toBe(30);
      writeFileSync(cfg, JSON.stringify({ soa: { min_ttl: 30 }, udp_answer_limit: 2, tcp_max_connections: 10 }));
      cli.signal('SIGHUP');
      const later = await cli.waitForLog((l) => l.msg === 'configuration reloaded: these take effect at the next restart', 'restart needed');
      expect(later.keys).toEqual(['tcpMaxConnections']);
      cli.signal('SIGTERM');
      expect(await cli.ended()).toEqual({ code: 0, signal: null });
    } finally {
      await cli.kill();
    }
  });

  it('SIGHUP and SIGUSR1 during the start are honoured: no exit, no inspector, a reload once started', async () => {
    // The start is held reading a --config FIFO (after the signal listeners are installed).
    const cfg = join(dir, 'held-config');
    execFileSync('mkfifo', [cfg]);
    const port = await freePort();
    const cli = new Cli(['--config', cfg, '--catalog-file', demoPath, '--dns', `127.0.0.1:${port}`]);
    try {
      const fd = await fifoWriter(cfg);
      cli.signal('SIGHUP');
      cli.signal('SIGUSR1');
      await sleep(200); // let the signals land while the read is held
      writeSync(fd, '{"log_level": "info"}');
      closeSync(fd);
      await cli.waitForLog((l) => l.msg === 'serving', '"serving"');
      await cli.waitForLog((l) => l.msg === 'reloading the catalog' && l.why === 'SIGHUP during the start', 'reload after the start');
      await cli.waitForLog((l) => l.signal === 'SIGUSR1', 'SIGUSR1 ignored');
      expect((await udpQuery(port, 'web.service.consul', 'A')).answers).toHaveLength(3);
      expect(cli.stderr).not.toContain('Debugger listening');
      expect(listeningPorts(cli.pid)).toEqual([port]);
      cli.signal('SIGTERM');
      expect(await cli.ended()).toEqual({ code: 0, signal: null });
    } finally {
      await cli.kill();
    }
  });

  it('SIGTERM ends the process even while the start is blocked (a --config FIFO nobody writes)', async () => {
    const cfg = join(dir, 'stuck-config');
    execFileSync('mkfifo', [cfg]);
    const cli = new Cli(['--config', cfg, '--catalog-file', demoPath, '--dns', '127.0.0.1:0']);
    let fd = -1;
    try {
      fd = await fifoWriter(cfg); // the command is now blocked in open/read of the FIFO
      cli.signal('SIGTERM');
      expect(await cli.ended()).toEqual({ code: null, signal: 'SIGTERM' });
    } finally {
      if (fd >= 0) closeSync(fd);
      await cli.kill();
    }
  });

  it('a second SIGTERM during a graceful stop ends the process at once, by the signal', async () => {
    const port = await freePort();
    const cli = new Cli(['--catalog-file', demoPath, '--dns', `127.0.0.1:${port}`]);
    let client: Socket | null = null;
    try {
      await cli.waitForLog((l) => l.msg === 'serving', '"serving"');
      // A TCP client that never closes its side holds the graceful stop (for up to 2 s).
      client = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
      client.on('error', () => {});
      await new Promise<void>((r) => client!.once('connect', () => r()));
      cli.signal('SIGTERM');
      await cli.waitForLog((l) => l.msg === 'stopping', '"stopping"');
      cli.signal('SIGTERM');
      expect(await cli.ended()).toEqual({ code: null, signal: 'SIGTERM' });
      expect(cli.logs().map((l) => l.msg)).toContain('second stop signal: stopping now');
    } finally {
      client?.destroy();
      await cli.kill();
    }
  });
});

describe('npm start', () => {
  it('runs the server as npm\'s direct child: SIGTERM to npm stops it gracefully, SIGUSR1 to it opens no inspector', async () => {
    const port = await freePort();
    const npm = spawn('npm', ['start', '--silent', '--', '--dns', `127.0.0.1:${port}`], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    npm.stdout!.on('data', (d) => (out += d));
    npm.stderr!.on('data', (d) => (err += d));
    const npmExited = new Promise((r) => npm.on('exit', r));
    try {
      for (let i = 0; i < 300 && !out.includes('"serving"'); i++) await sleep(50);
      expect(out).toContain('"serving"');
      // The start script execs node: no shell in between that would swallow signals.
      const children = readFileSync(`/proc/${npm.pid}/task/${npm.pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
      expect(children).toHaveLength(1);
      const server = children[0]!;
      expect(readFileSync(`/proc/${server}/cmdline`, 'utf8').split('\0')).toContain(join('dist', 'main.js'));
      process.kill(server, 'SIGUSR1');
      for (let i = 0; i < 200 && !out.includes('SIGUSR1 ignored'); i++) await sleep(50);
      expect(listeningPorts(server)).toEqual([port]);
      npm.kill('SIGTERM');
      for (let i = 0; i < 200 && existsSync(`/proc/${server}`); i++) await sleep(50);
      expect(existsSync(`/proc/${server}`)).toBe(false);
      expect(out).toContain('"msg":"stopping"');
      expect(err).not.toContain('Debugger listening');
    } finally {
      const left = descendants(npm.pid!);
      if (npm.exitCode === null && npm.signalCode === null) npm.kill('SIGKILL');
      for (const pid of left) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      await npmExited;
    }
  });
});

describe('odd data directories: exit 2 with one line', () => {
  const cases: Array<[string, () => string, RegExp]> = [
    ['a directory under /proc', () => '/proc/catalog-dns-test', /^catalog-dns: --data-dir: cannot create \/proc\/catalog-dns-test: ENOENT/],
    ['a regular file', () => { const p = join(dir, 'plain-file'); writeFileSync(p, 'x'); return p; }, /is a regular file, not a directory$/],
    ['/dev/null', () => '/dev/null', /^catalog-dns: --data-dir: \/dev\/null is a character device, not a directory$/],
    ['a path through a file', () => { const p = join(dir, 'plain-file2'); writeFileSync(p, 'x'); return join(p, 'sub'); }, /ENOTDIR/],
    ['a FIFO as the state file', () => { const d = join(dir, 'fifo-state'); mkdirSync(d); execFileSync('mkfifo', [join(d, 'serial.json')]); return d; }, /serial\.json is a FIFO, not a regular file$/],
  ];
  it.each(cases)('%s', async (_what, make, message) => {
    const cli = new Cli(['--catalog-file', demoPath, '--dns', '127.0.0.1:0', '--data-dir', make()]);
    try {
      expect(await cli.ended()).toEqual({ code: 2, signal: null });
      expect(cli.stderr.trim().split('\n')).toHaveLength(1);
      expect(cli.stderr.trim()).toMatch(message);
    } finally {
      await cli.kill();
    }
  });

  it('an unwritable directory (run as "nobody" when the tests run as root)', async () => {
    const asRoot = process.getuid?.() === 0;
    const d = join(dir, 'ro');
    mkdirSync(d, { mode: 0o555 });
    chmodSync(d, 0o555);
    chmodSync(dir, 0o755); // mkdtemp made it 0700
    const cli = new Cli(['--catalog-file', demoPath, '--dns', '127.0.0.1:0', '--data-dir', d], asRoot ? { uid: 65534, gid: 65534 } : {});
    try {
      expect(await cli.ended()).toEqual({ code: 2, signal: null });
      expect(cli.stderr.trim().split('\n')).toHaveLength(1);
      expect(cli.stderr.trim()).toMatch(/^catalog-dns: --data-dir: \S+\/ro is not writable: EACCES/);
    } finally {
      await cli.kill();
    }
  });
});
