#!/usr/bin/env node
// The live-Consul watch strategy measured end to end: catalog-dns (dist/main.js, its own process)
// following the test Consul (test/support/fake-consul.ts, its own process, with its default per-client
// connection limit, as a Consul agent's limits.http_max_conns_per_client), at 100, 2,000 and 10,000
// services x 5 instances. Per size it prints:
//   - start: time from spawn to the first DNS answer (catalog-dns listens only after the full initial
//     sync) and until the watches settle (the fake's parked count unchanged for 2 s); the peak of
//     connections open from catalog-dns and the 429s the fake answered (connection limit); DNS latency
//     of a fixed-rate load from the first answer until the watches settle;
//   - Consul side: connections, requests/s (per endpoint) and bytes/s sent by the fake, at rest and
//     under a steady rate of mixed changes;
//   - freshness per kind of change (health-critical, health-passing, health-warning, service-add,
//     service-remove, instance-add, instance-remove, port, tag, address): single changes one at a
//     time on services picked at random over the whole catalog, from the write in the fake to the
//     first DNS answer that shows it (the affected name polled over UDP with EDNS every --poll-ms);
//   - DNS latency of every query at a fixed rate from a separate load process during the start, at
//     rest and under changes; catalog-dns's RSS and CPU.
//
//   npm run bench:consul                                  # builds dist/, all three sizes
//   node bench/consul-watch.mjs --sizes 100 --rest-seconds 5 --churn-seconds 10 --changes 5
//   node bench/consul-watch.mjs --sizes 2000 --budget 2100 --fake-limit 3000   # budget above the services
//
// Everything on 127.0.0.1; every child is stopped by PID on every path (Ctrl-C included); the compiled
// copy of the fake and the logs live in a temp dir removed on exit; every wait has a timeout. See
// bench/README.md.
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
/** The kinds of change measured, in the order the freshness phase takes them (one of each per round). */
const KINDS = ['health-critical', 'health-passing', 'health-warning', 'service-add', 'service-remove',
  'instance-add', 'instance-remove', 'port', 'tag', 'address'];
