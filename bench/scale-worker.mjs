// The in-process half of `npm run bench:scale` (see bench/README.md), one process per catalog
// size so RSS figures do not carry over. Forked by bench/scale.mjs with --expose-gc and an IPC
// channel; talks to it in messages:
//   -> { type: 'serving', port, ... }   after parse, full build (App serving on 127.0.0.1:0), 100 commits
//   <- { type: 'phase', seconds, rate } commits `rate` one-service changes a second for `seconds`
//   -> { type: 'phase', ... }           (any number of phases), serving on until the next message
//   <- { type: 'stop' }
//   -> { type: 'stopped', ... }         query counters, and the file read again in slices (a reload); then it exits.
// Usage (by scale.mjs): node --expose-gc bench/scale-worker.mjs CATALOG_JSON COMMITS [SERVER_CONFIG_JSON]
import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { App } from '../dist/app.js';
import { parseCatalog } from '../dist/catalog/catalog.js';
import { loadCatalog } from '../dist/catalog/load.js';
import { loadConfig } from '../dist/config.js';
// Loaded by App.start before anything is served (a real start has nothing listening yet then); here
// beforehand, so that the build's event-loop delay measures the zone work alone.
import '../dist/http/metrics.js';
import '../dist/http/server.js';
import { createLogger } from '../dist/log.js';

if (typeof globalThis.gc !== 'function' || !process.send) {
  process.stderr.write('scale-worker: run by bench/scale.mjs (needs --expose-gc and an IPC channel)\n');
  process.exit(2);
}
const [catalogPath, commitsArg, serverConfig] = process.argv.slice(2);
const COMMITS = Number(commitsArg ?? 100);
const send = (msg) => new Promise((resolve) => process.send(msg, resolve));
// The parent owns this process: if it goes away, so do we.
process.on('disconnect', () => process.exit(1));

const mb = (bytes) => Math.round(bytes / 1048576);
const r1 = (x) => Math.round(x * 10) / 10;
const rss = () => process.memoryUsage().rss;
const gcRss = () => { globalThis.gc(); globalThis.gc(); return rss(); };
const percentile = (xs, q) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]; };
const eld = () => { const h = monitorEventLoopDelay({ resolution: 1 }); h.enable(); return h; };
/**
 * The worst delay seen. The histogram records a stall when its timer next fires, so the loop gets
 * one timer tick first: a commit's final synchronous step (the swap) is not lost.
 */
const eldMaxMs = async (h) => { await new Promise((resolve) => setTimeout(resolve, 10)); h.disable(); return r1(h.max / 1e6); };

/**
 * A ReadonlyMap that is `base` with a few entries replaced or added, without copying `base`:
 * how the bench makes a catalog that shares every entry but one with the previous one.
 */
class Overlay {
  constructor(base, over = new Map()) { this.base = base; this.over = over; }
  with(key, value) { return new Overlay(this.base, new Map(this.over).set(key, value)); }
  get(k) { return this.over.has(k) ? this.over.get(k) : this.base.get(k); }
  has(k) { return this.over.has(k) || this.base.has(k); }
  get size() { let n = this.base.size; for (const k of this.over.keys()) if (!this.base.has(k)) n++; return n; }
  *entries() {
    for (const [k, v] of this.base) yield [k, this.over.has(k) ? this.over.get(k) : v];
    for (const [k, v] of this.over) if (!this.base.has(k)) yield [k, v];
  }
  *keys() { for (const [k] of this.entries()) yield k; }
  *values() { for (const [, v] of this.entries()) yield v; }
  [Symbol.iterator]() { return this.entries(); }
  forEach(fn, self) { for (const [k, v] of this.entries()) fn.call(self, v, k, this); }
}

/**
 * One-service changes, in a cycle of five: an instance's port (service A), a check to critical and
 * back (service B), an instance added and removed again (service C). Each returns a new Catalog
 * sharing every other entry with the previous one, and the change hint naming the service.
 */
