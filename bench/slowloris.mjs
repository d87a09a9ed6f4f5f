#!/usr/bin/env node
// Slowloris against the TCP listener, while fresh TCP and UDP clients keep asking (bench/README.md).
//
//   node bench/slowloris.mjs [-- extra catalog-dns flags]
//
// Starts the built server (dist/main.js) on 127.0.0.1 at a free port with the demo catalog and
// default settings (plus any flags after `--`), then a child process (the attacker) that keeps
// SLOWLORIS_CONNECTIONS connections open from SLOWLORIS_SOURCES loopback addresses (127.0.0.2,
// 127.0.0.3, ...), each sending one byte of a DNS query every SLOWLORIS_BYTE_MS and reconnecting
// SLOWLORIS_RECONNECT_MS after the server closes it. This process is the prober: after
// SLOWLORIS_WARMUP seconds it sends PROBE_RATE fresh TCP queries (a new connection from 127.0.0.1
// each) and as many UDP queries per second until SLOWLORIS_SECONDS have passed, and counts the ones
// answered within PROBE_TIMEOUT_MS. It prints the success rates and stops everything it started
// (by PID) on every path. Exit status: 0 both rates >= 99%, 1 below, 2 setup failure.
import { spawn, fork } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { connect, createServer } from 'node:net';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const env = (name, def) => {
  const v = process.env[name];
  if (v === undefined || v === '') return def;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) { console.error(`slowloris: ${name} must be a non-negative number, got '${v}'`); process.exit(2); }
  return n;
};
const CONNECTIONS = env('SLOWLORIS_CONNECTIONS', 1100);
const SOURCES = Math.max(1, Math.min(250, env('SLOWLORIS_SOURCES', 1)));
const BYTE_MS = env('SLOWLORIS_BYTE_MS', 2000);
const RECONNECT_MS = env('SLOWLORIS_RECONNECT_MS', 1000);
const SECONDS = env('SLOWLORIS_SECONDS', 60);
const WARMUP = env('SLOWLORIS_WARMUP', 10);
const PROBE_RATE = env('PROBE_RATE', 20);
const PROBE_TIMEOUT_MS = env('PROBE_TIMEOUT_MS', 2000);
const QNAME = 'web.service.consul';

/** A DNS query for QNAME A with the given ID (RD=0, no EDNS). */
function query(id) {
  const labels = QNAME.split('.').flatMap((l) => [Buffer.from([l.length]), Buffer.from(l)]);
  const h = Buffer.alloc(12);
  h.writeUInt16BE(id, 0);
  h.writeUInt16BE(1, 4);
  return Buffer.concat([h, ...labels, Buffer.from([0, 0, 1, 0, 1])]);
}
const framed = (m) => Buffer.concat([Buffer.from([m.length >> 8, m.length & 255]), m]);

// ---------------------------------------------------------------------------------------------
// Attacker (child process): slowloris connections, statistics to the parent on request.
// ---------------------------------------------------------------------------------------------

