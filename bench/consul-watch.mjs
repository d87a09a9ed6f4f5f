#!/usr/bin/env node
// The live-Consul watch strategy measured end to end: catalog-dns (dist/main.js, its own process)
// following the test Consul (test/support/fake-consul.ts, its own process), at 100, 1,000 and 10,000
// services x 5 instances. Per size it prints:
//   - Consul side: connections open from catalog-dns, requests/s and bytes/s sent by the fake, at rest
//     and under a steady rate of changes (check flips, registrations, deregistrations);
//   - catalog-dns side: time from spawn to its first DNS answer (it listens only after the full initial
//     sync), time until every watch is parked, RSS;
//   - freshness: for single changes made one at a time, the time from the write in the fake to the
//     first DNS answer that shows it (the affected name polled over UDP with EDNS every --poll-ms);
//   - DNS latency of every query at a fixed rate from a separate load process while the changes arrive.
//
//   npm run bench:consul                                  # builds dist/, all three sizes
//   node bench/consul-watch.mjs --sizes 100,1000          # after a build
//   node bench/consul-watch.mjs --sizes 10000 --rest-seconds 10 --churn-seconds 15 --changes 60
//
// Everything on 127.0.0.1; every child is stopped by PID on every path (Ctrl-C included); the compiled
// copy of the fake and the logs live in a temp dir removed on exit. See bench/README.md.
import { execFileSync, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { prng } from './prng.mjs';
import { freePort } from './dns-wire.mjs';

const INSTANCES = 5;
const KINDS = ['register', 'deregister', 'health'];
const HOST = '127.0.0.1';
const SELF = fileURLToPath(import.meta.url);
const ROOT = join(dirname(SELF), '..');

// ---------------------------------------------------------------------------------------------
// Shared helpers


/**
 * Node n's address. dense: 250 nodes per /24 (10.1.0.1 ...), as nodes sit in a datacenter's subnets;
 * sparse: every node in a /24 of its own (10.x.y.1), so catalog-dns has one default reverse zone per node.
 */
const addressing = {
  dense: (n) => `10.1.${Math.floor(n / 250)}.${(n % 250) + 1}`,
  sparse: (n) => `10.${(n >> 8) & 255}.${n & 255}.1`,
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A query for `name`/`type`, EDNS0 with a 4096-byte payload (RFC 6891 §6.1.2), so answers are not trimmed. */
async function encoder() {
  const { default: packet } = await import('dns-packet');
  return {
    encode: (name, type, id) => packet.encode({ type: 'query', id, flags: 0, questions: [{ type, name }],
      additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096 }] }),
    decode: (buf) => packet.decode(buf),
  };
}

// ---------------------------------------------------------------------------------------------
// Child 1: the test Consul, loaded with the catalog, driven over IPC (every request carries an id,
// the reply echoes it).

async function fakeChild(modulePath, services, seed, layout) {
  const { FakeConsul } = await import(pathToFileURL(modulePath).href);
  const nodeAddress = addressing[layout];
  const consul = new FakeConsul();
  const rnd = prng(seed);
  const t0 = performance.now();
  for (let n = 0; n < services; n++) {
    consul.registerNode({ Node: `node-${n}`, Address: nodeAddress(n) }, { checks: [{ CheckID: 'serfHealth', Status: 'passing' }] });
  }
  // The model of what the fake holds, so every change is one a DNS answer shows.
  const all = [];
  const bySvc = Array.from({ length: services }, () => []);
  const passing = new Int32Array(services);
  const registered = pool();
  const deregistered = pool();
  const addInstance = (s, k) => {
    const node = (s * INSTANCES + k) % services;
    const inst = { s, k, node, id: `svc-${s}-${k}`, address: nodeAddress(node), status: 'passing', reg: false };
    all.push(inst);
    bySvc[s].push(inst);
    return inst;
  };
  const register = (inst) => {
    consul.registerService(`node-${inst.node}`, { ID: inst.id, Service: `svc-${inst.s}`, Port: 8000 + inst.k, Tags: ['v1'] },
      { checks: [{ CheckID: `service:${inst.id}`, Name: `service ${inst.id}`, Status: 'passing' }] });
    inst.reg = true;
    inst.status = 'passing';
    passing[inst.s]++;
    deregistered.remove(inst);
    registered.add(inst);
  };
  for (let s = 0; s < services; s++) for (let k = 0; k < INSTANCES; k++) register(addInstance(s, k));
  const loadMs = performance.now() - t0;

  const counts = { register: 0, deregister: 0, health: 0, skipped: 0 };
  /** One change of `kind`; returns the name it affects, the address and whether DNS should now show it. */
  const change = (kind) => {
    for (let tries = 0; tries < 100; tries++) {
      if (kind === 'register') {
        let inst = deregistered.size ? deregistered.pick(rnd) : null;
        if (!inst) {
          const s = Math.floor(rnd() * services);
          if (bySvc[s].length >= services) continue; // every node already has one (never at these sizes)
          inst = addInstance(s, bySvc[s].length);
        }
        register(inst);
        counts.register++;
        return { kind, service: inst.s, address: inst.address, present: true };
      }
      const inst = registered.pick(rnd);
      // Keep one passing instance per service, so no name ever goes away and every change shows.
      if (kind === 'deregister') {
        if (inst.status !== 'passing' || passing[inst.s] < 2) continue;
        consul.deregisterService(`node-${inst.node}`, inst.id);
        inst.reg = false;
        passing[inst.s]--;
        registered.remove(inst);
        deregistered.add(inst);
        counts.deregister++;
        return { kind, service: inst.s, address: inst.address, present: false };
      }
      if (inst.status === 'passing' && passing[inst.s] < 2) continue;
      const status = inst.status === 'passing' ? 'critical' : 'passing';
      consul.setCheck(`node-${inst.node}`, `service:${inst.id}`, status);
      passing[inst.s] += status === 'passing' ? 1 : -1;
      inst.status = status;
      counts.health++;
      return { kind, service: inst.s, address: inst.address, present: status === 'passing' };
    }
    counts.skipped++;
    return null;
  };

  const snapshot = () => {
    const c = consul.counters;
    let requests = 0;
    for (const v of Object.values(c.requests)) requests += v;
    return { requests, byEndpoint: { ...c.requests }, responses: { ...c.responses }, bytes: consul.bytesSent(),
      connections: c.connections, connectionsTotal: c.connectionsTotal, parked: c.parked, wakeups: c.wakeups,
      timeouts: c.timeouts, rss: process.memoryUsage().rss, changes: { ...counts } };
  };

  const handlers = {
    counters: () => snapshot(),
    'until-parked': async (m) => { await consul.until((c) => c.parked >= m.n, m.timeoutMs); return snapshot(); },
    change: (m) => change(m.kind),
    /** `rate` random changes per second for `seconds`, on a schedule (a late tick catches up). */
    churn: async (m) => {
      const total = Math.round(m.rate * m.seconds);
      const start = performance.now();
      let done = 0, late = 0;
      while (done < total) {
        const due = Math.min(total, Math.floor(((performance.now() - start) * m.rate) / 1000) + 1);
        late = Math.max(late, due - done - 1);
        for (; done < due; done++) change(KINDS[Math.floor(rnd() * KINDS.length)]);
        const next = start + (done * 1000) / m.rate;
        await sleep(Math.max(0, next - performance.now()));
      }
      return { changes: done, ms: performance.now() - start, maxLate: late };
    },
    close: async () => { await consul.close(); return {}; },
  };
  process.on('message', async (m) => {
    let reply;
    try {
      reply = { id: m.id, ok: true, value: await handlers[m.type](m) };
    } catch (e) {
      reply = { id: m.id, ok: false, error: e?.message ?? String(e) };
    }
    process.send(reply, () => { if (m.type === 'close') process.disconnect(); });
  });
  await consul.start();
  process.send({ id: 0, ok: true, value: { port: consul.port, loadMs, instances: all.length, rss: process.memoryUsage().rss } });
}

