/**
 * The Consul client and the blocking-query loop against the test Consul (a real HTTP server):
 * index rules, failover, errors with stable codes, the token in a header, backoff and its reset.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ConsulClient, ConsulError, type ConsulResponse } from '../../src/catalog/consul-client.js';
import { BlockingWatch, DEFAULT_TIMING } from '../../src/catalog/watch.js';
import { startFakeConsul, type FakeConsul } from '../support/fake-consul.js';

const started: Array<{ close(): Promise<void> } | { destroy(): Promise<void> } | { stop(): Promise<void> }> = [];
afterEach(async () => {
  for (const x of started.splice(0).reverse()) {
    if ('stop' in x) await x.stop();
    else if ('destroy' in x) await x.destroy();
    else await x.close();
  }
});

async function consul(): Promise<FakeConsul> {
  const c = await startFakeConsul({ jitter: false });
  started.push(c);
  c.registerService({ Node: 'n1', Address: '10.0.0.1' }, { ID: 'web-1', Service: 'web', Port: 80 },
    { checks: [{ CheckID: 'service:web-1', Status: 'passing', ServiceID: 'web-1' }] });
  return c;
}

function client(addresses: string[], token?: string): ConsulClient {
  const c = new ConsulClient({ addresses, timeoutMs: 3000, ...(token ? { token } : {}) });
  started.push(c);
  return c;
}

/** A watch that records what it sees; `next(n)` waits until it has seen n responses with data. */
function recorder<T>(cl: ConsulClient, path: string, timing = DEFAULT_TIMING) {
  const seen: Array<ConsulResponse<T>> = [];
  const errors: unknown[] = [];
  let wake: (() => void) | null = null;
  const w = new BlockingWatch<T>(cl, path, { stale: true }, (r) => { seen.push(r); wake?.(); }, (e) => { errors.push(e); wake?.(); }, timing);
  started.push(w);
  const until = async (pred: () => boolean) => {
    for (let i = 0; i < 200 && !pred(); i++) await new Promise<void>((r) => { wake = r; setTimeout(r, 100); });
    expect(pred()).toBe(true);
  };
  return { w, seen, errors, until };
}

describe('ConsulClient', () => {
  it('reads a body with its index and consistency headers', async () => {
    const c = await consul();
    const r = await client([c.url]).get<unknown[]>('/v1/health/service/web', { stale: true });
    expect(r.body).toHaveLength(1);
    expect(r.index).toBeGreaterThan(0);
    expect(r.knownLeader).toBe(true);
  });

  it('sends the token in X-Consul-Token, and a 403 is CDNS_ERR_CONSUL_ACL', async () => {
    const c = await consul();
    c.setAcl({ tokens: { s3cret: 'read' } });
    const ok = await client([c.url], 's3cret').get<unknown[]>('/v1/health/service/web');
    expect(ok.body).toHaveLength(1);
    const e = await client([c.url], 'wrong').get('/v1/health/service/web').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ConsulError);
    expect((e as ConsulError).code).toBe('CDNS_ERR_CONSUL_ACL');
    expect((e as ConsulError).message).not.toContain('wrong');
  });

  it('gives each failure a stable code: no leader, rate limit, bad JSON, cut-off body, refused', async () => {
    const c = await consul();
    const cl = client([c.url]);
    const codeOf = async () => ((await cl.get('/v1/health/service/web').catch((x: unknown) => x)) as ConsulError).code;
    const cases: Array<[Parameters<FakeConsul['addFault']>[0], string]> = [
      [{ kind: 'no-leader' } as never, 'CDNS_ERR_CONSUL_HTTP'],
      [{ kind: 'rate-limit' } as never, 'CDNS_ERR_CONSUL_RATE_LIMITED'],
      [{ kind: 'bad-json' } as never, 'CDNS_ERR_CONSUL_BAD_RESPONSE'],
      [{ kind: 'truncate' } as never, 'CDNS_ERR_CONSUL_BAD_RESPONSE'],
    ];
    for (const [fault, code] of cases) {
      const id = c.addFault(fault);
      expect(await codeOf(), JSON.stringify(fault)).toBe(code);
      c.clearFault(id);
    }
    await c.stop();
    expect(await codeOf()).toBe('CDNS_ERR_CONSUL_UNAVAILABLE');
  });

  it('fails over to the next address when one is down', async () => {
    const down = await consul();
    const up = await consul();
    await down.stop();
    const cl = client([down.url, up.url]);
    await expect(cl.get('/v1/catalog/services')).rejects.toThrow(ConsulError);
    const r = await cl.get<Record<string, unknown>>('/v1/catalog/services');
    expect(Object.keys(r.body)).toContain('web');
    expect(r.address).toBe(new URL(up.url).origin);
  });
});

