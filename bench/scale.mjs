#!/usr/bin/env node
// Zone layer at scale (see bench/README.md): for each catalog size, parse and full-build time,
// one-service commit time, RSS, event-loop delay, DNS latency under 10 changes/s, and NSD's load
// time and RSS for the same zone, next to the targets. One table on stdout (and bench/out/).
// Usage: npm run bench:scale [-- --sizes 1000,10000,50000] [--churn-seconds 20] [--baseline-seconds 10]
//        [--warmup-seconds 2] [--qps 5000] [--changes-per-second 10] [--commits 100] [--instances 5]
//        [--server-config '{"response_cache_mb":0}']   (config-file keys for the in-process App)
// Talks to 127.0.0.1 only; every process it starts is stopped by PID on every path; its temp
// directory is removed at the end.
import { fork, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { firstAnswer, freePort, udpDrops } from './dns-wire.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = dirname(HERE);
const T_START = performance.now();

const { values: opt } = parseArgs({
  options: {
    sizes: { type: 'string', default: '1000,10000,50000' },
    instances: { type: 'string', default: '5' },
    commits: { type: 'string', default: '100' },
    'churn-seconds': { type: 'string', default: '20' },
    'baseline-seconds': { type: 'string', default: '10' },
    'warmup-seconds': { type: 'string', default: '2' },
    'changes-per-second': { type: 'string', default: '10' },
    qps: { type: 'string', default: '5000' },
    'server-config': { type: 'string', default: '{}' },
    help: { type: 'boolean', default: false },
  },
});
const USAGE = 'usage: node bench/scale.mjs [--sizes 1000,10000,50000] [--churn-seconds 20] [--baseline-seconds 10] [--warmup-seconds 2]\n' +
  '                         [--qps 5000] [--changes-per-second 10] [--commits 100] [--instances 5] [--server-config JSON]\n';
if (opt.help) { process.stdout.write(USAGE); process.exit(0); }
const SIZES = opt.sizes.split(',').map((s) => Number(s.trim().replace(/_/g, '')));
const INSTANCES = Number(opt.instances);
const COMMITS = Number(opt.commits);
const CHURN_S = Number(opt['churn-seconds']);
const BASE_S = Number(opt['baseline-seconds']);
const WARMUP_S = Number(opt['warmup-seconds']);
const CHANGES = Number(opt['changes-per-second']);
const QPS = Number(opt.qps);
let SERVER_CONFIG;
try { SERVER_CONFIG = JSON.parse(opt['server-config']); } catch { SERVER_CONFIG = null; }
const posInt = (x) => Number.isInteger(x) && x > 0;
// 50,000 x 5 is a 212 MB catalog file and about 1 GB in the generator; far beyond that only exhausts memory.
const MAX_SIZE = 200_000;
if (!SIZES.every((n) => posInt(n) && n <= MAX_SIZE) || !posInt(INSTANCES) || !posInt(COMMITS) || !posInt(CHURN_S) || !posInt(CHANGES) || !posInt(QPS) || CHURN_S > 600
  || typeof SERVER_CONFIG !== 'object' || SERVER_CONFIG === null || Array.isArray(SERVER_CONFIG)
  || !(Number.isInteger(BASE_S) && BASE_S >= 0 && BASE_S <= 600) || !(Number.isInteger(WARMUP_S) && WARMUP_S >= 0 && WARMUP_S <= 60)) {
  process.stderr.write(`${USAGE}sizes: 1-${MAX_SIZE} services\n`);
  process.exit(2);
}
for (const f of ['dist/app.js', 'dist/main.js']) {
  if (!existsSync(join(ROOT, f))) { process.stderr.write(`bench:scale: ${f} missing; run npm run build first\n`); process.exit(2); }
}
// Extra node flags for the in-process worker only, for diagnosis (e.g. --trace-gc; NODE_OPTIONS refuses it).
const WORKER_FLAGS = (process.env.BENCH_SCALE_WORKER_FLAGS ?? '').split(/\s+/).filter(Boolean);
const HAVE_NSD = spawnSync('nsd', ['-v'], { stdio: 'ignore' }).error === undefined;

const log = (msg) => process.stderr.write(`bench:scale: ${msg}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const r0 = (x) => Math.round(x);

// ---- processes: every child is tracked by PID and stopped on every path --------------------

const children = new Map(); // pid -> { child, name }
let tmp = null;

function track(child, name) {
  if (child.pid === undefined) throw new Error(`${name}: could not start`);
  children.set(child.pid, { child, name });
  child.once('exit', () => children.delete(child.pid));
  return child;
}

const running = (child) => child.exitCode === null && child.signalCode === null;

/**
 * TERM, then KILL after `graceMs`; resolves once the child has exited. Its own children (NSD forks
 * a server and xfrd) are stopped by their PIDs too if they outlive it.
 */
async function stop(child, graceMs = 10_000) {
  if (!running(child)) return;
  const kids = descendants(child.pid).map((pid) => [pid, cmdline(pid)]);
  const exited = new Promise((r) => child.once('exit', r));
  try { process.kill(child.pid, 'SIGTERM'); } catch { /* already gone */ }
  if (!(await Promise.race([exited.then(() => true), sleep(graceMs).then(() => false)]))) {
    log(`pid ${child.pid} did not stop in ${graceMs} ms, killing`);
    try { process.kill(child.pid, 'SIGKILL'); } catch { /* already gone */ }
    await exited;
  }
  await sleep(100);
  // Only a PID that still runs the same command line (not a reused PID).
  for (const [pid, cmd] of kids) if (cmd !== null && cmdline(pid) === cmd) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
}

function cleanupSync() {
  for (const [pid] of children) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
  children.clear();
  if (tmp) { rmSync(tmp, { recursive: true, force: true }); tmp = null; }
}
process.on('exit', cleanupSync);
for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143]]) {
  process.on(sig, () => { log(`${sig}: stopping`); void stopAll().finally(() => process.exit(code)); });
}
async function stopAll() {
  await Promise.all([...children.values()].map(({ child }) => stop(child, 3000)));
  cleanupSync();
}

/** Resolves with the child's exit code; rejects after `timeoutMs`. */
function exitOf(child, name, timeoutMs) {
  if (!running(child)) return Promise.resolve(child.exitCode);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} still running after ${timeoutMs} ms`)), timeoutMs);
    child.once('exit', (code, sig) => { clearTimeout(timer); resolve(code ?? sig); });
  });
}

