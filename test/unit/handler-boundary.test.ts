/**
 * QueryHandler.handle never throws (the UDP and TCP listeners call it from socket event handlers,
 * where a throw would end the process): a throw while answering a parsed query is SERVFAIL; one
 * outside that boundary (here: reading the zone for the response cache, before parsing) drops the
 * query, counted as an internal error.
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { DnsCounters } from '../../src/dns/counters.js';
import { QueryHandler } from '../../src/dns/handler.js';
import { silentLogger } from '../../src/log.js';
import { buildQuery, decode } from '../support/dns-client.js';

const config = loadConfig({ object: { dns: '127.0.0.1:0' } });
const failingStore = { current: (): never => { throw new Error('store exploded'); } };

function handler(cacheBytes: number) {
  const counters = new DnsCounters();
  const h = new QueryHandler({ store: failingStore, config, logger: silentLogger(), counters, cacheBytes });
  return { h, counters };
}

describe('QueryHandler.handle never throws', () => {
  it('a throw while answering a parsed query is SERVFAIL (cache off: the zone is read inside the boundary)', () => {
    const { h, counters } = handler(0);
    const r = h.handle(buildQuery('web.service.consul', 'A', { id: 9 }), false);
    expect(r).not.toBeNull();
    expect(decode(r!).rcode).toBe('SERVFAIL');
    expect(decode(r!).id).toBe(9);
    expect(counters.internalErrors).toBe(1);
    expect(counters.responses[2]).toBe(1);
  });

  it('a throw before the query is parsed (the response cache reads the zone first) drops it, counted', () => {
    const { h, counters } = handler(1024 * 1024);
    expect(() => h.handle(buildQuery('web.service.consul', 'A'), false)).not.toThrow();
    expect(h.handle(buildQuery('web.service.consul', 'A'), false)).toBeNull();
    expect(counters.internalErrors).toBe(2);
    expect(counters.dropped).toBe(2);
  });

  it('over TCP the same query reaches the SERVFAIL boundary (no response cache there)', () => {
    const { h } = handler(1024 * 1024);
    expect(decode(h.handle(buildQuery('web.service.consul', 'A'), true)!).rcode).toBe('SERVFAIL');
  });
});
