/**
 * The server following a live Consul (the test Consul, a real HTTP server) over real UDP: answers
 * follow registrations, deregistrations and health changes; every Consul fault leaves the last good
 * zone serving.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { App } from '../../src/app.js';
import { ConsulClient } from '../../src/catalog/consul-client.js';
import { ConsulCatalogSource } from '../../src/catalog/consul-source.js';
import { DEFAULT_TIMING } from '../../src/catalog/watch.js';
import { loadConfig } from '../../src/config.js';
import { silentLogger } from '../../src/log.js';
import { udpQuery } from '../support/dns-client.js';
import { eventually as poll } from '../support/eventually.js';
import { startFakeConsul, type FakeConsul } from '../support/fake-consul.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => { for (const c of cleanups.splice(0).reverse()) await c(); });

async function setup(): Promise<{ consul: FakeConsul; app: App; source: ConsulCatalogSource; port: number }> {
  const consul = await startFakeConsul({ jitter: false });
  cleanups.push(() => consul.close());
  for (let i = 1; i <= 3; i++) {
    consul.registerService({ Node: `web-${i}`, Address: `10.0.1.${i}` }, { ID: `web-${i}`, Service: 'web', Port: 8080, Tags: ['v1'] },
      { checks: [{ CheckID: `service:web-${i}`, Status: 'passing', ServiceID: `web-${i}` }] });
  }
  consul.registerNode({ Node: 'bare', Address: '10.0.9.9' });
  const client = new ConsulClient({ addresses: [consul.url], timeoutMs: 2000 });
  const source = new ConsulCatalogSource({
    client, logger: silentLogger(), quiet: { minMs: 20, maxMs: 200 },
    timing: { ...DEFAULT_TIMING, waitMs: 10_000, backoffMs: 20, maxBackoffMs: 200, ratePerSec: 50, burst: 10 },
  });
  const app = new App({ config: loadConfig({ object: { dns: '127.0.0.1:0', http: 'off' } }), logger: silentLogger(), source });
  await app.start();
  cleanups.push(() => app.close());
  return { consul, app, source, port: app.dnsAddress.port };
}

const addresses = async (port: number, name: string) =>
  (await udpQuery(port, name, 'A', { edns: 4096 })).answers.map((a) => a.data as string).sort();

/** Polls (bounded: 300 tries, 15 s and more: a retry may be in a 10 s backoff). */
const eventually = <T>(f: () => Promise<T>, ok: (v: T) => boolean): Promise<T> => poll(f, ok, { tries: 300, everyMs: 50 });