/** The next IPC message of `type` from `child`; rejects if it exits first or after `timeoutMs`. */
function message(child, type, name, timeoutMs) {
  return new Promise((resolve, reject) => {
    const done = () => { clearTimeout(timer); child.off('message', onMsg); child.off('exit', onExit); };
    const onMsg = (m) => { if (m?.type === type) { done(); resolve(m); } };
    const onExit = (code, sig) => { done(); reject(new Error(`${name} exited (${code ?? sig}) before '${type}'`)); };
    const timer = setTimeout(() => { done(); reject(new Error(`${name}: no '${type}' within ${timeoutMs} ms`)); }, timeoutMs);
    child.on('message', onMsg);
    child.once('exit', onExit);
  });
}

/** JSON lines from a child's stdout, one at a time. */
function jsonLines(child, name) {
  const queue = [], waiting = [];
  let ended = false;
  createInterface({ input: child.stdout }).on('line', (l) => {
    let v;
    try { v = JSON.parse(l); } catch { log(`${name}: ${l}`); return; }
    if (waiting.length) waiting.shift().resolve(v); else queue.push(v);
  }).on('close', () => { ended = true; for (const w of waiting.splice(0)) w.reject(new Error(`${name} ended its output early`)); });
  return (timeoutMs) => {
    if (queue.length) return Promise.resolve(queue.shift());
    if (ended) return Promise.reject(new Error(`${name} ended its output early`));
    return new Promise((resolve, reject) => {
      const w = { resolve: (v) => { clearTimeout(t); resolve(v); }, reject: (e) => { clearTimeout(t); reject(e); } };
      const t = setTimeout(() => { waiting.splice(waiting.indexOf(w), 1); reject(new Error(`${name}: no output within ${timeoutMs} ms`)); }, timeoutMs);
      waiting.push(w);
    });
  };
}

