#!/usr/bin/env node
// Checks the memory model of src/cache-budget.ts on this Node.js (see the comment there):
// 1. the response cache and the name memo hold no more than they report: fills them through the
//    real QueryHandler and Zone with distinct queries and names, runs full GCs, and compares the
//    growth of V8's used heap + ArrayBuffer memory (Buffers, typed arrays) with the growth of their
//    own `bytes` (segments allocated on first use; the index exists from the start). V8 releases
//    a few MiB of the zone build's garbage late, so small negative growths are noise;
// 2. ANSWER_ID_BYTES: the growth per entry of a Map + array of that shape, at sizes just past a
//    power of two (where they have just grown), against the constant.
// Each measurement runs in a fresh process with --expose-gc --no-flush-bytecode (a flushed bytecode
// array, or a Buffer freed late from an earlier step, would show as negative growth).
// Exits 1 when a measurement exceeds what the code counts.
//
// Usage: npm run build && node bench/cost-model.mjs
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getHeapStatistics } from 'node:v8';

const SELF = fileURLToPath(import.meta.url);
const step = process.argv[2];
if (step === undefined) {
  let failed = false;
  for (const s of ['memo:4', 'handler:4', 'memo:64', 'handler:64', 'ids:8193', 'ids:16385', 'ids:32769', 'ids:65536']) {
    const r = spawnSync(process.execPath, ['--expose-gc', '--no-flush-bytecode', SELF, s], { stdio: ['ignore', 'inherit', 'inherit'] });
    failed ||= r.status !== 0;
  }
  process.stdout.write(`Node.js ${process.version} (${process.arch})\n`);
  process.exit(failed ? 1 : 0);
}
const [what, arg] = step.split(':');
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = (p) => import(join(ROOT, 'dist', p));
const budget = await dist('cache-budget.js');
const { buildZone } = await dist('zone/build.js');
const { validateCatalog } = await dist('catalog/catalog.js');
const { loadConfig } = await dist('config.js');
const { QueryHandler } = await dist('dns/handler.js');
const { DnsCounters } = await dist('dns/counters.js');
const { silentLogger } = await dist('log.js');
const { wireKey } = await dist('zone/zone.js');

/**
 * V8's used heap + ArrayBuffer backing stores after full GCs. Some memory is released only a while
 * after GCs (backing stores freed on other threads, V8's memory reducer when idle): GC, wait 3 s, GC.
 */
async function used() {
  const settle = async (ms) => {
    for (let i = 0; i < 4; i++) {
      globalThis.gc();
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, ms));
  };
  await settle(3000);
  await settle(0);
  const m = process.memoryUsage();
  return getHeapStatistics().used_heap_size + m.arrayBuffers;
}
const MiB = 1024 * 1024;
const mib = (b) => `${(b / MiB).toFixed(2)} MiB`;

