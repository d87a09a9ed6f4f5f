/**
 * Following Consul as it ships (README "Following a live Consul"), against the test Consul at its
 * defaults, which are Consul's: 200 connections per client address, ACL rights, case-insensitive
 * names, federated datacenters that can be unreachable, virtual IPs, leader contact, and the replies
 * of a broken Consul or proxy.
 *
 * More services than the connection budget has lanes for: the connections open to Consul never
 * exceed the budget, and every kind of change in any service is served, through its own blocking
 * query while it has one, else through the detectors (non-passing checks, the node and service
 * lists) and sweeps.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { App } from '../../src/app.js';
import { ConsulClient } from '../../src/catalog/consul-client.js';
import { ConsulCatalogSource } from '../../src/catalog/consul-source.js';
import { DEFAULT_TIMING } from '../../src/catalog/watch.js';
import { loadConfig } from '../../src/config.js';
import { createLogger, silentLogger } from '../../src/log.js';
import { udpQuery } from '../support/dns-client.js';
import { eventually } from '../support/eventually.js';
import { startFakeConsul, type FakeConsul, type FakeConsulOptions } from '../support/fake-consul.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => { for (const c of cleanups.splice(0).reverse()) await c(); });

const FAST = { ...DEFAULT_TIMING, waitMs: 10_000, backoffMs: 20, maxBackoffMs: 200, ratePerSec: 20, burst: 4 };

/** The most connections open at once, sampled every 5 ms until `stop()` (bounded: the test's own life). */
function peakConnections(consul: FakeConsul): { peak: () => number; stop: () => void } {
  let peak = 0;
  const t = setInterval(() => { peak = Math.max(peak, consul.counters.connections); }, 5);
  return { peak: () => Math.max(peak, consul.counters.connections), stop: () => clearInterval(t) };
}

interface FollowOptions {
  token?: string;
  /** Client options beyond the address. */
  client?: Partial<ConstructorParameters<typeof ConsulClient>[0]>;
  timing?: typeof FAST;
  /** App config beyond dns and http. */
  config?: Record<string, unknown>;
  datacenter?: string | null;
}

/** catalog-dns following `consul`; its log lines (info and up) are collected in `logs`. */
async function follow(consul: FakeConsul, maxConnections: number, opts: FollowOptions = {}) {
  const client = new ConsulClient({ addresses: [consul.url], timeoutMs: 2000, maxConnections, ...(opts.token ? { token: opts.token } : {}), ...opts.client });
  const logs: Array<Record<string, unknown>> = [];
  const out = new PassThrough();
  out.on('data', (b: Buffer) => { for (const l of b.toString().split('\n')) if (l) logs.push(JSON.parse(l) as Record<string, unknown>); });
  const logger = createLogger('info', out);
  const config = loadConfig({ object: { dns: '127.0.0.1:0', http: 'off', ...opts.config } });
  const source = new ConsulCatalogSource({ client, logger, quiet: { minMs: 20, maxMs: 200 }, timing: opts.timing ?? FAST, probeMs: 500,
    localDatacenter: opts.datacenter ?? null, maxStaleMs: () => (config.maxStale === null ? null : config.maxStale * 1000) });
  const app = new App({ config, logger, source });
  await app.start();
  cleanups.push(() => app.close());
  return { app, source, client, port: app.dnsAddress.port, logs };
}

async function fake(services: number, opts: FakeConsulOptions = {}): Promise<FakeConsul> {
  const consul = await startFakeConsul({ jitter: false, ...opts });
  cleanups.push(() => consul.close());
  for (let n = 0; n < services; n++) consul.registerNode({ Node: `n${n}`, Address: `10.1.${n >> 8}.${n & 255}` }, { checks: [{ CheckID: 'serfHealth', Status: 'passing' }] });
  for (let s = 0; s < services; s++) {
    for (let k = 0; k < 2; k++) {
      const node = `n${(s + k * 7) % services}`;
      consul.registerService(node, { ID: `s${s}-${k}`, Service: `s${s}`, Port: 8000 + k, Tags: ['v1'] },
        { checks: [{ CheckID: `service:s${s}-${k}`, Status: 'passing' }] });
    }
  }
  return consul;
}