describe('following a live Consul', () => {
  it('serves the catalog once read, and follows registration, health and deregistration', async () => {
    const { consul, port } = await setup();
    expect(await addresses(port, 'web.service.consul')).toEqual(['10.0.1.1', '10.0.1.2', '10.0.1.3']);
    expect(await addresses(port, 'bare.node.consul')).toEqual(['10.0.9.9']);
    consul.registerService({ Node: 'web-4', Address: '10.0.1.4' }, { ID: 'web-4', Service: 'web', Port: 8080 });
    await eventually(() => addresses(port, 'web.service.consul'), (a) => a.includes('10.0.1.4'));
    consul.setCheck('web-2', 'service:web-2', 'critical', { serviceId: 'web-2' });
    await eventually(() => addresses(port, 'web.service.consul'), (a) => !a.includes('10.0.1.2'));
    consul.deregisterService('web-1', 'web-1');
    await eventually(() => addresses(port, 'web.service.consul'), (a) => a.join() === '10.0.1.3,10.0.1.4');
    consul.registerService({ Node: 'db-1', Address: '10.0.2.1' }, { ID: 'db-1', Service: 'db', Port: 5432 });
    await eventually(() => addresses(port, 'db.service.consul'), (a) => a.join() === '10.0.2.1');
  });

  it('keeps answering from the last good zone through every Consul fault, and catches up after', async () => {
    const { consul, source, port } = await setup();
    const faults = [
      { kind: 'no-leader' }, { kind: 'rate-limit' }, { kind: 'forbidden' }, { kind: 'status', status: 500, body: 'No cluster leader' },
      { kind: 'bad-json' }, { kind: 'truncate' }, { kind: 'reset' }, { kind: 'hang' },
    ] as const;
    for (const f of faults) {
      const id = consul.addFault(f as never);
      // A change while Consul is faulty (parked watches may still deliver it; new requests fail).
      consul.setCheck('web-3', 'service:web-3', 'critical', { serviceId: 'web-3' });
      for (let i = 0; i < 5; i++) {
        const r = await udpQuery(port, 'web.service.consul', 'A', { edns: 4096 });
        expect(r.rcode, f.kind).toBe('NOERROR');
        expect(r.answers.length).toBeGreaterThan(0);
      }
      consul.clearFault(id);
      await eventually(() => addresses(port, 'web.service.consul'), (a) => !a.includes('10.0.1.3'));
      consul.setCheck('web-3', 'service:web-3', 'passing', { serviceId: 'web-3' });
      await eventually(() => addresses(port, 'web.service.consul'), (a) => a.includes('10.0.1.3'));
    }
    await consul.stop(); // connection refused
    for (let i = 0; i < 5; i++) expect(await addresses(port, 'web.service.consul')).toEqual(['10.0.1.1', '10.0.1.2', '10.0.1.3']);
    await eventually(async () => source.reachable, (r) => r === false);
    await consul.start();
    consul.registerService({ Node: 'web-5', Address: '10.0.1.5' }, { ID: 'web-5', Service: 'web', Port: 8080 });
    await eventually(() => addresses(port, 'web.service.consul'), (a) => a.includes('10.0.1.5'));
    expect(source.reachable).toBe(true);
  }, 60_000);
});

describe('the start and the stop', () => {
  it('answers once every service is read; the long polls open after, a change made meanwhile is not lost; close() ends them all', async () => {
    const consul = await startFakeConsul({ jitter: false });
    cleanups.push(() => consul.close());
    const N = 60;
    for (let i = 0; i < N; i++) {
      consul.registerService({ Node: `n-${i}`, Address: `10.0.2.${i + 1}` }, { ID: `s${i}-1`, Service: `s${i}`, Port: 80 });
    }
    const client = new ConsulClient({ addresses: [consul.url], timeoutMs: 2000, connections: 4 });
    const source = new ConsulCatalogSource({ client, logger: silentLogger(), concurrency: 4, openBatch: 3, quiet: { minMs: 20, maxMs: 200 },
      timing: { ...DEFAULT_TIMING, waitMs: 10_000 } });
    const app = new App({ config: loadConfig({ object: { dns: '127.0.0.1:0', http: 'off' } }), logger: silentLogger(), source });
    await app.start();
    const port = app.dnsAddress.port;
    for (const i of [0, N - 1]) expect(await addresses(port, `s${i}.service.consul`)).toEqual([`10.0.2.${i + 1}`]);
    // Right after the first answer: a change to a service whose long poll may not be open yet.
    consul.registerService({ Node: 'late', Address: '10.0.3.1' }, { ID: `s${N - 1}-2`, Service: `s${N - 1}`, Port: 80 });
    await eventually(() => addresses(port, `s${N - 1}.service.consul`), (a) => a.length === 2);
    await consul.until((k) => k.parked === N + 2, 30_000);
    expect(client.laneCount).toBe(N + 2);
    await app.close();
    expect(client.laneCount).toBe(0);
    await consul.until((k) => k.parked === 0 && k.connections === 0, 30_000);
  }, 60_000);

  it('the serial served is on disk first (serial.json, written through a synced temporary file)', async () => {
    const consul = await startFakeConsul({ jitter: false });
    cleanups.push(() => consul.close());
    consul.registerService({ Node: 'web-1', Address: '10.0.1.1' }, { ID: 'web-1', Service: 'web', Port: 80 });
    const { mkdtempSync, rmSync, readFileSync, readdirSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), 'cdns-serial-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const app = new App({ config: loadConfig({ object: { dns: '127.0.0.1:0', http: 'off', consul: consul.url, data_dir: dir } }), logger: silentLogger() });
    await app.start();
    cleanups.push(() => app.close());
    const served = async () => ((await udpQuery(app.dnsAddress.port, 'consul', 'SOA')).answers[0]!.data as { serial: number }).serial;
    const onDisk = () => (JSON.parse(readFileSync(join(dir, 'serial.json'), 'utf8')) as { serial: number }).serial;
    const first = await served();
    expect(onDisk()).toBe(first);
    consul.registerService({ Node: 'web-2', Address: '10.0.1.2' }, { ID: 'web-2', Service: 'web', Port: 80 });
    const second = await eventually(served, (s) => s !== first);
    expect(onDisk()).toBe(second);
    expect(readdirSync(dir)).not.toContain('serial.json.tmp');
  }, 60_000);
});

