#!/usr/bin/env node
// Memory under a flood of distinct queries: starts the built server (dist/main.js) with default
// settings, sends QUERIES distinct valid queries over UDP at a bounded rate, and prints the server's
// RSS (VmRSS from /proc/PID/status) at intervals and at the end; once with the response cache on
// (the default) and once off (--response-cache-mb 0). See bench/README.md.
//
// Usage: node bench/cache-memory.mjs [--queries 1000000] [--rate 20000] [--window 256]
//                                    [--every 100000] [--mode both|on|off] [--seed 1]
//                                    [-- extra server flags]
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { prng } from './prng.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: opt, positionals: extra } = parseArgs({
  allowPositionals: true,
  options: {
    queries: { type: 'string', default: '1000000' },
    rate: { type: 'string', default: '20000' },
    window: { type: 'string', default: '256' },
    every: { type: 'string', default: '100000' },
    mode: { type: 'string', default: 'both' },
    seed: { type: 'string', default: '1' },
  },
});
const QUERIES = Number(opt.queries);
const RATE = Number(opt.rate);
const WINDOW = Number(opt.window);
const EVERY = Number(opt.every);
const MODES = opt.mode === 'both' ? ['on', 'off'] : [opt.mode];
for (const [k, v] of [['queries', QUERIES], ['rate', RATE], ['window', WINDOW], ['every', EVERY]]) {
  if (!Number.isInteger(v) || v < 1) { process.stderr.write(`cache-memory: --${k} must be a positive integer\n`); process.exit(2); }
}
if (!MODES.every((m) => m === 'on' || m === 'off')) { process.stderr.write('cache-memory: --mode is both, on or off\n'); process.exit(2); }
const MAIN = join(ROOT, 'dist', 'main.js');
try { readFileSync(MAIN); } catch { process.stderr.write('cache-memory: dist/main.js missing; run `npm run build` first\n'); process.exit(2); }


const SERVICES = 1000, NODES = 1000;
const pad4 = (i) => String(i).padStart(4, '0');

/**
 * The query stream: distinct messages (the bytes after the ID differ), generated lazily.
 * 40% svc-N.service.consul A, 30% _svc-N._tcp.service.consul SRV, 10% node-N.node.consul A,
 * 5% <hex>.addr.consul A (random addresses), 15% random names under service.consul (NXDOMAIN).
 * Every letter of the name gets a random case (0x20); 80% carry EDNS with a random size 512-4096,
 * 20% none; RD set.
 */
function* queryStream(n, seed) {
  const rand = prng(seed);
  const int = (k) => Math.floor(rand() * k);
  const seen = new Set();
  const ALNUM = 'abcdefghijklmnopqrstuvwxyz0123456789';
  for (let i = 0; i < n;) {
    const r = rand();
    let name, qtype = 1;
    if (r < 0.40) name = `svc-${pad4(int(SERVICES))}.service.consul`;
    else if (r < 0.70) { name = `_svc-${pad4(int(SERVICES))}._tcp.service.consul`; qtype = 33; }
    else if (r < 0.80) name = `node-${pad4(int(NODES))}.node.consul`;
    else if (r < 0.85) name = `${(10 << 24 | int(1 << 24)).toString(16).padStart(8, '0')}.addr.consul`;
    else name = `${Array.from({ length: 6 + int(10) }, () => ALNUM[int(36)]).join('')}.service.consul`;
    const edns = rand() < 0.8 ? 512 + int(4096 - 512 + 1) : 0;
    const labels = name.split('.');
    let len = 12 + 1 + 4 + (edns ? 11 : 0);
    for (const l of labels) len += 1 + l.length;
    const m = Buffer.alloc(len);
    m.writeUInt16BE(0x0100, 2); // RD
    m.writeUInt16BE(1, 4);
    if (edns) m.writeUInt16BE(1, 10);
    let o = 12;
    for (const l of labels) {
      m[o++] = l.length;
      for (let k = 0; k < l.length; k++) {
        let c = l.charCodeAt(k);
        if (c >= 0x61 && c <= 0x7a && rand() < 0.5) c ^= 0x20;
        m[o++] = c;
      }
    }
    m[o++] = 0;
    m.writeUInt16BE(qtype, o); m.writeUInt16BE(1, o + 2); o += 4;
    if (edns) { m.writeUInt16BE(41, o + 1); m.writeUInt16BE(edns, o + 3); }
    const key = m.toString('latin1', 2);
    if (seen.has(key)) continue;
    seen.add(key);
    i++;
    yield m;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function vm(pid) {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
}
const mb = (v) => `${v.toFixed(0)} MB`;

/** Starts dist/main.js on 127.0.0.1 port 0 and resolves with its pid and UDP port (from the `serving` line). */
function startServer(catalog, flags) {
  const child = spawn(process.execPath, [MAIN, '--catalog-file', catalog, '--dns', '127.0.0.1:0', '--log-level', 'info', ...flags],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let out = '', err = '';
    const t = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`server did not start in 30 s:\n${out}${err}`)); }, 30_000);
    child.stderr.on('data', (d) => { err += d; });
    child.stdout.on('data', (d) => {
      out += d;
      const m = /"dns":"127\.0\.0\.1:(\d+)".*"msg":"serving"/.exec(out);
      if (m) { clearTimeout(t); child.stdout.removeAllListeners('data'); child.stdout.resume(); resolve({ child, port: Number(m[1]) }); }
    });
    child.on('exit', (code) => { clearTimeout(t); reject(new Error(`server exited with ${code}:\n${out}${err}`)); });
  });
}

async function stopServer(child) {
  if (child.exitCode !== null) return;
  const done = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await done;
  clearTimeout(t);
}

