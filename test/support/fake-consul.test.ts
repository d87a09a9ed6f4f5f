// The test Consul over real HTTP (undici on 127.0.0.1; node:http2 for HTTP/2) and raw TCP/TLS sockets:
// response shapes, blocking queries and their index rules, the per-client connection limit, ACL rights,
// case-insensitive names, virtual IPs and gateways, stored weights, leader contact, unreachable
// datacenters, faults (hostile bodies included), lifecycle, HTTP/2 (streams, not connections), and that
// a write re-examines only the parked queries it can change (counted, not timed).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect as h2connect, constants as h2c, type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { gunzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Agent, request, type Dispatcher } from 'undici';
import { parseCatalog } from '../../src/catalog/catalog.js';
import { FakeConsul, parseGoDuration, startFakeConsul, type CatalogDocument, type FakeConsulOptions } from './fake-consul.js';

const DEMO_TEXT = readFileSync(new URL('../../fixtures/demo-catalog.json', import.meta.url), 'utf8');
const demo = (): CatalogDocument => JSON.parse(DEMO_TEXT) as CatalogDocument;

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json(): any;
}

const agents: Agent[] = [];
/** A keep-alive agent closed after the file (or destroyed by the test that needs it gone). */
function newAgent(): Agent {
  const a = new Agent({ keepAliveTimeout: 2_000 });
  agents.push(a);
  return a;
}
afterAll(async () => { await Promise.all(agents.map((a) => a.destroy())); });

async function get(base: FakeConsul, path: string, opts: { headers?: Record<string, string>; agent?: Dispatcher; signal?: AbortSignal; method?: 'GET' | 'POST' | 'OPTIONS' } = {}): Promise<Reply> {
  const r = await request(base.url + path, {
    method: opts.method ?? 'GET', headers: opts.headers, dispatcher: opts.agent ?? shared, signal: opts.signal,
  });
  const text = await r.body.text();
  return { status: r.statusCode, headers: r.headers, text, json: () => JSON.parse(text) };
}

let shared: Agent;
beforeAll(() => { shared = newAgent(); });

const idx = (r: Reply): number => Number(r.headers['x-consul-index']);

/** Lets queued microtasks (the fake's wake flush) and one HTTP round trip run. */
async function settle(c: FakeConsul): Promise<void> {
  await get(c, '/v1/status/leader');
}

describe('fake consul: endpoints and shapes', () => {
  let consul: FakeConsul;
  beforeAll(async () => { consul = await startFakeConsul({ catalog: demo() }); });
  afterAll(() => consul.close());

  it('lists datacenters, local first, without index headers', async () => {
    const r = await get(consul, '/v1/catalog/datacenters');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/json');
    expect(r.json()).toEqual(['dc1', 'dc2']);
    expect(r.headers['x-consul-index']).toBeUndefined();
  });

  it('lists services with the union of their tags, and the consistency headers', async () => {
    const r = await get(consul, '/v1/catalog/services');
    // Consul builds each tag list from a Go map: no set order (compared sorted here).
    const sorted = Object.fromEntries(Object.entries(r.json() as Record<string, string[]>).map(([k, v]) => [k, [...v].sort()]));
    expect(sorted).toEqual({
      api: ['grpc'], billing: ['v1'], consul: [], db: ['primary', 'replica', 'v15.primary'], redis: ['cache'],
      web: ['admin', 'http', 'v1', 'v2'],
    });
    expect(idx(r)).toBe(consul.index());
    expect(r.headers).toMatchObject({
      'x-consul-knownleader': 'true', 'x-consul-lastcontact': '0', 'x-consul-effective-consistency': 'leader',
    });
  });

  it('lists nodes as /v1/catalog/nodes does', async () => {
    const nodes = (await get(consul, '/v1/catalog/nodes')).json();
    expect(nodes).toHaveLength(12);
    expect(nodes.map((n: any) => n.Node)).toEqual([...nodes.map((n: any) => n.Node)].sort());
    const web1 = nodes.find((n: any) => n.Node === 'web-1');
    expect(web1).toMatchObject({
      ID: '00000000-0000-4000-8000-764554017276', Node: 'web-1', Address: '10.0.1.11', Datacenter: 'dc1',
      TaggedAddresses: { lan: '10.0.1.11', wan: '10.0.1.11' }, Meta: { rack: 'r1' },
    });
    expect(web1.CreateIndex).toBeGreaterThan(0);
    expect(web1.ModifyIndex).toBeGreaterThanOrEqual(web1.CreateIndex);
  });

  it('answers /v1/health/service with Node, Service and Checks (node-level checks first)', async () => {
    const r = await get(consul, '/v1/health/service/web');
    const entries = r.json();
    expect(entries.map((e: any) => `${e.Node.Node}/${e.Service.ID}`)).toEqual([
      'web-1/web-admin-web-1', 'web-1/web-web-1', 'web-2/web-web-2', 'web-3/web-web-3',
    ]);
    const e = entries[3];
    expect(e.Service).toMatchObject({
      ID: 'web-web-3', Service: 'web', Tags: ['v2', 'http'], Address: '', Port: 8080, Weights: { Passing: 1, Warning: 1 },
      Namespace: 'default', // fields the fake does not know pass through
    });
    expect(e.Checks.map((c: any) => [c.CheckID, c.ServiceID, c.Status])).toEqual([
      ['serfHealth', '', 'passing'], ['service:web-web-3', 'web-web-3', 'warning'],
    ]);
    expect(e.Checks[1]).toMatchObject({ Node: 'web-3', ServiceName: 'web', ServiceTags: ['v2', 'http'] });
    expect(idx(r)).toBeGreaterThan(0);

    const api = (await get(consul, '/v1/health/service/api')).json();
    expect(api[0].Service.TaggedAddresses).toEqual({ lan_ipv4: { Address: '172.16.0.41', Port: 9090 } });
  });

  it('filters /v1/health/service by ?passing and ?tag', async () => {
    const passing = (await get(consul, '/v1/health/service/web?passing')).json();
    expect(passing.map((e: any) => e.Service.ID)).not.toContain('web-web-3');
    expect(passing).toHaveLength(3);
    expect((await get(consul, '/v1/health/service/web?passing=false')).json()).toHaveLength(4);
    expect((await get(consul, '/v1/health/service/web?passing=maybe')).status).toBe(400);
    const admin = (await get(consul, '/v1/health/service/web?tag=admin')).json();
    expect(admin.map((e: any) => e.Service.ID)).toEqual(['web-admin-web-1']);
    expect((await get(consul, '/v1/health/service/web?tag=v1&tag=http')).json()).toHaveLength(1);
  });

  it('answers an unknown service with [] and an index above 0', async () => {
    const r = await get(consul, '/v1/health/service/nosuch');
    expect(r.status).toBe(200);
    expect(r.json()).toEqual([]);
    expect(idx(r)).toBeGreaterThan(0);
  });

  it('answers /v1/health/connect with connect proxies for the destination and Connect-native instances', async () => {
    consul.registerService('web-2', {
      ID: 'web-sidecar-proxy', Service: 'web-sidecar-proxy', Kind: 'connect-proxy', Port: 21000,
      Proxy: { DestinationServiceName: 'web', DestinationServiceID: 'web-web-2', LocalServicePort: 8080 },
    }, { checks: [{ CheckID: 'proxy-alive', Status: 'passing' }] });
    consul.registerService('db-1', { ID: 'pay-1', Service: 'pay', Port: 9443, Connect: { Native: true } });
    const web = (await get(consul, '/v1/health/connect/web')).json();
    expect(web.map((e: any) => [e.Node.Node, e.Service.Kind, e.Service.Port])).toEqual([['web-2', 'connect-proxy', 21000]]);
    expect(web[0].Checks.map((c: any) => c.CheckID)).toEqual(['serfHealth', 'proxy-alive']);
    expect((await get(consul, '/v1/health/connect/pay')).json().map((e: any) => e.Service.ID)).toEqual(['pay-1']);
    expect((await get(consul, '/v1/health/connect/db')).json()).toEqual([]);
    // The proxy is a service of its own; it is not an instance of web.
    expect((await get(consul, '/v1/health/service/web')).json()).toHaveLength(4);
    expect((await get(consul, '/v1/health/service/web-sidecar-proxy')).json()).toHaveLength(1);
    consul.deregisterService('web-2', 'web-sidecar-proxy');
    consul.deregisterService('db-1', 'pay-1');
  });

  it('answers /v1/health/state/<state> with a flat list of checks', async () => {
    const critical = (await get(consul, '/v1/health/state/critical')).json();
    expect(critical.map((c: any) => `${c.Node}/${c.CheckID}`)).toEqual(['db-2/service:db-db-2', 'lb-1/serfHealth']);
    expect(critical[1]).toMatchObject({ Name: 'Serf Health Status', Status: 'critical', ServiceID: '', ServiceName: '', ServiceTags: [] });
    const any = (await get(consul, '/v1/health/state/any')).json();
    const passing = (await get(consul, '/v1/health/state/passing')).json();
    const warning = (await get(consul, '/v1/health/state/warning')).json();
    expect(any.length).toBe(passing.length + warning.length + critical.length);
    expect(warning.map((c: any) => c.CheckID).sort()).toEqual(['service:api-api-2', 'service:web-web-3']);
    const bad = await get(consul, '/v1/health/state/sick');
    expect([bad.status, bad.text]).toEqual([400, 'Bad check state']);
  });

  it('answers /v1/catalog/service with the flat ServiceNode shape', async () => {
    const r = await get(consul, '/v1/catalog/service/api');
    const [a] = r.json();
    expect(a).toMatchObject({
      ID: '00000000-0000-4000-8000-069004894966', Node: 'api-1', Address: '10.0.3.41', Datacenter: 'dc1',
      NodeMeta: expect.any(Object), ServiceID: 'api-api-1', ServiceName: 'api', ServiceTags: ['grpc'],
      ServiceAddress: '172.16.0.41', ServicePort: 9090, ServiceWeights: { Passing: 10, Warning: 1 },
      ServiceTaggedAddresses: { lan_ipv4: { Address: '172.16.0.41', Port: 9090 } }, ServiceEnableTagOverride: false,
      ServiceMeta: {}, ServiceKind: '',
    });
    expect(a.CreateIndex).toBeGreaterThan(0);
    expect(idx(r)).toBe(idx(await get(consul, '/v1/health/service/api')));
    expect((await get(consul, '/v1/catalog/service/web?tag=admin')).json()).toHaveLength(1);
  });

  it('answers /v1/status/leader and /v1/agent/self', async () => {
    expect((await get(consul, '/v1/status/leader')).json()).toBe('127.0.0.1:8300');
    const self = (await get(consul, '/v1/agent/self')).json();
    expect(self.Config).toMatchObject({ Datacenter: 'dc1', NodeName: 'consul-server-1' });
    expect(self.DebugConfig.DNSDomain).toBe('consul.');
  });

  it('reads another datacenter with ?dc= and refuses an unknown one', async () => {
    const web = (await get(consul, '/v1/health/service/web?dc=dc2')).json();
    expect(web.map((e: any) => [e.Node.Node, e.Node.Datacenter])).toEqual([['web-dc2-1', 'dc2'], ['web-dc2-2', 'dc2']]);
    expect(idx(await get(consul, '/v1/catalog/nodes?dc=dc2'))).toBe(consul.index('dc2'));
    const r = await get(consul, '/v1/catalog/services?dc=dc9');
    expect([r.status, r.text]).toEqual([500, 'No path to datacenter']);
  });

  it('reports the consistency mode, and refuses ?stale with ?consistent', async () => {
    consul.setLastContact(1234);
    const stale = await get(consul, '/v1/catalog/services?stale');
    expect(stale.headers).toMatchObject({ 'x-consul-effective-consistency': 'stale', 'x-consul-lastcontact': '1234' });
    consul.setLastContact(0);
    const cons = await get(consul, '/v1/catalog/services?consistent');
    expect(cons.headers).toMatchObject({ 'x-consul-effective-consistency': 'consistent', 'x-consul-lastcontact': '0' });
    const both = await get(consul, '/v1/catalog/services?stale&consistent');
    expect(both.status).toBe(400);
    expect(both.text).toContain('Cannot specify ?stale with ?consistent');
  });

  it('rejects bad parameters, paths and methods as Consul does', async () => {
    expect(await get(consul, '/v1/catalog/services?index=abc')).toMatchObject({ status: 400, text: 'Invalid index' });
    expect(await get(consul, '/v1/catalog/services?index=1&wait=10')).toMatchObject({ status: 400, text: 'Invalid wait time' });
    expect((await get(consul, '/v1/health/service/web?filter=Service.Port==80')).status).toBe(400);
    expect((await get(consul, '/v1/kv/foo')).status).toBe(404);
    expect((await get(consul, '/v1/catalog/services', { method: 'POST' })).status).toBe(405);
    expect((await get(consul, '/v1/health/service/')).status).toBe(400);
  });

  it('parses Go durations', () => {
    expect(parseGoDuration('5m')).toBe(300_000);
    expect(parseGoDuration('1h30m')).toBe(5_400_000);
    expect(parseGoDuration('1.5s')).toBe(1500);
    expect(parseGoDuration('250ms')).toBe(250);
    expect(parseGoDuration('0')).toBe(0);
    expect(parseGoDuration('-2s')).toBe(-2000);
    expect(parseGoDuration('10')).toBeNull();
    expect(parseGoDuration('')).toBeNull();
    expect(parseGoDuration('5 m')).toBeNull();
  });

  it('snapshot() is a valid catalog file holding what was loaded, and loads back to itself', () => {
    const snap = consul.snapshot();
    // The same catalog, up to order (the fake lists instances by node, then ID, as Consul does).
    const sorted = (text: string) => {
      const { catalog } = parseCatalog(text);
      return [...catalog.datacenters].map(([dc, d]) => ({
        dc,
        nodes: [...d.nodes.values()].sort((a, b) => a.name.localeCompare(b.name)),
        services: [...d.services].sort(([a], [b]) => a.localeCompare(b)).map(([name, list]) =>
          [name, [...list].sort((a, b) => `${a.node.name}/${a.id}`.localeCompare(`${b.node.name}/${b.id}`))]),
      }));
    };
    expect(sorted(JSON.stringify(snap))).toEqual(sorted(DEMO_TEXT));
    const other = new FakeConsul({ catalog: snap });
    const strip = (s: string) => s.replace(/"(Create|Modify)Index":\d+/g, '');
    expect(strip(JSON.stringify(other.snapshot()))).toBe(strip(JSON.stringify(snap)));
  });

  it('never answers index 0, even with nothing registered', async () => {
    const empty = await startFakeConsul();
    try {
      for (const p of ['/v1/catalog/services', '/v1/catalog/nodes', '/v1/health/service/x', '/v1/health/connect/x',
        '/v1/health/state/any', '/v1/catalog/service/x']) {
        const r = await get(empty, p);
        expect([p, r.status, r.headers['x-consul-index']]).toEqual([p, 200, '1']);
      }
      expect((await get(empty, '/v1/catalog/services')).json()).toEqual({});
    } finally {
      await empty.close();
    }
  });
});

