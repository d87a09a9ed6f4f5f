#!/usr/bin/env node
// Load figures for the test Consul (test/support/fake-consul.ts): 10,000 services x 5 instances,
// 10,000 blocking queries parked at once (one per service, each on its own connection), then single
// writes that must wake exactly one of them. The fake runs in a child process and the clients in this
// one, so each process holds 10,000 sockets (under the usual 20,000 open-files limit).
//
//   node bench/fake-consul.mjs                  # SERVICES=10000 WRITES=200
//   SERVICES=2000 WRITES=50 node bench/fake-consul.mjs
//
// Prints one line per figure. Loopback only; the child is stopped by PID; the compiled copy of the
// fake lives in a temp dir removed on exit.
import { execFileSync, fork } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const INSTANCES = 5;

if (process.argv[2] === 'server') await server(process.argv[3], Number(process.argv[4]));
else await main();

async function server(modulePath, services) {
  const { FakeConsul } = await import(pathToFileURL(modulePath).href);
  const consul = new FakeConsul({ jitter: false });
  let t = performance.now();
  for (let n = 0; n < services; n++) {
    consul.registerNode({ Node: `node-${n}`, Address: `10.${n >> 8}.${n & 255}.1` }, { checks: [{ CheckID: 'serfHealth', Status: 'passing' }] });
  }
  for (let i = 0; i < services * INSTANCES; i++) {
    const s = Math.floor(i / INSTANCES);
    consul.registerService(`node-${i % services}`, { ID: `svc-${s}-${i % INSTANCES}`, Service: `svc-${s}`, Port: 8000 + (i % INSTANCES) },
      { checks: [{ CheckID: `service:svc-${s}-${i % INSTANCES}`, Status: 'passing' }] });
  }
  const loadMs = performance.now() - t;
  await consul.start();
  process.send({ type: 'ready', port: consul.port, index: consul.index(), loadMs });
  process.on('message', async (m) => {
    if (m.type === 'until-parked') {
      await consul.until((c) => c.parked >= m.n, 120_000);
      process.send({ type: 'parked', rss: process.memoryUsage().rss, connections: consul.counters.connections });
    } else if (m.type === 'write') {
      const before = consul.counters.wakeups;
      consul.setCheck(`node-${(m.s * INSTANCES) % services}`, `service:svc-${m.s}-0`, m.status);
      // The wake runs in a microtask after the write; report after it.
      setImmediate(() => process.send({ type: 'written', wakeups: consul.counters.wakeups - before, parked: consul.counters.parked }));
    } else if (m.type === 'close') {
      t = performance.now();
      const parked = consul.counters.parked;
      await consul.close();
      process.send({ type: 'closed', ms: performance.now() - t, parked, bytes: consul.bytesSent() }, () => process.disconnect());
    }
  });
}

async function main() {
  const { Agent, request } = await import('undici');
  const services = Number(process.env.SERVICES ?? 10_000);
  const writes = Math.min(Number(process.env.WRITES ?? 200), services);
  const root = join(dirname(fileURLToPath(import.meta.url)), '..');
  const out = mkdtempSync(join(tmpdir(), 'fake-consul-bench-'));
  let child;
  try {
    writeFileSync(join(out, 'tsconfig.json'), JSON.stringify({
      extends: join(root, 'tsconfig.json'),
      compilerOptions: {
        rootDir: join(root, 'test/support'), outDir: out, sourceMap: false, typeRoots: [join(root, 'node_modules/@types')],
      },
      files: [join(root, 'test/support/fake-consul.ts')],
      include: [],
    }));
    execFileSync(join(root, 'node_modules/.bin/tsc'), ['-p', join(out, 'tsconfig.json')], { stdio: 'inherit' });
    writeFileSync(join(out, 'package.json'), '{"type":"module"}');

    child = fork(fileURLToPath(import.meta.url), ['server', join(out, 'fake-consul.js'), String(services)]);
    const inbox = [];
    let waiting;
    child.on('message', (m) => { if (waiting) { const w = waiting; waiting = undefined; w(m); } else inbox.push(m); });
    const next = () => (inbox.length ? Promise.resolve(inbox.shift()) : new Promise((r) => { waiting = r; }));

    const ready = await next();
    console.log(`register ${services} services x ${INSTANCES} instances (+${services} nodes, ${services * (INSTANCES + 1)} checks): ${ready.loadMs.toFixed(0)} ms`);
    const base = `http://127.0.0.1:${ready.port}`;
    const agent = new Agent({ keepAliveTimeout: 600_000, headersTimeout: 0, bodyTimeout: 0, connectTimeout: 60_000 });

    // Park one blocking query per service, in batches so the listen backlog is not overrun.
    let t = performance.now();
    const replies = new Map();
    const BATCH = 500;
    for (let s = 0; s < services; s += BATCH) {
      for (let k = s; k < Math.min(services, s + BATCH); k++) {
        const p = request(`${base}/v1/health/service/svc-${k}?index=${ready.index}&wait=10m`, { dispatcher: agent })
          .then(async (r) => ({ status: r.statusCode, index: Number(r.headers['x-consul-index']), body: await r.body.text() }));
        p.catch(() => {});
        replies.set(k, p);
      }
      child.send({ type: 'until-parked', n: Math.min(services, s + BATCH) });
      await next();
    }
    const parkMs = performance.now() - t;
    child.send({ type: 'until-parked', n: services });
    const parked = await next();
    console.log(`park ${services} blocking queries (${parked.connections} connections): ${parkMs.toFixed(0)} ms; fake RSS ${(parked.rss / 2 ** 20).toFixed(0)} MiB`);

    // Single writes: each must wake exactly its own watcher.
    const lat = [];
    let wakeups = 0;
    const stride = Math.max(1, Math.floor(services / writes));
    for (let w = 0; w < writes; w++) {
      const s = w * stride;
      t = performance.now();
      child.send({ type: 'write', s, status: 'critical' });
      const r = await replies.get(s);
      lat.push(performance.now() - t);
      const written = await next();
      wakeups += written.wakeups;
      if (r.status !== 200 || !r.body.includes('"critical"')) throw new Error(`svc-${s}: unexpected answer ${r.status}`);
      if (written.parked !== services - w - 1) throw new Error(`after write ${w}: ${written.parked} parked, expected ${services - w - 1}`);
    }
    lat.sort((a, b) => a - b);
    const pct = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))].toFixed(2);
    console.log(`${writes} single writes with ${services} parked: wakeups per write ${(wakeups / writes).toFixed(2)}; write -> woken reply p50 ${pct(0.5)} ms, p99 ${pct(0.99)} ms`);

    child.send({ type: 'close' });
    const closed = await next();
    const settled = await Promise.allSettled([...replies.values()]);
    const ended = settled.filter((x) => x.status === 'rejected').length;
    console.log(`close() with ${closed.parked} parked: ${closed.ms.toFixed(0)} ms (${ended} client requests ended by it); ${(closed.bytes / 2 ** 20).toFixed(1)} MiB sent in all`);
    await agent.destroy();
  } finally {
    if (child && child.exitCode === null) child.kill('SIGTERM');
    rmSync(out, { recursive: true, force: true });
  }
}
