#!/usr/bin/env node
// A stand-in Consul for trying catalog-dns by hand: the test Consul (test/support/fake-consul.ts, a
// real HTTP server with Consul's blocking queries) on 127.0.0.1:8500, loaded with the demo catalog,
// changed by commands typed on stdin. Loopback only; the compiled copy lives in a temp dir removed
// at exit.
//
//   npm run demo:consul                 # then, in another terminal:
//   node dist/main.js --consul http://127.0.0.1:8500 --data-dir /tmp/cdns
//
// Commands: register SERVICE NODE ADDRESS PORT | deregister NODE SERVICE_ID |
//           check NODE CHECK_ID passing|warning|critical | down | up | quit
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const { values: opt } = parseArgs({ options: { port: { type: 'string', default: '8500' }, catalog: { type: 'string' } } });
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = mkdtempSync(join(tmpdir(), 'demo-consul-'));
const cleanup = () => rmSync(out, { recursive: true, force: true });
process.on('exit', cleanup);

writeFileSync(join(out, 'tsconfig.json'), JSON.stringify({
  extends: join(root, 'tsconfig.json'),
  compilerOptions: { rootDir: join(root, 'test/support'), outDir: out, sourceMap: false, typeRoots: [join(root, 'node_modules/@types')] },
  files: [join(root, 'test/support/fake-consul.ts')],
  include: [],
}));
execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(out, 'tsconfig.json')], { stdio: 'inherit' });
writeFileSync(join(out, 'package.json'), '{"type":"module"}');
const { FakeConsul } = await import(pathToFileURL(join(out, 'fake-consul.js')).href);

const doc = JSON.parse(readFileSync(opt.catalog ?? join(root, 'fixtures/demo-catalog.json'), 'utf8'));
const consul = new FakeConsul({ port: Number(opt.port), datacenter: doc.datacenter, datacenters: Object.keys(doc.datacenters) });
consul.load(doc);
await consul.start();
console.log(`demo Consul on ${consul.url} (datacenter ${doc.datacenter}); commands: register SERVICE NODE ADDRESS PORT | deregister NODE SERVICE_ID | check NODE CHECK_ID STATUS | down | up | quit`);

const rl = createInterface({ input: process.stdin });
rl.on('line', async (line) => {
  const [cmd, ...a] = line.trim().split(/\s+/);
  try {
    if (cmd === 'register' && a.length === 4) {
      const [svc, node, address, port] = a;
      const id = `${svc}-${node}`;
      console.log('index', consul.registerService({ Node: node, Address: address }, { ID: id, Service: svc, Port: Number(port) },
        { checks: [{ CheckID: `service:${id}`, Status: 'passing', ServiceID: id }] }), `(check service:${id})`);
    } else if (cmd === 'deregister' && a.length === 2) {
      console.log('index', consul.deregisterService(a[0], a[1]));
    } else if (cmd === 'check' && a.length === 3) {
      console.log('index', consul.setCheck(a[0], a[1], a[2]));
    } else if (cmd === 'down') {
      await consul.stop();
      console.log('down: connections refused');
    } else if (cmd === 'up') {
      await consul.start();
      console.log(`up on ${consul.url}`);
    } else if (cmd === 'quit') {
      rl.close();
    } else if (cmd) {
      console.log('commands: register SERVICE NODE ADDRESS PORT | deregister NODE SERVICE_ID | check NODE CHECK_ID STATUS | down | up | quit');
    }
  } catch (e) {
    console.log(`error: ${e.message}`);
  }
});
const stop = async () => { await consul.close(); process.exit(0); };
rl.on('close', stop);
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