describe('fake consul: blocking queries', () => {
  let consul: FakeConsul;
  beforeAll(async () => { consul = await startFakeConsul({ catalog: demo(), jitter: false }); });
  afterAll(() => consul.close());
  afterEach(async () => { await consul.until((c) => c.parked === 0); });

  /** Starts a blocking GET and waits until the fake has parked it; `reply` is its answer. */
  async function watch(path: string, index: number, wait = '60s'): Promise<{ reply: Promise<Reply> }> {
    const parked = consul.counters.parked;
    const sep = path.includes('?') ? '&' : '?';
    const reply = get(consul, `${path}${sep}index=${index}&wait=${wait}`);
    reply.catch(() => {}); // awaited by the test; a failed test must not leave an unhandled rejection
    await consul.until((c) => c.parked === parked + 1);
    return { reply };
  }

  it('wakes a service watch on a change of its checks, not on an unrelated change', async () => {
    const first = await get(consul, '/v1/health/service/web');
    const { reply: pending } = await watch('/v1/health/service/web', idx(first));
    const wakeups = consul.counters.wakeups;
    consul.setCheck('cache-1', 'service:redis-cache-1', 'critical'); // another service
    consul.registerService('db-1', { ID: 'metrics', Service: 'metrics', Port: 9100 }); // a new service elsewhere
    consul.setNodeMeta('db-2', { rack: 'r9' }); // a node without web
    consul.setCheck('web-1', 'serfHealth', 'passing'); // a write that changes nothing
    await settle(consul);
    expect(consul.counters.parked).toBe(1);
    expect(consul.counters.wakeups).toBe(wakeups);

    const written = consul.setCheck('web-3', 'service:web-web-3', 'critical');
    const r = await pending;
    expect(idx(r)).toBe(written);
    const web3 = r.json().find((e: any) => e.Node.Node === 'web-3');
    expect(web3.Checks[1]).toMatchObject({ Status: 'critical', ModifyIndex: written });
    expect(consul.counters.wakeups).toBe(wakeups + 1);
  });

  it('wakes on a change of a node the service runs on, and on a node-level check', async () => {
    let r = await get(consul, '/v1/health/service/web');
    let { reply: pending } = await watch('/v1/health/service/web', idx(r));
    const meta = consul.setNodeMeta('web-2', { rack: 'r7' });
    r = await pending;
    expect(idx(r)).toBe(meta);
    expect(r.json().find((e: any) => e.Node.Node === 'web-2').Node.Meta).toEqual({ rack: 'r7' });

    ({ reply: pending } = await watch('/v1/health/service/web', idx(r)));
    const serf = consul.setCheck('web-1', 'serfHealth', 'critical');
    expect(idx(await pending)).toBe(serf);
  });

  it('times out with the same index when nothing changes, also for an index from the future', async () => {
    const r = await get(consul, '/v1/health/service/db');
    const timeouts = consul.counters.timeouts;
    const again = await get(consul, `/v1/health/service/db?index=${idx(r)}&wait=100ms`);
    expect(idx(again)).toBe(idx(r));
    expect(again.text).toBe(r.text);
    const future = await get(consul, `/v1/health/service/db?index=${idx(r) + 1000}&wait=100ms`);
    expect(idx(future)).toBe(idx(r));
    expect(consul.counters.timeouts).toBe(timeouts + 2);
  });

  it('answers at once when the index is 0 or already passed', async () => {
    const r = await get(consul, '/v1/catalog/services?index=0&wait=60s');
    expect(r.status).toBe(200);
    expect((await get(consul, `/v1/catalog/services?index=${idx(r) - 1}&wait=60s`)).status).toBe(200);
    expect(consul.counters.parked).toBe(0);
  });

  it('wakes the services list on a registration, not on a check change', async () => {
    const r = await get(consul, '/v1/catalog/services');
    const { reply: pending } = await watch('/v1/catalog/services', idx(r));
    const wakeups = consul.counters.wakeups;
    consul.setCheck('db-1', 'service:db-db-1', 'warning');
    await settle(consul);
    expect(consul.counters.wakeups).toBe(wakeups);
    const written = consul.registerService('db-1', { ID: 'cron', Service: 'cron', Tags: ['nightly'] });
    const after = await pending;
    expect(idx(after)).toBe(written);
    expect(after.json().cron).toEqual(['nightly']);
    consul.deregisterService('db-1', 'cron');
  });

  it('wakes the nodes list on node changes and health/state on check changes', async () => {
    const nodes = await get(consul, '/v1/catalog/nodes');
    const state = await get(consul, '/v1/health/state/any');
    const { reply: pendingNodes } = await watch('/v1/catalog/nodes', idx(nodes));
    const { reply: pendingState } = await watch('/v1/health/state/critical', idx(state));
    const check = consul.setCheck('lb-1', 'serfHealth', 'passing');
    expect(idx(await pendingState)).toBe(check);
    expect(consul.counters.parked).toBe(1);
    const node = consul.registerNode({ Node: 'new-1', Address: '10.9.9.9' });
    const r = await pendingNodes;
    expect(idx(r)).toBe(node);
    expect(r.json().map((n: any) => n.Node)).toContain('new-1');
    consul.removeNode('new-1');
  });

  it('wakes a watch when its service goes away, and a watch on an absent name when any service goes away', async () => {
    consul.registerService('cache-1', { ID: 'tmp-1', Service: 'tmp' }, { checks: [{ CheckID: 'tmp-ok', Status: 'passing' }] });
    const tmp = await get(consul, '/v1/health/service/tmp');
    const ghost = await get(consul, '/v1/health/service/ghost');
    const { reply: pendingTmp } = await watch('/v1/health/service/tmp', idx(tmp));
    const { reply: pendingGhost } = await watch('/v1/health/service/ghost', idx(ghost));
    const gone = consul.deregisterService('cache-1', 'tmp-1');
    const [t, g] = await Promise.all([pendingTmp, pendingGhost]);
    expect([t.json(), idx(t)]).toEqual([[], gone]);
    expect([g.json(), idx(g)]).toEqual([[], gone]);
    expect(idx(await get(consul, '/v1/health/service/tmp'))).toBe(gone);
    // The check went with the instance.
    expect((await get(consul, '/v1/health/state/any')).json().map((c: any) => c.CheckID)).not.toContain('tmp-ok');

    const { reply: pendingGhost2 } = await watch('/v1/health/service/ghost', gone);
    const born = consul.registerService('cache-1', { ID: 'ghost-1', Service: 'ghost' });
    const g2 = await pendingGhost2;
    expect([g2.json().length, idx(g2)]).toEqual([1, born]);
    consul.deregisterService('cache-1', 'ghost-1');
  });

  it('wakes every parked query at once with the lower index after a snapshot restore', async () => {
    const before = consul.index();
    const r = await get(consul, '/v1/health/service/web');
    const { reply: pendingA } = await watch('/v1/health/service/web', idx(r));
    const { reply: pendingB } = await watch('/v1/catalog/services', before);
    consul.resetIndex(5);
    const [a, b] = await Promise.all([pendingA, pendingB]);
    expect(idx(a)).toBeLessThanOrEqual(5);
    expect(idx(b)).toBeLessThanOrEqual(5);
    expect(a.json()).toHaveLength(4);
    expect(Math.max(...a.json().map((e: any) => e.Service.ModifyIndex))).toBeLessThanOrEqual(5);
    // Writes continue from the lower index.
    expect(consul.setCheck('web-1', 'serfHealth', 'warning')).toBe(6);
    expect(idx(await get(consul, '/v1/health/service/web'))).toBe(6);
    expect(idx(await get(consul, '/v1/health/service/db'))).toBeLessThanOrEqual(5);
  });

  it('load() replaces a datacenter in one write and wakes what changed', async () => {
    const web = await get(consul, '/v1/health/service/web?dc=dc2');
    const { reply: pending } = await watch('/v1/health/service/web?dc=dc2', idx(web));
    const doc = demo();
    doc.datacenters.dc2!.services!.web!.pop();
    consul.load({ datacenter: 'dc1', datacenters: { dc2: doc.datacenters.dc2! } });
    const r = await pending;
    expect([r.json().length, idx(r)]).toEqual([1, consul.index('dc2')]);
    expect((await get(consul, '/v1/health/service/web')).json()).toHaveLength(4); // dc1 untouched
    expect(() => consul.load({ datacenter: 'dc9', datacenters: {} })).toThrow(/not this agent's/);
    expect(() => consul.registerService('no-such-node', { Service: 'x' })).toThrow(expect.objectContaining({ code: 'FAKE_CONSUL_NOT_FOUND' }));
  });

  it('forgets a parked query whose client went away', async () => {
    const r = await get(consul, '/v1/catalog/nodes');
    const ac = new AbortController();
    const pending = get(consul, `/v1/catalog/nodes?index=${idx(r)}&wait=60s`, { signal: ac.signal });
    await consul.until((c) => c.parked === 1);
    ac.abort();
    await expect(pending).rejects.toThrow();
    await consul.until((c) => c.parked === 0);
  });
});

describe('fake consul: faults', () => {
  let consul: FakeConsul;
  beforeAll(async () => { consul = await startFakeConsul({ catalog: demo() }); });
  afterAll(() => consul.close());
  afterEach(() => consul.clearFaults());

  it('no leader: 500 for default and consistent reads, stale reads succeed without a known leader', async () => {
    const id = consul.addFault({ kind: 'no-leader' });
    expect(await get(consul, '/v1/health/service/web')).toMatchObject({ status: 500, text: 'No cluster leader' });
    expect((await get(consul, '/v1/catalog/nodes?consistent')).status).toBe(500);
    const stale = await get(consul, '/v1/health/service/web?stale');
    expect(stale.status).toBe(200);
    expect(stale.json()).toHaveLength(4);
    expect(stale.headers['x-consul-knownleader']).toBe('false');
    expect(Number(stale.headers['x-consul-lastcontact'])).toBeGreaterThanOrEqual(0);
    expect((await get(consul, '/v1/status/leader')).json()).toBe('');
    expect((await get(consul, '/v1/catalog/datacenters')).status).toBe(200);
    consul.clearFault(id);
    const ok = await get(consul, '/v1/health/service/web');
    expect([ok.status, ok.headers['x-consul-knownleader']]).toEqual([200, 'true']);
  });

  it('no leader in one datacenter only', async () => {
    consul.addFault({ kind: 'no-leader' }, { dc: 'dc2' });
    expect((await get(consul, '/v1/catalog/services?dc=dc2')).status).toBe(500);
    expect((await get(consul, '/v1/catalog/services')).status).toBe(200);
  });

  it('429, 403 and any status, for matching paths only, and for a number of requests', async () => {
    consul.addFault({ kind: 'rate-limit' }, { path: '/v1/health/' });
    expect(await get(consul, '/v1/health/service/web')).toMatchObject({ status: 429, text: 'rate limit exceeded' });
    expect((await get(consul, '/v1/catalog/services')).status).toBe(200);
    consul.clearFaults();
    consul.addFault({ kind: 'forbidden' }, { path: /^\/v1\/catalog\/nodes$/ });
    expect(await get(consul, '/v1/catalog/nodes')).toMatchObject({ status: 403, text: 'Permission denied' });
    consul.clearFaults();
    consul.addFault({ kind: 'status', status: 503, body: 'upstream sad' }, { path: '/v1/catalog/services', times: 2 });
    expect((await get(consul, '/v1/catalog/services')).status).toBe(503);
    expect((await get(consul, '/v1/catalog/services')).status).toBe(503);
    expect((await get(consul, '/v1/catalog/services')).status).toBe(200);
    expect(consul.counters.responses[503]).toBe(2);
  });

  it('hang: holds the request until the fault is cleared, then answers it', async () => {
    const id = consul.addFault({ kind: 'hang' }, { path: '/v1/catalog/services' });
    const pending = get(consul, '/v1/catalog/services', { agent: newAgent() });
    await consul.until((c) => c.hung === 1);
    expect((await get(consul, '/v1/catalog/nodes')).status).toBe(200); // other paths unaffected
    consul.clearFault(id);
    expect((await pending).status).toBe(200);
    expect(consul.counters.hung).toBe(0);
  });

  it('reset: the connection is destroyed without an answer', async () => {
    consul.addFault({ kind: 'reset' }, { times: 1 });
    const resets = consul.counters.resets;
    await expect(get(consul, '/v1/catalog/services', { agent: newAgent() })).rejects.toMatchObject({
      code: expect.stringMatching(/^(ECONNRESET|UND_ERR_SOCKET)$/),
    });
    expect(consul.counters.resets).toBe(resets + 1);
    expect((await get(consul, '/v1/catalog/services')).status).toBe(200);
  });

  it('bad-json: 200 with Consul headers and a body that does not parse', async () => {
    consul.addFault({ kind: 'bad-json' });
    const r = await get(consul, '/v1/health/service/web');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/json');
    expect(idx(r)).toBeGreaterThan(0);
    expect(() => r.json()).toThrow(SyntaxError);
  });

  it('truncate: the body stops short of Content-Length and the connection closes', async () => {
    consul.addFault({ kind: 'truncate' });
    await expect(get(consul, '/v1/health/service/web', { agent: newAgent() })).rejects.toThrow();
  });

  it('delay: answers after the delay', async () => {
    consul.addFault({ kind: 'delay', ms: 200 });
    const ok = consul.counters.responses[200] ?? 0;
    const pending = get(consul, '/v1/catalog/services');
    await consul.until((c) => c.requests['catalog/services'] > 0 && c.connections > 0);
    const r = await pending;
    expect(r.status).toBe(200);
    expect(consul.counters.responses[200]).toBe(ok + 1);
  });

  it('stop(): connection refused with the state kept; start() serves again on the same port', async () => {
    const port = consul.port;
    const before = await get(consul, '/v1/health/service/web');
    await consul.stop();
    await expect(get(consul, '/v1/health/service/web', { agent: newAgent() })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    consul.setCheck('web-1', 'serfHealth', 'warning'); // writes go on while it is down
    await consul.start();
    expect(consul.port).toBe(port);
    const after = await get(consul, '/v1/health/service/web');
    expect(idx(after)).toBeGreaterThan(idx(before));
    consul.setCheck('web-1', 'serfHealth', 'passing');
  });
});

describe('fake consul: ACLs', () => {
  let consul: FakeConsul;
  const ROOT_ACCESSOR = '11111111-2222-4333-8444-555555555555';
  beforeAll(async () => {
    consul = await startFakeConsul({
      catalog: demo(),
      acl: {
        tokens: {
          root: 'read', weak: 'filtered', dns: { serviceRead: true, nodeRead: true, queryRead: true, accessorId: ROOT_ACCESSOR },
          dnsPreset: 'dns', webOnly: { serviceRead: ['web', 'web-*'], nodeRead: true },
        },
      },
    });
  });
  afterAll(() => consul.close());
  const withToken = (t: string) => ({ headers: { 'X-Consul-Token': t } });

  it('no token: the anonymous token, 200 with silently filtered lists (no filtered header, as Consul masks it)', async () => {
    const web = await get(consul, '/v1/health/service/web');
    expect([web.status, web.json(), web.headers['x-consul-results-filtered-by-acls']]).toEqual([200, [], undefined]);
    expect(idx(web)).toBeGreaterThan(0);
    expect(web.headers['x-consul-default-acl-policy']).toBe('deny');
    expect((await get(consul, '/v1/catalog/services')).json()).toEqual({});
    expect((await get(consul, '/v1/catalog/nodes')).json()).toEqual([]);
    expect((await get(consul, '/v1/health/state/any')).json()).toEqual([]);
    expect(await get(consul, '/v1/agent/self')).toMatchObject({
      status: 403,
      text: 'Permission denied: anonymous token lacks permission \'agent:read\' on "consul-server-1". The anonymous token is used implicitly when a request does not specify a token.',
    });
    // Needs no ACL at all.
    expect((await get(consul, '/v1/catalog/datacenters')).status).toBe(200);
    expect((await get(consul, '/v1/status/leader')).status).toBe(200);
  });

  it('an unknown token: 403 "ACL not found", except where no ACL applies', async () => {
    expect(await get(consul, '/v1/health/service/web', withToken('nope'))).toMatchObject({ status: 403, text: 'ACL not found' });
    expect(await get(consul, '/v1/agent/self', withToken('nope'))).toMatchObject({ status: 403, text: 'ACL not found' });
    expect((await get(consul, '/v1/catalog/datacenters', withToken('nope'))).status).toBe(200);
    expect((await get(consul, '/v1/status/leader', withToken('nope'))).status).toBe(200);
  });

  it('a DNS token (service:read, node:read, query:read) reads the catalog but not /v1/agent/self', async () => {
    for (const t of ['dns', 'dnsPreset']) {
      const web = await get(consul, '/v1/health/service/web', withToken(t));
      expect([web.status, web.json().length, web.headers['x-consul-results-filtered-by-acls']]).toEqual([200, 4, undefined]);
      expect((await get(consul, '/v1/agent/self', withToken(t))).status).toBe(403);
    }
    expect(await get(consul, '/v1/agent/self', withToken('dns'))).toMatchObject({
      status: 403, text: `Permission denied: token with AccessorID '${ROOT_ACCESSOR}' lacks permission 'agent:read' on "consul-server-1"`,
    });
    expect((await get(consul, '/v1/agent/self', withToken('root'))).status).toBe(200);
  });

  it('finds the token in ?token first, then X-Consul-Token, then Authorization: Bearer (any case)', async () => {
    for (const headers of [{ 'X-Consul-Token': 'root' }, { Authorization: 'Bearer root' }, { Authorization: 'bearer root' }] as Array<Record<string, string>>) {
      const r = await get(consul, '/v1/health/service/web', { headers });
      expect([r.status, r.json().length, r.headers['x-consul-results-filtered-by-acls']]).toEqual([200, 4, undefined]);
    }
    expect((await get(consul, '/v1/catalog/services?token=root', withToken('nope'))).status).toBe(200);
    expect((await get(consul, '/v1/catalog/services?token=nope', withToken('root'))).status).toBe(403);
    expect((await get(consul, '/v1/catalog/services', { headers: { 'X-Consul-Token': 'root', Authorization: 'Bearer nope' } })).status).toBe(200);
    expect((await get(consul, '/v1/catalog/services', { headers: { Authorization: 'Basic root' } })).json()).toEqual({}); // not a token: anonymous
  });

  it('a token without rights: 200 with empty lists and X-Consul-Results-Filtered-By-ACLs', async () => {
    const web = await get(consul, '/v1/health/service/web', withToken('weak'));
    expect([web.status, web.json(), web.headers['x-consul-results-filtered-by-acls']]).toEqual([200, [], 'true']);
    expect(idx(web)).toBe(idx(await get(consul, '/v1/health/service/web', withToken('root'))));
    const services = await get(consul, '/v1/catalog/services', withToken('weak'));
    expect([services.json(), services.headers['x-consul-results-filtered-by-acls']]).toEqual([{}, 'true']);
    expect((await get(consul, '/v1/catalog/nodes', withToken('weak'))).json()).toEqual([]);
    // Nothing to hide, no header.
    const ghost = await get(consul, '/v1/health/service/ghost', withToken('weak'));
    expect(ghost.headers['x-consul-results-filtered-by-acls']).toBeUndefined();
  });

  it('filters by service:read and node:read name by name', async () => {
    const h = withToken('webOnly');
    const services = await get(consul, '/v1/catalog/services', h);
    expect([Object.keys(services.json()), services.headers['x-consul-results-filtered-by-acls']]).toEqual([['web'], 'true']);
    const web = await get(consul, '/v1/health/service/web', h);
    expect([web.json().length, web.headers['x-consul-results-filtered-by-acls']]).toEqual([4, undefined]);
    const db = await get(consul, '/v1/health/service/db', h);
    expect([db.json(), db.headers['x-consul-results-filtered-by-acls']]).toEqual([[], 'true']);
    expect((await get(consul, '/v1/catalog/service/db', h)).json()).toEqual([]);
    // health/state: node-level checks (no service) stay, checks of other services go.
    const state = (await get(consul, '/v1/health/state/any', h)).json();
    expect(new Set(state.map((c: any) => c.ServiceName))).toEqual(new Set(['', 'web']));
    // /v1/health/connect/<name> without service:read on <name>: empty, no header.
    const connect = await get(consul, '/v1/health/connect/db', h);
    expect([connect.status, connect.json(), connect.headers['x-consul-results-filtered-by-acls']]).toEqual([200, [], undefined]);
  });

  it('the anonymous token can be given rights; the agent default token counts as presented', async () => {
    consul.setAcl({ tokens: { root: 'read' }, anonymous: 'dns' });
    expect((await get(consul, '/v1/health/service/web')).json()).toHaveLength(4);
    expect((await get(consul, '/v1/agent/self')).status).toBe(403);
    consul.setAcl({ tokens: { weak: 'filtered' }, defaultToken: 'weak' });
    const r = await get(consul, '/v1/catalog/nodes');
    expect([r.status, r.json(), r.headers['x-consul-results-filtered-by-acls']]).toEqual([200, [], 'true']);
    // A default token that no longer exists: what Consul answers a request without a token then.
    consul.setAcl({ tokens: {}, defaultToken: 'deleted' });
    expect(await get(consul, '/v1/catalog/nodes')).toMatchObject({ status: 403, text: 'ACL not found' });
    // The secret "anonymous" is the anonymous token, presented (so filtering is reported).
    consul.setAcl({ tokens: {} });
    const anon = await get(consul, '/v1/catalog/nodes', withToken('anonymous'));
    expect([anon.status, anon.json(), anon.headers['x-consul-results-filtered-by-acls']]).toEqual([200, [], 'true']);
    // Rights left out follow the default policy.
    consul.setAcl({ tokens: { some: { agentRead: false } }, defaultPolicy: 'allow' });
    expect((await get(consul, '/v1/catalog/nodes', withToken('some'))).json()).toHaveLength(12);
    expect((await get(consul, '/v1/agent/self', withToken('some'))).status).toBe(403);
    expect((await get(consul, '/v1/catalog/nodes')).headers['x-consul-default-acl-policy']).toBe('allow');
    expect(() => consul.setAcl({ tokens: {}, anonymous: 'reject' as never })).toThrow(/defaultToken/);
    consul.setAcl(null);
    const open = await get(consul, '/v1/catalog/nodes');
    expect([open.json().length, open.headers['x-consul-default-acl-policy']]).toEqual([12, 'allow']);
  });
});

describe('fake consul: close()', () => {
  it('ends parked, hung, trickled and delayed requests and every connection', async () => {
    const consul = await startFakeConsul({ catalog: demo() });
    const agent = newAgent();
    try {
      const r = await get(consul, '/v1/catalog/services', { agent });
      const parked = get(consul, `/v1/catalog/services?index=${idx(r)}&wait=10m`, { agent });
      consul.addFault({ kind: 'hang' }, { path: '/v1/catalog/nodes' });
      consul.addFault({ kind: 'delay', ms: 600_000 }, { path: '/v1/health/state/any' });
      consul.addFault({ kind: 'trickle', intervalMs: 50 }, { path: '/v1/health/state/passing' });
      const hung = get(consul, '/v1/catalog/nodes', { agent });
      const delayed = get(consul, '/v1/health/state/any', { agent });
      const trickled = get(consul, '/v1/health/state/passing', { agent });
      await consul.until((c) => c.parked === 1 && c.hung === 1 && c.trickling === 1 && c.requests['health/state'] === 2);
      expect(consul.counters.connections).toBeGreaterThanOrEqual(4);
      await consul.close();
      const results = await Promise.allSettled([parked, hung, delayed, trickled]);
      expect(results.map((x) => x.status)).toEqual(['rejected', 'rejected', 'rejected', 'rejected']);
      expect(consul.counters).toMatchObject({ connections: 0, parked: 0, hung: 0, trickling: 0 });
      expect(consul.bytesSent()).toBeGreaterThan(0);
      await expect(consul.start()).rejects.toMatchObject({ code: 'FAKE_CONSUL_STATE' });
    } finally {
      await consul.close();
    }
  });
});

describe('fake consul: 10,000 services', () => {
  const SERVICES = 10_000;
  const INSTANCES = 5;
  const WATCHED = 300;
  let consul: FakeConsul;
  beforeAll(async () => {
    // 300 parked watches on connections of their own: past Consul's 200 per client, so no limit here.
    consul = await startFakeConsul({ jitter: false, maxConnsPerClient: 0 });
    for (let n = 0; n < SERVICES; n++) {
      consul.registerNode({ Node: `node-${n}`, Address: `10.${n >> 8}.${n & 255}.1` }, {
        checks: [{ CheckID: 'serfHealth', Status: 'passing' }],
      });
    }
    // Instance t of the 50,000 runs on node t % 10,000, so every node hosts five services.
    for (let t = 0; t < SERVICES * INSTANCES; t++) {
      const s = Math.floor(t / INSTANCES);
      consul.registerService(`node-${t % SERVICES}`, { ID: `svc-${s}-${t % INSTANCES}`, Service: `svc-${s}`, Port: 8000 + (t % INSTANCES), Tags: ['v1'] }, {
        checks: [{ CheckID: `service:svc-${s}-${t % INSTANCES}`, Status: 'passing' }],
      });
    }
  }, 120_000);
  afterAll(() => consul.close());

  it('holds them all', async () => {
    const services = await get(consul, '/v1/catalog/services');
    expect(Object.keys(services.json())).toHaveLength(SERVICES);
    expect((await get(consul, '/v1/health/service/svc-9999')).json()).toHaveLength(INSTANCES);
    expect(consul.index()).toBe(SERVICES + SERVICES * INSTANCES);
  });

  it('a write re-examines only the parked queries it can change', async () => {
    const agent = newAgent();
    const replies: Array<Promise<Reply>> = [];
    const indexes: number[] = [];
    for (let s = 0; s < WATCHED; s++) indexes.push(idx(await get(consul, `/v1/health/service/svc-${s}`, { agent })));
    for (let s = 0; s < WATCHED; s++) replies.push(get(consul, `/v1/health/service/svc-${s}?index=${indexes[s]}&wait=5m`, { agent }));
    const services = await get(consul, '/v1/catalog/services', { agent });
    const servicesWatch = get(consul, `/v1/catalog/services?index=${idx(services)}&wait=5m`, { agent });
    await consul.until((c) => c.parked === WATCHED + 1, 60_000);

    const wakeups = consul.counters.wakeups;
    const written = consul.setCheck('node-35', 'service:svc-7-0', 'critical');
    const woken = await replies[7]!;
    expect(idx(woken)).toBe(written);
    expect(woken.json()[0].Checks[1].Status).toBe('critical');
    expect(consul.counters.wakeups).toBe(wakeups + 1);
    expect(consul.counters.parked).toBe(WATCHED);

    // A node-level check on node-36 covers svc-7 (answered already), svc-2007, svc-4007, svc-6007
    // and svc-8007 (not watched): nothing parked is touched.
    consul.setCheck('node-36', 'serfHealth', 'warning');
    // A node hosting svc-8 (watched) and four unwatched services.
    consul.setNodeMeta('node-40', { zone: 'b' });
    const meta = await replies[8]!;
    expect(meta.json().find((e: any) => e.Node.Node === 'node-40').Node.Meta).toEqual({ zone: 'b' });
    expect(consul.counters.wakeups).toBe(wakeups + 2);
    expect(consul.counters.parked).toBe(WATCHED - 1);

    const added = consul.registerService('node-0', { ID: 'extra', Service: 'extra' });
    expect(idx(await servicesWatch)).toBe(added);
    expect(consul.counters.wakeups).toBe(wakeups + 3);
    expect(consul.counters.parked).toBe(WATCHED - 2);

    await consul.close(); // ends the rest
    const settled = await Promise.allSettled(replies);
    expect(settled.filter((x) => x.status === 'fulfilled')).toHaveLength(2);
  }, 120_000);
});

// ---------------------------------------------------------------------------------------------
// Raw sockets

function rawConnect(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ host: '127.0.0.1', port }, () => { s.off('error', reject); resolve(s); });
    s.once('error', reject);
  });
}