// ---- /proc: process trees and their RSS -----------------------------------------------------

function descendants(pid) {
  const kids = new Map();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!kids.has(ppid)) kids.set(ppid, []);
      kids.get(ppid).push(Number(e));
    } catch { /* exited meanwhile */ }
  }
  const out = [];
  for (let todo = [pid]; todo.length;) for (const k of kids.get(todo.pop()) ?? []) { out.push(k); todo.push(k); }
  return out;
}

function cmdline(pid) {
  try { return readFileSync(`/proc/${pid}/cmdline`, 'latin1'); } catch { return null; }
}

function rssKb(pid) {
  try { return Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0); } catch { return 0; }
}

// ---- steps ------------------------------------------------------------------------------------

async function generate(dir, size) {
  const nodes = Math.max(1000, Math.ceil(size / 10), INSTANCES);
  const t = performance.now();
  const g = track(spawn(process.execPath, [join(HERE, 'gen-catalog.mjs'), dir, '--services', String(size), '--instances', String(INSTANCES),
    '--nodes', String(nodes), '--queries', '20000'], { stdio: ['ignore', 2, 2] }), 'gen-catalog');
  const code = await exitOf(g, 'gen-catalog', 300_000);
  if (code !== 0) throw new Error(`gen-catalog exited with ${code}`);
  return { nodes, genMs: r0(performance.now() - t) };
}

/**
 * In-process figures (scale-worker.mjs), then DNS latency from dns-load.mjs in phases: the load
 * alone (baseline, if asked for), then the load while the worker commits CHANGES changes a second.
 */
async function inProcess(dir) {
  const w = track(fork(join(HERE, 'scale-worker.mjs'), [join(dir, 'catalog.json'), String(COMMITS), JSON.stringify(SERVER_CONFIG)],
    { execArgv: ['--expose-gc', ...WORKER_FLAGS], stdio: ['ignore', 2, 2, 'ipc'] }), 'scale-worker');
  let load = null;
  try {
    const { type: _s, ...serving } = await message(w, 'serving', 'scale-worker', 600_000);
    log(`built: ${serving.records} records, ${serving.buildMs} ms; ${COMMITS} commits p50 ${serving.commitP50Ms} ms`);
    const phases = {};
    for (const [name, seconds, rate] of [['baseline', BASE_S, 0], ['churn', CHURN_S, CHANGES]]) {
      if (seconds === 0) continue;
      log(`${name}: ${QPS} qps and ${rate} changes/s for ${seconds} s (after ${WARMUP_S} s of load not recorded)`);
      const drops0 = udpDrops([serving.port]);
      load = track(spawn(process.execPath, [join(HERE, 'dns-load.mjs'), '--port', String(serving.port), '--queries', join(dir, 'queries.txt'),
        '--rate', String(QPS), '--seconds', String(seconds), '--warmup', String(WARMUP_S)], { stdio: ['ignore', 'pipe', 'inherit'] }), 'dns-load');
      const next = jsonLines(load, 'dns-load');
      await next(WARMUP_S * 1000 + 30_000); // {"ready":true}: warm-up done, recording
      const result = message(w, 'phase', 'scale-worker', seconds * 1000 + 120_000);
      w.send({ type: 'phase', seconds, rate });
      const [{ type: _p, ...res }, dns] = await Promise.all([result, next(seconds * 1000 + 60_000)]);
      await exitOf(load, 'dns-load', 30_000);
      load = null;
      phases[name] = { ...res, dns, serverDrops: udpDrops([serving.port]) - drops0 };
    }
    const stopped = message(w, 'stopped', 'scale-worker', 30_000);
    w.send({ type: 'stop' });
    const { type: _t, ...counters } = await stopped;
    await exitOf(w, 'scale-worker', 30_000);
    return { ...serving, ...counters, ...phases };
  } finally {
    if (load) await stop(load);
    await stop(w);
  }
}