/** A set with O(1) add, remove and uniform random pick. */
function pool() {
  const items = [];
  const at = new Map();
  return {
    get size() { return items.length; },
    add(x) { if (at.has(x)) return; at.set(x, items.length); items.push(x); },
    remove(x) {
      const i = at.get(x);
      if (i === undefined) return;
      const last = items.pop();
      if (last !== x) { items[i] = last; at.set(last, i); }
      at.delete(x);
    },
    pick(rnd) { return items[Math.floor(rnd() * items.length)]; },
  };
}

// ---------------------------------------------------------------------------------------------
// Child 2: open-loop UDP load at a fixed rate, every query's latency recorded. Prints a JSON line
// {"ready":true} when the recorded part starts, and one with the figures at the end.

async function loadChild(o) {
  const { encode } = await encoder();
  const rnd = prng(o.seed);
  const SOCKETS = 4;
  // A ring of queries over random services, A and SRV alike.
  const templates = Array.from({ length: 4096 }, (_, i) => {
    const s = Math.floor(rnd() * o.services);
    return i % 2 ? encode(`svc-${s}.service.consul`, 'A', 0) : encode(`_svc-${s}._tcp.service.consul`, 'SRV', 0);
  });
  const total = Math.ceil(o.qps * o.seconds);
  const lat = new Float64Array(total + 16);
  const rcodes = {};
  const worst = new Float64Array(Math.ceil(o.seconds) + 1);
  let answered = 0, sent = 0, seq = 0, recording = false, t0 = 0, truncated = 0;
  const sendAt = Array.from({ length: SOCKETS }, () => new Float64Array(65536).fill(-1));
  const nextId = new Uint16Array(SOCKETS);
  const socks = await Promise.all(Array.from({ length: SOCKETS }, (_, s) => new Promise((resolve, reject) => {
    const sock = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
    sock.once('error', reject);
    sock.on('message', (msg) => {
      const now = performance.now();
      if (msg.length < 12) return;
      const id = msg.readUInt16BE(0);
      const t = sendAt[s][id];
      if (t < 0) return;
      sendAt[s][id] = -1;
      if (!recording || t < t0) return;
      lat[answered++] = now - t;
      const sec = Math.min(worst.length - 1, Math.floor((t - t0) / 1000));
      if (now - t > worst[sec]) worst[sec] = now - t;
      if (msg[2] & 0x02) truncated++;
      const rc = msg[3] & 0x0f;
      rcodes[rc] = (rcodes[rc] ?? 0) + 1;
    });
    sock.bind(0, HOST, () => { sock.removeListener('error', reject); sock.on('error', () => {}); resolve(sock); });
  })));
  const sendOne = () => {
    const s = seq % SOCKETS;
    const id = nextId[s]++;
    const buf = Buffer.from(templates[seq++ % templates.length]);
    buf.writeUInt16BE(id, 0);
    sendAt[s][id] = performance.now();
    socks[s].send(buf, o.port, HOST);
  };
  // Open loop: every millisecond or so, send what the rate says is due by now (a slow answer does not
  // slow the sender); a burst is capped so answers get read in between.
  let maxBehind = 0;
  const paced = (ms, record) => new Promise((resolve) => {
    const start = performance.now();
    const n = Math.ceil((o.qps * ms) / 1000);
    let done = 0;
    const tick = () => {
      const elapsed = performance.now() - start;
      const due = Math.min(n, Math.floor((elapsed * o.qps) / 1000));
      if (record) maxBehind = Math.max(maxBehind, due - done);
      for (let b = 0; done < due && b < 500; b++, done++) { sendOne(); if (record) sent++; }
      if (done >= n || elapsed > ms + 2000) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
  await paced(o.warmup * 1000, false);
  process.stdout.write('{"ready":true}\n');
  const eld = monitorEventLoopDelay({ resolution: 1 });
  eld.enable();
  t0 = performance.now();
  const cpu0 = process.cpuUsage();
  recording = true;
  await paced(o.seconds * 1000, true);
  const cpu = process.cpuUsage(cpu0);
  eld.disable();
  const sendMs = performance.now() - t0;
  for (let waited = 0; waited < 2000 && answered < sent; waited += 10) await sleep(10);
  for (const sock of socks) sock.close();
  const sorted = lat.subarray(0, answered).sort();
  const pct = (q) => (answered ? sorted[Math.min(answered - 1, Math.max(0, Math.ceil(q * answered) - 1))] : null);
  let over5 = 0, over50 = 0;
  for (let i = 0; i < answered; i++) { if (sorted[i] > 5) over5++; if (sorted[i] > 50) over50++; }
  process.stdout.write(JSON.stringify({
    sent, answered, lost: sent - answered, truncated, rcodes, achievedQps: Math.round((sent * 1000) / sendMs), maxBehind,
    p50: pct(0.5), p99: pct(0.99), p999: pct(0.999), max: answered ? sorted[answered - 1] : null, over5, over50,
    cpuMs: (cpu.user + cpu.system) / 1000, clientEldMaxMs: eld.max / 1e6, worstBySecond: [...worst].map((x) => Math.round(x)),
  }) + '\n');
}

// ---------------------------------------------------------------------------------------------
// The bench

async function main() {
  const { values: opt } = parseArgs({
    options: {
      sizes: { type: 'string', default: '100,1000,10000' },
      'rest-seconds': { type: 'string', default: '20' },
      'churn-seconds': { type: 'string', default: '30' },
      'churn-rate': { type: 'string', default: '10' },
      changes: { type: 'string', default: '100' },
      qps: { type: 'string', default: '3000' },
      'poll-ms': { type: 'string', default: '5' },
      seed: { type: 'string', default: '1' },
      'log-level': { type: 'string', default: 'warn' },
      'cpu-prof': { type: 'string' },
      'node-options': { type: 'string', default: '' },
      pin: { type: 'string', default: 'off' },
      addresses: { type: 'string', default: 'dense' },
      main: { type: 'string', default: join(ROOT, 'dist/main.js') },
      help: { type: 'boolean', default: false },
    },
  });
  const usage = 'usage: node bench/consul-watch.mjs [--sizes 100,1000,10000] [--rest-seconds 20] [--churn-seconds 30]\n'
    + '         [--churn-rate 10] [--changes 100] [--qps 3000] [--poll-ms 5] [--seed 1] [--log-level warn] [--cpu-prof DIR]\n'
    + '         [--node-options=--trace-gc] [--pin on|off]\n'
    + '         [--addresses dense|sparse] [--main dist/main.js]\n';
  if (opt.help) { process.stdout.write(usage); return; }
  const sizes = opt.sizes.split(',').map(Number);
  const o = {
    restSeconds: Number(opt['rest-seconds']), churnSeconds: Number(opt['churn-seconds']), churnRate: Number(opt['churn-rate']),
    changes: Number(opt.changes), qps: Number(opt.qps), pollMs: Number(opt['poll-ms']), seed: Number(opt.seed),
    logLevel: opt['log-level'], cpuProf: opt['cpu-prof'] ?? null, addresses: opt.addresses,
    nodeOptions: opt['node-options'].split(/\s+/).filter(Boolean),
    pin: opt.pin === 'on',
  };
  if (!sizes.every((n) => Number.isInteger(n) && n >= 10 && n <= 50_000) || !(o.restSeconds > 0) || !(o.churnSeconds > 0)
    || !(o.churnRate > 0) || !(Number.isInteger(o.changes) && o.changes > 0) || !(o.qps > 0) || !(o.pollMs >= 1) || !Number.isInteger(o.seed)
    || !Object.hasOwn(addressing, o.addresses) || !['on', 'off'].includes(opt.pin)) {
    process.stderr.write(usage);
    process.exit(2);
  }
  const mainJs = resolve(opt.main);
  if (!existsSync(mainJs)) { process.stderr.write(`${mainJs} not found: run \`npm run build\` first\n`); process.exit(2); }

  const tmp = mkdtempSync(join(tmpdir(), 'consul-watch-bench-'));
  const children = new Set();
  let cleaning = null;
  const cleanup = () => (cleaning ??= (async () => {
    await Promise.all([...children].map((c) => stopChild(c)));
    rmSync(tmp, { recursive: true, force: true });
  })());
  // Last resort on an unexpected exit: no child outlives the bench, no temp dir stays.
  process.on('exit', () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) try { process.kill(c.pid, 'SIGKILL'); } catch {}
    rmSync(tmp, { recursive: true, force: true });
  });
  for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => { process.stderr.write(`\n${sig}: stopping\n`); void cleanup().then(() => process.exit(130)); });

  const started = performance.now();
  const results = [];
  let status = 0;
  try {
    compileFake(tmp);
    const limits = openFileLimits();
    const extra = httpOffFlag(mainJs);
    if (o.pin) o.pin = pinSelf();
    console.log(`consul-watch bench: ${mainJs}; sizes ${sizes.join(', ')} x ${INSTANCES}, ${o.addresses} node addresses; rest ${o.restSeconds} s;`
      + ` ${o.churnRate} changes/s for ${o.churnSeconds} s; DNS load ${o.qps} qps; freshness over ${o.changes} changes polled every ${o.pollMs} ms;`
      + ` open files soft ${limits.soft} hard ${limits.hard}; ${o.pin ? 'catalog-dns on CPU 0, the fake, the load and this process on CPU 1' : 'no CPU pinning'};`
      + ` load average ${fmtLoadAvg()}`);
    for (const services of sizes) {
      const r = await runSize(services, o, { tmp, mainJs, extra, limits, children });
      results.push(r);
      if (r.failed) status = 1;
    }
  } catch (e) {
    process.stderr.write(`consul-watch bench: ${e?.stack ?? e}\n`);
    status = 2;
  } finally {
    await cleanup();
  }
  if (results.length) status = Math.max(status, report(results, o));
  console.log(`total ${((performance.now() - started) / 1000).toFixed(0)} s; load average ${fmtLoadAvg()}`);
  process.exit(status);
}