/** Targets: these within 1 s at every size; the others within 2 s up to 2,000 services (a stated bound above). */
const FAST_KINDS = new Set(['health-critical', 'health-passing', 'health-warning', 'service-add', 'service-remove']);
/** What the new source uses when --consul-max-connections is not given. */
const DEFAULT_BUDGET = 100;
/** SRV weights of every instance, so a warning shows as SRV weight 1 (a warning instance stays in A answers). */
const WEIGHTS = { Passing: 10, Warning: 1 };
const SETTLE_QUIET_MS = 2000;
const FRESH_TIMEOUT_MS = 10_000;
const START_TIMEOUT_MS = 300_000;
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
/** The c-th address given to an instance of its own (Service.Address): 10.250/16, no node has one there. */
const serviceAddress = (c) => `10.250.${Math.floor(c / 254) % 256}.${(c % 254) + 1}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** `p`, or a rejection naming `what` after `ms`. */
function withTimeout(p, ms, what) {
  let t;
  return Promise.race([p, new Promise((_, reject) => { t = setTimeout(() => reject(new Error(`${what}: no result within ${(ms / 1000).toFixed(0)} s`)), ms); })])
    .finally(() => clearTimeout(t));
}

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

/** The fake's per-client connection limit option (Consul's limits.http_max_conns_per_client), null in a fake without one. */
const limitOptionOf = (src) => (/\bmaxConnsPerClient\b/.test(src) ? 'maxConnsPerClient' : null);

async function fakeChild(modulePath, services, seed, layout, fakeLimit) {
  const { FakeConsul } = await import(pathToFileURL(modulePath).href);
  const nodeAddress = addressing[layout];
  // No option: the fake's own default applies (Consul's 200 per client once the fake enforces one).
  const limitOption = limitOptionOf(readFileSync(modulePath, 'utf8'));
  const opts = {};
  if (fakeLimit !== null && limitOption) opts[limitOption] = fakeLimit;
  const consul = new FakeConsul(opts);
  const rnd = prng(seed);
  const t0 = performance.now();
  for (let n = 0; n < services; n++) {
    consul.registerNode({ Node: `node-${n}`, Address: nodeAddress(n) }, { checks: [{ CheckID: 'serfHealth', Status: 'passing' }] });
  }

  // The model of what the fake holds, so every change is one a DNS answer shows.
  const svcs = [];
  const liveSvcs = pool();
  const byStatus = { passing: pool(), warning: pool(), critical: pool() };
  let seq = 0, addrSeq = 0;
  const newService = () => {
    const svc = { s: svcs.length, name: `svc-${svcs.length}`, insts: new Set(), nodes: new Set(), nextK: 0, visible: 0, removed: false };
    svcs.push(svc);
    liveSvcs.add(svc);
    return svc;
  };
  /** A node of the catalog that has no instance of `svc` yet (the k-th one first, as the initial layout). */
  const freeNode = (svc) => {
    let node = (svc.s * INSTANCES + svc.nextK) % services;
    for (let i = 0; svc.nodes.has(node) && i < 1000; i++) node = Math.floor(rnd() * services);
    return svc.nodes.has(node) ? null : node;
  };
  const ip = (inst) => inst.svcAddr || nodeAddress(inst.node);
  /** The SRV target catalog-dns gives the instance: its node, or <hex>.addr when it has an address of its own. */
  const target = (inst) => (inst.svcAddr
    ? `${inst.svcAddr.split('.').map((x) => Number(x).toString(16).padStart(2, '0')).join('')}.addr.dc1.consul`
    : `node-${inst.node}.node.dc1.consul`);
  const write = (inst) => consul.registerService(`node-${inst.node}`,
    { ID: inst.id, Service: inst.svc.name, Port: inst.port, Tags: [...inst.tags], Address: inst.svcAddr, Weights: WEIGHTS });
  const addInstance = (svc, node) => {
    const k = svc.nextK++;
    const inst = { svc, k, node, id: `${svc.name}-${k}`, port: 8000 + k, tags: ['v1'], svcAddr: '', status: 'passing' };
    consul.registerService(`node-${node}`,
      { ID: inst.id, Service: svc.name, Port: inst.port, Tags: [...inst.tags], Address: '', Weights: WEIGHTS },
      { checks: [{ CheckID: `service:${inst.id}`, Name: `service ${inst.id}`, Status: 'passing' }] });
    svc.insts.add(inst);
    svc.nodes.add(node);
    svc.visible++;
    byStatus.passing.add(inst);
    return inst;
  };
  const removeInstance = (inst) => {
    consul.deregisterService(`node-${inst.node}`, inst.id);
    inst.svc.insts.delete(inst);
    inst.svc.nodes.delete(inst.node);
    if (inst.status !== 'critical') inst.svc.visible--;
    byStatus[inst.status].remove(inst);
  };
  const setStatus = (inst, status) => {
    consul.setCheck(`node-${inst.node}`, `service:${inst.id}`, status);
    if (inst.status === 'critical') inst.svc.visible++;
    if (status === 'critical') inst.svc.visible--;
    byStatus[inst.status].remove(inst);
    byStatus[status].add(inst);
    inst.status = status;
  };
  for (let s = 0; s < services; s++) {
    const svc = newService();
    for (let k = 0; k < INSTANCES; k++) addInstance(svc, freeNode(svc));
  }
  const loadMs = performance.now() - t0;

  const counts = Object.fromEntries([...KINDS, 'skipped'].map((k) => [k, 0]));
  // What each change expects a DNS answer to show: `name`/`qtype`, then one of
  //   has: addr in the A answer; lacks: addr not in a non-empty, untruncated A answer; nx: NXDOMAIN;
  //   srv: an SRV record to `target` (with `port` and/or `weight` when given).
  // `ref`: the service changed, for taint.
  const has = (svc, addr, name = `${svc.name}.service.consul`) => ({ ref: svc.s, name, qtype: 'A', want: 'has', addr });
  const lacks = (inst) => ({ ref: inst.svc.s, name: `${inst.svc.name}.service.consul`, qtype: 'A', want: 'lacks', addr: ip(inst) });
  const srv = (inst, extra) => ({ ref: inst.svc.s, name: `_${inst.svc.name}._tcp.service.consul`, qtype: 'SRV', want: 'srv', target: target(inst), ...extra });
  /** A passing instance whose service keeps another answer when this one leaves (so no name goes away). */
  const passingWithCompany = () => {
    for (let i = 0; i < 100 && byStatus.passing.size; i++) {
      const inst = byStatus.passing.pick(rnd);
      if (inst.svc.visible >= 2) return inst;
    }
    return null;
  };
  const kinds = {
    'health-critical': () => { const inst = passingWithCompany(); if (!inst) return null; setStatus(inst, 'critical'); return lacks(inst); },
    'health-warning': () => {
      if (!byStatus.passing.size) return null;
      const inst = byStatus.passing.pick(rnd);
      setStatus(inst, 'warning');
      return srv(inst, { port: inst.port, weight: WEIGHTS.Warning });
    },
    /** Back to passing: a critical instance (its address comes back) if there is one, else a warning one (SRV weight back up). */
    'health-passing': () => {
      const from = byStatus.critical.size ? 'critical' : byStatus.warning.size ? 'warning' : null;
      if (!from) return null;
      const inst = byStatus[from].pick(rnd);
      setStatus(inst, 'passing');
      return from === 'critical' ? { ...has(inst.svc, ip(inst)), from } : { ...srv(inst, { port: inst.port, weight: WEIGHTS.Passing }), from };
    },
    'service-add': () => {
      const svc = newService();
      const inst = addInstance(svc, Math.floor(rnd() * services));
      return has(svc, ip(inst));
    },
    /** Every instance of a service deregistered in one go (one write each, in the same turn): NXDOMAIN. */
    'service-remove': () => {
      let svc = null;
      for (let i = 0; i < 100 && liveSvcs.size >= 2 && !svc; i++) { const x = liveSvcs.pick(rnd); if (x.visible > 0) svc = x; }
      if (!svc) return null;
      for (const inst of [...svc.insts]) removeInstance(inst);
      svc.removed = true;
      liveSvcs.remove(svc);
      return { ref: svc.s, name: `${svc.name}.service.consul`, qtype: 'A', want: 'nx' };
    },
    'instance-add': () => {
      for (let i = 0; i < 100; i++) {
        const svc = liveSvcs.pick(rnd);
        const node = freeNode(svc);
        if (node === null) continue;
        return has(svc, ip(addInstance(svc, node)));
      }
      return null;
    },
    'instance-remove': () => { const inst = passingWithCompany(); if (!inst) return null; removeInstance(inst); return lacks(inst); },
    /** Re-registered (same node and ID) with another port. */
    port: () => {
      if (!byStatus.passing.size) return null;
      const inst = byStatus.passing.pick(rnd);
      inst.port = 20000 + (seq++ % 40000);
      write(inst);
      return srv(inst, { port: inst.port });
    },
    /** Re-registered with one more tag: <tag>.svc-N.service.consul starts resolving. */
    tag: () => {
      if (!byStatus.passing.size) return null;
      const inst = byStatus.passing.pick(rnd);
      const tag = `t${seq++}`;
      inst.tags.push(tag);
      write(inst);
      return has(inst.svc, ip(inst), `${tag}.${inst.svc.name}.service.consul`);
    },
    /** Re-registered with a Service.Address of its own: the A answer shows it. */
    address: () => {
      if (!byStatus.passing.size) return null;
      const inst = byStatus.passing.pick(rnd);
      inst.svcAddr = serviceAddress(addrSeq++);
      write(inst);
      return has(inst.svc, inst.svcAddr);
    },
  };
  const change = (kind) => {
    const c = kinds[kind]();
    if (!c) { counts.skipped++; return null; }
    counts[kind]++;
    return { kind, ...c };
  };

  // Connections open (the exact peak: checked on every connection, request and park, and every 100 ms),
  // and when the parked count last changed.
  let peakAll = 0, peakWindow = 0, lastParked = -1, lastParkedAt = performance.now();
  const track = (c) => {
    if (c.connections > peakWindow) peakWindow = c.connections;
    if (c.connections > peakAll) peakAll = c.connections;
    if (c.parked !== lastParked) { lastParked = c.parked; lastParkedAt = performance.now(); }
    return false;
  };
  consul.until?.(track, 2 ** 31 - 1)?.catch?.(() => {});
  const sampler = setInterval(() => track(consul.counters), 100);

  const snapshot = () => {
    const c = consul.counters;
    let requests = 0;
    for (const v of Object.values(c.requests)) requests += v;
    return { requests, byEndpoint: { ...c.requests }, responses: { ...c.responses }, bytes: consul.bytesSent(),
      connections: c.connections, connectionsTotal: c.connectionsTotal, parked: c.parked, wakeups: c.wakeups,
      timeouts: c.timeouts, connLimited: c.connLimited ?? null, connectionsPeak: c.connectionsPeak ?? null,
      peakAll: Math.max(peakAll, c.connectionsPeak ?? 0), rss: process.memoryUsage().rss, changes: { ...counts },
      services: svcs.length, liveServices: liveSvcs.size };
  };

  const handlers = {
    counters: () => snapshot(),
    /** The peak of connections open since the last call (then starts a new window at the current count). */
    'peak-window': () => { track(consul.counters); const peak = peakWindow; peakWindow = consul.counters.connections; return { peak, ...snapshot() }; },
    /** Resolves once the parked count has not changed for `quietMs` since this call (or after `timeoutMs`:
     *  settled false). Called at the first DNS answer: a count steady before it (the lists' watches parked
     *  during the initial reads) does not count as settled, the per-service watches may not have started. */
    settle: async (m) => {
      const start = performance.now();
      for (;;) {
        track(consul.counters);
        const quiet = performance.now() - Math.max(lastParkedAt, start);
        if (quiet >= m.quietMs) return { settled: true, agoMs: quiet, ...snapshot() };
        if (performance.now() - start > m.timeoutMs) return { settled: false, agoMs: quiet, ...snapshot() };
        await sleep(50);
      }
    },
    change: (m) => change(m.kind),
    /** A service whose change DNS never showed: no later change picks it (its answers may still show an older state). */
    taint: (m) => {
      const svc = svcs[m.ref];
      liveSvcs.remove(svc);
      for (const inst of svc.insts) for (const p of Object.values(byStatus)) p.remove(inst);
      return {};
    },
    /** `rate` random changes per second for `seconds`, on a schedule (a late tick catches up). */
    churn: async (m) => {
      const total = Math.round(m.rate * m.seconds);
      const start = performance.now();
      let done = 0, late = 0;
      const made = Object.fromEntries(m.kinds.map((k) => [k, 0]));
      while (done < total) {
        const due = Math.min(total, Math.floor(((performance.now() - start) * m.rate) / 1000) + 1);
        late = Math.max(late, due - done - 1);
        for (; done < due; done++) {
          const kind = m.kinds[Math.floor(rnd() * m.kinds.length)];
          if (change(kind)) made[kind]++;
        }
        const next = start + (done * 1000) / m.rate;
        await sleep(Math.max(0, next - performance.now()));
      }
      return { changes: done, made, ms: performance.now() - start, maxLate: late };
    },
    close: async () => { clearInterval(sampler); await consul.close(); return {}; },
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
  let instances = 0;
  for (const svc of svcs) instances += svc.insts.size;
  process.send({ id: 0, ok: true, value: { port: consul.port, loadMs, instances, rss: process.memoryUsage().rss,
    limitOption, limitApplied: fakeLimit !== null && !!limitOption, hasConnLimited: consul.counters.connLimited !== undefined,
    hasConnectionsPeak: consul.counters.connectionsPeak !== undefined } });
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
//   warmup: seconds sent but not recorded first;
//   waitFirst: send one query every 5 ms until the first NOERROR answer, then record from there
//     (the start: from catalog-dns's first answer on);
//   untilStop: record until "stop" arrives on stdin (`seconds` is then the most it records).

async function loadChild(o) {
  const { encode } = await encoder();
  const rnd = prng(o.seed);
  const SOCKETS = 4;
  let stopped = false;
  if (o.untilStop) {
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (d) => { if (d.includes('stop')) stopped = true; });
    process.stdin.on('end', () => { stopped = true; });
  }
  // A ring of queries over random services, A and SRV alike.
  const templates = Array.from({ length: 4096 }, (_, i) => {
    const s = Math.floor(rnd() * o.services);
    return i % 2 ? encode(`svc-${s}.service.consul`, 'A', 0) : encode(`_svc-${s}._tcp.service.consul`, 'SRV', 0);
  });
  const total = Math.ceil(o.qps * o.seconds);
  const lat = new Float64Array(total + 16);
  const rcodes = {};
  const worst = new Float64Array(Math.ceil(o.seconds) + 3);
  let answered = 0, sent = 0, seq = 0, recording = false, t0 = 0, truncated = 0, firstAnswer = false;
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
      const rc = msg[3] & 0x0f;
      if (rc === 0) firstAnswer = true;
      if (!recording || t < t0) return;
      lat[answered++] = now - t;
      const sec = Math.min(worst.length - 1, Math.floor((t - t0) / 1000));
      if (now - t > worst[sec]) worst[sec] = now - t;
      if (msg[2] & 0x02) truncated++;
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
      if (done >= n || elapsed > ms + 2000 || (record && stopped)) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
  if (o.waitFirst) {
    const start = performance.now();
    while (!firstAnswer && !stopped && performance.now() - start < o.seconds * 1000) { sendOne(); await sleep(5); }
  }
  if (o.warmup > 0) await paced(o.warmup * 1000, false);
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
    seconds: sendMs / 1000, p50: pct(0.5), p99: pct(0.99), p999: pct(0.999), max: answered ? sorted[answered - 1] : null, over5, over50,
    cpuMs: (cpu.user + cpu.system) / 1000, clientEldMaxMs: eld.max / 1e6,
    worstBySecond: [...worst.subarray(0, Math.ceil(sendMs / 1000))].map((x) => Math.round(x)),
  }) + '\n');
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------
// The bench

async function main() {
  const { values: opt } = parseArgs({
    options: {
      sizes: { type: 'string', default: '100,2000,10000' },
      budget: { type: 'string' },
      'fake-limit': { type: 'string' },
      kinds: { type: 'string', default: KINDS.join(',') },
      'rest-seconds': { type: 'string', default: '20' },
      'churn-seconds': { type: 'string', default: '30' },
      'churn-rate': { type: 'string', default: '10' },
      changes: { type: 'string', default: '20' },
      'max-misses': { type: 'string', default: '3' },
      'settle-timeout': { type: 'string', default: '120' },
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
  const usage = 'usage: node bench/consul-watch.mjs [--sizes 100,2000,10000] [--budget N] [--fake-limit N]\n'
    + `         [--kinds ${KINDS.join(',')}]\n`
    + '         [--rest-seconds 20] [--churn-seconds 30] [--churn-rate 10] [--changes 20] [--max-misses 3] [--settle-timeout 120]\n'
    + '         [--qps 3000] [--poll-ms 5] [--seed 1] [--log-level warn] [--cpu-prof DIR] [--node-options=--trace-gc] [--pin on|off]\n'
    + '         [--addresses dense|sparse] [--main dist/main.js]\n'
    + '  --budget N      pass --consul-max-connections N to catalog-dns (default: not passed, its default applies)\n'
    + '  --fake-limit N  the fake\'s per-client connection limit, 0 = none (default: not passed, the fake\'s default applies)\n'
    + '  --changes N     single changes per kind for freshness; --max-misses: a kind stops after that many unseen\n'
    + '  --settle-timeout S  the longest wait for the watches to settle (the parked count unchanged for 2 s)\n';
  if (opt.help) { process.stdout.write(usage); return; }
  const sizes = opt.sizes.split(',').map(Number);
  const o = {
    restSeconds: Number(opt['rest-seconds']), churnSeconds: Number(opt['churn-seconds']), churnRate: Number(opt['churn-rate']),
    changes: Number(opt.changes), maxMisses: Number(opt['max-misses']), settleTimeoutMs: Number(opt['settle-timeout']) * 1000, qps: Number(opt.qps), pollMs: Number(opt['poll-ms']), seed: Number(opt.seed),
    logLevel: opt['log-level'], cpuProf: opt['cpu-prof'] ?? null, addresses: opt.addresses,
    nodeOptions: opt['node-options'].split(/\s+/).filter(Boolean),
    pin: opt.pin === 'on',
    budget: opt.budget === undefined ? null : Number(opt.budget),
    fakeLimit: opt['fake-limit'] === undefined ? null : Number(opt['fake-limit']),
    kinds: opt.kinds.split(',').filter(Boolean),
  };
  if (!sizes.every((n) => Number.isInteger(n) && n >= 10 && n <= 50_000) || !(o.restSeconds > 0) || !(o.churnSeconds > 0)
    || !(o.churnRate > 0) || !(Number.isInteger(o.changes) && o.changes >= 0) || !(Number.isInteger(o.maxMisses) && o.maxMisses > 0)
    || !(o.settleTimeoutMs > 0) || !(o.qps > 0) || !(o.pollMs >= 1) || !Number.isInteger(o.seed)
    || (o.budget !== null && !(Number.isInteger(o.budget) && o.budget > 0))
    || (o.fakeLimit !== null && !(Number.isInteger(o.fakeLimit) && o.fakeLimit >= 0))
    || !o.kinds.length || !o.kinds.every((k) => KINDS.includes(k))
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
    const help = execFileSync(process.execPath, [mainJs, '--help'], { encoding: 'utf8' });
    const extra = /^\s*--http\b/m.test(help) ? ['--http', 'off'] : [];
    o.hasBudgetFlag = /^\s*--consul-max-connections\b/m.test(help);
    if (o.budget !== null) {
      if (!o.hasBudgetFlag) throw new Error(`--budget: ${mainJs} has no --consul-max-connections (a build before the connection budget)`);
      extra.push('--consul-max-connections', String(o.budget));
    }
    compileFake(tmp);
    const limits = openFileLimits();
    if (o.pin) o.pin = pinSelf();
    console.log(`consul-watch bench: ${mainJs}; sizes ${sizes.join(', ')} x ${INSTANCES}, ${o.addresses} node addresses;`
      + ` budget ${o.budget ?? (o.hasBudgetFlag ? `not given (catalog-dns's default, ${DEFAULT_BUDGET})` : 'none (this build has no --consul-max-connections)')};`
      + ` fake per-client limit ${o.fakeLimit ?? "the fake's default"}; rest ${o.restSeconds} s; ${o.churnRate} changes/s for ${o.churnSeconds} s;`
      + ` DNS load ${o.qps} qps; freshness: ${o.changes} changes per kind (${o.kinds.join(', ')}) polled every ${o.pollMs} ms;`
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

/** A request/reply channel to the fake's process (replies carry the request's id; id 0 is "ready"); every call times out. */
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
  const ready = withTimeout(new Promise((resolve, reject) => waiting.set(0, { resolve, reject })), START_TIMEOUT_MS, 'fake consul start');
  return {
    ready,
    call(msg, timeoutMs = 60_000) {
      const id = next++;
      return withTimeout(new Promise((resolve, reject) => {
        waiting.set(id, { resolve, reject });
        child.send({ ...msg, id });
      }), timeoutMs, `fake consul ${msg.type}`).finally(() => waiting.delete(id));
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
    /** Polls `name` `type` every `everyMs` until `test(packet)` holds; the arrival time of that answer, or null after `timeoutMs`. */
    until(name, type, test, { everyMs, timeoutMs, alive = () => true }) {
      return new Promise((resolve, reject) => {
        const t0 = performance.now();
        let done = false, timer = null;
        const finish = (err, at) => { if (done) return; done = true; clearTimeout(timer); if (err) reject(err); else resolve(at); };
        const onAnswer = (p, at) => { if (!done && test(p)) finish(null, at); };
        const poll = () => {
          if (done) return;
          if (!alive()) return finish(new Error('catalog-dns exited'));
          if (performance.now() - t0 > timeoutMs) return finish(null, null);
          this.ask(name, type, onAnswer);
          timer = setTimeout(poll, everyMs);
        };
        poll();
      });
    },
    close() { sock.close(); },
  };
}

const addrsOf = (p) => p.answers.filter((a) => a.type === 'A').map((a) => a.data);
const bare = (n) => String(n).toLowerCase().replace(/\.$/, '');

/** Whether DNS answer `p` shows change `c` (see the expectations in fakeChild). */
function shows(c, p) {
  if (c.want === 'nx') return p.rcode === 'NXDOMAIN';
  if (p.rcode !== 'NOERROR') return false;
  if (c.want === 'has') return addrsOf(p).includes(c.addr);
  if (c.want === 'lacks') { const a = addrsOf(p); return !p.flag_tc && a.length > 0 && !a.includes(c.addr); }
  if (c.want === 'srv') {
    return p.answers.some((a) => a.type === 'SRV' && bare(a.data.target) === c.target
      && (c.port === undefined || a.data.port === c.port) && (c.weight === undefined || a.data.weight === c.weight));
  }
  return false;
}
const describe = (c) => `${c.kind} ${c.name} ${c.qtype} ${c.want === 'nx' ? 'NXDOMAIN' : c.want === 'srv'
  ? `${c.target}${c.port !== undefined ? ` port ${c.port}` : ''}${c.weight !== undefined ? ` weight ${c.weight}` : ''}` : `${c.want} ${c.addr}`}`;

async function runSize(services, o, { tmp, mainJs, extra, limits, children }) {
  const r = { services, budget: o.budget, failed: false, notes: [], missedLines: [] };
  const nofile = services + 2048;
  const log = (s) => console.log(`[${services}] ${s}`);
  let fake, cdns, probe;
  const loads = new Set();
  try {
    // 1. The test Consul, loaded.
    fake = spawnNode([SELF, 'fake', join(tmp, 'fake/fake-consul.js'), String(services), String(o.seed), o.addresses, o.fakeLimit === null ? '' : String(o.fakeLimit)],
      { nofile, limits, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], children, cpu: o.pin ? 1 : null });
    const ctl = rpc(fake);
    const ready = await ctl.ready;
    r.instances = ready.instances;
    r.fakeLimitOption = ready.limitOption;
    r.hasConnLimited = ready.hasConnLimited;
    log(`fake Consul: ${services} services x ${INSTANCES} (${ready.instances} instances, ${services} nodes) loaded in ${ready.loadMs.toFixed(0)} ms, RSS ${mib(ready.rss)} MiB;`
      + ` per-client limit ${o.fakeLimit !== null ? (ready.limitApplied ? `${o.fakeLimit} (option ${ready.limitOption})` : 'NOT SET: the fake has no such option') : `the fake's default${ready.limitOption ? ` (option ${ready.limitOption})` : ' (the fake has no limit option)'}`}`
      + `; counters: connLimited ${ready.hasConnLimited ? 'yes' : 'no'}, connectionsPeak ${ready.hasConnectionsPeak ? 'yes' : 'no'}`);
    if (o.fakeLimit !== null && !ready.limitApplied) r.notes.push(`--fake-limit ${o.fakeLimit} not applied: the fake has no per-client connection limit option`);

    // A DNS load from its own process: start() once it records; stop() (when untilStop) and result().
    const dnsPort = await freePort();
    const startLoad = ({ seconds, seed, warmup = 2, waitFirst = false, untilStop = false }) => {
      const load = spawnNode([SELF, 'load', JSON.stringify({ port: dnsPort, qps: o.qps, seconds, warmup, waitFirst, untilStop, services, seed })],
        { nofile: 1024, limits, stdio: ['pipe', 'pipe', 'inherit'], children, cpu: o.pin ? 1 : null });
      loads.add(load);
      load.once('exit', () => loads.delete(load));
      load.stdin.on('error', () => {});
      const lines = lineReader(load.stdout);
      const bound = (seconds + warmup) * 1000 + 60_000;
      const started = withTimeout(lines.next(), bound, 'DNS load start').then((l) => { if (!l?.ready) throw new Error('DNS load process did not start'); });
      started.catch(() => {}); // the start phase's load is not awaited: its failure shows in result()
      return {
        started,
        stop() { try { load.stdin.end('stop\n'); } catch {} },
        async result() {
          const figures = await withTimeout(lines.next(), bound, 'DNS load figures');
          if (!figures) throw new Error('DNS load process ended without figures');
          await withTimeout(new Promise((res) => (load.exitCode !== null || load.signalCode !== null ? res() : load.once('exit', res))), 10_000, 'DNS load exit')
            .catch(() => stopChild(load));
          return figures;
        },
      };
    };

    // 2. catalog-dns, its first answer (it listens only after the first full catalog), and the watches
    // settling (the fake's parked count unchanged for 2 s), with the DNS load from its first answer on.
    await ctl.call({ type: 'peak-window' });
    const logPath = join(tmp, `catalog-dns-${services}.log`);
    const logFd = openSync(logPath, 'w');
    const t0 = performance.now();
    const prof = o.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', o.cpuProf, '--cpu-prof-name', `catalog-dns-${services}.cpuprofile`] : [];
    cdns = spawnNode([...o.nodeOptions, ...prof, mainJs, '--consul', `http://${HOST}:${ready.port}`, '--dns', `${HOST}:${dnsPort}`, '--log-level', o.logLevel, ...extra],
      { nofile, limits, stdio: ['ignore', logFd, logFd], children, cpu: o.pin ? 0 : null });
    closeSync(logFd);
    r.logPath = logPath;
    const alive = () => cdns.exitCode === null && cdns.signalCode === null;
    const startLoadRun = startLoad({ seconds: (START_TIMEOUT_MS + o.settleTimeoutMs) / 1000, seed: o.seed + 3, warmup: 0, waitFirst: true, untilStop: true });
    const dns = await encoder();
    probe = await prober(dns, dnsPort);
    const first = await probe.until(`svc-${services - 1}.service.consul`, 'A', (p) => p.rcode === 'NOERROR' && addrsOf(p).length === INSTANCES,
      { everyMs: 10, timeoutMs: START_TIMEOUT_MS, alive });
    if (first === null) throw new Error(`no answer from catalog-dns within ${START_TIMEOUT_MS / 1000} s`);
    r.firstMs = first - t0;
    const settled = await ctl.call({ type: 'settle', quietMs: SETTLE_QUIET_MS, timeoutMs: o.settleTimeoutMs }, o.settleTimeoutMs + 30_000);
    const settleAt = performance.now() - settled.agoMs;
    r.settled = settled.settled;
    r.settleMs = Math.max(settleAt, first) - t0;
    startLoadRun.stop();
    r.startLoad = await startLoadRun.result();
    const startPeak = await ctl.call({ type: 'peak-window' });
    r.start = { peak: startPeak.peak, connections: settled.connections, parked: settled.parked, requests: settled.requests,
      r429: (startPeak.responses[429] ?? 0) + (startPeak.connLimited ?? 0), connLimited: startPeak.connLimited, byEndpoint: settled.byEndpoint };
    r.rssSync = rssOf(cdns.pid).rss;
    log(`catalog-dns: first answer ${fmtS(r.firstMs)} after spawn; watches ${r.settled ? 'settled' : `NOT SETTLED within ${o.settleTimeoutMs / 1000} s`}`
      + ` after ${fmtS(r.settleMs)} (parked ${settled.parked}, unchanged for ${SETTLE_QUIET_MS / 1000} s); connections ${settled.connections} open, peak ${r.start.peak};`
      + ` 429s ${r.start.r429}${r.start.connLimited !== null ? ` (connection limit: ${r.start.connLimited})` : ''}; ${settled.requests} requests so far`
      + ` ${JSON.stringify(nonZero(settled.byEndpoint))}; RSS ${mib(r.rssSync)} MiB`);
    log(`DNS at ${o.qps} qps from the first answer until settled: ${fmtLoad(r.startLoad)}`);
    log(`  worst latency in each second (ms): ${r.startLoad.worstBySecond.join(' ')}`);

    // A DNS load over `seconds`, while `run` goes on in this process.
    const underLoad = async (seconds, seed, run) => {
      const l = startLoad({ seconds, seed });
      await l.started;
      const value = await run();
      return { value, load: await l.result() };
    };

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

    // 4. Freshness: one change at a time (a round = one of each kind), from the write (the request to
    // the fake) to the first DNS answer showing it. A kind stops after --max-misses changes never seen.
    r.fresh = Object.fromEntries(o.kinds.map((k) => [k, { times: [], tried: 0, missed: 0, skipped: 0, stopped: false }]));
    const freshRnd = prng(o.seed + 11);
    const freshA = await ctl.call({ type: 'peak-window' });
    for (let round = 0; round < o.changes; round++) {
      for (const kind of o.kinds) {
        const f = r.fresh[kind];
        if (f.stopped) continue;
        const tw = performance.now();
        const c = await ctl.call({ type: 'change', kind });
        if (!c) { f.skipped++; r.notes.push(`${kind}: nothing to change in round ${round}`); continue; }
        f.tried++;
        const at = await probe.until(c.name, c.qtype, (p) => shows(c, p), { everyMs: o.pollMs, timeoutMs: FRESH_TIMEOUT_MS, alive });
        if (at === null) {
          f.missed++;
          const line = `NOT SEEN within ${FRESH_TIMEOUT_MS / 1000} s: ${describe(c)}`;
          r.missedLines.push(line);
          log(`!!! ${line}`);
          await ctl.call({ type: 'taint', ref: c.ref });
          if (f.missed >= o.maxMisses) { f.stopped = true; log(`!!! ${kind}: ${f.missed} changes not seen, no more ${kind} changes at this size`); }
          continue;
        }
        f.times.push(at - tw);
        await sleep(20 + freshRnd() * 30);
      }
    }
    const freshB = await ctl.call({ type: 'peak-window' });
    r.freshPeak = freshB.peak;
    r.freshConn = { r429: (freshB.responses[429] ?? 0) - (freshA.responses[429] ?? 0) + (freshB.connLimited ?? 0) - (freshA.connLimited ?? 0),
      connLimited: freshB.connLimited === null ? null : freshB.connLimited - freshA.connLimited };
    for (const [kind, f] of Object.entries(r.fresh)) Object.assign(f, stats(f.times));
    if (o.changes > 0) {
      log(`freshness (write -> first DNS answer showing it; p50 / p99 / max, seen of tried):`);
      for (const [kind, f] of Object.entries(r.fresh)) {
        log(`  ${kind.padEnd(16)} ${fmtMs(f.p50)} / ${fmtMs(f.p99)} / ${fmtMs(f.max)}, ${f.n} of ${f.tried} seen`
          + `${f.missed ? `, ${f.missed} NOT SEEN${f.stopped ? ' (kind stopped)' : ''}` : ''}${f.skipped ? `, ${f.skipped} skipped` : ''}`);
      }
      log(`  meanwhile: peak connections ${r.freshPeak}, 429s ${r.freshConn.r429}${r.freshConn.connLimited !== null ? ` (connection limit: ${r.freshConn.connLimited})` : ''}`);
    }

    // 5. Changes at a steady rate (kinds mixed at random), the DNS load meanwhile.
    const churned = await underLoad(o.churnSeconds, o.seed + 7,
      mark('changes', () => phase(ctl, pids, () => ctl.call({ type: 'churn', rate: o.churnRate, seconds: o.churnSeconds, kinds: o.kinds }, o.churnSeconds * 1000 + 60_000))));
    r.churn = churned.value;
    r.load = churned.load;
    const churn = r.churn.value;
    const mem = rssOf(cdns.pid);
    r.rssEnd = mem.rss;
    r.rssPeak = mem.hwm;
    log(`${o.churnRate} changes/s for ${o.churnSeconds} s (${churn.changes} made, at most ${churn.maxLate} late; ${JSON.stringify(churn.made)}): ${fmtPhase(r.churn)}`);
    log(`CPU under changes: ${fmtCpu(r.churn, r.load)}`);
    log(`DNS at ${o.qps} qps meanwhile: ${fmtLoad(r.load)}`);
    log(`  worst latency in each second (ms): ${r.load.worstBySecond.join(' ')}`);
    const end = await ctl.call({ type: 'counters' });
    r.peakAll = end.peakAll;
    r.r429 = (end.responses[429] ?? 0) + (end.connLimited ?? 0);
    r.connLimited = end.connLimited;
    log(`catalog-dns RSS: ${mib(r.rssSync)} MiB after settling, ${mib(r.rssEnd)} MiB at the end, peak ${mib(r.rssPeak)} MiB;`
      + ` connections: peak ${r.peakAll} over the run; 429s ${r.r429}${r.connLimited !== null ? ` (connection limit: ${r.connLimited})` : ''}`);
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
    for (const c of [...loads, cdns, fake]) if (c) await stopChild(c);
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
 * Counters of the fake before and after `run` (with the exact peak of open connections in between),
 * and the CPU used by catalog-dns, the fake, this process and the machine as a whole meanwhile.
 */