function attacker(port) {
  const frame = framed(query(0x5105));
  const stats = { opened: 0, closedByServer: 0, errors: 0, open: 0, lifetimes: [] };
  const timers = new Set();
  const socks = new Set();
  let stopping = false;
  const later = (ms, f) => { const t = setTimeout(() => { timers.delete(t); f(); }, ms); timers.add(t); };

  function open(i) {
    if (stopping) return;
    const localAddress = `127.0.0.${2 + (i % SOURCES)}`;
    const sock = connect({ port, host: '127.0.0.1', localAddress });
    socks.add(sock);
    let sent = 0, t0 = 0, tick = null;
    sock.on('connect', () => {
      stats.opened++;
      stats.open++;
      t0 = Date.now();
      const dribble = () => {
        if (sock.destroyed) return;
        sock.write(frame.subarray(sent % frame.length, (sent % frame.length) + 1));
        sent++;
      };
      dribble();
      tick = setInterval(dribble, BYTE_MS);
    });
    sock.on('data', () => {});
    sock.on('error', () => { stats.errors++; });
    sock.on('close', () => {
      socks.delete(sock);
      if (tick) clearInterval(tick);
      if (t0) {
        stats.open--;
        if (!stopping) stats.closedByServer++;
        stats.lifetimes.push(Date.now() - t0);
      }
      later(RECONNECT_MS, () => open(i));
    });
  }

  // Open in batches of 100 every 50 ms: the listen backlog (511) is not the thing measured.
  for (let b = 0; b < CONNECTIONS; b += 100) later((b / 100) * 50, () => { for (let i = b; i < Math.min(CONNECTIONS, b + 100); i++) open(i); });

  process.on('message', (m) => {
    if (m === 'stats') {
      const l = stats.lifetimes.sort((a, b) => a - b);
      process.send({ ...stats, lifetimes: undefined, lifetimeP50: l[Math.floor(l.length / 2)] ?? null, lifetimeMax: l.at(-1) ?? null });
      // Per report: closes and lifetimes since the previous one.
      stats.lifetimes = [];
      stats.closedByServer = 0;
    } else if (m === 'stop') {
      stopping = true;
      for (const t of timers) clearTimeout(t);
      for (const s of socks) s.destroy();
      process.exit(0);
    }
  });
  process.on('disconnect', () => process.exit(0));
}

// ---------------------------------------------------------------------------------------------
// Prober (parent)
// ---------------------------------------------------------------------------------------------

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

function tcpProbe(port, id) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const sock = connect({ port, host: '127.0.0.1', localAddress: '127.0.0.1' });
    let buf = Buffer.alloc(0), connected = false;
    // Resolves with the latency in ms, or with why it failed.
    const done = (r) => { clearTimeout(timer); sock.destroy(); resolve(r); };
    const timer = setTimeout(() => done(connected ? 'timeout' : 'connect timeout'), PROBE_TIMEOUT_MS);
    sock.on('connect', () => { connected = true; sock.write(framed(query(id))); });
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 14 && buf.length >= 2 + buf.readUInt16BE(0)) done(buf.readUInt16BE(2) === id && (buf[5] & 0x0f) === 0 ? performance.now() - t0 : 'bad reply');
    });
    sock.on('error', (e) => done(e.code ?? 'error'));
    sock.on('close', () => done('closed without a reply'));
  });
}

function udpProbe(port, id) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const s = createSocket('udp4');
    const done = (r) => { clearTimeout(timer); s.close(); resolve(r); };
    const timer = setTimeout(() => done('timeout'), PROBE_TIMEOUT_MS);
    s.on('message', (m) => done(m.length >= 12 && m.readUInt16BE(0) === id && (m[3] & 0x0f) === 0 ? performance.now() - t0 : 'bad reply'));
    s.on('error', (e) => done(e.code ?? 'error'));
    s.send(query(id), port, '127.0.0.1');
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pct = (a, n) => (n === 0 ? 'n/a' : `${((100 * a) / n).toFixed(2)}%`);
const quantile = (xs, q) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))].toFixed(1) : 'n/a'; };