/**
 * Time from spawn to the first authoritative answer for a service of the catalog (`name`, type A),
 * and to the first SOA answer (the zone complete: catalog-dns answers service names from the
 * catalog while its zone is built, zone/provisional.ts); then the process tree's RSS; then stops it.
 * `@PORT@` in argv is replaced by `port` (default: a free one).
 */
async function startup(name, dir, argv, service, port = null) {
  port ??= await freePort();
  const logPath = join(dir, `${name}.out`);
  const fd = openSync(logPath, 'a');
  const t0 = performance.now();
  let child;
  try {
    child = track(spawn(argv[0], argv.slice(1).map((a) => a.replace('@PORT@', String(port))), { stdio: ['ignore', fd, fd] }), name);
  } finally {
    closeSync(fd);
  }
  try {
    const probe = (q) => firstAnswer({ port, ...q, everyMs: 5, alive: () => running(child), timeoutMs: 300_000 });
    const [at, soaAt] = await Promise.all([probe({ name: `${service}.service.consul`, type: 'A' }), probe({ name: 'consul', type: 'SOA' })]);
    await sleep(500); // let the process tree settle (NSD forks its server and xfrd processes)
    const tree = [child.pid, ...descendants(child.pid)];
    const rss = tree.reduce((n, pid) => n + rssKb(pid), 0);
    return { ms: r0(at - t0), soaMs: r0(soaAt - t0), rssMb: r0(rss / 1024), processes: tree.length };
  } catch (e) {
    log(`${name}: ${e.message}; its log:\n${readFileSync(logPath, 'utf8').split('\n').slice(-20).join('\n')}`);
    return null;
  } finally {
    await stop(child);
  }
}

function nsdConf(dir, port) {
  return `server:
    ip-address: 127.0.0.1@${port}
    do-ip6: no
    server-count: 1
    username: ""
    chroot: ""
    zonesdir: "${dir}"
    database: ""
    zonelistfile: "${dir}/zone.list"
    xfrdfile: "${dir}/xfrd.state"
    xfrdir: "${dir}"
    pidfile: "${dir}/nsd.pid"
    logfile: "${dir}/nsd.log"
    verbosity: 1
    # Debian's NSD has response rate limiting on by default: off, as in bench/run.sh.
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
remote-control:
    control-enable: no
zone:
    name: "consul"
    zonefile: "consul.zone"
`;
}

/** NSD 4 (`nsd -d`, one server process) loading the same zone as a zone file, as bench/run.sh runs it. */
async function nsd(dir, service) {
  if (!HAVE_NSD) return null;
  const nd = join(dir, 'nsd');
  mkdirSync(nd);
  writeFileSync(join(nd, 'consul.zone'), readFileSync(join(dir, 'consul.zone')));
  const port = await freePort();
  writeFileSync(join(nd, 'nsd.conf'), nsdConf(nd, port));
  return startup('nsd', nd, ['nsd', '-d', '-c', join(nd, 'nsd.conf')], service, port);
}

// ---- main -------------------------------------------------------------------------------------