async function phase(ctl, pids, run) {
  const a = await ctl.call({ type: 'peak-window' });
  const t0 = performance.now();
  const cpuA = { machine: machineBusyMs(), cdns: cpuMsOf(pids.cdns), fake: cpuMsOf(pids.fake), bench: process.cpuUsage() };
  const value = await run();
  const bench = process.cpuUsage(cpuA.bench);
  const cpu = { machine: machineBusyMs() - cpuA.machine, cdns: cpuMsOf(pids.cdns) - cpuA.cdns, fake: cpuMsOf(pids.fake) - cpuA.fake,
    bench: (bench.user + bench.system) / 1000 };
  const b = await ctl.call({ type: 'peak-window' });
  const s = (performance.now() - t0) / 1000;
  const byEndpoint = {};
  for (const [k, v] of Object.entries(b.byEndpoint)) if (v - a.byEndpoint[k]) byEndpoint[k] = v - a.byEndpoint[k];
  const non200 = {};
  for (const [k, v] of Object.entries(b.responses)) if (k !== '200' && v - (a.responses[k] ?? 0)) non200[k] = v - (a.responses[k] ?? 0);
  return {
    seconds: s, connections: b.connections, peak: b.peak, newConnections: b.connectionsTotal - a.connectionsTotal,
    reqPerSec: (b.requests - a.requests) / s, bytesPerSec: (b.bytes - a.bytes) / s, byEndpoint, non200, parked: b.parked,
    r429: (b.responses[429] ?? 0) - (a.responses[429] ?? 0) + (b.connLimited ?? 0) - (a.connLimited ?? 0), connLimited: b.connLimited === null ? null : b.connLimited - a.connLimited,
    fakeRss: b.rss, value, cpu,
  };
}