const dir = mkdtempSync(join(tmpdir(), 'cdns-cost-'));
let catalog;
try {
  const g = spawnSync(process.execPath, [join(ROOT, 'bench', 'gen-catalog.mjs'), dir, '--queries', '1'], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (g.status !== 0) throw new Error('gen-catalog failed');
  catalog = validateCatalog(JSON.parse(readFileSync(join(dir, 'catalog.json'), 'utf8'))).catalog;
} finally {
  rmSync(dir, { recursive: true, force: true });
}

/** A query like bench/cache-memory.mjs sends: random case, EDNS size from i. */
function query(name, qtype, i) {
  const labels = name.split('.');
  let len = 12 + 1 + 4 + 11;
  for (const l of labels) len += 1 + l.length;
  const m = Buffer.alloc(len);
  m.writeUInt16BE(i & 0xffff, 0);
  m.writeUInt16BE(0x0100, 2);
  m.writeUInt16BE(1, 4);
  m.writeUInt16BE(1, 10);
  let o = 12;
  for (const l of labels) {
    m[o++] = l.length;
    for (let k = 0; k < l.length; k++) m[o++] = l.charCodeAt(k) ^ ((i >> (k % 16)) & 1 && /[a-z]/.test(l[k]) ? 0x20 : 0);
  }
  m[o++] = 0;
  m.writeUInt16BE(qtype, o); m.writeUInt16BE(1, o + 2); o += 4;
  m.writeUInt16BE(41, o + 1); m.writeUInt16BE(512 + (i % 3585), o + 3); // (i % 1000, i % 3585): all distinct
  return m;
}

let bad = false;
const row = (what, grew, counted) => {
  const ok = grew <= counted * 1.02 + 64 * 1024;
  bad ||= !ok;
  process.stdout.write(`${what.padEnd(44)} grew ${mib(grew).padStart(11)}   counts ${mib(counted).padStart(11)}${ok ? '' : '   <- holds more than it counts'}\n`);
};

const mb = Number(arg);
if (what === 'memo') {
  // The name memo alone: distinct names straight to Zone.answer.
  const config = loadConfig({ object: { dns: '127.0.0.1:0', response_cache_mb: mb } });
  const zone = buildZone(catalog, { config, serialFor: () => 1 });
  zone.answer(wireKey('warm.service.consul'), 1);
  const s0 = zone.memoStats();
  const before = await used();
  const n = 400_000;
  for (let i = 0; i < n; i++) zone.answer(wireKey(i % 4 ? `nosuch-${i}.service.consul` : `v1.svc-${String(i % 1000).padStart(4, '0')}.service.consul`), 1);
  const grew = (await used()) - before;
  const s = zone.memoStats();
  row(`${mb} MiB: name memo (${s.entries} of ${n} names kept)`, grew, s.bytes - s0.bytes);
  if (s.bytes > budget.cacheBudget(mb * MiB).names) { bad = true; process.stdout.write(`  memo reports ${s.bytes} > its part\n`); }
} else if (what === 'handler') {
  // The response cache and the memo together, through the real handler.
  const config = loadConfig({ object: { dns: '127.0.0.1:0', response_cache_mb: mb } });
  const zone = buildZone(catalog, { config, serialFor: () => 1 });
  const h = new QueryHandler({ store: { current: () => zone }, config, logger: silentLogger(), counters: new DnsCounters() });
  h.handle(query('warm.service.consul', 1, 0), false);
  const m0 = h.cacheMemory();
  const before = await used();
  const n = 600_000;
  for (let i = 0; i < n; i++) {
    const svc = `svc-${String(i % 1000).padStart(4, '0')}`;
    const name = i % 10 === 9 ? `nx${i}.service.consul` : i % 2 ? `${svc}.service.consul` : `_${svc}._tcp.service.consul`;
    h.handle(query(name, name.startsWith('_') ? 33 : 1, i), false);
  }
  const grew = (await used()) - before;
  const m = h.cacheMemory();
  const counted = m.responses.bytes + m.names.bytes - (m0.responses.bytes + m0.names.bytes);
  row(`${mb} MiB: responses + names (${m.responses.entries} replies)`, grew, counted);
  if (m.responses.bytes + m.names.bytes > mb * MiB) { bad = true; process.stdout.write('  reports more than the budget\n'); }
  process.stdout.write(`  responses ${mib(m.responses.bytes)} of ${mib(m.responses.limit)}, ${m.responses.entries} entries, ${m.responses.evictions} evicted; ` +
    `names ${mib(m.names.bytes)} of ${mib(m.names.limit)}, ${m.names.entries} entries, ${m.names.evictions} evicted\n`);
} else {
  // ANSWER_ID_BYTES: a Map<object, number> and an array, as ResponseCache's answer table.
  const n = Number(arg);
  const objs = Array.from({ length: n }, () => ({ rcode: 0 }));
  const before = await used();
  const arr = [];
  const ids = new Map();
  for (const o of objs) { ids.set(o, arr.length); arr.push(o); }
  const per = ((await used()) - before) / n;
  const ok = per <= budget.ANSWER_ID_BYTES;
  bad ||= !ok;
  process.stdout.write(`answer table, ${String(n).padStart(6)} entries: ${per.toFixed(1)} B each (ANSWER_ID_BYTES ${budget.ANSWER_ID_BYTES}${ok ? '' : ', too small'}; ${arr.length === ids.size})\n`);
}
process.exitCode = bad ? 1 : 0;