async function main() {
  tmp = mkdtempSync(join(tmpdir(), 'catalog-dns-scale-'));
  const load0 = loadavg().map((x) => x.toFixed(1)).join(' ');
  log(`sizes ${SIZES.join(', ')} x ${INSTANCES}; temp dir ${tmp}; load average ${load0}`);
  const results = [];
  for (const size of SIZES) {
    const dir = join(tmp, String(size));
    mkdirSync(dir);
    try {
      log(`${size} services: generating`);
      const gen = await generate(dir, size);
      log(`${size} services: parse, build, commits (in process)`);
      const ip = await inProcess(dir);
      log(`${size} services: NSD`);
      // The service both servers are asked for first: one from the middle of the catalog.
      const service = `svc-${String(Math.floor(size / 2)).padStart(4, '0')}`;
      const n = await nsd(dir, service);
      log(`${size} services: catalog-dns from the catalog file`);
      const s = await startup('catalog-dns', dir, [process.execPath, join(ROOT, 'dist/main.js'), '--catalog-file', join(dir, 'catalog.json'),
        '--dns', '127.0.0.1:@PORT@', '--log-level', 'warn'], service);
      results.push({ size, ...gen, ...ip, nsd: n, start: s });
    } catch (e) {
      // The other sizes still run; this one's figures show as '-'.
      log(`${size} services failed: ${e.stack ?? e}`);
      results.push({ size, error: e.message });
      process.exitCode = 1;
    }
    rmSync(dir, { recursive: true, force: true });
  }
  const load1 = loadavg().map((x) => x.toFixed(1)).join(' ');
  const text = report(results, load0, load1);
  process.stdout.write(text);
  mkdirSync(join(HERE, 'out'), { recursive: true });
  writeFileSync(join(HERE, 'out', 'scale.txt'), text);
  writeFileSync(join(HERE, 'out', 'scale.json'), JSON.stringify(results, null, 1) + '\n');
}

// ---- report -----------------------------------------------------------------------------------