/** JSON lines from a stream; next() resolves with the next one (null at the end). */
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

const nonZero = (o) => Object.fromEntries(Object.entries(o).filter(([, v]) => v));

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
const fmtLoad = (lr) => `${lr.answered}/${lr.sent} answered over ${lr.seconds.toFixed(1)} s (${lr.achievedQps} qps sent), p50 ${fmtMs(lr.p50)}, p99 ${fmtMs(lr.p99)},`
  + ` p99.9 ${fmtMs(lr.p999)}, max ${fmtMs(lr.max)}; over 5 ms ${lr.over5}, over 50 ms ${lr.over50}; rcodes ${JSON.stringify(lr.rcodes)};`
  + ` the load process's own worst event-loop delay ${fmtMs(lr.clientEldMaxMs)}`;
const fmtPhase = (p) => `${p.connections} connections open (peak ${p.peak}, ${p.newConnections} new), `
  + `${p.reqPerSec.toFixed(1)} requests/s ${JSON.stringify(p.byEndpoint)}, ${(p.bytesPerSec / 1024).toFixed(1)} KiB/s sent`
  + `${Object.keys(p.non200).length ? `, non-200 ${JSON.stringify(p.non200)}` : ''}${p.r429 ? `, 429s ${p.r429}` : ''}; ${p.parked} parked`;