describe('the removal guard', () => {
  it('holds back an update that removes most instances until it has lasted removal_guard_hold; a recovery in between is never applied', async () => {
    const consul = await startFakeConsul({ jitter: false });
    cleanups.push(() => consul.close());
    for (let i = 1; i <= 12; i++) consul.registerService({ Node: `n${i}`, Address: `10.0.3.${i}` }, { ID: `api-${i}`, Service: 'api', Port: 80 });
    const client = new ConsulClient({ addresses: [consul.url], timeoutMs: 2000 });
    const source = new ConsulCatalogSource({
      client, logger: silentLogger(), quiet: { minMs: 20, maxMs: 200 }, guard: { share: 0.5, holdMs: 1500 },
      timing: { ...DEFAULT_TIMING, waitMs: 10_000, backoffMs: 20, maxBackoffMs: 200, ratePerSec: 50, burst: 10 },
    });
    const app = new App({ config: loadConfig({ object: { dns: '127.0.0.1:0', http: 'off' } }), logger: silentLogger(), source });
    await app.start();
    cleanups.push(() => app.close());
    const port = app.dnsAddress.port;
    const count = async () => (await addresses(port, 'api.service.consul')).length;
    expect(await count()).toBe(12);
    // One write that takes 10 of the 12 away (a token losing its rights looks like this), then
    // one that brings them back within the hold: the zone never loses them.
    const full = consul.snapshot();
    const cut = structuredClone(full);
    cut.datacenters.dc1!.services!.api = cut.datacenters.dc1!.services!.api!.slice(10);
    consul.load(cut);
    await eventually(async () => source.heldBack, (n) => n === 1);
    expect(await count()).toBe(12);
    consul.load(full);
    await new Promise((r) => setTimeout(r, 2000));
    expect(await count()).toBe(12);
    // A removal that lasts is applied after the hold.
    consul.load(cut);
    await eventually(async () => source.heldBack, (n) => n === 2);
    expect(await count()).toBe(12);
    await eventually(count, (n) => n === 2);
    // Once applied, it is the new reference: small changes after it go through.
    consul.registerService({ Node: 'n1', Address: '10.0.3.1' }, { ID: 'api-1', Service: 'api', Port: 80 });
    await eventually(count, (n) => n === 3);
    expect(source.heldBack).toBe(2);
  }, 30_000);
});

