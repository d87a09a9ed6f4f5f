#!/usr/bin/env node
// Generates the benchmark data set into OUT_DIR, deterministically (seeded PRNG):
//   catalog.json  the Consul catalog snapshot that catalog-dns serves (--catalog-file format)
//   consul.zone   the same records as a zone file, for NSD and BIND
//   queries.txt   a dnsperf query file
// Usage: node bench/gen-catalog.mjs OUT_DIR [--services 1000] [--instances 5] [--nodes 1000]
//                                          [--queries 20000] [--seed 1]
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { prng } from './prng.mjs';

const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    services: { type: 'string', default: '1000' },
    instances: { type: 'string', default: '5' },
    nodes: { type: 'string', default: '1000' },
    queries: { type: 'string', default: '20000' },
    seed: { type: 'string', default: '1' },
  },
});
if (positionals.length !== 1) {
  process.stderr.write('usage: gen-catalog.mjs OUT_DIR [--services N] [--instances N] [--nodes N] [--queries N] [--seed N]\n');
  process.exit(2);
}
const outDir = positionals[0];
const SERVICES = Number(opt.services);
const INSTANCES = Number(opt.instances);
const NODES = Number(opt.nodes);
const QUERIES = Number(opt.queries);
if (INSTANCES > NODES) throw new Error('--instances must not exceed --nodes (instances go on distinct nodes)');

const DC = 'dc1';
const TTL = 0; // Consul's default DNS TTL

const rand = prng(Number(opt.seed));
const randInt = (n) => Math.floor(rand() * n); // 0 .. n-1

const pad4 = (i) => String(i).padStart(4, '0');
const hex = (n) => Array.from({ length: n }, () => randInt(16).toString(16)).join('');
const uuid = () => `${hex(8)}-${hex(4)}-4${hex(3)}-${'89ab'[randInt(4)]}${hex(3)}-${hex(12)}`;

// Nodes: node-0000 ..., each with a distinct 10.x.y.z address.
const usedAddrs = new Set();
const nodes = [];
for (let i = 0; i < NODES; i++) {
  let addr;
  do addr = `10.${randInt(256)}.${randInt(256)}.${1 + randInt(254)}`;
  while (usedAddrs.has(addr));
  usedAddrs.add(addr);
  nodes.push({
    ID: uuid(),
    Node: `node-${pad4(i)}`,
    Address: addr,
    Datacenter: DC,
    TaggedAddresses: { lan: addr, lan_ipv4: addr, wan: addr },
    Meta: {},
  });
}

// Services: svc-0000 ..., INSTANCES instances each on distinct random nodes, port 8000 + index.
const services = {};
for (let s = 0; s < SERVICES; s++) {
  const name = `svc-${pad4(s)}`;
  const picked = new Set();
  while (picked.size < INSTANCES) picked.add(randInt(NODES));
  services[name] = [...picked].map((n, k) => ({
    Node: nodes[n],
    Service: {
      ID: `${name}-${k + 1}`,
      Service: name,
      Tags: ['v1'],
      Address: '',
      TaggedAddresses: {},
      Meta: {},
      Port: 8000 + (s % 1000),
      Weights: { Passing: 1, Warning: 1 },
    },
    Checks: [{
      Node: nodes[n].Node,
      CheckID: 'serfHealth',
      Name: 'Serf Health Status',
      Status: 'passing',
      ServiceID: '',
      ServiceName: '',
      ServiceTags: [],
    }],
  }));
}

const catalog = { datacenter: DC, datacenters: { [DC]: { nodes, services } } };

// Zone file: exactly the records catalog-dns is expected to serve for this catalog.
const z = [];
const rr = (owner, type, rdata) => z.push(`${owner}\t${TTL}\tIN\t${type}\t${rdata}`);
z.push('$ORIGIN consul.', `$TTL ${TTL}`);
rr('consul.', 'SOA', 'ns.consul. hostmaster.consul. 1 3600 600 86400 0');
rr('consul.', 'NS', 'ns.consul.');
rr('ns.consul.', 'A', '127.0.0.1');
for (const [name, instances] of Object.entries(services)) {
  const addrs = [...new Set(instances.map((i) => i.Node.Address))];
  for (const a of addrs) rr(`${name}.service.consul.`, 'A', a);
  for (const i of instances) {
    rr(`_${name}._tcp.service.consul.`, 'SRV', `1 1 ${i.Service.Port} ${i.Node.Node}.node.${DC}.consul.`);
  }
}
for (const n of nodes) {
  rr(`${n.Node}.node.${DC}.consul.`, 'A', n.Address);
  rr(`${n.Node}.node.consul.`, 'A', n.Address);
}

// Queries: 47.5% service A, 47.5% service SRV, 5% names that do not exist; shuffled.
const q = [];
const nx = Math.round(QUERIES * 0.05);
const nA = Math.round((QUERIES - nx) / 2);
const nSrv = QUERIES - nx - nA;
const svc = () => `svc-${pad4(randInt(SERVICES))}`;
for (let i = 0; i < nA; i++) q.push(`${svc()}.service.consul A`);
for (let i = 0; i < nSrv; i++) q.push(`_${svc()}._tcp.service.consul SRV`);
for (let i = 0; i < nx; i++) q.push(`nosuch-${pad4(randInt(10000))}.service.consul A`);
for (let i = q.length - 1; i > 0; i--) {
  const j = randInt(i + 1);
  [q[i], q[j]] = [q[j], q[i]];
}

mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, 'catalog.json'), JSON.stringify(catalog, null, 1) + '\n');
writeFileSync(join(outDir, 'consul.zone'), z.join('\n') + '\n');
writeFileSync(join(outDir, 'queries.txt'), q.join('\n') + '\n');
process.stdout.write(
  `gen-catalog: ${SERVICES} services x ${INSTANCES} instances on ${NODES} nodes, ` +
  `${z.length - 2} records, ${q.length} queries (${nA} A, ${nSrv} SRV, ${nx} NXDOMAIN) -> ${outDir}\n`,
);
