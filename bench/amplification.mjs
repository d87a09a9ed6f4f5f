#!/usr/bin/env node
// How much a small UDP query can make catalog-dns send (the amplification a spoofed query buys),
// with the default and the largest max_udp_size, and what response rate limiting leaves of it.
// Also the cost of one rate-limit check. Loopback only; the server runs in this process.
//
// Usage: npm run build && node bench/amplification.mjs
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import packet from 'dns-packet';
import { App } from '../dist/app.js';
import { loadConfig } from '../dist/config.js';
import { ResponseRateLimiter } from '../dist/dns/rrl.js';
import { silentLogger } from '../dist/log.js';

const dir = mkdtempSync(join(tmpdir(), 'cdns-amp-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

// One service with 5000 instances on distinct nodes: its A answer (80 KB) is larger than any reply.
const N = 5000;
const nodes = Array.from({ length: N }, (_, i) => ({ Node: `n${i}`, Address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, Meta: {} }));
const catalog = join(dir, 'catalog.json');
writeFileSync(catalog, JSON.stringify({
  datacenter: 'dc1',
  datacenters: { dc1: { nodes, services: { x: nodes.map((nd, i) => ({ Node: nd, Service: { ID: `x${i}`, Service: 'x', Port: 80 }, Checks: [] })) } } },
}));

const query = (id) => packet.encode({
  type: 'query', id, flags: packet.RECURSION_DESIRED,
  questions: [{ type: 'A', name: 'x.service.consul', class: 'IN' }],
  additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 65535, extendedRcode: 0, ednsVersion: 0, flags: 0, options: [] }],
});

async function withServer(overrides, configPatch, fn) {
  const base = loadConfig({ object: { dns: '127.0.0.1:0', http: 'off', catalog_file: catalog, ...overrides } });
  const app = new App({ config: { ...base, ...configPatch }, logger: silentLogger() });
  await app.start();
  try {
    return await fn(app);
  } finally {
    await app.close();
  }
}

/** Sends `msgs` at once from one socket; returns the replies once the server's counters say all are in. */
async function burst(app, msgs) {
  const c = app.counters;
  const q0 = c.queriesUdp, d0 = c.rrlDropped + c.dropped + c.sendErrors;
  const sock = createSocket('udp4');
  const replies = [];
  sock.on('message', (m) => replies.push(m));
  await new Promise((r) => sock.bind(0, '127.0.0.1', r));
  for (const m of msgs) sock.send(m, app.dnsAddress.port, '127.0.0.1');
  for (let i = 0; i < 2000 && c.queriesUdp - q0 < msgs.length; i++) await new Promise((r) => setTimeout(r, 5));
  const expected = msgs.length - (c.rrlDropped + c.dropped + c.sendErrors - d0);
  for (let i = 0; i < 2000 && replies.length < expected; i++) await new Promise((r) => setTimeout(r, 5));
  sock.close();
  return replies;
}

console.log('amplification: one query for x.service.consul A with EDNS 65535, a 5000-address answer');
console.log('setting                                  query B   reply B   factor');
const rows = [
  ['max_udp_size 1232 (default)', { max_udp_size: 1232 }, {}],
  ['max_udp_size 4096 (the most allowed now)', { max_udp_size: 4096 }, {}],
  // The config no longer accepts it; patched in to show what the old maximum allowed.
  ['max_udp_size 65535 (allowed before)', {}, { maxUdpSize: 65535 }],
];
for (const [label, o, patch] of rows) {
  await withServer(o, patch, async (app) => {
    const q = query(1);
    const [r] = await burst(app, [q]);
    console.log(`${label.padEnd(40)} ${String(q.length).padStart(7)}   ${String(r.length).padStart(7)}   ${(r.length / q.length).toFixed(1).padStart(6)}`);
  });
}

console.log('\nresponse rate limiting: 1000 such queries at once from one client, max_udp_size 1232');
console.log('setting                                  replies  full  slipped   bytes in  bytes out  out/in');
for (const [label, o] of [
  ['rrl off', {}],
  ['rrl 5/s, slip 2', { rrl_responses_per_second: 5, rrl_slip: 2 }],
  ['rrl 5/s, slip 0', { rrl_responses_per_second: 5, rrl_slip: 0 }],
]) {
  await withServer(o, {}, async (app) => {
    const msgs = Array.from({ length: 1000 }, (_, i) => query(i));
    const replies = await burst(app, msgs);
    const inB = msgs.reduce((a, m) => a + m.length, 0), outB = replies.reduce((a, m) => a + m.length, 0);
    const slipped = replies.filter((r) => r.readUInt16BE(6) === 0).length;
    console.log(`${label.padEnd(40)} ${String(replies.length).padStart(7)} ${String(replies.length - slipped).padStart(5)} ${String(slipped).padStart(8)} ${String(inB).padStart(10)} ${String(outB).padStart(10)} ${(outB / inB).toFixed(2).padStart(7)}`);
  });
}

// The price of one check (uptime's load average says how much else the machine was doing).
const resp = (name) => Buffer.concat([
  Buffer.from([0, 1, 0x84, 0, 0, 1, 0, 1, 0, 0, 0, 0]),
  ...name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])),
  Buffer.from([0, 0, 1, 0, 1]),
]);
const answers = Array.from({ length: 10 }, (_, i) => resp(`s${i}.service.consul`));
const M = 1_000_000;
for (const [label, addrOf] of [
  // 1000 /24s x 10 names: 10,000 accounts, found again every time
  ['IPv4, 10,000 accounts (hits)', (i) => `10.${(i >> 8) & 3}.${i & 255}.7`],
  // a new /56 every time: each check a miss that reuses the oldest of the 32768 accounts
  ['IPv6, a new /56 every time (misses)', (i) => `2001:db8:${(i >> 8) & 0xffff}:${(i & 0xff).toString(16)}00::1`],
]) {
  const l = new ResponseRateLimiter({ responsesPerSecond: 5, slip: 2, windowSeconds: 15, ipv4Prefix: 24, ipv6Prefix: 56 });
  // Flat strings, as dgram hands them over (a template literal is a rope until first read).
  const addrList = Array.from({ length: M }, (_, i) => Buffer.from(addrOf(i), 'latin1').toString('latin1'));
  const nameOf = (i) => answers[Math.floor(i / 1024) % 10];
  for (let i = 0; i < 100_000; i++) l.check(nameOf(i), addrList[i]); // warm up
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < M; i++) l.check(nameOf(i), addrList[i]);
  const ns = Number(process.hrtime.bigint() - t0) / M;
  const t1 = process.hrtime.bigint();
  let x = 0;
  for (let i = 0; i < M; i++) x += performance.now();
  const clockNs = Number(process.hrtime.bigint() - t1) / M;
  console.log(`\nrrl check, ${label}: ${ns.toFixed(0)} ns per response, of which the clock ${clockNs.toFixed(0)} ns (${l.accounts} accounts in use)${x < 0 ? '' : ''}`);
}