/** Everything the peer sends until it closes the connection. */
function readToClose(s: { on(e: 'data', f: (b: Buffer) => void): unknown; once(e: 'close', f: () => void): unknown }): Promise<Buffer> {
  const chunks: Buffer[] = [];
  s.on('data', (b: Buffer) => chunks.push(b));
  return new Promise((resolve) => s.once('close', () => resolve(Buffer.concat(chunks))));
}

// Byte for byte what go-connlimit's HTTPConnStateFuncWithDefault429Handler writes.
const GO_CONNLIMIT_429 = 'HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\nContent-Length: 81\r\nConnection: close\r\n\r\n'
  + 'Your IP is issuing too many concurrent connections, please rate limit your calls\n';

describe('fake consul: connections per client (go-connlimit)', () => {
  const sockets: Socket[] = [];
  afterEach(() => { for (const s of sockets.splice(0)) s.destroy(); });

  it('201 connections from 127.0.0.1: the 201st gets the 429 without sending anything and is closed', async () => {
    const consul = await startFakeConsul({ catalog: demo() });
    try {
      for (let i = 0; i < 200; i++) sockets.push(await rawConnect(consul.port));
      await consul.until((c) => c.connections === 200);
      const extra = await rawConnect(consul.port);
      sockets.push(extra);
      const got = await readToClose(extra);
      expect(got.toString()).toBe(GO_CONNLIMIT_429);
      expect(consul.counters).toMatchObject({ connLimited: 1, connections: 200, connectionsPeak: 200, connectionsTotal: 200 });
      expect(consul.counters.requests.other + consul.counters.requests['catalog/services']).toBe(0);
      // One goes away: room for one more, served normally.
      sockets.shift()!.destroy();
      await consul.until((c) => c.connections === 199);
      const r = await get(consul, '/v1/catalog/services', { agent: newAgent() });
      expect(r.status).toBe(200);
    } finally {
      await consul.close();
    }
  });

  it('maxConnsPerClient: 0 is unlimited', async () => {
    const consul = await startFakeConsul({ maxConnsPerClient: 0 });
    try {
      for (let i = 0; i < 250; i++) sockets.push(await rawConnect(consul.port));
      await consul.until((c) => c.connections === 250);
      expect(consul.counters.connLimited).toBe(0);
    } finally {
      await consul.close();
    }
  });

  describe('over HTTPS', () => {
    let dir: string;
    let tls: { key: Buffer; cert: Buffer };
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'fake-consul-tls-'));
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'key.pem',
        '-out', 'cert.pem', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { cwd: dir, stdio: 'pipe' });
      tls = { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) };
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const tlsOpen = (port: number) => new Promise<ReturnType<typeof tlsConnect>>((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => resolve(s));
      s.once('error', reject);
    });

    it('the connection over the limit gets the same 429 inside TLS', async () => {
      const consul = await startFakeConsul({ tls, maxConnsPerClient: 2 });
      try {
        const a = await tlsOpen(consul.port);
        const b = await tlsOpen(consul.port);
        await consul.until((c) => c.connections === 2);
        const c = await tlsOpen(consul.port);
        expect((await readToClose(c)).toString()).toBe(GO_CONNLIMIT_429);
        expect(consul.counters.connLimited).toBe(1);
        a.destroy();
        b.destroy();
      } finally {
        await consul.close();
      }
    });

    it('an HTTPS connection that sends no request is closed after https_handshake_timeout', async () => {
      const consul = await startFakeConsul({ tls, httpsHandshakeTimeoutMs: 300 });
      try {
        const idle = await tlsOpen(consul.port);
        expect((await readToClose(idle)).length).toBe(0);
        await consul.until((c) => c.connections === 0);
      } finally {
        await consul.close();
      }
    });

    it('reset and truncate faults over HTTPS: the TCP connection under the TLS one is destroyed', async () => {
      const consul = await startFakeConsul({ tls, catalog: demo() });
      const agent = new Agent({ connect: { ca: tls.cert } });
      try {
        consul.addFault({ kind: 'reset' }, { times: 1 });
        await expect(request(`${consul.url}/v1/catalog/services`, { dispatcher: agent })).rejects.toMatchObject({
          code: expect.stringMatching(/^(ECONNRESET|UND_ERR_SOCKET)$/),
        });
        expect(consul.counters.resets).toBe(1);
        consul.addFault({ kind: 'truncate' }, { times: 1 });
        const r = await request(`${consul.url}/v1/health/service/web`, { dispatcher: agent });
        expect(r.statusCode).toBe(200);
        await expect(r.body.text()).rejects.toThrow();
        expect((await request(`${consul.url}/v1/catalog/services`, { dispatcher: agent })).statusCode).toBe(200);
      } finally {
        await agent.destroy();
        await consul.close();
      }
    });
  });
});