function compileFake(tmp) {
  const out = join(tmp, 'fake');
  writeFileSync(join(tmp, 'tsconfig.json'), JSON.stringify({
    extends: join(ROOT, 'tsconfig.json'),
    compilerOptions: { rootDir: join(ROOT, 'test/support'), outDir: out, sourceMap: false, typeRoots: [join(ROOT, 'node_modules/@types')] },
    files: [join(ROOT, 'test/support/fake-consul.ts')],
    include: [],
  }));
  execFileSync(join(ROOT, 'node_modules/.bin/tsc'), ['-p', join(tmp, 'tsconfig.json')], { stdio: 'inherit' });
  writeFileSync(join(out, 'package.json'), '{"type":"module"}');
}

/** The open-files limits children inherit (each side of 10,000 parked watches holds 10,000 sockets). */
function openFileLimits() {
  const [soft, hard] = execFileSync('/bin/sh', ['-c', 'ulimit -Sn; ulimit -Hn'], { encoding: 'utf8' }).trim().split('\n')
    .map((v) => (v === 'unlimited' ? Infinity : Number(v)));
  return { soft, hard };
}

/** Pins this process to CPU 1 (children are pinned as they start); false when that is not possible (one core, no taskset). */
function pinSelf() {
  if (cpus().length < 2) return false;
  try {
    execFileSync('taskset', ['-pc', '1', String(process.pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Newer builds serve HTTP (/healthcheck, /metrics) on a fixed default port; turn it off when the build has it. */
function httpOffFlag(mainJs) {
  const help = execFileSync(process.execPath, [mainJs, '--help'], { encoding: 'utf8' });
  return /^\s*--http\b/m.test(help) ? ['--http', 'off'] : [];
}

/**
 * Spawns `node args` with at least `nofile` open files allowed (raising the soft limit through a shell
 * that then execs node, so the PID is node's), and registers it for cleanup.
 */
function spawnNode(args, { nofile, limits, stdio, children, cpu = null }) {
  if (nofile > limits.hard) throw new Error(`needs ${nofile} open files; the hard limit is ${limits.hard} (raise it, e.g. ulimit -Hn)`);
  // taskset execs node, and so does the shell: the child's PID is node's either way.
  const cmd = cpu === null ? [process.execPath, ...args] : ['taskset', '-c', String(cpu), process.execPath, ...args];
  const child = nofile > limits.soft
    ? spawn('/bin/sh', ['-c', 'ulimit -Sn "$0" && exec "$@"', String(nofile), ...cmd], { stdio })
    : spawn(cmd[0], cmd.slice(1), { stdio });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** SIGTERM by PID, SIGKILL after `killAfterMs`; resolves once it has exited, with the time that took. */
async function stopChild(child, killAfterMs = 5000) {
  if (child.exitCode !== null || child.signalCode !== null) return 0;
  const t0 = performance.now();
  const exited = new Promise((r) => child.once('exit', r));
  try { process.kill(child.pid, 'SIGTERM'); } catch {}
  const t = setTimeout(() => { try { process.kill(child.pid, 'SIGKILL'); } catch {} }, killAfterMs);
  await exited;
  clearTimeout(t);
  return performance.now() - t0;
}

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' })) || 100;

/** CPU time (user + system) a process has used, in ms (/proc/PID/stat fields 14 and 15). */
function cpuMsOf(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
  } catch { return NaN; }
}

/** CPU time the whole machine has been busy, in ms summed over cores (/proc/stat). */
function machineBusyMs() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = f;
  return ((user + nice + system + irq + softirq + (steal ?? 0)) * 1000) / CLK_TCK;
}

/** A request/reply channel to the fake's process (replies carry the request's id; id 0 is "ready"). */
function rpc(child) {
  const waiting = new Map();
  let next = 1;
  const fail = (e) => { for (const w of waiting.values()) w.reject(e); waiting.clear(); };
  child.on('message', (m) => {
    const w = waiting.get(m.id);
    if (!w) return;
    waiting.delete(m.id);
    if (m.ok) w.resolve(m.value); else w.reject(new Error(`fake consul: ${m.error}`));
  });
  child.once('exit', (code, sig) => fail(new Error(`fake consul exited (${code ?? sig})`)));
  const ready = new Promise((resolve, reject) => waiting.set(0, { resolve, reject }));
  return {
    ready,
    call(msg) {
      const id = next++;
      return new Promise((resolve, reject) => {
        waiting.set(id, { resolve, reject });
        child.send({ ...msg, id });
      });
    },
  };
}


function rssOf(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? NaN);
    return { rss: kb('VmRSS') * 1024, hwm: kb('VmHWM') * 1024 };
  } catch { return { rss: NaN, hwm: NaN }; }
}

/**
 * A UDP DNS prober: ask(name, type, onAnswer) sends one query; every answer goes to the callback
 * registered for its id (decoded, with its arrival time).
 */
async function prober(dns, port) {
  const sock = dgram.createSocket('udp4');
  const pending = new Map();
  let id = 0;
  sock.on('error', () => {}); // ICMP port unreachable while catalog-dns is not listening yet
  sock.on('message', (msg) => {
    const at = performance.now();
    if (msg.length < 12) return;
    const cb = pending.get(msg.readUInt16BE(0));
    if (!cb) return;
    pending.delete(msg.readUInt16BE(0));
    let p;
    try { p = dns.decode(msg); } catch { return; }
    cb(p, at);
  });
  await new Promise((r) => sock.bind(0, HOST, r));
  return {
    ask(name, type, cb) {
      id = (id + 1) & 0xffff;
      pending.set(id, cb);
      if (pending.size > 4096) pending.delete(pending.keys().next().value); // answers that never came
      sock.send(dns.encode(name, type, id), port, HOST);
    },
    /** Polls `name` A every `everyMs` until `test(addresses, packet)` holds; the arrival time of that answer, or null after `timeoutMs`. */
    until(name, test, { everyMs, timeoutMs, alive = () => true }) {
      return new Promise((resolve, reject) => {
        const t0 = performance.now();
        let done = false, timer = null;
        const finish = (err, at) => { if (done) return; done = true; clearTimeout(timer); if (err) reject(err); else resolve(at); };
        const onAnswer = (p, at) => {
          if (done || p.rcode !== 'NOERROR') return;
          const addrs = p.answers.filter((a) => a.type === 'A').map((a) => a.data);
          if (test(addrs, p)) finish(null, at);
        };
        const poll = () => {
          if (done) return;
          if (!alive()) return finish(new Error('catalog-dns exited'));
          if (performance.now() - t0 > timeoutMs) return finish(null, null);
          this.ask(name, 'A', onAnswer);
          timer = setTimeout(poll, everyMs);
        };
        poll();
      });
    },
    close() { sock.close(); },
  };
}

async function runSize(services, o, { tmp, mainJs, extra, limits, children }) {
  const r = { services, failed: false, notes: [] };
  const nofile = services + 2048;
  const log = (s) => console.log(`[${services}] ${s}`);
  let fake, cdns, load, probe;
  try {
    // 1. The test Consul, loaded.
    fake = spawnNode([SELF, 'fake', join(tmp, 'fake/fake-consul.js'), String(services), String(o.seed), o.addresses],
      { nofile, limits, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], children, cpu: o.pin ? 1 : null });
    const ctl = rpc(fake);
    const ready = await ctl.ready;
    r.instances = ready.instances;
    log(`fake Consul: ${services} services x ${INSTANCES} (${ready.instances} instances, ${services} nodes) loaded in ${ready.loadMs.toFixed(0)} ms, RSS ${mib(ready.rss)} MiB`);

    // 2. catalog-dns, and its first answer (it listens only after the first full catalog).
    const dnsPort = await freePort();
    const logPath = join(tmp, `catalog-dns-${services}.log`);
    const logFd = openSync(logPath, 'w');
    const t0 = performance.now();
    const prof = o.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', o.cpuProf, '--cpu-prof-name', `catalog-dns-${services}.cpuprofile`] : [];
    cdns = spawnNode([...o.nodeOptions, ...prof, mainJs, '--consul', `http://${HOST}:${ready.port}`, '--dns', `${HOST}:${dnsPort}`, '--log-level', o.logLevel, ...extra],
      { nofile, limits, stdio: ['ignore', logFd, logFd], children, cpu: o.pin ? 0 : null });
    closeSync(logFd);
    r.logPath = logPath;
    const alive = () => cdns.exitCode === null && cdns.signalCode === null;
    const dns = await encoder();
    probe = await prober(dns, dnsPort);
    const first = await probe.until(`svc-${services - 1}.service.consul`, (a) => a.length === INSTANCES, { everyMs: 10, timeoutMs: 300_000, alive });
    if (first === null) throw new Error('no answer from catalog-dns within 300 s');
    r.firstMs = first - t0;
    const parked = await ctl.call({ type: 'until-parked', n: services + 2, timeoutMs: 300_000 });
    r.parkedMs = performance.now() - t0;
    r.syncConnections = parked.connections;
    await sleep(1000);
    r.rssSync = rssOf(cdns.pid).rss;
    log(`catalog-dns: first answer ${fmtS(r.firstMs)} after spawn, all ${services + 2} watches parked after ${fmtS(r.parkedMs)} `
      + `(${parked.connections} connections, ${parked.requests} requests so far), RSS ${mib(r.rssSync)} MiB`);

    // A DNS load from its own process over `seconds`, while `run` goes on in this one.
    const underLoad = async (seconds, seed, run) => {
      load = spawnNode([SELF, 'load', JSON.stringify({ port: dnsPort, qps: o.qps, seconds, warmup: 2, services, seed })],
        { nofile: 1024, limits, stdio: ['ignore', 'pipe', 'inherit'], children, cpu: o.pin ? 1 : null });
      const lines = lineReader(load.stdout);
      if (!(await lines.next())?.ready) throw new Error('load process did not start');
      const value = await run();
      const figures = await lines.next();
      if (!figures) throw new Error('load process ended without figures');
      if (load.exitCode === null) await new Promise((res) => load.once('exit', res));
      return { value, load: figures };
    };
    const fmtLoad = (lr) => `${lr.answered}/${lr.sent} answered (${lr.achievedQps} qps sent), p50 ${fmtMs(lr.p50)}, p99 ${fmtMs(lr.p99)},`
      + ` p99.9 ${fmtMs(lr.p999)}, max ${fmtMs(lr.max)}; over 5 ms ${lr.over5}, over 50 ms ${lr.over50}; rcodes ${JSON.stringify(lr.rcodes)};`
      + ` the load process's own worst event-loop delay ${fmtMs(lr.clientEldMaxMs)}`;

    // 3. At rest (no change in the catalog), the same DNS load as under changes, for comparison.
    const pids = { cdns: cdns.pid, fake: fake.pid };
    r.phases = {};
    const mark = (name, run) => async () => { const a = (performance.now() - t0) / 1000; const v = await run(); r.phases[name] = [a, (performance.now() - t0) / 1000]; return v; };
    const rest = await underLoad(o.restSeconds, o.seed + 5, mark('rest', () => phase(ctl, pids, async () => sleep(o.restSeconds * 1000))));
    r.rest = rest.value;
    r.restLoad = rest.load;
    log(`at rest ${o.restSeconds} s: ${fmtPhase(r.rest)}`);
    log(`CPU at rest: ${fmtCpu(r.rest, r.restLoad)}`);
    log(`DNS at ${o.qps} qps at rest: ${fmtLoad(r.restLoad)}`);

    // 4. Freshness: one change at a time, from the write (the request to the fake) to the first DNS answer showing it.
    const fresh = [];
    const byKind = { register: [], deregister: [], health: [] };
    let missed = 0;
    for (let i = 0; i < o.changes; i++) {
      const kind = KINDS[i % KINDS.length];
      const tw = performance.now();
      const c = await ctl.call({ type: 'change', kind });
      if (!c) { r.notes.push(`change ${i} (${kind}): no instance to change`); continue; }
      const at = await probe.until(`svc-${c.service}.service.consul`, (a) => a.includes(c.address) === c.present,
        { everyMs: o.pollMs, timeoutMs: 10_000, alive });
      if (at === null) { missed++; r.notes.push(`change ${i}: ${kind} ${c.address} in svc-${c.service} not seen within 10 s`); continue; }
      fresh.push(at - tw);
      byKind[kind].push(at - tw);
      await sleep(20 + Math.random() * 30);
    }
    r.fresh = { ...stats(fresh), missed, byKind: Object.fromEntries(Object.entries(byKind).map(([k, v]) => [k, stats(v)])) };
    log(`freshness over ${fresh.length} changes: p50 ${fmtMs(r.fresh.p50)}, p99 ${fmtMs(r.fresh.p99)}, max ${fmtMs(r.fresh.max)}, missed ${missed}`
      + ` (${Object.entries(r.fresh.byKind).map(([k, v]) => `${k} p50 ${fmtMs(v.p50)} max ${fmtMs(v.max)}`).join('; ')})`);

    // 5. Changes at a steady rate, the DNS load meanwhile.
    const churned = await underLoad(o.churnSeconds, o.seed + 7,
      mark('changes', () => phase(ctl, pids, () => ctl.call({ type: 'churn', rate: o.churnRate, seconds: o.churnSeconds }))));
    r.churn = churned.value;
    r.load = churned.load;
    const churn = r.churn.value;
    const mem = rssOf(cdns.pid);
    r.rssEnd = mem.rss;
    r.rssPeak = mem.hwm;
    log(`${o.churnRate} changes/s for ${o.churnSeconds} s (${churn.changes} made, at most ${churn.maxLate} late): ${fmtPhase(r.churn)}`);
    log(`CPU under changes: ${fmtCpu(r.churn, r.load)}`);
    log(`DNS at ${o.qps} qps meanwhile: ${fmtLoad(r.load)}`);
    log(`  worst latency in each second (ms): ${r.load.worstBySecond.join(' ')}`);
    log(`catalog-dns RSS: ${mib(r.rssSync)} MiB after sync, ${mib(r.rssEnd)} MiB at the end, peak ${mib(r.rssPeak)} MiB`);
    if (!alive()) throw new Error('catalog-dns exited during the run');
    // catalog-dns first, so it does not see Consul go away (and log it) before it stops.
    r.stopMs = await stopChild(cdns, 30_000);
    log(`catalog-dns stopped ${fmtS(r.stopMs)} after SIGTERM (exit ${cdns.exitCode ?? cdns.signalCode})`);
    await ctl.call({ type: 'close' }).catch(() => {});
  } catch (e) {
    r.failed = true;
    r.error = e?.message ?? String(e);
    log(`FAILED: ${r.error}`);
  } finally {
    probe?.close();
    for (const c of [load, cdns, fake]) if (c) await stopChild(c);
    if (r.logPath) {
      const lines = readFileSync(r.logPath, 'utf8').split('\n').filter(Boolean);
      const parsed = lines.map((l) => { try { return JSON.parse(l); } catch { return { text: l }; } });
      const bad = parsed.filter((l) => l.level >= 40);
      const other = parsed.filter((l) => l.text !== undefined);
      if (other.length) log(`catalog-dns wrote ${other.length} lines that are not log lines (${r.logPath} is removed at the end; e.g. ${other[0].text.slice(0, 200)})`);
      r.gc = gcPauses(other.map((l) => l.text));
      if (r.gc) {
        log(`GC (--trace-gc): ${r.gc.count} pauses, ${r.gc.over20} over 20 ms, longest ${r.gc.max} ms (${r.gc.maxLine})`);
        log(`  major GCs (s after start: heap MB before -> after, main-thread pause): ${r.gc.major.map((g) => `${g.atS.toFixed(1)}: ${g.fromMB} -> ${g.toMB}, ${g.pauseMs} ms`).join('; ')}`);
        if (r.phases) log(`  phases (s after spawn): ${Object.entries(r.phases).map(([k, v]) => `${k} ${v.map((x) => x.toFixed(1)).join('-')}`).join(', ')}`);
      }
      r.logWarnings = bad.length;
      if (bad.length) {
        log(`catalog-dns logged ${bad.length} lines at warn or above; first ones:`);
        for (const l of bad.slice(0, 5)) console.log(`    ${JSON.stringify(l).slice(0, 300)}`);
      }
      // With --log-level info: what the zone commits cost (ZoneStore logs each one).
      const commits = parsed.filter((l) => l.msg === 'zone committed');
      if (commits.length > 1) {
        const later = commits.slice(1);
        const ms = stats(later.map((c) => c.ms)), slice = stats(later.map((c) => c.maxSliceMs));
        log(`zone commits after the first: ${later.length}, ms p50 ${ms.p50} max ${ms.max}; longest slice p50 ${slice.p50} max ${slice.max}`
          + `; first ${commits[0].ms} ms (longest slice ${commits[0].maxSliceMs} ms)`);
      }
    }
  }
  return r;
}

/**
 * Node's --trace-gc lines ("[pid:0x..]  54935 ms: Mark-Compact 564.6 (592.0) -> 400.2 (530.0) MB, 12.3 / 0.0 ms ..."):
 * the pauses, and the major collections with their time since the process started and heap sizes.
 */
function gcPauses(lines) {
  let count = 0, over20 = 0, max = 0, maxLine = '';
  const major = [];
  for (const l of lines) {
    const m = /([\d.]+) ms: (Scavenge|Mark-Compact|Mark-sweep|Minor Mark-Sweep)\S*\s+([\d.]+) \(([\d.]+)\) -> ([\d.]+) \(([\d.]+)\) MB,\s*([\d.]+)\s*\/\s*([\d.]+)\s*ms/.exec(l);
    if (!m) continue;
    const ms = Number(m[7]);
    count++;
    if (ms > 20) over20++;
    if (ms > max) { max = ms; maxLine = l.trim().slice(0, 160); }
    if (m[2] === 'Mark-Compact' || m[2] === 'Mark-sweep') major.push({ atS: Number(m[1]) / 1000, fromMB: Number(m[3]), toMB: Number(m[5]), pauseMs: ms });
  }
  return count ? { count, over20, max, maxLine, major } : null;
}

/**
 * Counters of the fake before and after `run`, sampled every second in between, and the CPU used by
 * catalog-dns, the fake, this process and the machine as a whole meanwhile.
 */
async function phase(ctl, pids, run) {
  const a = await ctl.call({ type: 'counters' });
  const t0 = performance.now();
  const cpuA = { machine: machineBusyMs(), cdns: cpuMsOf(pids.cdns), fake: cpuMsOf(pids.fake), bench: process.cpuUsage() };
  let minConn = a.connections, maxConn = a.connections, sampling = true;
  const sampler = (async () => {
    while (sampling) {
      await sleep(1000);
      if (!sampling) break;
      const c = await ctl.call({ type: 'counters' });
      minConn = Math.min(minConn, c.connections);
      maxConn = Math.max(maxConn, c.connections);
    }
  })();
  let value;
  try {
    value = await run();
  } finally {
    sampling = false;
    await sampler;
  }
  const bench = process.cpuUsage(cpuA.bench);
  const cpu = { machine: machineBusyMs() - cpuA.machine, cdns: cpuMsOf(pids.cdns) - cpuA.cdns, fake: cpuMsOf(pids.fake) - cpuA.fake,
    bench: (bench.user + bench.system) / 1000 };
  const b = await ctl.call({ type: 'counters' });
  const s = (performance.now() - t0) / 1000;
  const byEndpoint = {};
  for (const [k, v] of Object.entries(b.byEndpoint)) if (v - a.byEndpoint[k]) byEndpoint[k] = v - a.byEndpoint[k];
  const non200 = {};
  for (const [k, v] of Object.entries(b.responses)) if (k !== '200' && v - (a.responses[k] ?? 0)) non200[k] = v - (a.responses[k] ?? 0);
  return {
    seconds: s, connections: b.connections, minConn: Math.min(minConn, b.connections), maxConn: Math.max(maxConn, b.connections),
    newConnections: b.connectionsTotal - a.connectionsTotal, reqPerSec: (b.requests - a.requests) / s, bytesPerSec: (b.bytes - a.bytes) / s,
    byEndpoint, non200, parked: b.parked, fakeRss: b.rss, value, cpu,
  };
}

function lineReader(stream) {
  let buf = '';
  const lines = [];
  const waiting = [];
  let ended = false;
  stream.setEncoding('utf8');
  stream.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      let v;
      try { v = JSON.parse(line); } catch { continue; }
      if (waiting.length) waiting.shift()(v); else lines.push(v);
    }
  });
  stream.on('end', () => { ended = true; while (waiting.length) waiting.shift()(null); });
  return { next: () => (lines.length ? Promise.resolve(lines.shift()) : ended ? Promise.resolve(null) : new Promise((r) => waiting.push(r))) };
}