describe('configured from the options (--consul, --data-dir, max_stale)', () => {
  const config = (o: Record<string, unknown>) => loadConfig({ object: { dns: '127.0.0.1:0', http: '127.0.0.1:0', ...o } });

  it('one catalog source: --consul with --catalog-file, or neither, stops the start naming the options', () => {
    expect(() => new App({ config: config({ consul: 'http://127.0.0.1:1', catalog_file: '/x.json' }) })).toThrow(/^consul: cannot be used with catalog_file/);
    expect(() => new App({ config: config({}) })).toThrow(/--catalog-file: or --consul is required/);
    expect(() => loadConfig({ object: { consul: 'ftp://x' } })).toThrow(/consul: "ftp:\/\/x": only http and https/);
    expect(() => new App({ config: config({ consul: 'http://127.0.0.1:1', consul_cacert: '/nonexistent.pem' }) })).toThrow(/consul_cacert: cannot read/);
    expect(loadConfig({ env: { CONSUL_HTTP_ADDR: '10.0.0.1:8501', CONSUL_HTTP_SSL: 'true', CONSUL_HTTP_TOKEN: 't' } })).toMatchObject({ consul: ['https://10.0.0.1:8501'], consulToken: 't' });
  });

  it('a restart while Consul is down answers from the snapshot on disk; max_stale turns answers into SERVFAIL', async () => {
    const consul = await startFakeConsul({ jitter: false });
    cleanups.push(() => consul.close());
    consul.registerService({ Node: 'web-1', Address: '10.0.1.1' }, { ID: 'web-1', Service: 'web', Port: 80 });
    const { mkdtempSync, rmSync, existsSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), 'cdns-consul-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));

    const first = new App({ config: config({ consul: consul.url, data_dir: dir }), logger: silentLogger() });
    await first.start();
    expect(await addresses(first.dnsAddress.port, 'web.service.consul')).toEqual(['10.0.1.1']);
    await eventually(async () => existsSync(join(dir, 'catalog.json')), (x) => x);
    // A change just before the stop (the snapshot is rewritten at most every 5 s): the stop writes it.
    consul.registerService({ Node: 'web-9', Address: '10.0.1.9' }, { ID: 'web-9', Service: 'web', Port: 80 });
    await eventually(() => addresses(first.dnsAddress.port, 'web.service.consul'), (a) => a.length === 2);
    await first.close();

    await consul.stop(); // Consul down for the restart
    const second = new App({ config: config({ consul: consul.url, data_dir: dir, max_stale: '2s' }), logger: silentLogger() });
    await second.start();
    cleanups.push(() => second.close());
    expect(await addresses(second.dnsAddress.port, 'web.service.consul')).toEqual(['10.0.1.1', '10.0.1.9']);
    // Never heard from Consul in this run: max_stale counts from the last contact, so the snapshot
    // keeps serving; once Consul answered and then went away, max_stale applies.
    await consul.start();
    consul.registerService({ Node: 'web-2', Address: '10.0.1.2' }, { ID: 'web-2', Service: 'web', Port: 80 });
    await eventually(() => addresses(second.dnsAddress.port, 'web.service.consul'), (a) => a.length === 3);
    await consul.stop();
    await eventually(async () => (await udpQuery(second.dnsAddress.port, 'web.service.consul', 'A')).rcode, (r) => r === 'SERVFAIL');
    await consul.start();
    await eventually(async () => (await udpQuery(second.dnsAddress.port, 'web.service.consul', 'A')).rcode, (r) => r === 'NOERROR');
    await second.close();

    // A corrupt snapshot is moved aside and logged; the start waits for Consul instead.
    const { writeFileSync, readdirSync } = await import('node:fs');
    writeFileSync(join(dir, 'catalog.json'), '{"datacenter": "dc1", "datac');
    const third = new App({ config: config({ consul: consul.url, data_dir: dir }), logger: silentLogger() });
    await third.start();
    cleanups.push(() => third.close());
    expect((await addresses(third.dnsAddress.port, 'web.service.consul')).length).toBe(3);
    expect(readdirSync(dir).some((f) => f.startsWith('catalog.json.corrupt-'))).toBe(true);
    await third.close();

    // Valid JSON with an invalid entry, found after the start began answering names from the
    // snapshot (a provisional zone): that zone goes (no answers from a snapshot that is not valid),
    // the snapshot is moved aside, and the start waits for Consul.
    const { readFileSync } = await import('node:fs');
    type Entry = { Service: { Service: string; ID: string; Port: unknown } };
    const snap = JSON.parse(readFileSync(join(dir, 'catalog.json'), 'utf8')) as { datacenters: { dc1: { services: Record<string, Entry[]> } } };
    const services = snap.datacenters.dc1.services;
    services.db = services.web!.map((e) => ({ ...e, Service: { ...e.Service, Service: 'db', ID: `db-${e.Service.ID}` } }));
    services.web![0]!.Service.Port = 'eighty';
    writeFileSync(join(dir, 'catalog.json'), JSON.stringify(snap));
    await consul.stop();
    const fourth = new App({ config: config({ consul: consul.url, data_dir: dir }), logger: silentLogger() });
    cleanups.push(() => fourth.close());
    const starting = fourth.start();
    await eventually(async () => fourth.dnsAddress.port, (p) => p > 0);
    expect((await udpQuery(fourth.dnsAddress.port, 'db.service.consul', 'A')).rcode).toBe('SERVFAIL');
    await consul.start();
    await starting;
    expect((await addresses(fourth.dnsAddress.port, 'web.service.consul')).length).toBe(3);
    expect((await udpQuery(fourth.dnsAddress.port, 'db.service.consul', 'A')).rcode).toBe('NXDOMAIN');
    expect(readdirSync(dir).filter((f) => f.startsWith('catalog.json.corrupt-')).length).toBe(2);
  }, 60_000);
});