/** Sends the stream at up to RATE qps with at most WINDOW unanswered; a query unanswered after 2 s is lost. */
async function flood(port, pid, label) {
  const sock = createSocket({ type: 'udp4', recvBufferSize: 8 << 20 });
  await new Promise((r) => sock.bind(0, '127.0.0.1', r));
  const sentAt = new Float64Array(65536); // by ID; 0 = not outstanding
  let outstanding = 0, sent = 0, answered = 0, lost = 0, noerror = 0, nxdomain = 0, other = 0, nextId = 0;
  sock.on('message', (m) => {
    const id = m.readUInt16BE(0);
    if (sentAt[id] === 0) return; // late reply to a query already counted lost
    sentAt[id] = 0;
    outstanding--;
    answered++;
    const rc = m[3] & 0x0f;
    if (rc === 0) noerror++; else if (rc === 3) nxdomain++; else other++;
  });
  const stream = queryStream(QUERIES, Number(opt.seed));
  const t0 = performance.now();
  let nextReport = EVERY, lastScan = t0;
  const rows = [];
  const report = (what) => {
    const v = vm(pid);
    const row = `${label.padEnd(4)} ${what.padStart(12)}  sent ${String(sent).padStart(8)}  answered ${String(answered).padStart(8)}  lost ${String(lost).padStart(6)}  VmRSS ${mb(v.rss).padStart(7)}  VmHWM ${mb(v.hwm).padStart(7)}`;
    rows.push(row);
    process.stdout.write(row + '\n');
  };
  report('start');
  while (sent < QUERIES) {
    // Expire queries unanswered for 2 s (checked twice a second).
    const now = performance.now();
    if (outstanding > 0 && now - lastScan > 500) {
      lastScan = now;
      for (let id = 0; id < 65536; id++) {
        if (sentAt[id] !== 0 && now - sentAt[id] > 2000) { sentAt[id] = 0; outstanding--; lost++; }
      }
    }
    // Token budget for this tick: what RATE allows since t0, minus what was sent.
    const allowed = Math.min(QUERIES, Math.floor(((now - t0) / 1000) * RATE));
    while (sent < allowed && outstanding < WINDOW) {
      const m = stream.next().value;
      const id = nextId;
      nextId = (nextId + 1) & 0xffff;
      m.writeUInt16BE(id, 0);
      if (sentAt[id] !== 0) { outstanding--; lost++; } // (cannot happen below 32k qps with a 2 s timeout)
      sentAt[id] = performance.now() || 1;
      outstanding++;
      sent++;
      sock.send(m, port, '127.0.0.1');
      if (sent >= nextReport) { nextReport += EVERY; report(`${sent / 1000}k sent`); }
    }
    await sleep(5);
  }
  for (let i = 0; i < 500 && outstanding > 0; i++) {
    await sleep(10);
    const now = performance.now();
    for (let id = 0; id < 65536; id++) if (sentAt[id] !== 0 && now - sentAt[id] > 2000) { sentAt[id] = 0; outstanding--; lost++; }
  }
  const secs = (performance.now() - t0) / 1000;
  report('end');
  await sleep(3000);
  report('idle 3 s');
  sock.close();
  process.stdout.write(`${label.padEnd(4)} ${sent} queries in ${secs.toFixed(1)} s (${Math.round(sent / secs)} qps): ` +
    `NOERROR ${noerror}, NXDOMAIN ${nxdomain}, other ${other}, lost ${lost}\n`);
  return { rows, last: vm(pid), other, lost };
}

const dir = mkdtempSync(join(tmpdir(), 'cdns-cache-mem-'));
let child = null;
const cleanup = () => { if (child && child.exitCode === null) child.kill('SIGKILL'); rmSync(dir, { recursive: true, force: true }); };
process.on('SIGINT', () => { cleanup(); process.exit(130); });
try {
  await new Promise((resolve, reject) => {
    const g = spawn(process.execPath, [join(ROOT, 'bench', 'gen-catalog.mjs'), dir, '--queries', '1'], { stdio: ['ignore', 'ignore', 'inherit'] });
    g.on('exit', (c) => (c === 0 ? resolve() : reject(new Error(`gen-catalog exited with ${c}`))));
  });
  const catalog = join(dir, 'catalog.json');
  process.stdout.write(`cache-memory: ${QUERIES} distinct queries, up to ${RATE} qps, ${WINDOW} outstanding; catalog of ${SERVICES} services x 5 on ${NODES} nodes\n`);
  const results = {};
  for (const mode of MODES) {
    const flags = mode === 'off' ? ['--response-cache-mb', '0', ...extra] : extra;
    process.stdout.write(`\n== cache ${mode}: node dist/main.js ${flags.join(' ')}\n`);
    const s = await startServer(catalog, flags);
    child = s.child;
    await sleep(500);
    results[mode] = await flood(s.port, s.child.pid, mode);
    await stopServer(s.child);
    child = null;
  }
  process.stdout.write('\nsummary (VmRSS after the flood and 3 s idle, VmHWM = peak):\n');
  for (const [mode, r] of Object.entries(results)) {
    process.stdout.write(`  cache ${mode.padEnd(3)}  VmRSS ${mb(r.last.rss)}  VmHWM ${mb(r.last.hwm)}\n`);
  }
  const bad = Object.values(results).some((r) => r.other > 0 || r.lost > QUERIES * 0.01);
  if (bad) process.stdout.write('WARNING: answers with rcodes other than NOERROR/NXDOMAIN, or more than 1% lost\n');
  process.exitCode = bad ? 1 : 0;
} finally {
  cleanup();
}