// ---------------------------------------------------------------------------------------------
// HTTP/2 (Consul's HTTPS listener as it ships)

interface H2Reply { status: number; headers: IncomingHttpHeaders; body: Buffer; text: string; json(): any }

/** An HTTP/2 connection (node:http2, trusting `ca`), once the server's SETTINGS are in. */
function h2open(url: string, ca: Buffer): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const s = h2connect(url, { ca });
    s.once('remoteSettings', () => { s.off('error', reject); s.on('error', () => {}); resolve(s); });
    s.once('error', reject);
  });
}

/** One GET on its own stream; rejects (with the status if one came, and the RST_STREAM code) when the
 *  stream or the connection ends before the body does. */
function h2get(s: ClientHttp2Session, path: string, headers: Record<string, string> = {}): Promise<H2Reply> {
  return new Promise((resolve, reject) => {
    const req = s.request({ ':path': path, ...headers });
    const chunks: Buffer[] = [];
    let status = 0;
    let got: IncomingHttpHeaders = {};
    let ended = false;
    req.on('response', (h) => { status = Number(h[':status']); got = h; });
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      // A stream the connection's end took with it ends too, without a response or complete.
      if (status === 0 || req.aborted || (req.rstCode !== undefined && req.rstCode !== h2c.NGHTTP2_NO_ERROR)) return;
      ended = true;
      const body = Buffer.concat(chunks);
      const text = body.toString();
      resolve({ status, headers: got, body, text, json: () => JSON.parse(text) });
    });
    req.on('error', (e) => reject(Object.assign(e, { status, rstCode: req.rstCode })));
    req.on('close', () => { if (!ended) reject(Object.assign(new Error(`stream closed (${req.rstCode})`), { status, rstCode: req.rstCode })); });
    req.end();
  });
}