class Changes {
  constructor(catalog) {
    this.catalog = catalog;
    this.dc = catalog.datacenter;
    const d = catalog.datacenters.get(this.dc);
    this.services = new Overlay(d.services);
    this.nodes = d.nodes;
    this.nodeList = [...d.nodes.values()];
    this.names = [...d.services.keys()];
    this.picks = 0;
    this.step = 0;
    this.undo = null;
  }

  /** A service name, spread over the catalog (stride coprime with most sizes). */
  pick() { return this.names[(this.picks++ * 7919) % this.names.length]; }

  next() {
    const kind = ['port', 'critical', 'passing', 'add', 'remove'][this.step++ % 5];
    let name, list;
    if (kind === 'passing' || kind === 'remove') {
      [name, list] = this.undo; // back to the list before the previous change
      this.undo = null;
    } else {
      name = this.pick();
      const cur = this.services.get(name);
      if (kind === 'port') {
        list = cur.map((s, i) => (i === 0 ? { ...s, port: s.port >= 65535 ? 1 : s.port + 1 } : s));
      } else if (kind === 'critical') {
        list = cur.map((s, i) => (i === 0 ? { ...s, checks: s.checks.map((c) => ({ ...c, status: 'critical' })) } : s));
      } else {
        const used = new Set(cur.map((s) => s.node.name));
        const node = this.nodeList.find((n) => !used.has(n.name));
        list = [...cur, { ...cur[0], id: `${name}-bench`, node }];
      }
      this.undo = [name, cur];
    }
    this.services = this.services.with(name, list);
    const datacenters = new Map(this.catalog.datacenters).set(this.dc, { nodes: this.nodes, services: this.services });
    this.catalog = { datacenter: this.catalog.datacenter, datacenters };
    return { catalog: this.catalog, hint: { services: [[this.dc, name]] }, kind };
  }
}

/**
 * `rate` one-service commits a second, at fixed times, for `seconds` (rate 0: none, the load alone),
 * while the parent's load generator queries the App; RSS sampled every 100 ms.
 */
async function phase(app, changes, seconds, rate) {
  let rssMax = rss();
  const sampler = setInterval(() => { rssMax = Math.max(rssMax, rss()); }, 100);
  const h = eld();
  await new Promise((resolve) => setTimeout(resolve, 20)); // see above: the first tick
  const n = Math.round(seconds * rate);
  const pending = [];
  const t0 = performance.now();
  await new Promise((resolve) => {
    if (n === 0) { setTimeout(resolve, seconds * 1000); return; }
    let i = 0;
    const fire = () => {
      const c = changes.next();
      pending.push(app.store.commit(c.catalog, 'bench', c.hint));
      if (++i >= n) return resolve();
      setTimeout(fire, Math.max(0, t0 + (i * 1000) / rate - performance.now()));
    };
    fire();
  });
  const done = await Promise.all(pending);
  const eldMs = await eldMaxMs(h);
  clearInterval(sampler);
  const ms = done.map((r) => r.ms);
  return {
    seconds: r1((performance.now() - t0) / 1000), eldMs, rssMaxMb: mb(Math.max(rssMax, rss())),
    commits: done.length, commitP50Ms: done.length ? percentile(ms, 0.5) : null, commitMaxMs: done.length ? Math.max(...ms) : null,
  };
}

/** A catalog source that delivers one catalog and nothing after (changes come through app.store). */
class BenchSource {
  name = 'bench';
  constructor(catalog) { this.catalog = catalog; }
  async start(onCatalog) { onCatalog(this.catalog); }
  async close() {}
}

const out = { rssStartMb: mb(rss()) };

