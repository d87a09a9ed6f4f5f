// Real DNS daemons for interop tests: each runs in the foreground in its own temp dir on
// 127.0.0.1 at a free high port, is ready when it answers a DNS probe, and is stopped by PID
// (SIGTERM, then SIGKILL) with its temp dir removed. `log()` returns its stdout, stderr and log
// file so a failing test can print what the peer saw.
//
//   let unbound: Daemon;
//   beforeAll(async () => { unbound = await startUnbound({ stubPort: server.port }); });
//   afterAll(() => unbound?.stop());
//   printLogsOnFailure(() => [unbound]);
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { beforeEach } from 'vitest';
import { findProgram } from './programs.js';

export const HOST = '127.0.0.1';

export interface Daemon {
  readonly name: string;
  readonly pid: number;
  readonly host: string;
  readonly port: number;
  readonly dir: string;
  /** stdout, stderr and the log file; still available after stop(). */
  log(): string;
  /** SIGTERM, SIGKILL after `termTimeoutMs`, then remove the temp dir. Idempotent. */
  stop(): Promise<void>;
}

export interface DaemonSetup {
  args: string[];
  /** Files to write into the temp dir before starting, by name. */
  files?: Record<string, string>;
  /** Log file name inside the temp dir, included in log(). */
  logFile?: string;
}

export interface DaemonSpec {
  name: string;
  bin: string;
  setup(dir: string, port: number): DaemonSetup;
  /** Ready check, polled; default: any DNS reply on UDP to `A? probe.invalid.`. `log` is Daemon.log. */
  ready?: (port: number, log: () => string) => Promise<boolean>;
  readyTimeoutMs?: number;
  termTimeoutMs?: number;
}

const OUTPUT_CAP = 256 * 1024;
const START_ATTEMPTS = 3; // a free port can be taken between picking and binding: retry on early exit

/** A port free on 127.0.0.1 for both UDP and TCP at the time of the call. */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const udp = createSocket('udp4');
    const port = await new Promise<number>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(0, HOST, () => resolve(udp.address().port));
    });
    const tcpFree = await new Promise<boolean>((resolve) => {
      const srv = createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, HOST, () => srv.close(() => resolve(true)));
    });
    await new Promise<void>((resolve) => udp.close(() => resolve()));
    if (tcpFree) return port;
  }
  throw new Error('no port free for both UDP and TCP on 127.0.0.1 after 20 tries');
}

/** Sends one `A? qname` over UDP; true if a reply with the same ID arrives within timeoutMs. */
export function dnsProbe(port: number, qname = 'probe.invalid.', timeoutMs = 250): Promise<boolean> {
  const id = Math.floor(Math.random() * 0x10000);
  const labels = qname.split('.').filter((l) => l !== '');
  const name = Buffer.concat([...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0])]);
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x0100, 2); // RD
  header.writeUInt16BE(1, 4); // QDCOUNT
  const query = Buffer.concat([header, name, Buffer.from([0, 1, 0, 1])]);
  return new Promise((resolve) => {
    const sock = createSocket('udp4');
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      sock.close();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.on('error', () => done(false));
    sock.on('message', (msg) => {
      if (msg.length >= 12 && msg.readUInt16BE(0) === id && (msg[2]! & 0x80) !== 0) done(true);
    });
    sock.send(query, port, HOST);
  });
}

// Safety net only: if the test process exits without stop(), kill what is still running (by PID).
// One set and one listener per process, however often a test runner re-imports this module.
const LIVE = Symbol.for('catalog-dns.test.daemons.live');
const registry = globalThis as typeof globalThis & { [LIVE]?: Set<number> };
const live: Set<number> = registry[LIVE] ?? (() => {
  const pids = new Set<number>();
  registry[LIVE] = pids;
  process.once('exit', () => {
    for (const pid of pids) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
    }
  });
  return pids;
})();

function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

function waitForExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (!isRunning(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => { clearTimeout(timer); resolve(true); });
  });
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try { process.kill(pid, sig); } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
  }
}

async function startOnce(spec: DaemonSpec, dir: string, port: number): Promise<{ daemon: Daemon; exited: boolean; error?: Error }> {
  const { args, files = {}, logFile } = spec.setup(dir, port);
  for (const [file, text] of Object.entries(files)) await writeFile(join(dir, file), text);
  let output = '';
  let spawnError: Error | undefined;
  const child = spawn(spec.bin, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const append = (chunk: Buffer): void => {
    output += chunk.toString('utf8');
    if (output.length > OUTPUT_CAP) output = output.slice(-OUTPUT_CAP);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  child.on('error', (e) => { spawnError = e; });
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const pid = child.pid ?? -1;
  if (pid > 0) live.add(pid);

  let logSnapshot: string | undefined;
  const readLog = (): string => {
    const path = logFile === undefined ? undefined : join(dir, logFile);
    const fileText = path !== undefined && existsSync(path) ? readFileSync(path, 'utf8') : '';
    return `----- ${spec.name} (pid ${pid}, port ${port}) ${spec.bin} ${args.join(' ')}\n` +
      `----- stdout+stderr\n${output}` +
      (logFile === undefined ? '' : `----- ${logFile}\n${fileText}`) +
      (isRunning(child) ? '' : `----- exited: code ${child.exitCode} signal ${child.signalCode}\n`);
  };
  let stopping: Promise<void> | undefined;
  const daemon: Daemon = {
    name: spec.name, pid, host: HOST, port, dir,
    log: () => logSnapshot ?? readLog(),
    stop: () => (stopping ??= (async () => {
      if (pid > 0 && isRunning(child)) {
        signal(pid, 'SIGTERM');
        if (!(await waitForExit(child, spec.termTimeoutMs ?? 3000))) {
          signal(pid, 'SIGKILL');
          await waitForExit(child, 3000);
        }
        // Let the last lines ("exiting on SIGTERM") drain from the pipes, briefly.
        await Promise.race([closed, sleep(500)]);
      }
      live.delete(pid);
      logSnapshot = readLog();
      await rm(dir, { recursive: true, force: true });
    })()),
  };

  const ready = spec.ready ?? ((p: number) => dnsProbe(p));
  const deadline = Date.now() + (spec.readyTimeoutMs ?? 10_000);
  while (Date.now() < deadline) {
    if (spawnError !== undefined) return { daemon, exited: true, error: spawnError };
    if (!isRunning(child)) return { daemon, exited: true };
    if (await ready(port, readLog)) {
      if (isRunning(child)) return { daemon, exited: false };
      return { daemon, exited: true }; // something else answered on that port
    }
    await sleep(50);
  }
  return { daemon, exited: false, error: new Error(`not ready after ${spec.readyTimeoutMs ?? 10_000} ms`) };
}

/** Starts a daemon; on failure it is stopped, its dir removed, and the error carries its log. */
export async function startDaemon(spec: DaemonSpec): Promise<Daemon> {
  let lastLog = '';
  let lastError: Error | undefined;
  for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
    const dir = await mkdtemp(join(tmpdir(), `cdns-${spec.name}-`));
    const port = await freePort();
    const r = await startOnce(spec, dir, port);
    if (!r.exited && r.error === undefined) return r.daemon;
    await r.daemon.stop();
    lastLog = r.daemon.log();
    lastError = r.error;
    if (!r.exited) break; // a timeout will not get better on another port
  }
  throw new Error(`${spec.name} failed to start${lastError ? `: ${lastError.message}` : ' (exited early)'}\n${lastLog}`);
}

/** Prints each daemon's log to stderr when a test in the calling suite fails. */
export function printLogsOnFailure(daemons: () => Array<Daemon | undefined>): void {
  beforeEach(({ onTestFailed }) => {
    onTestFailed(() => {
      for (const d of daemons()) if (d !== undefined) process.stderr.write(`${d.log()}\n`);
    });
  });
}

export interface UnboundOptions {
  /** Port of the authoritative server for `consul.` on 127.0.0.1. */
  stubPort: number;
  bin?: string;
  /** unbound's verbosity; 3 logs each upstream query (`sending query: service.consul. A IN`). */
  verbosity?: number;
  /**
   * The zones unbound asks catalog-dns for (stub-zones, answered past unbound's own default local
   * zones such as 10.in-addr.arpa.); default `consul.` only.
   */
  stubZones?: readonly string[];
}

/** unbound as a recursive resolver with a stub-zone per zone (`consul.`) at catalog-dns, QNAME minimisation on. */
export function startUnbound({ stubPort, bin, verbosity = 1, stubZones = ['consul.'] }: UnboundOptions): Promise<Daemon> {
  return unboundDaemon(bin, verbosity, (dir) => ({
    lines: [
      '    do-not-query-localhost: no',
      '    module-config: "iterator"',
      '    qname-minimisation: yes',
      '    local-zone: "." refuse',
      ...stubZones.map((z) => `    local-zone: "${z}" transparent`),
      ...stubZones.flatMap((z) => ['stub-zone:', `    name: "${z}"`, `    stub-addr: ${HOST}@${stubPort}`]),
      'remote-control:',
      '    control-enable: yes',
      `    control-interface: "${dir}/unbound.ctl"`,
    ],
  }));
}

/** unbound in the foreground: unbound.conf is the loopback-only harness, then `conf`'s lines; plus `conf`'s other files. */
function unboundDaemon(bin: string | undefined, verbosity: number, conf: (dir: string) => { lines: readonly string[]; files?: Record<string, string> }): Promise<Daemon> {
  return startDaemon({
    name: 'unbound',
    bin: bin ?? findProgram('unbound') ?? 'unbound',
    setup: (dir, port) => {
      const c = conf(dir);
      return {
        args: ['-d', '-c', join(dir, 'unbound.conf')],
        logFile: 'unbound.log',
        files: { ...c.files, 'unbound.conf': [...unboundHarness(dir, port, verbosity), ...c.lines, ''].join('\n') },
      };
    },
  });
}

export interface DnsmasqOptions {
  /** Port of the authoritative server for `consul.` on 127.0.0.1. */
  upstreamPort: number;
  bin?: string;
}

/** dnsmasq forwarding `consul.` to 127.0.0.1#upstreamPort; everything else REFUSED. */
export function startDnsmasq({ upstreamPort, bin }: DnsmasqOptions): Promise<Daemon> {
  return startDaemon({
    name: 'dnsmasq',
    bin: bin ?? findProgram('dnsmasq') ?? 'dnsmasq',
    setup: (dir, port) => ({
      args: [
        '--keep-in-foreground', '--conf-file=/dev/null', '--no-resolv', '--no-hosts',
        '--bind-interfaces', `--listen-address=${HOST}`, `--port=${port}`,
        `--server=/consul/${HOST}#${upstreamPort}`, `--pid-file=${join(dir, 'dnsmasq.pid')}`,
        '--log-queries', '--log-facility=-',
      ],
    }),
  });
}

// ---- resolvers run from a configuration given as text (the README recipes) -------------------

/** The `server:` lines every test unbound has: loopback only, foreground, logs in its temp dir. */
function unboundHarness(dir: string, port: number, verbosity: number): string[] {
  return [
    'server:',
    `    interface: ${HOST}@${port}`,
    '    do-ip6: no',
    '    do-daemonize: no',
    '    username: ""',
    '    chroot: ""',
    `    directory: "${dir}"`,
    `    pidfile: "${dir}/unbound.pid"`,
    '    use-syslog: no',
    `    logfile: "${dir}/unbound.log"`,
    `    verbosity: ${verbosity}`,
    '    log-queries: yes',
    '    log-replies: yes',
    '    log-servfail: yes',
    '    access-control: 127.0.0.0/8 allow',
    `    outgoing-interface: ${HOST}`, // cannot reach beyond loopback even if it wanted to
    '    so-reuseport: no', // a port clash must fail loudly, not share the port
  ];
}

export interface UnboundConfigOptions {
  /** unbound.conf text appended after the harness's own `server:` lines (e.g. a README recipe). */
  config: string;
  /**
   * Turns DNSSEC validation on (`module-config: "validator iterator"`) with this root trust anchor
   * (DS or DNSKEY records in zone-file form), written to the temp dir and given as
   * `auto-trust-anchor-file`, as Debian's unbound does with /usr/share/dns/root.key.
   */
  trustAnchor?: string;
  bin?: string;
  verbosity?: number;
}

/**
 * unbound with the given configuration on top of a loopback-only harness. Nothing else is set:
 * no stub zones, no `do-not-query-localhost`, no local zones; the configuration must bring them.
 */
export function startUnboundWithConfig({ config, trustAnchor, bin, verbosity = 1 }: UnboundConfigOptions): Promise<Daemon> {
  return unboundDaemon(bin, verbosity, (dir) => ({
    files: trustAnchor === undefined ? {} : { 'root.key': trustAnchor },
    lines: [
      trustAnchor === undefined ? '    module-config: "iterator"' : '    module-config: "validator iterator"',
      ...(trustAnchor === undefined ? [] : [`    auto-trust-anchor-file: "${dir}/root.key"`]),
      'remote-control:',
      '    control-enable: no',
      '',
      config,
    ],
  }));
}

/**
 * The root zone's trust anchor: /usr/share/dns/root.key (Debian's dns-root-data, which unbound's
 * package uses) when installed, else the IANA root KSK DS records (KSK-2017 and KSK-2024), which is
 * the same anchor in DS form.
 */
export function rootTrustAnchor(path = '/usr/share/dns/root.key'): string {
  if (existsSync(path)) return readFileSync(path, 'utf8');
  return [
    '. IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D',
    '. IN DS 38696 8 2 683D2D0ACB8C9B712A1948B27F741219298D0A450D612C483AF444A4C0FB2B16',
    '',
  ].join('\n');
}

export interface DnsmasqConfigOptions {
  /** dnsmasq.conf text (e.g. a README recipe), written to the temp dir and given as --conf-file. */
  config: string;
  /** More command-line options, e.g. `--stop-dns-rebind` as a router runs it. */
  args?: readonly string[];
  bin?: string;
}

/** dnsmasq with the given configuration file on loopback; no resolv.conf, no hosts file. */
export function startDnsmasqWithConfig({ config, args = [], bin }: DnsmasqConfigOptions): Promise<Daemon> {
  return startDaemon({
    name: 'dnsmasq',
    bin: bin ?? findProgram('dnsmasq') ?? 'dnsmasq',
    setup: (dir, port) => ({
      args: [
        '--keep-in-foreground', `--conf-file=${join(dir, 'dnsmasq.conf')}`, '--no-resolv', '--no-hosts',
        '--bind-interfaces', `--listen-address=${HOST}`, `--port=${port}`,
        `--pid-file=${join(dir, 'dnsmasq.pid')}`, '--log-queries', '--log-facility=-', ...args,
      ],
      files: { 'dnsmasq.conf': config },
    }),
  });
}

export interface NamedOptions {
  /** Statements inside `options { }` after the harness's own (e.g. `validate-except { ... };`). */
  options?: string;
  /** Top-level statements, e.g. zone statements. */
  config: string;
  bin?: string;
}

/**
 * BIND's named as a validating recursive resolver (`dnssec-validation auto`, its built-in root key)
 * on 127.0.0.1 at a free port. Its `port` option is that port too, which is also the port named
 * sends queries to when a server is given without one (static-stub `server-addresses`). Queries
 * leave from 127.0.0.1 only, so nothing reaches beyond loopback; no control channel.
 */
export function startNamed({ options = '', config, bin }: NamedOptions): Promise<Daemon> {
  return startDaemon({
    name: 'named',
    bin: bin ?? findProgram('named') ?? 'named',
    setup: (dir, port) => ({
      args: ['-g', '-n', '1', '-c', join(dir, 'named.conf')],
      files: {
        'named.conf': [
          'options {',
          `    directory "${dir}";`,
          `    pid-file "${dir}/named.pid";`,
          `    session-keyfile "${dir}/session.key";`,
          `    port ${port};`,
          `    listen-on port ${port} { ${HOST}; };`,
          '    listen-on-v6 { none; };',
          `    query-source address ${HOST};`,
          '    recursion yes;',
          `    allow-query { ${HOST}; };`,
          `    allow-recursion { ${HOST}; };`,
          '    dnssec-validation auto;',
          options,
          '};',
          'controls { };',
          config,
          '',
        ].join('\n'),
      },
    }),
    // Until "running", named may still be loading; a DNS probe would recurse (and wait) instead.
    // 127.in-addr.arpa is one of named's automatic empty zones: answered at once, without recursion.
    ready: async (p, log) => /\brunning\s*$/m.test(log()) && dnsProbe(p, '127.in-addr.arpa.', 1000),
    readyTimeoutMs: 20_000,
  });
}

export interface HaproxyOptions {
  /** haproxy.cfg sections after the harness's `global` (runtime API socket) and `defaults`. */
  config: string;
  bin?: string;
}

/** The HAProxy runtime API socket of a daemon started by startHaproxy. */
export const haproxySocket = (d: Daemon): string => join(d.dir, 'haproxy.sock');

/** Sends one runtime API command (`show servers state web`) and returns the whole reply. */
export function haproxyCommand(socketPath: string, command: string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(socketPath);
    let out = '';
    const timer = setTimeout(() => { sock.destroy(); reject(new Error(`haproxy runtime API: no reply to '${command}' in ${timeoutMs} ms`)); }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.end(`${command}\n`));
    sock.on('data', (d: string) => { out += d; });
    sock.on('error', (e) => { clearTimeout(timer); reject(e); });
    sock.on('close', () => { clearTimeout(timer); resolve(out); });
  });
}