const h2idx = (r: H2Reply): number => Number(r.headers['x-consul-index']);

describe('fake consul: HTTP/2 (option http2)', () => {
  let dir: string;
  let tls: { key: Buffer; cert: Buffer };
  const sessions: ClientHttp2Session[] = [];
  const sockets: Array<{ destroy(): void }> = [];
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'fake-consul-h2-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'key.pem',
      '-out', 'cert.pem', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { cwd: dir, stdio: 'pipe' });
    tls = { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) };
  });
  afterEach(() => {
    for (const s of sessions.splice(0)) s.destroy();
    for (const s of sockets.splice(0)) s.destroy();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const open = async (consul: FakeConsul): Promise<ClientHttp2Session> => {
    const s = await h2open(consul.url, tls.cert);
    sessions.push(s);
    return s;
  };
  /** A TLS connection offering `alpn`, once the handshake is done. */
  const tlsOpen = (port: number, alpn: string[]) => new Promise<ReturnType<typeof tlsConnect>>((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ca: tls.cert, ALPNProtocols: alpn }, () => resolve(s));
    sockets.push(s);
    s.once('error', reject);
  });
  /** The test Consul over HTTPS with h2, `n` services of one instance (node n<i>, check service:s<i>). */
  const h2fake = async (n: number, opts: Partial<FakeConsulOptions> = {}): Promise<FakeConsul> => {
    const consul = await startFakeConsul({ jitter: false, tls, http2: true, ...opts });
    for (let i = 0; i < n; i++) {
      consul.registerService({ Node: `n${i}`, Address: `10.2.${i >> 8}.${i & 255}` }, { ID: `s${i}`, Service: `s${i}`, Port: 80 },
        { checks: [{ CheckID: `service:s${i}`, Status: 'passing' }] });
    }
    return consul;
  };

  it('offers h2 by ALPN and still serves HTTP/1.1; only with tls', async () => {
    expect(() => new FakeConsul({ http2: true })).toThrow(expect.objectContaining({ code: 'FAKE_CONSUL_INVALID' }));
    const consul = await h2fake(1);
    try {
      expect((await tlsOpen(consul.port, ['h2', 'http/1.1'])).alpnProtocol).toBe('h2');
      expect((await tlsOpen(consul.port, ['http/1.1', 'h2'])).alpnProtocol).toBe('h2'); // the server's preference, as Go's
      expect((await tlsOpen(consul.port, ['http/1.1'])).alpnProtocol).toBe('http/1.1');
      const s = await open(consul);
      expect(s.remoteSettings.maxConcurrentStreams).toBe(250);
      const r = await h2get(s, '/v1/health/service/s0');
      expect(r.status).toBe(200);
      expect(r.headers['x-consul-knownleader']).toBe('true');
      expect(r.headers['x-consul-default-acl-policy']).toBe('allow');
      expect(r.json()[0].Service.ID).toBe('s0');
      expect(consul.counters).toMatchObject({ streams: 0, streamsTotal: 1 });
    } finally {
      await consul.close();
    }
  });

  it('300 blocking queries on one connection: one connection for the per-client limit, 250 streams at a time, a write wakes the right one', async () => {
    const consul = await h2fake(300, { maxConnsPerClient: 200 });
    try {
      const s = await open(consul);
      const index = h2idx(await h2get(s, '/v1/catalog/services'));
      let answered = 0;
      const replies = Array.from({ length: 300 }, (_, i) => {
        const p = h2get(s, `/v1/health/service/s${i}?index=${index}&wait=10m`);
        p.then(() => { answered++; }, () => {});
        return p;
      });
      // 250 park (the SETTINGS_MAX_CONCURRENT_STREAMS the server announced, Go's default); the other
      // 50 wait in the client. All on one TCP connection, which is all the per-client limit counts.
      await consul.until((c) => c.parked === 250 && c.streams === 250);
      expect(consul.counters).toMatchObject({ connections: 1, connectionsTotal: 1, connLimited: 0, streamsTotal: 251 });

      // A check of s7 changes: s7's query (and only it) is answered, with the new index and status;
      // a waiting stream takes its place.
      const wakeups = consul.counters.wakeups;
      const written = consul.setCheck('n7', 'service:s7', 'critical');
      const r7 = await replies[7]!;
      expect(r7.status).toBe(200);
      expect(h2idx(r7)).toBe(written);
      expect(r7.json()[0].Checks[0].Status).toBe('critical');
      expect(consul.counters.wakeups).toBe(wakeups + 1);
      await consul.until((c) => c.parked === 250 && c.streamsTotal === 252);
      expect(answered).toBe(1);

      // 49 more answered in one write each: the last waiting queries get in and park. Every one of
      // the 300 has been parked on that one connection.
      for (let i = 200; i < 249; i++) consul.setCheck(`n${i}`, `service:s${i}`, 'warning');
      await consul.until((c) => c.parked === 250 && c.streamsTotal === 301);
      await Promise.all(replies.slice(200, 249));
      expect(answered).toBe(50);
      expect(consul.counters).toMatchObject({ connections: 1, connectionsTotal: 1, connLimited: 0, streams: 250 });

      // HTTP/1.1 on the same port, next to it: a blocking query of its own (its own connection).
      const agent = new Agent({ connect: { ca: tls.cert } });
      agents.push(agent);
      const services = await get(consul, '/v1/catalog/services', { agent });
      expect(services.status).toBe(200);
      const watch = get(consul, `/v1/catalog/services?index=${idx(services)}&wait=10m`, { agent });
      await consul.until((c) => c.parked === 251 && c.connections === 2);
      const added = consul.registerService({ Node: 'fresh-node', Address: '10.9.9.9' }, { ID: 'fresh', Service: 'fresh' });
      expect(idx(await watch)).toBe(added);
      expect(consul.counters.parked).toBe(250);
      expect(consul.counters.streams).toBe(250);
      expect(answered).toBe(50);

      // close() ends every stream and connection at once.
      await consul.close();
      const settled = await Promise.allSettled(replies);
      expect(settled.filter((x) => x.status === 'rejected')).toHaveLength(250);
      expect(consul.counters).toMatchObject({ parked: 0, streams: 0, connections: 0 });
    } finally {
      await consul.close();
    }
  }, 60_000);

  it('over the per-client limit: go-connlimit\'s HTTP/1.1 429 after a handshake that chose h2, a protocol error to an h2 client', async () => {
    const consul = await h2fake(1, { maxConnsPerClient: 1 });
    try {
      const first = await open(consul);
      await consul.until((c) => c.connections === 1);
      const raw = await tlsOpen(consul.port, ['h2', 'http/1.1']);
      expect(raw.alpnProtocol).toBe('h2');
      expect((await readToClose(raw)).toString()).toBe(GO_CONNLIMIT_429);
      // node:http2 reads those bytes where the server's SETTINGS should be: no status, an error.
      const second = h2connect(consul.url, { ca: tls.cert });
      sessions.push(second);
      second.on('error', () => {});
      await expect(h2get(second, '/v1/catalog/services')).rejects.toMatchObject({ status: 0 });
      expect(consul.counters).toMatchObject({ connLimited: 2, connections: 1 });
      expect((await h2get(first, '/v1/catalog/services')).status).toBe(200);
    } finally {
      await consul.close();
    }
  });

  it('faults act on the stream (truncate, hang, 429) or the TCP connection (reset); ACL tokens and gzip as over HTTP/1.1', async () => {
    const consul = await h2fake(40, { acl: { tokens: { reader: 'read' } } });
    try {
      let s = await open(consul);
      const index = h2idx(await h2get(s, '/v1/health/service/s1', { 'x-consul-token': 'reader' }));
      const parked = h2get(s, `/v1/health/service/s1?index=${index}&wait=10m`, { 'x-consul-token': 'reader' });
      parked.catch(() => {});
      await consul.until((c) => c.parked === 1);

      // truncate: the headers, half the body, then RST_STREAM INTERNAL_ERROR; the connection stays.
      consul.addFault({ kind: 'truncate' }, { path: '/v1/catalog/nodes', times: 1 });
      await expect(h2get(s, '/v1/catalog/nodes', { 'x-consul-token': 'reader' })).rejects.toMatchObject({ status: 200, rstCode: h2c.NGHTTP2_INTERNAL_ERROR });
      // hang: held until the fault is cleared; 429 on the stream.
      const hang = consul.addFault({ kind: 'hang' }, { path: '/v1/catalog/nodes' });
      const held = h2get(s, '/v1/catalog/nodes', { 'x-consul-token': 'reader' });
      await consul.until((c) => c.hung === 1);
      consul.clearFault(hang);
      expect((await held).status).toBe(200);
      consul.addFault({ kind: 'rate-limit' }, { times: 1 });
      expect((await h2get(s, '/v1/catalog/services')).status).toBe(429);
      expect(consul.counters).toMatchObject({ parked: 1, connections: 1 });

      // ACLs: the token in a header (lower-cased over h2), none, an unknown one.
      expect(Object.keys((await h2get(s, '/v1/catalog/services', { 'x-consul-token': 'reader' })).json())).toHaveLength(40);
      expect((await h2get(s, '/v1/catalog/services')).json()).toEqual({});
      expect((await h2get(s, '/v1/catalog/services', { 'x-consul-token': 'nope' })).status).toBe(403);
      // gzip for a body of 1400 bytes or more.
      const zipped = await h2get(s, '/v1/catalog/nodes', { 'x-consul-token': 'reader', 'accept-encoding': 'gzip' });
      expect(zipped.headers['content-encoding']).toBe('gzip');
      expect(JSON.parse(gunzipSync(zipped.body).toString())).toHaveLength(40);

      // reset: the TCP connection is destroyed, with every stream on it (the parked one too).
      consul.addFault({ kind: 'reset' }, { path: '/v1/catalog/nodes', times: 1 });
      await expect(h2get(s, '/v1/catalog/nodes')).rejects.toMatchObject({ status: 0 });
      await expect(parked).rejects.toMatchObject({ status: 0 });
      await consul.until((c) => c.parked === 0 && c.connections === 0 && c.streams === 0);
      expect(consul.counters.resets).toBe(2);

      // stop(): connection refused, every stream ended; start(): served again on the same port.
      s = await open(consul);
      const parked2 = h2get(s, `/v1/health/service/s1?index=${index}&wait=10m`);
      parked2.catch(() => {});
      await consul.until((c) => c.parked === 1);
      await consul.stop();
      expect(consul.counters).toMatchObject({ parked: 0, streams: 0, connections: 0 });
      await expect(parked2).rejects.toThrow();
      await expect(h2open(consul.url, tls.cert)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
      await consul.start();
      expect((await h2get(await open(consul), '/v1/health/service/s1')).status).toBe(200);
    } finally {
      await consul.close();
    }
  });

  it('the handshake deadline ends once the client preface is in, as setupHTTPS\'s does over h2', async () => {
    const consul = await h2fake(1, { httpsHandshakeTimeoutMs: 200 });
    try {
      // h2 negotiated, no preface: closed at the deadline, having received only the server's SETTINGS
      // (which Go's server, like node's, sends before reading the preface).
      const idle = await tlsOpen(consul.port, ['h2']);
      const got = await readToClose(idle);
      expect(got[3]).toBe(0x4); // frame type SETTINGS
      expect(got.length).toBe(9 + got.readUIntBE(0, 3));
      await consul.until((c) => c.connections === 0);
      // A session that sent its preface and no request yet: its blocking query waits past the deadline
      // and is answered (at the end of its wait) on the same connection.
      const s = await open(consul);
      const index = h2idx(await h2get(s, '/v1/health/service/s0'));
      const r = await h2get(s, `/v1/health/service/s0?index=${index}&wait=1s`);
      expect(r.status).toBe(200);
      expect(consul.counters).toMatchObject({ timeouts: 1, connections: 1, connectionsTotal: 2 });
    } finally {
      await consul.close();
    }
  });
});