function stats(xs) {
  if (!xs.length) return { n: 0, p50: null, p99: null, max: null };
  const s = [...xs].sort((a, b) => a - b);
  const pct = (q) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
  return { n: s.length, p50: pct(0.5), p99: pct(0.99), max: s[s.length - 1] };
}

/** CPU use during a phase, in % of one core: catalog-dns, the fake, the load process, this process, everything else on the machine. */
const fmtCpu = (p, load) => {
  const pc = (ms) => `${((ms / p.seconds) / 10).toFixed(0)}%`;
  const others = p.cpu.machine - p.cpu.cdns - p.cpu.fake - p.cpu.bench - (load?.cpuMs ?? 0);
  return `catalog-dns ${pc(p.cpu.cdns)}, fake Consul ${pc(p.cpu.fake)}, DNS load ${load ? pc(load.cpuMs) : '-'}, bench ${pc(p.cpu.bench)},`
    + ` other processes ${pc(Math.max(0, others))} (% of one core; ${cpus().length} cores)`;
};
const fmtLoadAvg = () => loadavg().map((x) => x.toFixed(2)).join(' ');
const mib = (b) => (Number.isFinite(b) ? (b / 2 ** 20).toFixed(0) : '?');
const fmtMs = (x) => (x === null || x === undefined ? '-' : x >= 100 ? `${x.toFixed(0)} ms` : `${x.toFixed(1)} ms`);
const fmtS = (x) => `${(x / 1000).toFixed(2)} s`;
const fmtPhase = (p) => `${p.connections} connections open (${p.minConn}-${p.maxConn}, ${p.newConnections} new), `
  + `${p.reqPerSec.toFixed(1)} requests/s ${JSON.stringify(p.byEndpoint)}, ${(p.bytesPerSec / 1024).toFixed(1)} KiB/s sent`
  + `${Object.keys(p.non200).length ? `, non-200 ${JSON.stringify(p.non200)}` : ''}; ${p.parked} parked`;