describe('health and metrics over HTTP', () => {
  it('/healthcheck follows the zone and Consul; /metrics counts queries, commits and Consul requests', async () => {
    const consul = await startFakeConsul({ jitter: false });
    cleanups.push(() => consul.close());
    consul.registerService({ Node: 'web-1', Address: '10.0.1.1' }, { ID: 'web-1', Service: 'web', Port: 80 });
    const app = new App({ config: loadConfig({ object: { dns: '127.0.0.1:0', http: '127.0.0.1:0', consul: consul.url, max_stale: '2s' } }), logger: silentLogger() });
    await app.start();
    cleanups.push(() => app.close());
    const base = `http://127.0.0.1:${app.httpAddress!.port}`;
    const health = async () => { const r = await fetch(`${base}/healthcheck`); return { code: r.status, body: (await r.json()) as Record<string, unknown> }; };
    expect(await health()).toMatchObject({ code: 200, body: { status: 'ok', source: 'consul', consul: { reachable: true } } });
    for (let i = 0; i < 40; i++) await udpQuery(app.dnsAddress.port, 'web.service.consul', 'A');
    await udpQuery(app.dnsAddress.port, 'nosuch.service.consul', 'SRV');
    const metrics = await (await fetch(`${base}/metrics`)).text();
    const value = (line: string) => Number(metrics.split('\n').find((l) => l.startsWith(line))?.slice(line.length).trim());
    expect(value('catalog_dns_queries_total{transport="udp",qtype="A"}')).toBe(40);
    expect(value('catalog_dns_queries_total{transport="udp",qtype="SRV"}')).toBe(1);
    expect(value('catalog_dns_responses_total{rcode="NXDOMAIN"}')).toBe(1);
    expect(value('catalog_dns_zone_commits_total')).toBeGreaterThanOrEqual(1);
    expect(value('catalog_dns_consul_up')).toBe(1);
    expect(value('catalog_dns_consul_watches')).toBe(3);
    expect(value('catalog_dns_answer_duration_seconds_count')).toBeGreaterThanOrEqual(1);
    expect(metrics).toContain('catalog_dns_zone_serial ');
    // Consul goes away: still answering (stale, 200), then past max_stale withheld (503).
    await consul.stop();
    await eventually(async () => (await health()).body.status, (s) => s === 'stale' || s === 'withheld');
    await eventually(async () => (await health()).code, (c) => c === 503);
    expect((await health()).body.status).toBe('withheld');
    expect((await fetch(`${base}/nope`)).status).toBe(404);
  }, 30_000);
});