describe('connections', () => {
  it('non-blocking reads share a small pool; each watch parks on a connection of its own, closed by its stop', async () => {
    const c = await consul();
    const cl = new ConsulClient({ addresses: [c.url], timeoutMs: 3000, connections: 2 });
    started.push(cl);
    const reads = await Promise.all(Array.from({ length: 8 }, () => cl.get<unknown[]>('/v1/health/service/web', { stale: true })));
    expect(reads.every((r) => r.body.length === 1)).toBe(true);
    expect(c.counters.connectionsTotal).toBeLessThanOrEqual(2);
    const watches = Array.from({ length: 3 }, () => recorder<unknown[]>(cl, '/v1/health/service/web'));
    for (const { w } of watches) w.start();
    await c.until((k) => k.parked === 3);
    // Three parked queries on three connections of their own, next to the pool's (at most 2).
    expect(c.counters.connections).toBeGreaterThanOrEqual(3);
    expect(c.counters.connections).toBeLessThanOrEqual(5);
    expect(cl.laneCount).toBe(3);
    await Promise.all(watches.map(({ w }) => w.stop()));
    expect(cl.laneCount).toBe(0);
    await c.until((k) => k.parked === 0 && k.connections <= 2);
    expect(cl.errors).toBe(0); // a stop is not a Consul failure
  });

  it('holds the first blocking query until beforeBlocking lets it, then waits past the index it read', async () => {
    const c = await consul();
    const cl = client([c.url]);
    let open: (() => void) | null = null;
    const seen: Array<ConsulResponse<unknown[]>> = [];
    const w = new BlockingWatch<unknown[]>(cl, '/v1/health/service/web', { stale: true }, (r) => { seen.push(r); }, () => {}, DEFAULT_TIMING,
      { beforeBlocking: () => new Promise<void>((r) => { open = r; }) });
    started.push(w);
    w.start();
    for (let i = 0; i < 100 && !open; i++) await new Promise((r) => setTimeout(r, 20));
    expect(open).not.toBeNull();
    expect(seen).toHaveLength(1);
    expect(c.counters.parked).toBe(0);
    // A change while the watch is held back is not lost: its blocking query returns at once.
    c.registerService({ Node: 'n2', Address: '10.0.0.2' }, { ID: 'web-2', Service: 'web', Port: 80 });
    open!();
    for (let i = 0; i < 100 && seen.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
    expect(seen[1]!.body).toHaveLength(2);
    await c.until((k) => k.parked === 1);
  });

  it('a watch stopped while held back by beforeBlocking ends at once', async () => {
    const c = await consul();
    const cl = client([c.url]);
    let held = false;
    const w = new BlockingWatch<unknown[]>(cl, '/v1/health/service/web', { stale: true }, () => {}, () => {}, DEFAULT_TIMING,
      { beforeBlocking: (signal) => new Promise<void>((r) => { held = true; signal.addEventListener('abort', () => r(), { once: true }); }) });
    w.start();
    for (let i = 0; i < 100 && !held; i++) await new Promise((r) => setTimeout(r, 20));
    expect(held).toBe(true);
    await w.stop();
    expect(c.counters.parked).toBe(0);
  });
});

describe('BlockingWatch', () => {
  it('reports the first state, then each change, waiting in between (one parked request)', async () => {
    const c = await consul();
    const { w, seen, until } = recorder<unknown[]>(client([c.url]), '/v1/health/service/web');
    w.start();
    await until(() => seen.length === 1);
    await c.until((k) => k.parked === 1);
    c.registerService({ Node: 'n2', Address: '10.0.0.2' }, { ID: 'web-2', Service: 'web', Port: 80 });
    await until(() => seen.length === 2);
    expect(seen[1]!.body).toHaveLength(2);
    expect(seen[1]!.index).toBeGreaterThan(seen[0]!.index);
    // An unrelated write does not wake it.
    c.registerService({ Node: 'n3', Address: '10.0.0.3' }, { ID: 'db-1', Service: 'db', Port: 5432 });
    await c.until((k) => k.parked === 1);
    expect(seen).toHaveLength(2);
  });

  it('a list wake that brings the same bytes is not parsed again (reuseSameBody): same body object, same: true', async () => {
    const c = await consul();
    const cl = client([c.url]);
    const seen: Array<ConsulResponse<Record<string, string[]>>> = [];
    const w = new BlockingWatch<Record<string, string[]>>(cl, '/v1/catalog/services', { stale: true }, (r) => { seen.push(r); }, () => {}, DEFAULT_TIMING,
      { reuseSameBody: true });
    started.push(w);
    w.start();
    const until = async (n: number) => {
      for (let i = 0; i < 200 && seen.length < n; i++) await new Promise((r) => setTimeout(r, 25));
      expect(seen.length).toBe(n);
    };
    await until(1);
    expect(seen[0]!.same).toBe(false);
    // A second instance of an existing service with the same tags: the list's index moves, its bytes do not.
    c.registerService({ Node: 'n2', Address: '10.0.0.2' }, { ID: 'web-2', Service: 'web', Port: 80 });
    await until(2);
    expect(seen[1]!.index).toBeGreaterThan(seen[0]!.index);
    expect(seen[1]!.same).toBe(true);
    expect(seen[1]!.body).toBe(seen[0]!.body);
    // A new service changes the bytes: parsed again.
    c.registerService({ Node: 'n3', Address: '10.0.0.3' }, { ID: 'db-1', Service: 'db', Port: 5432 });
    await until(3);
    expect(seen[2]!.same).toBe(false);
    expect(Object.keys(seen[2]!.body).sort()).toEqual(['db', 'web']);
  });

  it('starts over when the index goes backwards (snapshot restore)', async () => {
    const c = await consul();
    c.setCheck('n1', 'service:web-1', 'warning', { serviceId: 'web-1' });
    c.setCheck('n1', 'service:web-1', 'passing', { serviceId: 'web-1' });
    const { w, seen, until } = recorder<unknown[]>(client([c.url]), '/v1/health/service/web');
    w.start();
    await until(() => seen.length === 1);
    expect(seen[0]!.index).toBeGreaterThan(2);
    await c.until((k) => k.parked === 1);
    c.resetIndex(1);
    await until(() => w.resets === 1);
    c.registerService({ Node: 'n2', Address: '10.0.0.2' }, { ID: 'web-2', Service: 'web', Port: 80 });
    await until(() => seen.some((r) => (r.body as unknown[]).length === 2));
    expect(w.lastIndex).toBeLessThan(seen[0]!.index + 5);
  });

  it('backs off on errors and recovers when Consul does, reporting each failure', async () => {
    const c = await consul();
    const timing = { ...DEFAULT_TIMING, backoffMs: 20, maxBackoffMs: 100 };
    const { w, seen, errors, until } = recorder<unknown[]>(client([c.url]), '/v1/health/service/web', timing);
    const fault = c.addFault({ kind: 'status', status: 500, body: 'No cluster leader' } as never);
    w.start();
    await until(() => errors.length >= 3);
    expect(seen).toHaveLength(0);
    c.clearFault(fault);
    await until(() => seen.length === 1);
    expect((errors[0] as ConsulError).code).toBe('CDNS_ERR_CONSUL_HTTP');
  });

  it('stop() ends a parked request at once', async () => {
    const c = await consul();
    const { w, seen, until } = recorder<unknown[]>(client([c.url]), '/v1/health/service/web');
    w.start();
    await until(() => seen.length === 1);
    await c.until((k) => k.parked === 1);
    await w.stop();
    await c.until((k) => k.parked === 0);
  });
});
