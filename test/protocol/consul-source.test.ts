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
  const app = new App({ config: loadConfig({ object: { dns: '127.0.0.1:0' } }), logger: silentLogger(), source });
  await app.start();
  cleanups.push(() => app.close());
  return { consul, app, source, port: app.dnsAddress.port };
}

const addresses = async (port: number, name: string) =>
  (await udpQuery(port, name, 'A', { edns: 4096 })).answers.map((a) => a.data as string).sort();

/** Polls until `f` returns what `ok` accepts (bounded: 100 tries). */
async function eventually<T>(f: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
  let v = await f();
  for (let i = 0; i < 100 && !ok(v); i++) { await new Promise((r) => setTimeout(r, 50)); v = await f(); }
  expect(ok(v)).toBe(true);
  return v;
}

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