/** The tables, and the targets: freshness p99 < 1 s at every size; DNS p99 < 5 ms and max < 50 ms at the largest. */
function report(results, o) {
  const num = (x, d = 0) => (x === null || x === undefined || Number.isNaN(x) ? '-' : x.toFixed(d));
  const pcCore = (p, ms) => (p ? `${num(ms / p.seconds / 10)}%` : '-');
  const others = (p, load) => (p ? Math.max(0, p.cpu.machine - p.cpu.cdns - p.cpu.fake - p.cpu.bench - (load?.cpuMs ?? 0)) : NaN);
  const table = (title, head, rows) => {
    const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
    console.log('');
    console.log(title);
    for (const r of [head, ...rows]) console.log(r.map((c, i) => String(c).padStart(w[i])).join('  '));
  };
  table(`Consul side (the fake's counters): connections open at the end of the phase; requests and bytes per second sent to catalog-dns;`
    + ` rest ${o.restSeconds} s, changes ${o.churnRate}/s for ${o.churnSeconds} s`,
  ['services', 'rest conns', 'req/s', 'KiB/s', 'changes conns', 'new conns', 'req/s', 'KiB/s', 'services-list reads/s'],
  results.map((r) => [r.services, r.rest?.connections ?? '-', num(r.rest?.reqPerSec, 1), num(r.rest && r.rest.bytesPerSec / 1024, 1),
    r.churn?.connections ?? '-', r.churn?.newConnections ?? '-', num(r.churn?.reqPerSec, 1), num(r.churn && r.churn.bytesPerSec / 1024, 1),
    num(r.churn && (r.churn.byEndpoint['catalog/services'] ?? 0) / r.churn.seconds, 1)]));
  table('catalog-dns: from spawn to its first DNS answer (full initial sync) and to every watch parked; RSS; CPU in % of one core; SIGTERM to exit',
    ['services', 'first answer', 'all parked', 'RSS synced', 'RSS peak', 'CPU rest', 'CPU changes', 'stop'],
    results.map((r) => [r.services, r.firstMs ? fmtS(r.firstMs) : '-', r.parkedMs ? fmtS(r.parkedMs) : '-', `${mib(r.rssSync)} MiB`,
      `${mib(r.rssPeak)} MiB`, pcCore(r.rest, r.rest?.cpu.cdns), pcCore(r.churn, r.churn?.cpu.cdns), r.stopMs ? fmtS(r.stopMs) : '-']));
  table(`freshness: write -> first DNS answer showing it, ${o.changes} changes one at a time; DNS latency at ${o.qps} qps at rest and under`
    + ` ${o.churnRate} changes/s; "other CPU": everything else on the machine meanwhile (noise), % of one core`,
  ['services', 'fresh p50', 'p99', 'max', 'missed', 'rest dns p99', 'max', 'changes dns p50', 'p99', 'max', 'lost', '>5ms', '>50ms', 'other CPU'],
  results.map((r) => {
    const f = r.fresh ?? {}, l = r.load ?? {}, q = r.restLoad ?? {};
    return [r.services, fmtMs(f.p50), fmtMs(f.p99), fmtMs(f.max), f.missed ?? '-', fmtMs(q.p99), fmtMs(q.max),
      fmtMs(l.p50), fmtMs(l.p99), fmtMs(l.max), l.lost ?? '-', l.over5 ?? '-', l.over50 ?? '-', pcCore(r.churn, others(r.churn, r.load))];
  }));
  let status = 0;
  const verdicts = [];
  for (const r of results) {
    if (r.failed) { status = 1; verdicts.push(`${r.services}: FAILED (${r.error})`); continue; }
    const f = r.fresh;
    const ok = f.p99 !== null && f.p99 < 1000 && f.missed === 0;
    verdicts.push(`${r.services}: freshness p99 < 1 s ${ok ? 'met' : 'MISSED'}`);
    if (!ok) status = 1;
  }
  const largest = results.reduce((a, b) => (b.services > a.services ? b : a));
  if (largest.load) {
    const ok = largest.load.p99 < 5 && largest.load.max < 50 && largest.load.lost === 0;
    verdicts.push(`${largest.services}: DNS p99 < 5 ms and max < 50 ms under changes ${ok ? 'met' : 'MISSED'}`);
    if (!ok) status = 1;
  }
  console.log('');
  for (const v of verdicts) console.log(`target ${v}`);
  for (const r of results) for (const n of r.notes.slice(0, 5)) console.log(`note [${r.services}] ${n}`);
  return status;
}

// Last, so every const above is initialised: one file, three roles (the bench, the fake's process, the load).
const mode = process.argv[2];
if (mode === 'fake') await fakeChild(process.argv[3], Number(process.argv[4]), Number(process.argv[5]), process.argv[6]);
else if (mode === 'load') await loadChild(JSON.parse(process.argv[3]));
else await main();
