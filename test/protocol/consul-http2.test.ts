/**
 * Following Consul over HTTPS as it ships: Consul's HTTPS listener speaks HTTP/2 (ALPN h2, 250
 * streams per connection), so catalog-dns's blocking queries share connections (200 streams each)
 * and every service gets a blocking query of its own within a budget of a few connections (README
 * "Following a live Consul"). Against the test Consul with `tls` and `http2`, over real sockets: the
 * agent's per-client connection limit counts TCP connections, and 502 parked blocking queries take
 * three of them. An HTTPS agent without h2 (a proxy in front that speaks HTTP/1.1 only) gets the
 * HTTP/1.1 lanes, one connection each.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { App } from '../../src/app.js';
import { ConsulClient, STREAMS_PER_CONNECTION } from '../../src/catalog/consul-client.js';
import { ConsulCatalogSource } from '../../src/catalog/consul-source.js';
import { DEFAULT_TIMING } from '../../src/catalog/watch.js';
import { loadConfig } from '../../src/config.js';
import { silentLogger } from '../../src/log.js';
import { udpQuery } from '../support/dns-client.js';
import { eventually } from '../support/eventually.js';
import { startFakeConsul, type FakeConsul } from '../support/fake-consul.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => { for (const c of cleanups.splice(0).reverse()) await c(); });

const FAST = { ...DEFAULT_TIMING, waitMs: 10_000, backoffMs: 20, maxBackoffMs: 200, ratePerSec: 20, burst: 4 };
const N = 500;

/** A CA made here and a certificate for 127.0.0.1 signed by it (Consul's server certificate). */
let dir: string;
let pki: { ca: Buffer; key: Buffer; cert: Buffer };
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cdns-h2-'));
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=test CA');
  ssl('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=consul.test');
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:consul.test\n');
  ssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '1', '-extfile', 'san.ext');
  const f = (n: string) => readFileSync(join(dir, n));
  pki = { ca: f('ca.pem'), key: f('server.key'), cert: f('server.pem') };
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The test Consul over HTTPS (h2 or not) with N services of one instance each, on nodes of their own. */
async function fake(http2: boolean): Promise<FakeConsul> {
  const consul = await startFakeConsul({ jitter: false, tls: { key: pki.key, cert: pki.cert }, http2 });
  cleanups.push(() => consul.close());
  for (let s = 0; s < N; s++) {
    consul.registerService({ Node: `n${s}`, Address: ip(s) }, { ID: `s${s}`, Service: `s${s}`, Port: 8000 },
      { checks: [{ CheckID: `service:s${s}`, Status: 'passing' }] });
  }
  return consul;
}
const ip = (n: number) => `10.1.${n >> 8}.${n & 255}`;

/** catalog-dns following `consul` with the default budget (100 connections). */
async function follow(consul: FakeConsul) {
  const client = new ConsulClient({ addresses: [consul.url], tls: { ca: pki.ca }, maxConnections: 100 });
  const source = new ConsulCatalogSource({ client, logger: silentLogger(), quiet: { minMs: 20, maxMs: 200 }, timing: FAST, probeMs: 500 });
  const app = new App({ config: loadConfig({ object: { dns: '127.0.0.1:0', http: 'off' } }), logger: silentLogger(), source });
  await app.start();
  cleanups.push(() => app.close());
  return { app, client, source, port: app.dnsAddress.port };
}

/** The lanes the same budget gives over HTTP/1.1 (one connection each): a client that never asked. */
function http1Lanes(consul: FakeConsul): number {
  const c = new ConsulClient({ addresses: [consul.url], tls: { ca: pki.ca }, maxConnections: 100 });
  void c.destroy();
  return c.laneCapacity;
}

const addresses = async (port: number, name: string) =>
  ((await udpQuery(port, name, 'A', { edns: 4096 })).answers ?? []).map((a) => (a as { data: string }).data).sort();