describe('the ACL token', () => {
  it('goes in X-Consul-Token only: never in a log line, an error message or a URL, whatever fails', async () => {
    const { PassThrough } = await import('node:stream');
    const { createLogger } = await import('../../src/log.js');
    const consul = await startFakeConsul({ jitter: false });
    cleanups.push(() => consul.close());
    consul.setAcl({ tokens: { 'tok-5ecret-value': 'read' } });
    consul.registerService({ Node: 'web-1', Address: '10.0.1.1' }, { ID: 'web-1', Service: 'web', Port: 80 });
    const lines: string[] = [];
    const sink = new PassThrough();
    sink.on('data', (d: Buffer) => lines.push(d.toString()));
    const app = new App({
      config: loadConfig({ object: { dns: '127.0.0.1:0', http: 'off', consul: consul.url }, env: { CONSUL_HTTP_TOKEN: 'tok-5ecret-value' } }),
      logger: createLogger('trace', sink),
    });
    await app.start();
    cleanups.push(() => app.close());
    expect(await addresses(app.dnsAddress.port, 'web.service.consul')).toEqual(['10.0.1.1']);
    // Every kind of failure, each logged at some level.
    for (const f of [{ kind: 'forbidden' }, { kind: 'status', status: 500, body: 'No cluster leader' }, { kind: 'bad-json' }, { kind: 'reset' }] as const) {
      const id = consul.addFault(f as never);
      consul.setCheck('web-1', 'serfHealth', 'warning');
      await new Promise((r) => setTimeout(r, 300));
      consul.clearFault(id);
    }
    consul.setAcl({ tokens: {} }); // the token is no longer known: 403 "ACL not found"
    consul.setCheck('web-1', 'serfHealth', 'passing');
    await new Promise((r) => setTimeout(r, 500));
    const all = lines.join('');
    expect(all.length).toBeGreaterThan(0);
    expect(all).toContain('consul unavailable');
    expect(all).not.toContain('tok-5ecret-value');
    expect(JSON.stringify(app.store.lastError ?? '')).not.toContain('tok-5ecret-value');
  }, 30_000);
});

describe('TLS to Consul', () => {
  it('verifies Consul against the configured CA, presents the client certificate, and refuses an unknown CA', async () => {
    const { mkdtempSync, rmSync, readFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { execFileSync } = await import('node:child_process');
    const dir = mkdtempSync(join(tmpdir(), 'cdns-tls-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
    // A CA made here, a server certificate for 127.0.0.1 and a client certificate, both signed by it.
    ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=test CA');
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=consul.test');
    (await import('node:fs')).writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:consul.test\n');
    ssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '1', '-extfile', 'san.ext');
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'client.key', '-out', 'client.csr', '-subj', '/CN=catalog-dns');
    ssl('x509', '-req', '-in', 'client.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'client.pem', '-days', '1');
    ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'other.key', '-out', 'other.pem', '-days', '1', '-subj', '/CN=other CA');
    const f = (n: string) => join(dir, n);
    const consul = await startFakeConsul({ jitter: false, tls: { key: readFileSync(f('server.key')), cert: readFileSync(f('server.pem')), ca: readFileSync(f('ca.pem')) } });
    cleanups.push(() => consul.close());
    expect(consul.url).toMatch(/^https:/);
    consul.registerService({ Node: 'web-1', Address: '10.0.1.1' }, { ID: 'web-1', Service: 'web', Port: 80 });
    const config = (o: Record<string, unknown>) => loadConfig({ object: { dns: '127.0.0.1:0', http: 'off', consul: consul.url, ...o } });

    const app = new App({ config: config({ consul_cacert: f('ca.pem'), consul_client_cert: f('client.pem'), consul_client_key: f('client.key') }), logger: silentLogger() });
    await app.start();
    cleanups.push(() => app.close());
    expect(await addresses(app.dnsAddress.port, 'web.service.consul')).toEqual(['10.0.1.1']);

    // Consul's certificate checked against another CA: never trusted, so the first read never comes.
    const { ConsulClient } = await import('../../src/catalog/consul-client.js');
    const wrongCa = new ConsulClient({ addresses: [consul.url], tls: { ca: readFileSync(f('other.pem')), cert: readFileSync(f('client.pem')), key: readFileSync(f('client.key')) } });
    cleanups.push(() => wrongCa.destroy());
    await expect(wrongCa.get('/v1/catalog/datacenters')).rejects.toMatchObject({ code: 'CDNS_ERR_CONSUL_UNAVAILABLE' });
    // Without a client certificate, Consul (verify_incoming) refuses the connection.
    const noCert = new ConsulClient({ addresses: [consul.url], tls: { ca: readFileSync(f('ca.pem')) } });
    cleanups.push(() => noCert.destroy());
    await expect(noCert.get('/v1/catalog/datacenters')).rejects.toMatchObject({ code: 'CDNS_ERR_CONSUL_UNAVAILABLE' });
  }, 60_000);
});