function report(results, load0, load1) {
  const at = (size) => results.find((r) => r.size === size && !r.error);
  const fmt = (v) => (v === null || v === undefined || Number.isNaN(v) ? '-' : typeof v === 'number' ? String(Math.round(v * 10) / 10) : String(v));
  const dnsRows = (ph, label) => [
    [`DNS ${label}: p50 / p99 (ms)`, (r) => r[ph] && `${fmt(r[ph].dns.p50)} / ${fmt(r[ph].dns.p99)}`, ph === 'churn' ? 'p99 < 5' : ''],
    [`DNS ${label}: p99.9 / max (ms)`, (r) => r[ph] && `${fmt(r[ph].dns.p999)} / ${fmt(r[ph].dns.max)}`, ph === 'churn' ? 'max < 50' : ''],
    ['  answered / sent', (r) => r[ph] && `${r[ph].dns.answered}/${r[ph].dns.sent}`, ''],
    ['  kernel drops at server / client', (r) => r[ph] && `${fmt(r[ph].serverDrops)} / ${fmt(r[ph].dns.clientDrops)}`, ''],
    ['  load client: qps, worst loop delay (ms)', (r) => r[ph] && `${r[ph].dns.achievedQps}, ${fmt(r[ph].dns.clientEldMaxMs)}`, ''],
    [`  server: worst event-loop delay (ms)`, (r) => r[ph]?.eldMs, ph === 'churn' ? '<= 50' : ''],
    [`  server: RSS max (MB)`, (r) => r[ph]?.rssMaxMb, ph === 'churn' ? '<= 256 @10k, <= 1024 @50k' : ''],
  ];
  const rows = [
    ['catalog file (MB)', (r) => r.fileMb, ''],
    ['records / names in the zone', (r) => `${r.records} / ${r.names}`, ''],
    ['catalog parse, parseCatalog (ms)', (r) => r.parseMs, ''],
    ['catalog read in slices, loadCatalog (a reload) (ms)', (r) => r.loadSlicedMs, ''],
    ['  worst event-loop delay (ms)', (r) => r.eldLoadMs, '<= 50'],
    ['full build, first commit result.ms (ms)', (r) => r.buildMs, '<= 1000 @10k, <= 5000 @50k'],
    ['  longest slice, maxSliceMs (ms)', (r) => r.buildMaxSliceMs, ''],
    ['  worst event-loop delay (ms)', (r) => r.eldBuildMs, '<= 50'],
    ['RSS after the build, after gc() (MB)', (r) => r.rssBuiltMb, ''],
    [`one-service commit, ${COMMITS} in a row: p50 (ms)`, (r) => r.commitP50Ms, '<= 5, flat with size'],
    ['  max (ms)', (r) => r.commitMaxMs, ''],
    ['  units per commit (min-max)', (r) => `${r.commitUnitsMin}-${r.commitUnitsMax}`, ''],
    ['  worst event-loop delay (ms)', (r) => r.eldCommitsMs, ''],
    ...(BASE_S ? dnsRows('baseline', `${QPS} qps, no changes`) : []),
    [`churn: ${CHANGES} commits/s, p50 / max (ms)`, (r) => `${fmt(r.churn.commitP50Ms)} / ${fmt(r.churn.commitMaxMs)}`, ''],
    ...dnsRows('churn', `${QPS} qps + churn`),
    ['NSD: spawn to first answer, a service A (ms)', (r) => r.nsd?.ms, ''],
    ['NSD: RSS, all processes (MB)', (r) => (r.nsd ? `${r.nsd.rssMb} (${r.nsd.processes})` : null), ''],
    ['main.js from the file: spawn to first answer, same service A (ms)', (r) => r.start?.ms, '<= 3x NSD @10k'],
    ['  / NSD', (r) => (r.start && r.nsd ? (r.start.ms / r.nsd.ms).toFixed(2) : null), ''],
    ['  spawn to first SOA: zone complete (ms)', (r) => r.start?.soaMs, ''],
    ['  / NSD', (r) => (r.start && r.nsd ? (r.start.soaMs / r.nsd.ms).toFixed(2) : null), ''],
    ['  RSS 0.5 s after first answer (MB)', (r) => r.start?.rssMb, ''],
    ['gen-catalog, not measured code (ms)', (r) => r.genMs, ''],
  ];
  const head = ['', ...results.map((r) => `${r.size.toLocaleString('en-US')} x ${INSTANCES}`), 'target'];
  const value = (f, r) => { try { return f(r); } catch { return null; } }; // a failed size has no figures
  const table = rows.map(([label, f, target]) => [label, ...results.map((r) => fmt(value(f, r))), target]);
  const widths = head.map((_, i) => Math.max(head[i].length, ...table.map((row) => row[i].length)));
  const line = (row) => row.map((c, i) => (i === 0 || i === row.length - 1 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd();
  const out = [];
  out.push('', `zone layer at scale: services x ${INSTANCES} instances, nodes = max(1000, services/10); DNS load ${QPS} qps UDP+EDNS0 ` +
    `from another process (${WARMUP_S} s warm-up not recorded)${BASE_S ? `, ${BASE_S} s without changes` : ''}, then ${CHURN_S} s ` +
    `while ${CHANGES} one-service changes/s are committed` +
    (Object.keys(SERVER_CONFIG).length ? `; in-process server config ${JSON.stringify(SERVER_CONFIG)}` : ''));
  out.push(line(head), ...table.map(line));

  const ran = results.filter((r) => !r.error);
  if (ran.length > 1) {
    const a = ran[0], b = ran[ran.length - 1];
    out.push('', `one-service commit p50 growth, ${b.size} vs ${a.size} services: x${(b.commitP50Ms / Math.max(a.commitP50Ms, 0.1)).toFixed(2)} ` +
      `(services x${b.size / a.size})`);
  }
  out.push('', 'worst DNS latency in each second (ms):');
  for (const r of ran) {
    for (const ph of ['baseline', 'churn']) if (r[ph]) out.push(`  ${String(r.size).padStart(6)} ${ph.padEnd(8)} ${r[ph].dns.worstBySecond.join(' ')}`);
  }

  // Targets, checked at the size they are stated for.
  const checks = [];
  const check = (size, what, value, ok) => {
    if (at(size) && value !== null && value !== undefined) checks.push(`  ${ok(value) ? 'ok  ' : 'MISS'}  ${what} @${size / 1000}k: ${fmt(value)}`);
  };
  const k10 = at(10000), k50 = at(50000);
  check(10000, 'full build <= 1000 ms', k10?.buildMs, (v) => v <= 1000);
  check(10000, 'RSS serving under load <= 256 MB', k10?.churn.rssMaxMb, (v) => v <= 256);
  check(10000, 'one-service commit p50 <= 5 ms', k10?.commitP50Ms, (v) => v <= 5);
  check(10000, 'worst event-loop delay, full build <= 50 ms', k10?.eldBuildMs, (v) => v <= 50);
  check(10000, 'worst event-loop delay, reading the file in slices <= 50 ms', k10?.eldLoadMs, (v) => v <= 50);
  check(10000, 'worst event-loop delay, churn <= 50 ms', k10?.churn.eldMs, (v) => v <= 50);
  check(10000, 'DNS p99 under churn < 5 ms', k10?.churn.dns.p99, (v) => v < 5);
  check(10000, 'DNS worst query under churn < 50 ms', k10?.churn.dns.max, (v) => v < 50);
  check(10000, 'start from the file <= 3x NSD load time', k10?.start && k10?.nsd ? k10.start.ms / k10.nsd.ms : null, (v) => v <= 3);
  check(50000, 'RSS serving under load <= 1024 MB', k50?.churn.rssMaxMb, (v) => v <= 1024);
  check(50000, 'full build <= 5000 ms', k50?.buildMs, (v) => v <= 5000);
  if (checks.length) out.push('', 'targets:', ...checks);

  const warn = results.filter((r) => r.error).map((r) => `${r.size}: FAILED: ${r.error}`);
  for (const r of ran) {
    for (const ph of ['baseline', 'churn']) {
      const d = r[ph]?.dns;
      if (!d) continue;
      if (d.answered < 0.99 * d.sent) warn.push(`${r.size} ${ph}: only ${d.answered} of ${d.sent} queries answered`);
      const other = Object.entries(d.rcodes).filter(([k]) => k !== 'NOERROR' && k !== 'NXDOMAIN');
      if (other.length) warn.push(`${r.size} ${ph}: unexpected rcodes ${JSON.stringify(Object.fromEntries(other))}`);
      if (d.achievedQps < 0.95 * QPS) warn.push(`${r.size} ${ph}: the load generator reached ${d.achievedQps} of ${QPS} qps`);
      if (d.sendErrors) warn.push(`${r.size} ${ph}: the load generator had ${d.sendErrors} socket errors (last: ${d.lastError})`);
    }
    if (r.commitsUnchanged) warn.push(`${r.size}: ${r.commitsUnchanged} of ${r.commits} changes left the zone unchanged`);
    if (r.parseWarnings) warn.push(`${r.size}: ${r.parseWarnings} catalog warnings`);
    if (r.serverInternalErrors) warn.push(`${r.size}: ${r.serverInternalErrors} internal errors while serving`);
  }
  if (warn.length) out.push('', ...warn.map((w) => `WARNING: ${w}`));
  const cpus = readFileSync('/proc/cpuinfo', 'utf8').split('\n').filter((l) => l.startsWith('processor')).length;
  out.push('', `load average (1/5/15 min) at start ${load0}, at end ${load1}; ${cpus} CPUs; node ${process.version}`,
    `total run time ${((performance.now() - T_START) / 1000).toFixed(1)} s`, '');
  return out.join('\n');
}

main().then(
  () => stopAll(),
  async (e) => { log(`failed: ${e.stack ?? e}`); await stopAll(); process.exitCode = 1; },
);
