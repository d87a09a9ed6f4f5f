#!/usr/bin/env node
// Open-loop UDP DNS load at a fixed rate that records every query's latency (for p99 and max,
// which dnsperf does not report). Sends the lines of a dnsperf query file ("name TYPE") in a loop,
// EDNS0 on, round robin over a few sockets; prints one JSON line {"ready":true} when it starts
// sending and one JSON line with the figures when it is done. First WARMUP seconds at the same
// rate that are not recorded (JIT and caches of both sides), then {"ready":true}, then SECONDS of
// recorded sending, then at most TIMEOUT_MS waiting for the last answers; a query unanswered by
// then counts as lost. Also reports the worst latency of each second (to see when slow answers
// happen) and this process's own worst event-loop delay (a stalled client inflates latencies).
// Usage: node bench/dns-load.mjs --port PORT --queries FILE [--host 127.0.0.1] [--rate 5000]
//                                [--seconds 20] [--warmup 2] [--sockets 4] [--timeout-ms 2000]
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { encodeQuery, responseHeader, RCODES, udpDrops } from './dns-wire.mjs';

const { values: opt } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    queries: { type: 'string' },
    rate: { type: 'string', default: '5000' },
    seconds: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '2' },
    sockets: { type: 'string', default: '4' },
    'timeout-ms': { type: 'string', default: '2000' },
  },
});
const PORT = Number(opt.port);
const RATE = Number(opt.rate);
const SECONDS = Number(opt.seconds);
const WARMUP = Number(opt.warmup);
const SOCKETS = Number(opt.sockets);
const TIMEOUT_MS = Number(opt['timeout-ms']);
if (!opt.queries || !(PORT > 0 && PORT < 65536) || !(RATE > 0) || !(SECONDS > 0) || !(WARMUP >= 0) || !(SOCKETS >= 1) || !(TIMEOUT_MS > 0)) {
  process.stderr.write('usage: dns-load.mjs --port PORT --queries FILE [--rate QPS] [--seconds S] [--sockets N] [--timeout-ms MS]\n');
  process.exit(2);
}

const templates = readFileSync(opt.queries, 'utf8').split('\n').filter((l) => l.trim()).map((l) => {
  const [name, type] = l.trim().split(/\s+/);
  return encodeQuery(name, type ?? 'A');
});
if (templates.length === 0) throw new Error(`${opt.queries}: no queries`);

const total = Math.ceil(RATE * SECONDS);
const lat = new Float64Array(total);
const worstBySecond = new Float64Array(Math.ceil(SECONDS) + 1);
let recording = false, t0 = 0;
let sendErrors = 0, lastError = null;
let answered = 0, sent = 0, stray = 0, lost = 0, truncated = 0, maxBehind = 0;
const rcodes = new Map();
// Per socket: send time by query ID (-1: nothing outstanding), and the next ID.
const sendAt = Array.from({ length: SOCKETS }, () => new Float64Array(65536).fill(-1));
const nextId = new Uint16Array(SOCKETS);

const socks = await Promise.all(Array.from({ length: SOCKETS }, (_, s) => new Promise((resolve, reject) => {
  // As large a receive buffer as the server's: drops here would be the client's, not the server's.
  const sock = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 * 1024 * 1024 });
  sock.once('error', reject);
  sock.on('message', (msg) => {
    const now = performance.now();
    const h = responseHeader(msg);
    if (!h) { stray++; return; }
    const t = sendAt[s][h.id];
    if (t < 0) { stray++; return; }
    sendAt[s][h.id] = -1;
    if (!recording || t < t0) return; // a warm-up query
    const ms = now - t;
    lat[answered++] = ms;
    const sec = Math.min(worstBySecond.length - 1, Math.floor((t - t0) / 1000));
    if (ms > worstBySecond[sec]) worstBySecond[sec] = ms;
    if (h.tc) truncated++;
    const rc = RCODES[h.rcode] ?? `RCODE${h.rcode}`;
    rcodes.set(rc, (rcodes.get(rc) ?? 0) + 1);
  });
  sock.bind(0, opt.host, () => { sock.removeListener('error', reject); sock.on('error', (e) => { sendErrors++; lastError = e.code ?? e.message; }); resolve(sock); });
})));

function sendOne(record) {
  const s = seq % SOCKETS;
  const id = nextId[s]++;
  const prev = sendAt[s][id];
  if (prev >= 0 && prev >= t0 && recording) lost++; // the ID came round with its query unanswered (very long runs)
  const buf = Buffer.from(templates[seq++ % templates.length]);
  buf.writeUInt16BE(id, 0);
  sendAt[s][id] = performance.now();
  socks[s].send(buf, PORT, opt.host);
  if (record) sent++;
}

/**
 * Sends at RATE for `ms`: every millisecond or so, what the fixed rate says is due by now (open
 * loop: a slow answer does not slow the sender down). A burst is capped so answers get read in between.
 */
function paced(ms, record) {
  const start = performance.now();
  const n = Math.ceil((RATE * ms) / 1000);
  let done = 0;
  return new Promise((resolve) => {
    const tick = () => {
      const elapsed = performance.now() - start;
      const due = Math.min(n, Math.floor((elapsed * RATE) / 1000));
      if (record) maxBehind = Math.max(maxBehind, due - done);
      for (let burst = 0; done < due && burst < 500; burst++, done++) sendOne(record);
      if (done >= n || elapsed >= ms + 1000) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
}

let seq = 0; // index into the query file, continued across warm-up and recording
if (WARMUP > 0) await paced(WARMUP * 1000, false);
process.stdout.write(JSON.stringify({ ready: true }) + '\n');
const eld = monitorEventLoopDelay({ resolution: 1 });
eld.enable();
t0 = performance.now();
recording = true;
await paced(SECONDS * 1000, true);
const sendMs = performance.now() - t0;
// Wait for the last answers, at most TIMEOUT_MS.
for (let waited = 0; waited < TIMEOUT_MS; waited += 10) {
  if (answered + lost >= sent) break;
  await new Promise((r) => setTimeout(r, 10));
}
for (const s of sendAt) for (const t of s) if (t >= t0) lost++; // unanswered warm-up queries are not counted
eld.disable();
const clientDrops = udpDrops(socks.map((sock) => sock.address().port));
for (const sock of socks) sock.close();

const sorted = lat.subarray(0, answered).sort();
const pct = (q) => (answered ? sorted[Math.min(answered - 1, Math.max(0, Math.ceil(q * answered) - 1))] : null);
const r3 = (x) => (x === null ? null : Math.round(x * 1000) / 1000);
process.stdout.write(JSON.stringify({
  sent, answered, lost, stray, truncated, clientDrops, sendErrors, lastError,
  rate: RATE, achievedQps: Math.round((sent * 1000) / sendMs), maxBehind,
  rcodes: Object.fromEntries(rcodes),
  clientEldMaxMs: r3(eld.max / 1e6), worstBySecond: [...worstBySecond.subarray(0, Math.ceil(SECONDS))].map((x) => Math.round(x)),
  p50: r3(pct(0.5)), p90: r3(pct(0.9)), p99: r3(pct(0.99)), p999: r3(pct(0.999)), max: r3(answered ? sorted[answered - 1] : null),
}) + '\n');