describe('Consul over HTTPS with HTTP/2', () => {
  it('every service gets a blocking query of its own, on three connections, and every change is served', async () => {
    const consul = await fake(true);
    const { app, client, source, port } = await follow(consul);
    expect(client.http2).toBe(true);
    // STREAMS_PER_CONNECTION lanes per connection the budget leaves for lanes: room for every service.
    expect(client.laneCapacity).toBe(http1Lanes(consul) * STREAMS_PER_CONNECTION);
    expect(client.laneCapacity).toBeGreaterThan(N + 2);

    // Settled: every service watched (its own /v1/health/service blocking query), plus the services
    // and nodes lists: 502 parked queries, no detector, no sweep.
    await consul.until((c) => c.parked >= N + 2, 30_000);
    await eventually(async () => source.datacenters().get('dc1')!, (d) => d.live && d.services === N && d.swept === 0);
    for (const s of [0, 250, N - 1]) expect(source.mode('dc1', `s${s}`)).toBe('watched');
    expect(consul.counters.parked).toBe(N + 2);
    expect(consul.counters.requests['health/state']).toBe(0);
    // Streams, not connections: 502 blocking queries on ceil(502 / 200) = 3 shared connections, next
    // to the read pool, far below the budget and the agent's limit (nothing refused).
    expect(consul.counters.streams).toBeGreaterThanOrEqual(N + 2);
    const peak = consul.counters.connectionsPeak;
    expect(peak).toBeLessThanOrEqual(Math.ceil((N + 2) / STREAMS_PER_CONNECTION) + client.readConnections);
    expect(peak).toBeLessThanOrEqual(client.maxConnections);
    expect(consul.counters.connLimited).toBe(0);
    expect(await addresses(port, 's0.service.consul')).toEqual([ip(0)]);

    // A registration in the last service, a check turning critical in another: each served through
    // its own blocking query.
    consul.registerService({ Node: 'extra', Address: '192.0.2.99' }, { ID: 's499-b', Service: 's499', Port: 8001 });
    await eventually(() => addresses(port, 's499.service.consul'), (a) => a.join() === [ip(499), '192.0.2.99'].sort().join());
    consul.setCheck('n250', 'service:s250', 'critical');
    await eventually(() => addresses(port, 's250.service.consul'), (a) => a.length === 0);
    // Back to every query parked, still no detector, on the same few connections.
    await consul.until((c) => c.parked === N + 2);
    expect(consul.counters.requests['health/state']).toBe(0);
    expect(consul.counters.connections).toBeLessThanOrEqual(Math.ceil((N + 2) / STREAMS_PER_CONNECTION) + client.readConnections);

    // The agent restarts (every connection and its streams gone at once): the shared connections are
    // made again, every query parks again, and a change made meanwhile is served.
    await consul.stop();
    consul.setCheck('n7', 'service:s7', 'critical');
    await consul.start();
    await eventually(() => addresses(port, 's7.service.consul'), (a) => a.length === 0);
    await consul.until((c) => c.parked === N + 2);
    expect(consul.counters.connections).toBeLessThanOrEqual(Math.ceil((N + 2) / STREAMS_PER_CONNECTION) + client.readConnections);
    expect(consul.counters.connLimited).toBe(0);

    // A stop ends every stream and closes every connection.
    await app.close();
    await consul.until((c) => c.parked === 0 && c.connections === 0 && c.streams === 0);
  }, 90_000);

  it('an HTTPS agent without h2: no HTTP/2, one connection per blocking query, within the budget', async () => {
    const consul = await fake(false);
    const { app, client, source, port } = await follow(consul);
    expect(client.http2).toBe(false);
    expect(client.laneCapacity).toBe(http1Lanes(consul));
    expect(client.laneCapacity).toBeLessThanOrEqual(client.maxConnections - client.readConnections);

    // More services than lanes: some watched, the rest swept (detectors on the non-passing checks).
    await eventually(async () => source.datacenters().get('dc1')!, (d) => d.live && d.services === N && d.watched > 0 && d.swept > 0);
    const dc = source.datacenters().get('dc1')!;
    expect(dc.watched).toBeLessThan(client.laneCapacity);
    // Each parked blocking query holds a TCP connection of its own.
    await consul.until((c) => c.parked >= dc.watched + 2);
    expect(consul.counters.connections).toBeGreaterThanOrEqual(consul.counters.parked);
    expect(consul.counters.streamsTotal).toBe(0);
    consul.setCheck('n250', 'service:s250', 'critical');
    await eventually(() => addresses(port, 's250.service.consul'), (a) => a.length === 0);
    expect(consul.counters.connectionsPeak).toBeLessThanOrEqual(client.maxConnections);
    expect(consul.counters.connLimited).toBe(0);

    await app.close();
    await consul.until((c) => c.parked === 0 && c.connections === 0);
  }, 90_000);
});