// 1. Parse.
let t = performance.now();
let text = readFileSync(catalogPath, 'utf8');
out.readMs = r1(performance.now() - t);
out.fileMb = mb(Buffer.byteLength(text));
t = performance.now();
const { catalog, warnings } = parseCatalog(text);
out.parseMs = r1(performance.now() - t);
out.parseWarnings = warnings.length;
text = null;
const dcat = catalog.datacenters.get(catalog.datacenter);
out.services = dcat.services.size;
out.nodes = dcat.nodes.size;

// 2. Full build: the App's first commit, with the App serving on 127.0.0.1 port 0.
const config = loadConfig({ object: { ...JSON.parse(serverConfig ?? '{}'), dns: '127.0.0.1:0', log_level: 'warn' } });
const app = new App({ config, logger: createLogger('warn', process.stderr), source: new BenchSource(catalog) });
let first = null;
const commit = app.store.commit.bind(app.store);
// Keep the result of the App's own first commit (App does not hand it out).
app.store.commit = (...args) => { const p = commit(...args); first ??= p; return p; };
let h = eld();
// The histogram records intervals between its own timer ticks: let it tick before the build starts,
// or a first slice that runs before the first tick is not seen.
await new Promise((resolve) => setTimeout(resolve, 20));
t = performance.now();
await app.start();
out.startMs = r1(performance.now() - t);
out.eldBuildMs = await eldMaxMs(h);
app.store.commit = commit;
const build = await first;
out.buildMs = build.ms;
out.buildMaxSliceMs = build.maxSliceMs;
out.buildUnits = build.units;
out.records = build.zone.stats.records;
out.names = build.zone.stats.names;
out.rssBuiltMb = mb(gcRss());
out.heapBuiltMb = mb(process.memoryUsage().heapUsed);

try {
  // 3. One-service commits, one after the other, nothing else running.
  const changes = new Changes(catalog);
  const ms = [], units = [];
  let unchanged = 0;
  h = eld();
  await new Promise((resolve) => setTimeout(resolve, 20)); // see above: the first tick
  for (let i = 0; i < COMMITS; i++) {
    const c = changes.next();
    const r = await app.store.commit(c.catalog, 'bench', c.hint);
    ms.push(r.ms);
    units.push(r.units);
    if (!r.changed) unchanged++;
    // Let the loop turn between commits (a one-service commit never yields on its own), so the
    // event-loop delay measures one commit's blocking time, not the whole back-to-back run.
    await new Promise((resolve) => setImmediate(resolve));
  }
  out.eldCommitsMs = await eldMaxMs(h);
  out.commits = COMMITS;
  out.commitP50Ms = percentile(ms, 0.5);
  out.commitMaxMs = Math.max(...ms);
  out.commitUnitsMin = Math.min(...units);
  out.commitUnitsMax = Math.max(...units);
  out.commitsUnchanged = unchanged;
  out.rssAfterCommitsMb = mb(gcRss());

  await send({ type: 'serving', port: app.dnsAddress.port, ...out });
  for (;;) {
    const msg = await new Promise((resolve) => process.once('message', resolve));
    if (msg.type === 'stop') break;
    await send({ type: 'phase', ...(await phase(app, changes, msg.seconds, msg.rate)) });
    // Serving goes on until the next message: the load generator may still wait for answers.
  }
  // 4. The same file read as a reload reads it (src/catalog/load.ts: split, then the lists parsed
  // and validated in slices), while the zone is held: its time and the event loop's worst delay.
  // Last, so that the memory it takes is not in the RSS figures above.
  const buf = readFileSync(catalogPath);
  const h1 = eld();
  await new Promise((resolve) => setTimeout(resolve, 20)); // the histogram's first tick
  const t1 = performance.now();
  await loadCatalog(buf);
  const loadSlicedMs = r1(performance.now() - t1);
  const eldLoadMs = await eldMaxMs(h1);
  await send({ type: 'stopped', serverQueries: app.counters.queriesUdp, serverDropped: app.counters.dropped, serverInternalErrors: app.counters.internalErrors,
    loadSlicedMs, eldLoadMs });
} finally {
  app.destroy();
}
process.exit(0);
