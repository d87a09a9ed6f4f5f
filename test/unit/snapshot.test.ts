/**
 * The persisted catalog: written in the catalog-file format and read back to the same zone.
 */
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  parseCatalog, servableServiceName, validateGatewayServices, validateNodeList, validateServiceEntries, type Catalog, type DatacenterCatalog, type ServiceInstance,
} from '../../src/catalog/catalog.js';
import { loadCatalog } from '../../src/catalog/load.js';
import { readSnapshot, writeSnapshot } from '../../src/catalog/snapshot.js';
import { loadConfig } from '../../src/config.js';
import { buildZone } from '../../src/zone/build.js';
import { rrText } from '../../src/zone/records.js';
import { instanceDoc, nodeDoc, type Json } from '../support/cases.js';

const dir = mkdtempSync(join(tmpdir(), 'cdns-snapshot-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const config = loadConfig({ object: { dns: '127.0.0.1:0' } });
const fixture = (f: string) => new URL(`../../fixtures/${f}`, import.meta.url).pathname;

describe('catalog snapshot', () => {
  for (const f of ['demo-catalog.json', 'alias-catalog.json']) {
    it(`${f}: written and read back, it gives the same zone`, async () => {
      const catalog = parseCatalog(readFileSync(fixture(f), 'utf8')).catalog;
      const path = join(dir, `${f}.snapshot`);
      const bytes = await writeSnapshot(path, catalog, 0);
      expect(bytes).toBe(readFileSync(path).length);
      expect(existsSync(`${path}.tmp`)).toBe(false);
      const back = await readSnapshot(path);
      const a = buildZone(catalog, { config, serialFor: () => 1 });
      const b = buildZone(back!, { config, serialFor: () => 1 });
      expect(b.contentHash).toBe(a.contentHash);
      expect([...b.records()].map((r) => rrText(r))).toEqual([...a.records()].map((r) => rrText(r)));
    });
  }
  it('a missing snapshot is null; a corrupt one is an error naming the JSON path', async () => {
    expect(await readSnapshot(join(dir, 'none.json'))).toBeNull();
    const path = join(dir, 'bad.json');
    await writeSnapshot(path, parseCatalog(readFileSync(fixture('demo-catalog.json'), 'utf8')).catalog);
    const { writeFileSync } = await import('node:fs');
    writeFileSync(path, readFileSync(path, 'utf8').slice(0, 100));
    await expect(readSnapshot(path)).rejects.toThrow(/not valid JSON/);
  });
});

/**
 * A catalog as the live source builds it: /v1/catalog/nodes through validateNodeList, each service
 * key's /v1/health/service body through validateServiceEntries (sharing the nodes list's objects,
 * keeping an entry's newer node copy, not adding nodes only entries name), each terminating gateway's
 * /v1/catalog/gateway-services body through validateGatewayServices.
 */
function liveCatalog(): Catalog {
  const dc = 'dc1';
  const { nodes } = validateNodeList(dc, [
    nodeDoc('n-1', '10.0.0.1', { meta: { rack: 'r1', 'rfc1035-x': 'y' }, tagged: { lan: '10.0.0.1', lan_ipv6: '2001:db8::1', wan: '198.51.100.1' } }),
    nodeDoc('n-2', '10.0.0.2'),
    nodeDoc('g-1', '10.0.9.1'),
  ]);
  const services = new Map<string, ServiceInstance[]>();
  const read = (key: string, body: Json[]) => { services.set(key, validateServiceEntries(dc, key, body, nodes).instances); };
  const n1 = nodeDoc('n-1', '10.0.0.1', { meta: { rack: 'r1', 'rfc1035-x': 'y' }, tagged: { lan: '10.0.0.1', lan_ipv6: '2001:db8::1', wan: '198.51.100.1' } });
  const kind = (d: Json, fields: Json) => { Object.assign(d.Service as Json, fields); return d; };
  // Case variants: one key (the smallest spelling), both spellings in the body.
  read('Web', [
    instanceDoc(n1, 'Web', { port: 80, tags: ['v1', 'Primary'], weights: { Passing: 10, Warning: 1 },
      tagged: { lan_ipv4: { Address: '10.0.1.1', Port: 80 }, wan: { address: '198.51.100.10', port: 8080 } } }),
    // n-2 as this read saw it: newer than the nodes list's copy.
    instanceDoc(nodeDoc('n-2', '10.0.0.22'), 'web', { port: 80, address: '10.0.1.2', status: 'warning', weights: { Passing: 5, Warning: 2 } }),
  ]);
  read('cache', [instanceDoc(nodeDoc('n-2', '10.0.0.22'), 'cache', { port: 6379 })]);
  read('web-sidecar-proxy', [kind(instanceDoc(n1, 'web-sidecar-proxy', { id: 'p-1', port: 21000, tagged: { 'consul-virtual': { Address: '240.0.0.1', Port: 21000 } } }),
    { Kind: 'connect-proxy', Proxy: { DestinationServiceName: 'Web' } })]);
  read('pay', [kind(instanceDoc(nodeDoc('n-2', '10.0.0.2'), 'pay', { port: 9090, tagged: { 'consul-virtual': { Address: '240.0.0.2', Port: 9090 } } }), { Connect: { Native: true } })]);
  read('tgw', [kind(instanceDoc(nodeDoc('g-1', '10.0.9.1'), 'tgw', { port: 8443, tagged: { 'consul-virtual:db': { Address: '240.0.0.3', Port: 0 } } }), { Kind: 'terminating-gateway' })]);
  // A node only this entry names; weights Consul would have stored as 1/1 (a hand-made file).
  read('db', [instanceDoc(nodeDoc('x-9', '10.0.7.9'), 'db', { port: 5432, address: 'db.example.com', weights: { Passing: 70000, Warning: 1 } })]);
  read('my service', [instanceDoc(n1, 'my service', { port: 1, address: '2001:db8::7' })]);
  read('café', [instanceDoc(n1, 'café', { port: 2, status: 'critical' })]);
  // Names Consul accepts that cannot be DNS labels: the live source does not follow them, and if a
  // catalog has them anyway the zone ignores them and the snapshot does not write them.
  read('a.b', [instanceDoc(n1, 'a.b', { port: 3, address: '10.0.8.1' })]);
  read('n'.repeat(64), [instanceDoc(n1, 'n'.repeat(64), { port: 4, address: '10.0.8.2' })]);
  const mapping = (name: string, kindOf = 'terminating-gateway') => ({ Gateway: { Name: 'tgw' }, Service: { Name: name }, GatewayKind: kindOf });
  const gatewayServices = new Map([['tgw', validateGatewayServices(dc, 'tgw', [mapping('db'), mapping('ext'), mapping('web', 'ingress-gateway')]).services]]);
  const dc2 = validateNodeList('dc2', [nodeDoc('m-1', '10.1.0.1')]).nodes;
  return {
    datacenter: dc,
    datacenters: new Map<string, DatacenterCatalog>([
      [dc, { nodes, services, gatewayServices }],
      ['dc2', { nodes: dc2, services: new Map([['web', validateServiceEntries('dc2', 'web', [instanceDoc(nodeDoc('m-1', '10.1.0.1'), 'web', { port: 80 })], dc2).instances]]) }],
    ]),
  };
}

describe('a live catalog written and read back (odd names, case variants, tagged addresses, weights, gateways, proxies, Connect-native)', () => {
  it('gives the same zone and the same catalog, without a warning', async () => {
    const live = liveCatalog();
    const path = join(dir, 'live.snapshot');
    await writeSnapshot(path, live, 0);
    const { catalog: back, warnings } = await loadCatalog(readFileSync(path));
    expect(warnings).toEqual([]);
    for (const [dc, d] of live.datacenters) {
      const b = back.datacenters.get(dc)!;
      expect(b.nodes).toEqual(d.nodes);
      expect(b.services).toEqual(new Map([...d.services].filter(([name]) => servableServiceName(name))));
      expect(b.gatewayServices).toEqual(d.gatewayServices);
    }
    const a = buildZone(live, { config, serialFor: () => 1 });
    const z = buildZone(back, { config, serialFor: () => 1 });
    expect(z.contentHash).toBe(a.contentHash);
    const records = [...z.records()].map((r) => rrText(r));
    expect(records).toEqual([...a.records()].map((r) => rrText(r)));
    // What the round trip carries, as the zone lists it.
    for (const line of [
      'web.service.consul. 0 IN SRV 1 2 80 0a000102.addr.dc1.consul.', // the warning instance: Weights.Warning
      'web.service.consul. 0 IN A 10.0.1.1', // lan_ipv4
      'web.virtual.consul. 0 IN A 240.0.0.1', 'pay.virtual.consul. 0 IN A 240.0.0.2', 'db.virtual.consul. 0 IN A 240.0.0.3',
      'db.connect.consul. 0 IN A 10.0.9.1', 'ext.connect.consul. 0 IN A 10.0.9.1',
      'db.service.consul. 0 IN SRV 1 1 5432 db.example.com.', // Passing 70000: Consul's 1
      '2.1.0.10.in-addr.arpa. 0 IN PTR Web.service.dc1.consul.',
      'cache.service.consul. 0 IN A 10.0.0.22', 'n-2.node.consul. 0 IN A 10.0.0.2', // the entry's newer node copy; the nodes list's
    ]) expect(records).toContain(line);
    expect(records.some((l) => l.includes('a.b.service') || l.includes('x-9.node'))).toBe(false);
    // readSnapshot (a restart) reads the same.
    expect(buildZone((await readSnapshot(path))!, { config, serialFor: () => 1 }).contentHash).toBe(a.contentHash);
  });

  it('the zone of a live catalog ignores service names that cannot be DNS labels, as a file does', () => {
    const live = liveCatalog();
    const warned: string[] = [];
    const z = buildZone(live, { config, serialFor: () => 1, warn: (m) => warned.push(m) });
    expect(warned).toEqual([
      'service a.b in dc1: the name cannot be a DNS label (1-63 bytes, no dot); not served',
      `service ${'n'.repeat(64)} in dc1: the name cannot be a DNS label (1-63 bytes, no dot); not served`,
    ]);
    expect([...z.records()].map((r) => rrText(r)).filter((l) => l.includes('10.0.8.') || l.includes('8.0.10.in-addr'))).toEqual([]);
  });
});