describe('fake consul: names are case-insensitive, as in Consul\'s state store', () => {
  let consul: FakeConsul;
  beforeAll(async () => { consul = await startFakeConsul({ catalog: demo(), jitter: false }); });
  afterAll(() => consul.close());

  it('"Web" and "web" are one service for a lookup, two keys in /v1/catalog/services, one index entry', async () => {
    const written = consul.registerService('db-1', { ID: 'Web-upper', Service: 'Web', Port: 8081, Tags: ['caps'] });
    for (const name of ['web', 'Web', 'WEB']) {
      const r = await get(consul, `/v1/health/service/${name}`);
      expect(r.json().map((e: any) => `${e.Node.Node}/${e.Service.ID}/${e.Service.Service}`)).toEqual([
        'db-1/Web-upper/Web', 'web-1/web-admin-web-1/web', 'web-1/web-web-1/web', 'web-2/web-web-2/web', 'web-3/web-web-3/web',
      ]);
      expect(idx(r)).toBe(written);
      expect((await get(consul, `/v1/catalog/service/${name}`)).json()).toHaveLength(5);
    }
    const services = (await get(consul, '/v1/catalog/services')).json();
    expect(services.Web).toEqual(['caps']);
    expect([...services.web].sort()).toEqual(['admin', 'http', 'v1', 'v2']);
    expect(Object.keys(services).indexOf('Web')).toBeLessThan(Object.keys(services).indexOf('web'));
    consul.deregisterService('db-1', 'web-upper'); // IDs match lower-cased too
    expect((await get(consul, '/v1/health/service/web')).json()).toHaveLength(4);
  });

  it('a write to "Web" wakes a blocking query on "web"', async () => {
    const r = await get(consul, '/v1/health/service/web');
    const pending = get(consul, `/v1/health/service/web?index=${idx(r)}&wait=60s`);
    await consul.until((c) => c.parked === 1);
    const written = consul.registerService('db-2', { ID: 'Web-2', Service: 'Web', Port: 8082 });
    const woken = await pending;
    expect([idx(woken), woken.json().length]).toEqual([written, 5]);
    consul.deregisterService('db-2', 'Web-2');
  });

  it('a Connect destination matches lower-cased; node names, service IDs and check IDs too', async () => {
    consul.registerService('web-1', { ID: 'sidecar', Service: 'web-sidecar-proxy', Kind: 'connect-proxy', Port: 21000, Proxy: { DestinationServiceName: 'WEB' } });
    expect((await get(consul, '/v1/health/connect/web')).json().map((e: any) => e.Service.ID)).toEqual(['sidecar']);
    consul.deregisterService('WEB-1', 'SIDECAR');
    expect((await get(consul, '/v1/health/connect/web')).json()).toEqual([]);
    const before = (await get(consul, '/v1/catalog/nodes')).json().length;
    consul.registerNode({ Node: 'WEB-2', Address: '10.0.1.12', Meta: { rack: 'r2' } });
    const nodes = (await get(consul, '/v1/catalog/nodes')).json();
    expect(nodes).toHaveLength(before);
    expect(nodes.filter((n: any) => n.Node.toLowerCase() === 'web-2').map((n: any) => n.Node)).toEqual(['WEB-2']);
    consul.setCheck('WEB-3', 'SERVICE:WEB-WEB-3', 'passing'); // the existing check, not a second one
    const web3 = (await get(consul, '/v1/health/service/web')).json().find((e: any) => e.Service.ID === 'web-web-3');
    expect(web3.Checks.map((c: any) => [c.CheckID, c.Status])).toEqual([['serfHealth', 'passing'], ['service:web-web-3', 'passing']]);
    consul.setCheck('web-3', 'service:web-web-3', 'warning');
  });

  it('lists come in Consul\'s index order: lower-cased node name, then lower-cased ID', async () => {
    const c = await startFakeConsul();
    try {
      c.registerService({ Node: 'b-node', Address: '10.0.0.2' }, { ID: 'x2', Service: 'x' });
      c.registerService({ Node: 'A-node', Address: '10.0.0.1' }, { ID: 'X1', Service: 'x' });
      c.registerService({ Node: 'A-node', Address: '10.0.0.1' }, { ID: 'a0', Service: 'x' });
      expect((await get(c, '/v1/catalog/nodes')).json().map((n: any) => n.Node)).toEqual(['A-node', 'b-node']);
      expect((await get(c, '/v1/health/service/x')).json().map((e: any) => e.Service.ID)).toEqual(['a0', 'X1', 'x2']);
    } finally {
      await c.close();
    }
  });
});