async function main() {
  const serverArgs = process.argv.includes('--') ? process.argv.slice(process.argv.indexOf('--') + 1) : [];
  const main = join(ROOT, 'dist', 'main.js');
  if (!existsSync(main)) { console.error('slowloris: dist/main.js not found; run `npm run build` first'); return 2; }
  const port = await freePort();
  const started = [];
  const stopAll = async () => {
    for (const p of started.reverse()) {
      if (p.exitCode !== null || p.signalCode !== null) continue;
      const gone = new Promise((r) => p.once('exit', r));
      if (p.connected) p.send('stop'); else p.kill('SIGTERM');
      const t = setTimeout(() => p.kill('SIGKILL'), 5000);
      await gone;
      clearTimeout(t);
    }
  };
  const onSignal = () => { void stopAll().then(() => process.exit(130)); };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const server = spawn(process.execPath, [main, '--catalog-file', join(ROOT, 'fixtures', 'demo-catalog.json'),
      '--dns', `127.0.0.1:${port}`, ...serverArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
    started.push(server);
    let log = '';
    const ready = new Promise((resolve) => {
      const onData = (d) => { log += d; if (log.includes('"msg":"serving"')) resolve(true); if (log.length > 1e5) log = log.slice(-5e4); };
      server.stdout.on('data', onData);
      server.stderr.on('data', onData);
      server.once('exit', () => resolve(false));
      setTimeout(() => resolve(false), 10_000);
    });
    if (!(await ready)) { console.error(`slowloris: the server did not start:\n${log}`); return 2; }
    console.log(`slowloris: catalog-dns on 127.0.0.1:${port} ${serverArgs.join(' ')}`.trimEnd());
    console.log(`slowloris: ${CONNECTIONS} connections from ${SOURCES === 1 ? '127.0.0.2' : `127.0.0.2-127.0.0.${1 + SOURCES}`}, one byte every ${BYTE_MS} ms, reconnecting after ${RECONNECT_MS} ms`);

    const atk = fork(fileURLToPath(import.meta.url), ['--attacker', String(port)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    started.push(atk);
    const stats = () => new Promise((resolve) => { atk.once('message', resolve); atk.send('stats'); });
    await sleep(WARMUP * 1000);
    const s0 = await stats();
    console.log(`slowloris: after ${WARMUP} s warmup: ${s0.open} attacker connections open, ${s0.opened} opened, ${s0.closedByServer} closed by the server`);

    const tcp = { n: 0, ok: 0, ms: [], fail: {} }, udp = { n: 0, ok: 0, ms: [], fail: {} };
    const count = (t) => (r) => { t.n++; if (typeof r === 'number') { t.ok++; t.ms.push(r); } else t.fail[r] = (t.fail[r] ?? 0) + 1; };
    const pending = [];
    const end = Date.now() + Math.max(1, SECONDS - WARMUP) * 1000;
    let id = 1, nextReport = Date.now() + 10_000;
    while (Date.now() < end) {
      const qid = id = (id % 65000) + 1;
      pending.push(tcpProbe(port, qid).then(count(tcp)));
      pending.push(udpProbe(port, qid).then(count(udp)));
      if (Date.now() >= nextReport) {
        nextReport += 10_000;
        const s = await stats();
        console.log(`slowloris: tcp ${tcp.ok}/${tcp.n}, udp ${udp.ok}/${udp.n}; attacker: ${s.open} open, ${s.closedByServer} closed by the server since the last report, median lifetime ${s.lifetimeP50} ms`);
      }
      await sleep(1000 / PROBE_RATE);
    }
    await Promise.all(pending);
    const s1 = await stats();
    if (server.exitCode !== null) { console.error(`slowloris: the server exited (${server.exitCode}):\n${log}`); return 2; }
    console.log('');
    const fails = (t) => (Object.keys(t.fail).length ? `; failed: ${Object.entries(t.fail).map(([k, v]) => `${v} ${k}`).join(', ')}` : '');
    console.log(`fresh TCP queries answered: ${tcp.ok}/${tcp.n} = ${pct(tcp.ok, tcp.n)}  (latency ms p50 ${quantile(tcp.ms, 0.5)}, p99 ${quantile(tcp.ms, 0.99)}${fails(tcp)})`);
    console.log(`UDP queries answered:       ${udp.ok}/${udp.n} = ${pct(udp.ok, udp.n)}  (latency ms p50 ${quantile(udp.ms, 0.5)}, p99 ${quantile(udp.ms, 0.99)}${fails(udp)})`);
    console.log(`attacker at the end: ${s1.open} connections open, ${s1.errors} socket errors, lifetime of the ones closed in the last period: median ${s1.lifetimeP50} ms, max ${s1.lifetimeMax} ms`);
    return tcp.ok >= 0.99 * tcp.n && udp.ok >= 0.99 * udp.n ? 0 : 1;
  } finally {
    await stopAll();
  }
}

if (process.argv[2] === '--attacker') attacker(Number(process.argv[3]));
else main().then((code) => process.exit(code), (e) => { console.error(e); process.exit(2); });