/**
 * HAProxy in the foreground (`-db`) with a runtime API socket in its temp dir and a `frontend`
 * listening on 127.0.0.1 at the daemon's port, sending to `backend web`.
 */
export function startHaproxy({ config, bin }: HaproxyOptions): Promise<Daemon> {
  let socketPath = '';
  return startDaemon({
    name: 'haproxy',
    bin: bin ?? findProgram('haproxy') ?? 'haproxy',
    setup: (dir, port) => {
      socketPath = join(dir, 'haproxy.sock');
      return {
        args: ['-db', '-f', join(dir, 'haproxy.cfg')],
        files: {
          'haproxy.cfg': [
            'global',
            `    stats socket ${socketPath} mode 600 level admin`,
            `    pidfile ${join(dir, 'haproxy.pid')}`,
            '    log stderr format raw local0 info', // resolution and server state changes, for log()
            '',
            'defaults',
            '    log global',
            '    mode http',
            '    timeout connect 1s',
            '    timeout client 5s',
            '    timeout server 5s',
            '',
            'frontend fe',
            `    bind ${HOST}:${port}`,
            '    default_backend web',
            '',
            config,
            '',
          ].join('\n'),
        },
      };
    },
    ready: async () => {
      try {
        return /^Name: HAProxy$/m.test(await haproxyCommand(socketPath, 'show info', 1000));
      } catch {
        return false;
      }
    },
  });
}