describe('fake consul: virtual IPs and terminating gateways', () => {
  it('a connect proxy gets its destination\'s virtual IP, a Connect-native service its own, a typical service none', async () => {
    const c = await startFakeConsul({ catalog: demo() });
    try {
      c.registerService('web-1', { ID: 'web-sidecar', Service: 'web-sidecar-proxy', Kind: 'connect-proxy', Port: 21000, Proxy: { DestinationServiceName: 'web' } });
      c.registerService('db-1', { ID: 'pay-1', Service: 'pay', Port: 9443, Connect: { Native: true } });
      c.registerService('web-2', { ID: 'web-sidecar', Service: 'web-sidecar-proxy', Kind: 'connect-proxy', Port: 21001, Proxy: { DestinationServiceName: 'Web' } });
      const proxies = (await get(c, '/v1/health/connect/web')).json();
      expect(proxies.map((e: any) => e.Service.TaggedAddresses['consul-virtual'])).toEqual([
        { Address: '240.0.0.1', Port: 21000 }, { Address: '240.0.0.1', Port: 21001 },
      ]);
      const pay = (await get(c, '/v1/health/service/pay')).json()[0];
      expect(pay.Service.TaggedAddresses).toEqual({ 'consul-virtual': { Address: '240.0.0.2', Port: 9443 } });
      const web = (await get(c, '/v1/health/service/web')).json();
      expect(web.map((e: any) => e.Service.TaggedAddresses?.['consul-virtual'])).toEqual([undefined, undefined, undefined, undefined]);
      expect((await get(c, '/v1/catalog/service/web-sidecar-proxy')).json()[0].ServiceTaggedAddresses['consul-virtual'].Address).toBe('240.0.0.1');
      // A name's last instance going frees its address; the next name takes the freed one first.
      c.deregisterService('db-1', 'pay-1');
      c.registerService('db-1', { ID: 'cart-1', Service: 'cart', Port: 7000, Connect: { Native: true } });
      c.registerService('db-1', { ID: 'api-proxy', Service: 'api-sidecar-proxy', Kind: 'connect-proxy', Port: 21002, Proxy: { DestinationServiceName: 'api' } });
      const vip = async (svc: string) => (await get(c, `/v1/health/service/${svc}`)).json()[0].Service.TaggedAddresses['consul-virtual'].Address;
      expect([await vip('cart'), await vip('api-sidecar-proxy')]).toEqual(['240.0.0.2', '240.0.0.3']);
    } finally {
      await c.close();
    }
    const off = await startFakeConsul({ virtualIps: false });
    try {
      off.registerService({ Node: 'n', Address: '10.0.0.1' }, { ID: 'p', Service: 'p', Kind: 'connect-proxy', Port: 1, Proxy: { DestinationServiceName: 'web' } });
      expect((await get(off, '/v1/health/connect/web')).json()[0].Service.TaggedAddresses).toBeUndefined();
    } finally {
      await off.close();
    }
  });

  it('links a terminating gateway: /v1/catalog/gateway-services lists it, /v1/health/connect includes its instances', async () => {
    const c = await startFakeConsul({ catalog: demo(), jitter: false });
    try {
      c.registerService({ Node: 'gw-1', Address: '10.0.9.1' }, { ID: 'tgw-1', Service: 'tgw', Kind: 'terminating-gateway', Port: 8443 });
      expect((await get(c, '/v1/health/connect/billing')).json()).toEqual([]);
      const linked = c.linkGatewayService('tgw', 'billing', { fields: { SNI: 'billing.example' } });
      const gs = await get(c, '/v1/catalog/gateway-services/tgw');
      expect(gs.json()).toEqual([{
        Gateway: { Name: 'tgw' }, Service: { Name: 'billing' }, GatewayKind: 'terminating-gateway', Port: 0, Protocol: '', Hosts: null,
        CAFile: '', CertFile: '', KeyFile: '', SNI: 'billing.example', FromWildcard: false, CreateIndex: linked, ModifyIndex: linked,
      }]);
      expect(idx(gs)).toBe(linked);
      expect((await get(c, '/v1/catalog/gateway-services/other')).json()).toEqual([]);
      expect((await get(c, '/v1/catalog/gateway-services/')).text).toBe('Missing gateway name');
      const connect = await get(c, '/v1/health/connect/billing');
      expect(connect.json().map((e: any) => [e.Node.Node, e.Service.Kind, e.Service.Port])).toEqual([['gw-1', 'terminating-gateway', 8443]]);
      expect(idx(connect)).toBe(linked);
      // A second gateway instance wakes a watch on the linked service.
      const pending = get(c, `/v1/health/connect/billing?index=${idx(connect)}&wait=60s`);
      await c.until((k) => k.parked === 1);
      const second = c.registerService({ Node: 'gw-2', Address: '10.0.9.2' }, { ID: 'tgw-2', Service: 'tgw', Kind: 'terminating-gateway', Port: 8443 });
      const woken = await pending;
      expect([idx(woken), woken.json().length]).toEqual([second, 2]);
      // service:read on the gateway is needed to list its links.
      c.setAcl({ tokens: { billingOnly: { serviceRead: ['billing'], nodeRead: true, accessorId: 'acc-1' } } });
      expect(await get(c, '/v1/catalog/gateway-services/tgw', { headers: { 'X-Consul-Token': 'billingOnly' } })).toMatchObject({
        status: 403, text: 'Permission denied: token with AccessorID \'acc-1\' lacks permission \'service:read\' on "tgw"',
      });
      c.unlinkGatewayService('tgw', 'billing');
      c.setAcl(null);
      expect((await get(c, '/v1/catalog/gateway-services/tgw')).json()).toEqual([]);
    } finally {
      await c.close();
    }
  });
});

describe('fake consul: stored fields', () => {
  it('stores Weights as Consul does (missing or invalid: {1, 1}; a missing Warning: 0)', async () => {
    const c = await startFakeConsul();
    try {
      const cases: Array<[unknown, unknown]> = [
        [undefined, { Passing: 1, Warning: 1 }], [{ Passing: 10, Warning: 2 }, { Passing: 10, Warning: 2 }],
        [{ Passing: 3 }, { Passing: 3, Warning: 0 }], [{ Passing: 0, Warning: 5 }, { Passing: 1, Warning: 1 }],
        [{ Passing: 5, Warning: -1 }, { Passing: 1, Warning: 1 }], [{ Passing: 70000, Warning: 1 }, { Passing: 1, Warning: 1 }],
        [{ Passing: 65535, Warning: 65535 }, { Passing: 65535, Warning: 65535 }], [{ Warning: 3 }, { Passing: 1, Warning: 1 }],
      ];
      for (const [i, [w]] of cases.entries()) {
        c.registerService({ Node: 'n', Address: '10.0.0.1' }, { ID: `s${i}`, Service: `s${i}`, ...(w !== undefined ? { Weights: w as never } : {}) });
      }
      for (const [i, [, want]] of cases.entries()) {
        expect([i, (await get(c, `/v1/health/service/s${i}`)).json()[0].Service.Weights]).toEqual([i, want]);
        expect((await get(c, `/v1/catalog/service/s${i}`)).json()[0].ServiceWeights).toEqual(want);
      }
      expect(() => c.registerService('n', { Service: 'bad', Weights: { Passing: 1.5, Warning: 1 } })).toThrow(expect.objectContaining({ code: 'FAKE_CONSUL_INVALID' }));
    } finally {
      await c.close();
    }
  });
});

describe('fake consul: leaders and datacenters', () => {
  let consul: FakeConsul;
  beforeAll(async () => { consul = await startFakeConsul({ catalog: demo(), jitter: false }); });
  afterAll(() => consul.close());
  afterEach(() => {
    consul.setLeaderContact({ lastContactMs: 0, knownLeader: true }, { dc: 'dc2' });
    consul.setLeaderContact({ lastContactMs: 0, knownLeader: true });
    consul.setDatacenterReachable('dc2', true);
  });

  it('a server cut off from its cluster: stale reads report its last contact and no known leader', async () => {
    consul.setLeaderContact({ lastContactMs: 4500, knownLeader: false }, { dc: 'dc2' });
    const stale = await get(consul, '/v1/health/service/web?dc=dc2&stale');
    expect([stale.status, stale.json().length]).toEqual([200, 2]);
    expect(stale.headers).toMatchObject({ 'x-consul-lastcontact': '4500', 'x-consul-knownleader': 'false', 'x-consul-effective-consistency': 'stale' });
    expect(await get(consul, '/v1/health/service/web?dc=dc2')).toMatchObject({ status: 500, text: 'No cluster leader' });
    expect((await get(consul, '/v1/status/leader?dc=dc2')).json()).toBe('');
    // The local datacenter is not affected.
    expect((await get(consul, '/v1/health/service/web?stale')).headers['x-consul-knownleader']).toBe('true');
    expect((await get(consul, '/v1/status/leader')).json()).toBe('127.0.0.1:8300');
  });

  it('?max_stale: a stale answer older than that is asked again of the leader', async () => {
    consul.setLeaderContact({ lastContactMs: 4500 });
    const fresh = await get(consul, '/v1/catalog/services?max_stale=10s');
    expect(fresh.headers).toMatchObject({ 'x-consul-effective-consistency': 'stale', 'x-consul-lastcontact': '4500' });
    const retried = await get(consul, '/v1/catalog/services?stale&max_stale=2s');
    expect(retried.headers).toMatchObject({ 'x-consul-effective-consistency': 'leader', 'x-consul-lastcontact': '0', 'x-consul-knownleader': 'true' });
    consul.setLeaderContact({ knownLeader: false });
    expect(await get(consul, '/v1/catalog/services?max_stale=2s')).toMatchObject({ status: 500, text: 'No cluster leader' });
  });

  it('a federated datacenter whose servers are down: 500 for every ?dc= request, still listed', async () => {
    const r = await get(consul, '/v1/catalog/services?dc=dc2');
    const parked = get(consul, `/v1/catalog/services?dc=dc2&index=${idx(r)}&wait=60s`);
    await consul.until((c) => c.parked === 1);
    consul.setDatacenterReachable('dc2', false);
    expect(await parked).toMatchObject({ status: 500, text: 'rpc error making call: EOF' });
    for (const p of ['/v1/health/service/web?dc=dc2', '/v1/health/service/web?dc=dc2&stale', '/v1/catalog/nodes?dc=dc2', '/v1/status/leader?dc=dc2']) {
      const r = await get(consul, p);
      expect([p, r.status, r.text]).toEqual([p, 500, 'Remote DC has no server currently reachable']);
    }
    expect((await get(consul, '/v1/catalog/datacenters')).json()).toEqual(['dc1', 'dc2']);
    expect((await get(consul, '/v1/health/service/web')).status).toBe(200);
    expect(() => consul.setDatacenterReachable('dc1', false)).toThrow(/stop\(\)/);
    consul.setDatacenterReachable('dc2', true);
    expect((await get(consul, '/v1/health/service/web?dc=dc2')).json()).toHaveLength(2);
  });
});