/**
 * The tables (markdown), and the targets: peak connections within the budget and no 429; DNS max < 50 ms
 * from the first answer until the watches settle; health changes and services appearing or going within
 * 1 s at every size, other changes within 2 s up to 2,000 services (above: the bound is stated), every
 * change within 1 s when the budget is above the number of services; DNS p99 < 5 ms and max < 50 ms
 * under changes at the largest size.
 */
function report(results, o) {
  const num = (x, d = 0) => (x === null || x === undefined || Number.isNaN(x) ? '-' : x.toFixed(d));
  const ms0 = (x) => (x === null || x === undefined ? '-' : x < 10 ? x.toFixed(1) : x.toFixed(0));
  const pcCore = (p, ms) => (p ? `${num(ms / p.seconds / 10)}%` : '-');
  const others = (p, load) => (p ? Math.max(0, p.cpu.machine - p.cpu.cdns - p.cpu.fake - p.cpu.bench - (load?.cpuMs ?? 0)) : NaN);
  const int = (n) => (n === null || n === undefined ? '-' : Number(n).toLocaleString('en-US'));
  const table = (title, head, rows) => {
    console.log('');
    console.log(title);
    console.log('');
    if (!rows.length) { console.log('(no figures)'); return; }
    console.log(`| ${head.join(' | ')} |`);
    console.log(`|${head.map(() => '---').join('|')}|`);
    for (const r of rows) console.log(`| ${r.join(' | ')} |`);
  };
  const budgetOf = (r) => (r.budget ?? (o.hasBudgetFlag ? DEFAULT_BUDGET : null));
  const dnsPair = (l) => (l ? `${ms0(l.p99)} / ${ms0(l.max)}` : '-');
  const reqKiB = (p) => (p ? `${num(p.reqPerSec, 1)}, ${num(p.bytesPerSec / 1024, 1)}` : '-');
  const failed = (r) => (r.failed ? ` (FAILED: ${r.error})` : '');

  table(`Per size (services x ${INSTANCES}): first DNS answer and watches settled (parked count unchanged for ${SETTLE_QUIET_MS / 1000} s), s after spawn;`
    + ` peak connections open from catalog-dns over the run; 429s the fake answered; requests/s and KiB/s the fake sent at rest (${o.restSeconds} s)`
    + ` and under ${o.churnRate} changes/s (${o.churnSeconds} s); DNS latency p99 / max (ms) at ${o.qps} qps from the first answer until settled and under changes; RSS peak`,
  ['services x 5', 'budget', 'first answer', 'settle', 'peak connections', '429s', 'req/s, KiB/s at rest', 'req/s, KiB/s under churn',
    'DNS p99 / max at start', 'DNS p99 / max under churn', 'RSS'],
  results.map((r) => [`${int(r.services)}${failed(r)}`, r.budget !== null ? int(r.budget) : budgetOf(r) !== null ? `${budgetOf(r)} (default)` : 'none',
    r.firstMs ? num(r.firstMs / 1000, 1) + ' s' : '-', r.settleMs ? `${num(r.settleMs / 1000, 1)} s${r.settled ? '' : ' (not settled)'}` : '-',
    int(r.peakAll ?? r.start?.peak), int(r.r429 ?? r.start?.r429),
    reqKiB(r.rest), reqKiB(r.churn), dnsPair(r.startLoad), dnsPair(r.load), r.rssPeak ? `${mib(r.rssPeak)} MiB` : '-']));

  if (o.changes > 0) {
    table(`Freshness: write in the fake -> first DNS answer showing it, p50 / p99 / max (ms), ${o.changes} single changes per kind one at a time`
      + ` on services picked at random; "n of N": changes seen within ${FRESH_TIMEOUT_MS / 1000} s`,
    ['change', ...results.map((r) => `${int(r.services)} services`)],
    o.kinds.map((k) => [k, ...results.map((r) => {
      const f = r.fresh?.[k];
      if (!f) return '-';
      const seen = f.missed || f.skipped ? ` (${f.n} of ${f.tried} seen${f.missed ? `, ${f.missed} NOT SEEN` : ''}${f.stopped ? ', stopped' : ''}${f.skipped ? `, ${f.skipped} skipped` : ''})` : '';
      return `${ms0(f.p50)} / ${ms0(f.p99)} / ${ms0(f.max)}${seen}`;
    })]));
  }

  const endpoints = [...new Set(results.flatMap((r) => [r.rest, r.churn].filter(Boolean).flatMap((p) => Object.keys(p.byEndpoint))))].sort();
  table('Consul side per phase: connections open at the end (peak during the phase, new ones), requests/s by endpoint;'
    + ' CPU in % of one core: catalog-dns, and everything else on the machine meanwhile (noise)',
  ['services x 5', 'phase', 'connections (peak, new)', ...endpoints, 'catalog-dns CPU', 'other CPU'],
  results.flatMap((r) => [['rest', r.rest, r.restLoad], ['churn', r.churn, r.load]].filter(([, p]) => p).map(([name, p, load]) => [
    int(r.services), name, `${p.connections} (${p.peak}, ${p.newConnections})`,
    ...endpoints.map((e) => num((p.byEndpoint[e] ?? 0) / p.seconds, 1)), pcCore(p, p.cpu.cdns), pcCore(p, others(p, load))])));

  let status = 0;
  const verdicts = [];
  const verdict = (ok, text) => { verdicts.push(`${text} ${ok ? 'met' : 'MISSED'}`); if (!ok) status = 1; };
  for (const r of results) {
    const at = `${int(r.services)} services`;
    if (r.failed) { status = 1; verdicts.push(`${at}: FAILED (${r.error})`); continue; }
    const budget = budgetOf(r);
    if (budget !== null) verdict(r.peakAll <= budget, `${at}: peak connections ${r.peakAll} within the budget ${budget}:`);
    verdict(r.r429 === 0, `${at}: no 429 (connection limit) from the fake (${r.r429}):`);
    verdict(r.startLoad && r.startLoad.max < 50 && r.startLoad.lost === 0,
      `${at}: DNS max < 50 ms from the first answer until settled (${fmtMs(r.startLoad?.max)}, ${r.startLoad?.lost} lost):`);
    const all = budget !== null && budget > r.services;
    for (const [k, f] of Object.entries(r.fresh ?? {})) {
      const seen = f.missed === 0 && f.n > 0;
      const bound = all || FAST_KINDS.has(k) ? 1000 : r.services <= 2000 ? 2000 : null;
      if (bound === null) verdicts.push(`${at}: ${k} stated bound: max ${fmtMs(f.max)}${seen ? '' : `, ${f.missed} of ${f.tried} NOT SEEN (MISSED)`}`);
      else verdict(seen && f.max < bound, `${at}: ${k} within ${bound / 1000} s (max ${fmtMs(f.max)}, ${f.n} of ${f.tried} seen):`);
      if (bound === null && !seen) status = 1;
    }
  }
  const largest = results.filter((r) => !r.failed).reduce((a, b) => (!a || b.services > a.services ? b : a), null);
  if (largest?.load) {
    verdict(largest.load.p99 < 5 && largest.load.max < 50 && largest.load.lost === 0,
      `${int(largest.services)} services: DNS p99 < 5 ms and max < 50 ms under changes (${fmtMs(largest.load.p99)}, ${fmtMs(largest.load.max)}):`);
  }
  console.log('');
  for (const v of verdicts) console.log(`target ${v}`);
  const missed = results.flatMap((r) => r.missedLines.map((l) => `[${r.services}] ${l}`));
  if (missed.length) {
    console.log('');
    console.log(`!!! ${missed.length} CHANGES NEVER SEEN IN DNS (within ${FRESH_TIMEOUT_MS / 1000} s):`);
    for (const l of missed.slice(0, 30)) console.log(`!!!   ${l}`);
    if (missed.length > 30) console.log(`!!!   ... and ${missed.length - 30} more`);
  }
  for (const r of results) for (const n of r.notes.slice(0, 5)) console.log(`note [${r.services}] ${n}`);
  return status;
}

// Last, so every const above is initialised: one file, three roles (the bench, the fake's process, the load).
const mode = process.argv[2];
if (mode === 'fake') await fakeChild(process.argv[3], Number(process.argv[4]), Number(process.argv[5]), process.argv[6], process.argv[7] ? Number(process.argv[7]) : null);
else if (mode === 'load') await loadChild(JSON.parse(process.argv[3]));
else await main();