const addresses = async (port: number, name: string) =>
  (await udpQuery(port, name, 'A', { edns: 4096 })).answers.map((a) => a.data as string).sort();
const srvPorts = async (port: number, name: string) =>
  (await udpQuery(port, name, 'SRV', { edns: 4096 })).answers.map((a) => (a.data as { port: number }).port).sort();
const rcode = async (port: number, name: string) => (await udpQuery(port, name, 'A', { edns: 4096 })).rcode;

describe('more services than lanes', () => {
  it('never opens more connections than the budget, and serves every kind of change in any service', async () => {
    const N = 150;
    const consul = await fake(N);
    const sampler = peakConnections(consul);
    const budget = 24;
    const { port, source } = await follow(consul, budget);
    // Settled: every service followed, most of them without a lane of their own.
    await eventually(async () => source.datacenters().get('dc1')!, (d) => d.live && d.watched > 0 && d.swept > 0);
    const dc = source.datacenters().get('dc1')!;
    expect(dc.watched + dc.swept).toBe(N);
    expect(dc.swept).toBeGreaterThan(N / 2);
    for (const s of [0, 77, N - 1]) expect(await addresses(port, `s${s}.service.consul`)).toHaveLength(2);

    // Health: a check turns critical, then passing again.
    const svc = (s: number) => `s${s}.service.consul`;
    const nodeOf = (s: number, k: number) => `n${(s + k * 7) % N}`;
    const ip = (n: number) => `10.1.${n >> 8}.${n & 255}`;
    consul.setCheck(nodeOf(101, 1), 'service:s101-1', 'critical');
    await eventually(() => addresses(consul && port, svc(101)), (a) => a.length === 1);
    consul.setCheck(nodeOf(101, 1), 'service:s101-1', 'passing');
    await eventually(() => addresses(port, svc(101)), (a) => a.length === 2);
    // A node-level check takes every instance on that node out.
    consul.setCheck('n120', 'serfHealth', 'critical');
    await eventually(() => addresses(port, svc(120)), (a) => !a.includes(ip(120)));
    consul.setCheck('n120', 'serfHealth', 'passing');
    await eventually(() => addresses(port, svc(120)), (a) => a.includes(ip(120)));
    // A service appears, another goes.
    consul.registerService('n3', { ID: 'fresh-1', Service: 'fresh', Port: 9000 });
    await eventually(() => addresses(port, 'fresh.service.consul'), (a) => a.length === 1);
    consul.deregisterService(nodeOf(130, 0), 's130-0');
    consul.deregisterService(nodeOf(130, 1), 's130-1');
    await eventually(() => rcode(port, svc(130)), (r) => r === 'NXDOMAIN');
    // An instance added to, and one removed from, existing services.
    consul.registerService('n5', { ID: 's111-9', Service: 's111', Port: 8009 });
    await eventually(() => addresses(port, svc(111)), (a) => a.length === 3);
    consul.deregisterService(nodeOf(112, 1), 's112-1');
    await eventually(() => addresses(port, svc(112)), (a) => a.length === 1);
    // A port, a tag and an address change (re-registrations with the same ID).
    consul.registerService(nodeOf(113, 0), { ID: 's113-0', Service: 's113', Port: 7777, Tags: ['v1'] });
    await eventually(() => srvPorts(port, svc(113)), (p) => p.includes(7777));
    consul.registerService(nodeOf(114, 0), { ID: 's114-0', Service: 's114', Port: 8000, Tags: ['v1', 'canary'] });
    await eventually(() => addresses(port, `canary.${svc(114)}`), (a) => a.length === 1);
    consul.registerService(nodeOf(115, 0), { ID: 's115-0', Service: 's115', Port: 8000, Tags: ['v1'], Address: '192.0.2.15' });
    await eventually(() => addresses(port, svc(115)), (a) => a.includes('192.0.2.15'));
    // A node's address changes under a swept service.
    consul.registerNode({ Node: 'n140', Address: '192.0.2.140' });
    await eventually(() => addresses(port, svc(140)), (a) => a.includes('192.0.2.140'));

    sampler.stop();
    expect(sampler.peak()).toBeLessThanOrEqual(budget);
    const st = source.stats();
    expect(st.lanes).toBeLessThanOrEqual(budget - source['client'].readConnections);
    expect(st.sweeps).toBeGreaterThan(0);
    expect(st.targetedReads).toBeGreaterThan(0);
  }, 60_000);

  it('a targeted read of a service a sweep has yet to read does not stall the sweeps after it', async () => {
    const N = 150;
    const consul = await fake(N);
    const { port, source } = await follow(consul, 24);
    await eventually(async () => source.datacenters().get('dc1')!, (d) => d.live && d.swept > N / 2);
    // Slow reads: a sweep of the swept services takes a while.
    consul.addFault({ kind: 'delay', ms: 20 }, { path: /^\/v1\/health\/service\// });
    // In the order a sweep reads them (the order the services list gave the names).
    const order = [...(source as unknown as { dcs: Map<string, { groups: Map<string, unknown> }> }).dcs.get('dc1')!.groups.keys()];
    const swept = order.map((n) => Number(n.slice(1))).filter((s) => source.mode('dc1', `s${s}`) === 'swept');
    const [a, b, c] = [swept[swept.length - 1]!, swept[swept.length - 2]!, swept[swept.length - 3]!];
    const nodeOf = (s: number, k: number) => `n${(s + k * 7) % N}`;
    // A port change starts a sweep; a check change in a service it has not read yet reads that one first.
    const sweeps = source.stats().sweeps;
    consul.registerService(nodeOf(a, 0), { ID: `s${a}-0`, Service: `s${a}`, Port: 7001, Tags: ['v1'] });
    await eventually(async () => source.stats().sweeps, (n) => n > sweeps);
    consul.setCheck(nodeOf(b, 1), `service:s${b}-1`, 'critical');
    await eventually(() => addresses(port, `s${b}.service.consul`), (x) => x.length === 1);
    await eventually(() => srvPorts(port, `s${a}.service.consul`), (p) => p.includes(7001));
    // The sweep is over once no sweep read has been made for a while.
    let reads = -1;
    await eventually(async () => { const before = reads; reads = source.stats().sweepReads; await new Promise((r) => setTimeout(r, 300)); return before === reads; }, (x) => x);
    // Later registration changes still get their sweeps.
    consul.registerService(nodeOf(c, 0), { ID: `s${c}-0`, Service: `s${c}`, Port: 7002, Tags: ['v1'] });
    await eventually(() => srvPorts(port, `s${c}.service.consul`), (p) => p.includes(7002));
    consul.registerService(nodeOf(a, 0), { ID: `s${a}-0`, Service: `s${a}`, Port: 7003, Tags: ['v1'] });
    await eventually(() => srvPorts(port, `s${a}.service.consul`), (p) => p.includes(7003));
    expect(source.stats().sweeps).toBeGreaterThanOrEqual(3);
  }, 60_000);

  it('a swept service that keeps changing takes a lane', async () => {
    const N = 60;
    const consul = await fake(N);
    const { port, source } = await follow(consul, 16);
    await eventually(async () => source.datacenters().get('dc1')!, (d) => d.live && d.swept > 0 && d.watched > 0);
    const hot = ['s50', 's51', 's52', 's53', 's54', 's55'].find((s) => source.mode('dc1', s) === 'swept')!;
    expect(hot).toBeDefined();
    // It changes twice (hot after the second change) ...
    for (let i = 0; i < 2; i++) {
      consul.registerService(`n${9 + i}`, { ID: `${hot}-x${i}`, Service: hot, Port: 9100 + i });
      await eventually(() => addresses(port, `${hot}.service.consul`), (a) => a.length === 3 + i);
    }
    // ... and gets a blocking query of its own, in place of one that did not change.
    await eventually(async () => source.mode('dc1', hot), (m) => m === 'watched');
    const d = source.datacenters().get('dc1')!;
    expect(d.watched + d.swept).toBe(N);
    await eventually(async () => consul.counters.parked, (p) => p >= d.watched);
    const sweeps = source.stats().sweepReads;
    consul.registerService('n9', { ID: `${hot}-x0`, Service: hot, Port: 9200 });
    await eventually(() => srvPorts(port, `${hot}.service.consul`), (p) => p.includes(9200));
    expect(source.mode('dc1', hot)).toBe('watched');
    expect(sweeps).toBeGreaterThan(0);
  }, 60_000);
});

describe('the agent\'s connection limit', () => {
  it('2,000 services under the default limit: every service followed, changes past the first 200 served, no 429', async () => {
    const N = 2000;
    const consul = await startFakeConsul({ jitter: false });
    cleanups.push(() => consul.close());
    for (let s = 0; s < N; s++) consul.registerService({ Node: `n${s}`, Address: `10.2.${s >> 8}.${s & 255}` }, { ID: `s${s}`, Service: `s${s}`, Port: 80 });
    const { port, source } = await follow(consul, 100); // the default budget, against the default limit (200)
    const d = source.datacenters().get('dc1')!;
    expect(d.watched + d.swept).toBe(N);
    // Registrations in five services far past the first 200, one after the other.
    for (const s of [250, 777, 1234, 1500, 1999]) {
      consul.registerService({ Node: `extra-${s}`, Address: `10.3.${s >> 8}.${s & 255}` }, { ID: `s${s}-b`, Service: `s${s}`, Port: 80 });
      await eventually(() => addresses(port, `s${s}.service.consul`), (a) => a.length === 2);
    }
    expect(consul.counters.connLimited).toBe(0);
    expect(consul.counters.responses[429] ?? 0).toBe(0);
    expect(consul.counters.connectionsPeak).toBeLessThanOrEqual(100);
  }, 60_000);

  it('a 429 from the agent\'s limit (others on this host use it too) shrinks the lanes, never a fail-over; every change is still served', async () => {
    const consul = await fake(40, { maxConnsPerClient: 20 });
    const { port, source, client } = await follow(consul, 100);
    // 40 services fit the budget's lanes, not the agent's 20: 429s, then fewer lanes, then quiet.
    await eventually(async () => source.stats().rateLimited, (n) => n > 0);
    await eventually(async () => source.stats().laneLimit, (n) => n < client.laneCapacity);
    let refused = consul.counters.connLimited;
    for (let i = 0; i < 100; i++) {
      await new Promise((r) => setTimeout(r, 100));
      if (consul.counters.connLimited === refused && i > 10) break;
      refused = consul.counters.connLimited;
    }
    expect(client.address).toBe(consul.url.replace(/\/$/, ''));
    consul.setCheck('n33', 'service:s33-0', 'critical');
    await eventually(() => addresses(port, 's33.service.consul'), (a) => a.length === 1);
    consul.registerService('n2', { ID: 's21-x', Service: 's21', Port: 9000 });
    await eventually(() => addresses(port, 's21.service.consul'), (a) => a.length === 3);
  }, 60_000);
});

describe('tokens', () => {
  it('a DNS-only token (service:read, node:read, query:read) serves: /v1/agent/self is not needed', async () => {
    const consul = await fake(5, { acl: { tokens: { 'dns-token': 'dns' } } });
    const { port, source, logs } = await follow(consul, 100, { token: 'dns-token' });
    expect(await addresses(port, 's1.service.consul')).toHaveLength(2);
    expect(await addresses(port, 's1.service.dc1.consul')).toHaveLength(2);
    expect(consul.counters.responses[403]).toBeGreaterThanOrEqual(1); // agent/self, once
    expect(logs.filter((l) => /agent:read/.test(String(l.msg))).length).toBe(1);
    expect(source.datacenters().get('dc1')!.status).toBe('ok');
    consul.registerService('n3', { ID: 's4-x', Service: 's4', Port: 9000 });
    await eventually(() => addresses(port, 's4.service.consul'), (a) => a.length === 3);
  }, 30_000);

  it('no token: Consul answers with the anonymous token\'s silently filtered lists (200, no header); the zone shows what it can read', async () => {
    const consul = await fake(3, { acl: { tokens: { t: 'read' }, anonymous: { serviceRead: ['s1'], nodeRead: true } } });
    const { port, logs } = await follow(consul, 100);
    expect(await addresses(port, 's1.service.consul')).toHaveLength(2);
    expect(await rcode(port, 's2.service.consul')).toBe('NXDOMAIN');
    expect(consul.counters.responses[403] ?? 0).toBeLessThanOrEqual(1); // agent/self at most
    expect(logs.some((l) => l.level === 50)).toBe(false);
  }, 30_000);

  it('no token and an anonymous token without rights: an empty zone, and one warning saying why', async () => {
    const consul = await fake(3, { acl: { tokens: { t: 'read' } } });
    const { port, logs } = await follow(consul, 100);
    expect(await rcode(port, 's1.service.consul')).toBe('NXDOMAIN');
    expect(logs.filter((l) => /no token is set/.test(String(l.msg)))).toHaveLength(1);
  }, 30_000);
});

describe('federated datacenters', () => {
  async function twoDcs() {
    const consul = await startFakeConsul({ jitter: false, datacenters: ['dc2'] });
    cleanups.push(() => consul.close());
    for (const dc of ['dc1', 'dc2']) {
      consul.registerService({ Node: `${dc}-n1`, Address: dc === 'dc1' ? '10.1.0.1' : '10.2.0.1' }, { ID: 'web-1', Service: 'web', Port: 80 }, { dc });
    }
    return consul;
  }

  it('an unreachable remote datacenter does not hold up the local one; it is reported on its own and added once it answers', async () => {
    const consul = await twoDcs();
    consul.setDatacenterReachable('dc2', false);
    const { port, source } = await follow(consul, 100);
    expect(await addresses(port, 'web.service.consul')).toEqual(['10.1.0.1']);
    await eventually(async () => source.datacenters().get('dc2')?.status, (s) => s === 'unreachable');
    expect(source.datacenters().get('dc1')!.status).toBe('ok');
    expect(source.degraded).toBe(true);
    consul.registerService({ Node: 'dc1-n2', Address: '10.1.0.2' }, { ID: 'web-2', Service: 'web', Port: 80 });
    await eventually(() => addresses(port, 'web.service.consul'), (a) => a.length === 2);
    consul.setDatacenterReachable('dc2', true);
    await eventually(() => addresses(port, 'web.service.dc2.consul'), (a) => a.length === 1);
    await eventually(async () => source.degraded, (d) => !d);
  }, 30_000);

  it('a datacenter federated after the start is followed too (Consul lists it: checked every 12th probe)', async () => {
    const consul = await fake(2);
    const { port, logs } = await follow(consul, 100);
    expect(await rcode(port, 's0.service.dc3.consul')).toBe('NXDOMAIN');
    consul.addDatacenter('dc3');
    consul.registerService({ Node: 'dc3-n1', Address: '10.3.0.1' }, { ID: 's0-dc3', Service: 's0', Port: 80 }, { dc: 'dc3' });
    await eventually(() => addresses(port, 's0.service.dc3.consul'), (a) => a.length === 1);
    expect(await addresses(port, 's0.service.consul')).toHaveLength(2);
    expect(logs.filter((l) => l.msg === 'consul lists a new datacenter: following it')).toHaveLength(1);
  }, 30_000);

  it('after a restart from the snapshot with dc2 unreachable: dc2 keeps its last data, dc1 changes are applied, /healthcheck says which', async () => {
    const consul = await twoDcs();
    const dir = mkdtempSync(join(tmpdir(), 'cdns-fed-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const cfg = (o: Record<string, unknown> = {}) => loadConfig({ object: { dns: '127.0.0.1:0', http: '127.0.0.1:0', consul: consul.url, data_dir: dir, ...o } });
    const first = new App({ config: cfg(), logger: silentLogger() });
    await first.start();
    // The first start serves dc1 once it is read; dc2 joins once read too.
    await eventually(() => addresses(first.dnsAddress.port, 'web.service.dc2.consul'), (a) => a.length === 1);
    expect(await addresses(first.dnsAddress.port, 'web.service.dc2.consul')).toEqual(['10.2.0.1']);
    await first.close();
    expect(readFileSync(join(dir, 'catalog.json'), 'utf8')).toContain('10.2.0.1');

    consul.setDatacenterReachable('dc2', false);
    const second = new App({ config: cfg(), logger: silentLogger() });
    await second.start();
    cleanups.push(() => second.close());
    const port = second.dnsAddress.port;
    expect(await addresses(port, 'web.service.dc2.consul')).toEqual(['10.2.0.1']);
    consul.registerService({ Node: 'dc1-n3', Address: '10.1.0.3' }, { ID: 'web-3', Service: 'web', Port: 80 });
    await eventually(() => addresses(port, 'web.service.consul'), (a) => a.includes('10.1.0.3'));
    expect(await addresses(port, 'web.service.dc2.consul')).toEqual(['10.2.0.1']);
    const health = async () => (await (await fetch(`http://127.0.0.1:${second.httpAddress!.port}/healthcheck`)).json()) as
      { status: string; consul: { datacenters: Record<string, { status: string; live: boolean }> } };
    await eventually(health, (h) => h.consul.datacenters.dc2?.status === 'unreachable');
    const h = await health();
    expect(h.status).toBe('stale');
    expect(h.consul.datacenters.dc1).toMatchObject({ status: 'ok', live: true });
    expect(h.consul.datacenters.dc2).toMatchObject({ live: false });
    const metrics = await (await fetch(`http://127.0.0.1:${second.httpAddress!.port}/metrics`)).text();
    expect(metrics).toContain('catalog_dns_consul_datacenter_up{dc="dc2"} 0');
    expect(metrics).toContain('catalog_dns_consul_datacenter_up{dc="dc1"} 1');
  }, 30_000);
});

describe('Consul\'s data shapes', () => {
  it('"Web" and "web" are one service, as Consul looks names up', async () => {
    const consul = await fake(0);
    consul.registerService({ Node: 'a', Address: '10.9.0.1' }, { ID: 'w1', Service: 'Web', Port: 80 });
    consul.registerService({ Node: 'b', Address: '10.9.0.2' }, { ID: 'w2', Service: 'web', Port: 80 });
    const { port, logs } = await follow(consul, 100);
    expect(await addresses(port, 'web.service.consul')).toEqual(['10.9.0.1', '10.9.0.2']);
    expect(await addresses(port, 'WEB.service.consul')).toEqual(['10.9.0.1', '10.9.0.2']);
    consul.deregisterService('a', 'w1');
    await eventually(() => addresses(port, 'web.service.consul'), (a) => a.length === 1);
    expect(logs.some((l) => /unavailable/.test(String(l.msg)))).toBe(false);
  }, 30_000);

  it('a sidecar\'s virtual IP answers <service>.virtual, not <sidecar>.virtual', async () => {
    const consul = await fake(0);
    consul.registerService({ Node: 'a', Address: '10.9.0.1' }, { ID: 'web-1', Service: 'web', Port: 80 });
    consul.registerService('a', { ID: 'web-1-sidecar', Service: 'web-sidecar-proxy', Kind: 'connect-proxy', Port: 21000, Proxy: { DestinationServiceName: 'web' } });
    const { port } = await follow(consul, 100);
    const vip = await addresses(port, 'web.virtual.consul');
    expect(vip).toHaveLength(1);
    expect(vip[0]).toMatch(/^240\./);
    expect(await rcode(port, 'web-sidecar-proxy.virtual.consul')).toBe('NXDOMAIN');
  }, 30_000);

  it('a terminating gateway linked to a service answers <service>.connect, following its links', async () => {
    const consul = await fake(0);
    consul.registerService({ Node: 'db-1', Address: '10.7.0.1' }, { ID: 'db-1', Service: 'db', Port: 5432 });
    consul.registerService({ Node: 'gw-1', Address: '10.7.9.1' }, { ID: 'tgw-1', Service: 'tgw', Kind: 'terminating-gateway', Port: 8443 });
    consul.linkGatewayService('tgw', 'db');
    const { port, source } = await follow(consul, 100);
    await eventually(() => addresses(port, 'db.connect.consul'), (a) => a.length === 1);
    expect(await addresses(port, 'db.connect.consul')).toEqual(['10.7.9.1']);
    consul.linkGatewayService('tgw', 'api');
    await eventually(() => addresses(port, 'api.connect.consul'), (a) => a.length === 1);
    consul.unlinkGatewayService('tgw', 'db');
    await eventually(() => rcode(port, 'db.connect.consul'), (r) => r === 'NXDOMAIN');
    expect(source.datacenters().get('dc1')!.status).toBe('ok');
  }, 30_000);

  it('service names Consul accepts but DNS cannot ask for are not followed; a restart from the snapshot serves the same zone', async () => {
    const consul = await fake(2);
    for (const name of ['my.service', 'has space', 'x'.repeat(64)]) consul.registerService('n0', { ID: `odd-${name.length}`, Service: name, Port: 80 });
    const dir = mkdtempSync(join(tmpdir(), 'cdns-names-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const cfg = () => loadConfig({ object: { dns: '127.0.0.1:0', http: 'off', consul: consul.url, data_dir: dir } });
    const first = new App({ config: cfg(), logger: silentLogger() });
    await first.start();
    const serial = first.store.current()!.serial;
    expect(await addresses(first.dnsAddress.port, 's1.service.consul')).toHaveLength(2);
    await first.close();
    await consul.stop();
    const second = new App({ config: cfg(), logger: silentLogger() });
    await second.start();
    cleanups.push(() => second.close());
    expect(second.store.current()!.serial).toBe(serial);
    expect(await addresses(second.dnsAddress.port, 's1.service.consul')).toHaveLength(2);
    await consul.start();
  }, 30_000);
});

describe('leader contact', () => {
  it('answers from a server that lost its leader do not count as fresh: health says stale, and max_stale counts from the last fresh one', async () => {
    const consul = await fake(3);
    const { port, source, app } = await follow(consul, 100, { config: { max_stale: '2s' } });
    expect(await rcode(port, 's1.service.consul')).toBe('NOERROR');
    consul.setLeaderContact({ lastContactMs: 5000, knownLeader: true });
    // Still answering: data keeps coming (a change is applied), but nothing fresh.
    consul.registerService({ Node: 'late', Address: '10.9.9.9' }, { ID: 's1-x', Service: 's1', Port: 9000 });
    await eventually(() => addresses(port, 's1.service.consul'), (a) => a.length === 3);
    await eventually(async () => source.datacenters().get('dc1')!.status, (s) => s === 'stale');
    expect(source.degraded).toBe(true);
    await eventually(() => rcode(port, 's1.service.consul'), (r) => r === 'SERVFAIL');
    expect(app.store.withheld).toBe(true);
    consul.setLeaderContact({ lastContactMs: 0, knownLeader: true });
    await eventually(() => rcode(port, 's1.service.consul'), (r) => r === 'NOERROR');
    consul.setLeaderContact({ knownLeader: false });
    await eventually(async () => source.datacenters().get('dc1')!.status, (s) => s === 'stale');
  }, 30_000);
});

describe('a broken Consul or proxy', () => {
  const fast = { ...FAST, waitMs: 1000 };

  it('a reply over the size cap, one that never ends, one nested too deep: errors, the zone keeps serving, one log line per outage', async () => {
    const consul = await fake(3);
    const { port, source, logs } = await follow(consul, 100, { client: { maxResponseBytes: 256 * 1024, bodyDeadlineMs: 1000 }, timing: fast });
    for (const f of [{ kind: 'huge', bytes: 4 * 1024 * 1024 }, { kind: 'trickle', intervalMs: 200 }, { kind: 'deep', depth: 200_000 }] as const) {
      const before = logs.length;
      const id = consul.addFault(f, { path: '/v1/catalog/services' });
      // A registration wakes the parked list query (answered as the fault says), then another one.
      consul.registerService('n0', { ID: `wake-${f.kind}`, Service: `wake-${f.kind}`, Port: 1 });
      await eventually(async () => source.datacenters().get('dc1')!.status, (s) => s === 'unreachable');
      consul.registerService('n0', { ID: `new-${f.kind}`, Service: `new-${f.kind}`, Port: 1 });
      for (let i = 0; i < 5; i++) expect(await addresses(port, 's1.service.consul')).toHaveLength(2);
      expect(await rcode(port, `new-${f.kind}.service.consul`)).toBe('NXDOMAIN');
      await new Promise((r) => setTimeout(r, 1500)); // several failed responses
      expect(logs.slice(before).filter((l) => /unavailable/.test(String(l.msg))).length, f.kind).toBe(1);
      consul.clearFault(id);
      await eventually(() => addresses(port, `new-${f.kind}.service.consul`), (a) => a.length === 1);
      await eventually(async () => source.datacenters().get('dc1')!.status, (s) => s === 'ok');
    }
  }, 60_000);

  it('an invalid X-Consul-Index is an error with backoff, not a spin; a Consul that accepts and never answers is noticed', async () => {
    const consul = await fake(3);
    const { port, source } = await follow(consul, 100, { timing: { ...fast, maxBackoffMs: 1000, backoffMs: 200 }, client: { timeoutMs: 1000 } });
    for (const value of [null, '0', 'abc']) {
      const id = consul.addFault({ kind: 'index', value }, { path: '/v1/catalog/nodes' });
      const before = consul.counters.requests['catalog/nodes'];
      await eventually(async () => source.datacenters().get('dc1')!.status, (s) => s === 'unreachable');
      await new Promise((r) => setTimeout(r, 1500));
      // Backing off (200 ms doubling): a handful of requests, not one per event-loop turn.
      expect(consul.counters.requests['catalog/nodes'] - before, String(value)).toBeLessThan(15);
      consul.clearFault(id);
      await eventually(async () => source.datacenters().get('dc1')!.status, (s) => s === 'ok');
    }
    // Accepts and never answers: the blocking queries' deadline (wait + wait/16 + the timeout) runs out.
    const id = consul.addFault({ kind: 'hang' });
    await eventually(async () => source.datacenters().get('dc1')!.status, (s) => s === 'unreachable');
    expect(await addresses(port, 's1.service.consul')).toHaveLength(2);
    consul.clearFault(id);
    await eventually(async () => source.datacenters().get('dc1')!.status, (s) => s === 'ok');
  }, 60_000);
});

describe('the stop', () => {
  it('SIGTERM ends the process within 5 s whatever Consul does (a reply that never ends, a huge one being parsed, one never answered)', async () => {
    const { spawn } = await import('node:child_process');
    const { freePort } = await import('../support/daemons.js');
    const main = new URL('../../dist/main.js', import.meta.url).pathname;
    const consul = await fake(50);
    for (const [fault, path] of [[{ kind: 'trickle', intervalMs: 500 }, '/v1/catalog/services'], [{ kind: 'huge', bytes: 40 * 1024 * 1024 }, '/v1/catalog/nodes'],
      [{ kind: 'hang' }, /^\/v1\/health\//]] as const) {
      const port = await freePort();
      const proc = spawn(process.execPath, [main, '--consul', consul.url, '--dns', `127.0.0.1:${port}`, '--http', 'off'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      proc.stdout!.on('data', (d) => (out += d));
      const exited = new Promise<number | null>((r) => proc.on('close', (code) => r(code)));
      cleanups.push(async () => { if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL'); await exited; });
      await eventually(async () => out.includes('"msg":"serving"'), (x) => x);
      const id = consul.addFault(fault, { path });
      consul.registerService({ Node: 'wake', Address: '10.8.0.1' }, { ID: `wake-${fault.kind}`, Service: 's1', Port: 1 });
      consul.setCheck('n1', 'service:s1-0', 'critical');
      // The fault is in the way now (the trickle started, the huge reply is being read, requests hang).
      // (A parked query meets the fault when it is answered: registrations wake it, again and again.)
      let wakes = 0;
      await eventually(async () => {
        consul.registerService({ Node: `wake-${wakes}`, Address: '10.8.1.1' }, { ID: `wake-${fault.kind}-${wakes++}`, Service: 's2', Port: 1 });
        return fault.kind === 'trickle' ? consul.counters.trickling : fault.kind === 'hang' ? consul.counters.hung : consul.counters.requests['catalog/nodes'];
      }, (n) => n > (fault.kind === 'huge' ? 2 : 0));
      proc.kill('SIGTERM');
      const killer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      const code = await exited;
      clearTimeout(killer);
      expect(code, `${fault.kind}: ended by SIGKILL after 5 s\n${out}`).toBe(0);
      consul.clearFault(id);
    }
  }, 60_000);
});