describe('fake consul: hostile replies', () => {
  let consul: FakeConsul;
  beforeAll(async () => { consul = await startFakeConsul({ catalog: demo(), jitter: false }); });
  afterAll(() => consul.close());
  afterEach(() => consul.clearFaults());

  it('huge: a valid body of about the size asked for, in the endpoint\'s shape', async () => {
    consul.addFault({ kind: 'huge', bytes: 3_000_000 }, { path: '/v1/catalog/services' });
    const r = await get(consul, '/v1/catalog/services');
    expect(r.status).toBe(200);
    expect(r.text.length).toBeGreaterThanOrEqual(3_000_000);
    expect(r.text.length).toBeLessThan(3_001_000);
    const services = r.json();
    expect(Object.keys(services).length).toBeGreaterThan(10_000);
    expect(Object.values(services).every((t) => Array.isArray(t))).toBe(true);
    expect(idx(r)).toBeGreaterThan(0);
    consul.clearFaults();
    consul.addFault({ kind: 'huge', bytes: 1_000_000 }, { path: '/v1/health/service/' });
    const entries = (await get(consul, '/v1/health/service/web')).json();
    expect(entries.length).toBeGreaterThan(100);
    expect(entries[0]).toEqual(expect.objectContaining({ Node: expect.any(Object), Service: expect.any(Object), Checks: expect.any(Array) }));
  });

  it('trickle: the headers, then a byte at a time and spaces, never ending until the fault is cleared', async () => {
    const id = consul.addFault({ kind: 'trickle', intervalMs: 5 }, { path: '/v1/health/service/nosuch' });
    const r = await request(`${consul.url}/v1/health/service/nosuch`, { dispatcher: newAgent() });
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-length']).toBeUndefined();
    expect(r.headers['x-consul-index']).toBeDefined();
    const it = r.body[Symbol.asyncIterator]();
    let got = '';
    while (got.length < 6) got += String((await it.next()).value); // "[]" and then spaces: past the body, not ended
    expect(got.startsWith('[]  ')).toBe(true);
    expect(consul.counters.trickling).toBe(1);
    consul.clearFault(id);
    for (let n = await it.next(); !n.done; n = await it.next()) got += String(n.value);
    expect(JSON.parse(got)).toEqual([]);
    expect(consul.counters.trickling).toBe(0);
  });

  it('deep: valid JSON nested as deep as asked', async () => {
    consul.addFault({ kind: 'deep', depth: 3000 }, { path: '/v1/health/service/web' });
    let v: unknown = (await get(consul, '/v1/health/service/web')).json();
    let depth = 0;
    while (Array.isArray(v)) { depth++; v = v[0]; }
    expect(depth).toBe(3000);
    consul.clearFaults();
    consul.addFault({ kind: 'deep', depth: 50 }, { path: '/v1/catalog/services' });
    let o: any = (await get(consul, '/v1/catalog/services')).json().deep;
    let n = 1;
    while (Array.isArray(o)) { n++; o = o[0]; }
    expect(n).toBe(50);
  });

  it('index: X-Consul-Index missing or broken, and blocking queries answer at once', async () => {
    const base = idx(await get(consul, '/v1/catalog/services'));
    for (const value of [null, '0', 'abc', '-5']) {
      const id = consul.addFault({ kind: 'index', value }, { path: '/v1/catalog/services' });
      const r = await get(consul, `/v1/catalog/services?index=${base}&wait=60s`);
      expect([value, r.status, r.headers['x-consul-index']]).toEqual([value, 200, value ?? undefined]);
      expect(consul.counters.parked).toBe(0);
      consul.clearFault(id);
    }
  });

  it('hang: the request is held and nothing is written until the fault is cleared', async () => {
    const id = consul.addFault({ kind: 'hang' }, { path: '/v1/catalog/nodes' });
    const s = await rawConnect(consul.port);
    const chunks: Buffer[] = [];
    s.on('data', (b: Buffer) => chunks.push(b));
    const ended = new Promise<void>((resolve) => s.once('close', () => resolve()));
    s.write('GET /v1/catalog/nodes HTTP/1.1\r\nHost: consul\r\nConnection: close\r\n\r\n');
    await consul.until((c) => c.hung === 1);
    await settle(consul); // another connection is served meanwhile
    expect(chunks.length).toBe(0);
    consul.clearFault(id);
    await ended;
    expect(Buffer.concat(chunks).toString()).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
  });
});

describe('fake consul: what Consul parses strictly', () => {
  let consul: FakeConsul;
  beforeAll(async () => { consul = await startFakeConsul({ catalog: demo(), jitter: false }); });
  afterAll(() => consul.close());

  it('?index as strconv.ParseUint, ?wait as time.ParseDuration, only on the blocking endpoints', async () => {
    for (const bad of ['-1', '1.5', '18446744073709551616', '0x10', '+1']) {
      expect([bad, (await get(consul, `/v1/catalog/services?index=${encodeURIComponent(bad)}`)).text]).toEqual([bad, 'Invalid index']);
    }
    expect((await get(consul, '/v1/catalog/services?index=00000000000000000000000')).status).toBe(200); // leading zeros: 0
    for (const bad of ['10', '5 m', '9999999999h', '1d']) {
      expect([bad, (await get(consul, `/v1/catalog/services?index=1&wait=${encodeURIComponent(bad)}`)).text]).toEqual([bad, 'Invalid wait time']);
    }
    // ?wait is parsed before ?index.
    expect((await get(consul, '/v1/catalog/services?index=abc&wait=zz')).text).toBe('Invalid wait time');
    expect((await get(consul, '/v1/catalog/datacenters?index=abc&wait=zz&stale&consistent')).status).toBe(200);
    expect((await get(consul, '/v1/status/leader?index=abc')).status).toBe(200);
  });

  it('consistency parameters: max_stale, stale with consistent, cached with consistent', async () => {
    expect(await get(consul, '/v1/catalog/services?max_stale=abc')).toMatchObject({ status: 400, text: 'Invalid max_stale value "abc"' });
    expect(await get(consul, '/v1/catalog/services?max_stale=5s&consistent')).toMatchObject({ status: 400, text: 'Cannot specify ?stale with ?consistent, conflicting semantics.' });
    expect(await get(consul, '/v1/catalog/services?cached&consistent')).toMatchObject({ status: 400, text: 'Cannot specify ?cached with ?consistent, conflicting semantics.' });
    expect((await get(consul, '/v1/catalog/services?max_stale=0s')).headers['x-consul-effective-consistency']).toBe('leader');
    expect((await get(consul, '/v1/catalog/services?leader')).headers['x-consul-effective-consistency']).toBe('leader');
  });

  it('?passing as strconv.ParseBool', async () => {
    for (const ok of ['', '1', 't', 'T', 'TRUE', 'true', 'True']) expect([ok, (await get(consul, `/v1/health/service/web?passing=${ok}`)).json().length]).toEqual([ok, 3]);
    for (const ok of ['0', 'f', 'F', 'FALSE', 'false', 'False']) expect([ok, (await get(consul, `/v1/health/service/web?passing=${ok}`)).json().length]).toEqual([ok, 4]);
    for (const bad of ['tRuE', 'yes', '2']) expect([bad, (await get(consul, `/v1/health/service/web?passing=${bad}`)).text]).toEqual([bad, 'Invalid value for ?passing']);
  });

  it('methods, paths and queries as HTTPHandlers.wrap and Index answer them', async () => {
    const options = await get(consul, '/v1/catalog/services', { method: 'OPTIONS' });
    expect([options.status, options.headers.allow, options.text]).toEqual([200, 'OPTIONS,GET', '']);
    const post = await get(consul, '/v1/catalog/services', { method: 'POST' });
    expect([post.status, post.headers.allow, post.text]).toEqual([405, 'OPTIONS,GET', 'method POST not allowed']);
    expect(await get(consul, '/v1/nosuch')).toMatchObject({ status: 404, text: 'Invalid URL path: not a recognized HTTP API endpoint\n' });
    expect((await get(consul, '/v1/catalog/services?stale;dc=dc1')).status).toBe(500);
    const r = await get(consul, '/v1/catalog/services');
    expect(r.headers).toMatchObject({ 'x-consul-default-acl-policy': 'allow', vary: 'Accept-Encoding' });
  });

  it('gzips a body of 1400 bytes or more for a client that accepts gzip', async () => {
    const plain = await get(consul, '/v1/health/service/web');
    const raw = await request(`${consul.url}/v1/health/service/web`, { headers: { 'accept-encoding': 'gzip' }, dispatcher: shared });
    const body = Buffer.from(await raw.body.arrayBuffer());
    expect(raw.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(body).toString()).toBe(plain.text);
    const small = await request(`${consul.url}/v1/health/service/nosuch`, { headers: { 'accept-encoding': 'gzip' }, dispatcher: shared });
    expect([small.headers['content-encoding'], await small.body.text()]).toEqual([undefined, '[]']);
    const off = await startFakeConsul({ catalog: demo(), gzip: false });
    try {
      const r = await request(`${off.url}/v1/health/service/web`, { headers: { 'accept-encoding': 'gzip' }, dispatcher: newAgent() });
      expect([r.headers['content-encoding'], JSON.parse(await r.body.text()).length]).toEqual([undefined, 4]);
    } finally {
      await off.close();
    }
  });

  it('the index of a name without instances: max(nodes, services, checks) for health, without checks for the catalog', async () => {
    const c = await startFakeConsul();
    try {
      c.registerService({ Node: 'n', Address: '10.0.0.1' }, { ID: 'a', Service: 'a' });
      const check = c.setCheck('n', 'serfHealth', 'passing');
      expect(idx(await get(c, '/v1/health/service/ghost'))).toBe(check);
      expect(idx(await get(c, '/v1/catalog/service/ghost'))).toBe(check - 1);
      // After a name went extinct: the extinction index for both.
      const gone = c.deregisterService('n', 'a');
      c.setCheck('n', 'serfHealth', 'warning');
      expect(idx(await get(c, '/v1/health/service/ghost'))).toBe(gone);
      expect(idx(await get(c, '/v1/catalog/service/a'))).toBe(gone);
    } finally {
      await c.close();
    }
  });

  it('tags of /v1/catalog/services in sorted order only when asked', async () => {
    const c = await startFakeConsul({ catalog: demo(), tagOrder: 'sorted' });
    try {
      expect((await get(c, '/v1/catalog/services')).json().web).toEqual(['admin', 'http', 'v1', 'v2']);
    } finally {
      await c.close();
    }
  });
});
