/**
 * Prometheus metrics: the hot path counts in plain numbers (DnsCounters), and this registry reads
 * them at scrape time (`collect`), so a query never pays for prom-client. Names follow
 * `catalog_dns_<subsystem>_<name>_<unit>`; no label holds a query name or a client address.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ConsulCatalogSource } from '../catalog/consul-source.js';
import type { CatalogSource } from '../catalog/source.js';
import type { DnsCounters } from '../dns/counters.js';
import type { QueryHandler } from '../dns/handler.js';
import type { ZoneStore } from '../zone/store.js';

const RCODES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];
const QTYPES: Record<number, string> = { 1: 'A', 2: 'NS', 5: 'CNAME', 6: 'SOA', 12: 'PTR', 15: 'MX', 16: 'TXT', 28: 'AAAA', 33: 'SRV', 35: 'NAPTR', 64: 'SVCB', 65: 'HTTPS', 251: 'IXFR', 252: 'AXFR', 255: 'ANY' };

export interface MetricsSources {
  readonly counters: DnsCounters;
  readonly store: ZoneStore;
  readonly source: CatalogSource;
  readonly handler: () => QueryHandler | null;
}

export class Metrics {
  readonly registry = new Registry();
  /** Observed by the app after each commit (not on the query path). */
  readonly commitSeconds: Histogram;
  /** From the first change read from the source to the commit that serves it. */
  readonly propagationSeconds: Histogram;
  /** A sample of answer times (one query in 32, see QueryHandler). */
  readonly answerSeconds: Histogram;

  constructor(s: MetricsSources) {
    const r = this.registry;
    const c = s.counters;
    const counter = (name: string, help: string, labelNames: string[], collect: (m: Counter) => void) =>
      new Counter({ name, help, labelNames, registers: [r], collect(this: Counter) { this.reset(); collect(this); } });
    const gauge = (name: string, help: string, collect: (m: Gauge) => void, labelNames: string[] = []) =>
      new Gauge({ name, help, labelNames, registers: [r], collect(this: Gauge) { collect(this); } });

    counter('catalog_dns_queries_total', 'DNS queries received, by transport and query type', ['transport', 'qtype'], (m) => {
      for (const [transport, arr] of [['udp', c.qtypesUdp], ['tcp', c.qtypesTcp]] as const) {
        for (let t = 0; t < arr.length; t++) {
          const n = arr[t]!;
          if (n) m.inc({ transport, qtype: t === 256 ? 'other' : QTYPES[t] ?? `TYPE${t}` }, n);
        }
      }
    });
    counter('catalog_dns_responses_total', 'DNS responses built, by rcode', ['rcode'], (m) => {
      c.responses.forEach((n, i) => { if (n) m.inc({ rcode: RCODES[i] ?? String(i) }, n); });
    });
    const plain: Array<[string, string, () => number]> = [
      ['catalog_dns_dropped_total', 'queries dropped without a reply (malformed beyond a reply, or a response)', () => c.dropped],
      ['catalog_dns_truncated_total', 'responses with records left out to fit', () => c.truncated],
      ['catalog_dns_queries_held_total', 'queries held at a start until the zone was complete', () => c.held],
      ['catalog_dns_internal_errors_total', 'unexpected errors while answering (answered SERVFAIL or dropped)', () => c.internalErrors],
      ['catalog_dns_udp_send_errors_total', 'UDP replies that could not be sent', () => c.sendErrors],
      ['catalog_dns_rrl_dropped_total', 'UDP replies withheld by response rate limiting', () => c.rrlDropped],
      ['catalog_dns_rrl_slipped_total', 'UDP replies sent as TC=1 by response rate limiting', () => c.rrlSlipped],
      ['catalog_dns_tcp_connections_total', 'TCP connections admitted', () => c.tcpConnections],
      ['catalog_dns_tcp_rejected_total', 'TCP connections refused (every slot busy, or the per-client cap)', () => c.tcpRejected + c.tcpRejectedPerClient],
      ['catalog_dns_tcp_closed_total', 'TCP connections closed for idleness, slow frames or unread replies', () => c.tcpIdleClosed + c.tcpFrameTimeouts + c.tcpWriteTimeouts],
      ['catalog_dns_tcp_evicted_total', 'TCP connections closed to admit a new one', () => c.tcpEvictedIdle + c.tcpEvictedStalled + c.tcpEvictedFairShare],
    ];
    for (const [name, help, get] of plain) counter(name, help, [], (m) => { const v = get(); if (v) m.inc(v); });

    const zone = () => s.store.current();
    gauge('catalog_dns_zone_serial', 'SOA serial of the zone served', (m) => { const z = zone(); if (z) m.set(z.serial); });
    gauge('catalog_dns_zone_records', 'records in the zone served', (m) => { const z = zone(); if (z) m.set(z.stats.records); });
    counter('catalog_dns_zone_commits_total', 'zone commits', [], (m) => { if (s.store.commits) m.inc(s.store.commits); });
    gauge('catalog_dns_zone_last_success_seconds', 'seconds since the last successful commit', (m) => {
      if (s.store.lastSuccess !== null) m.set((Date.now() - s.store.lastSuccess) / 1000);
    });
    this.commitSeconds = new Histogram({ name: 'catalog_dns_zone_commit_duration_seconds', help: 'duration of zone commits', registers: [r],
      buckets: [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] });
    this.propagationSeconds = new Histogram({ name: 'catalog_dns_propagation_seconds', help: 'from a change read from the catalog source to the commit that serves it', registers: [r],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] });
    this.answerSeconds = new Histogram({ name: 'catalog_dns_answer_duration_seconds', help: 'time to build a response (one query in 32 sampled)', registers: [r],
      buckets: [0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.005, 0.05] });

    gauge('catalog_dns_cache_bytes', 'memory held by the response cache and the name memo (response_cache_mb)', (m) => {
      const mem = s.handler()?.cacheMemory();
      if (mem?.responses) m.set({ cache: 'responses' }, mem.responses.bytes);
      if (mem?.names) m.set({ cache: 'names' }, mem.names.bytes);
    }, ['cache']);

    const consul = isConsul(s.source) ? s.source : null;
    if (consul) {
      gauge('catalog_dns_consul_up', '1 while Consul answers, 0 while it does not', (m) => m.set(consul.reachable ? 1 : 0));
      gauge('catalog_dns_consul_last_contact_seconds', 'seconds since Consul last gave a fresh answer about the local datacenter', (m) => {
        if (consul.lastContact !== null) m.set((Date.now() - consul.lastContact) / 1000);
      });
      gauge('catalog_dns_consul_watches', 'blocking queries kept open on Consul', (m) => m.set(consul.stats().watches));
      counter('catalog_dns_consul_requests_total', 'requests to Consul, by outcome', ['outcome'], (m) => {
        const st = consul.stats();
        if (st.requests - st.errors) m.inc({ outcome: 'ok' }, st.requests - st.errors);
        if (st.errors) m.inc({ outcome: 'error' }, st.errors);
      });
      counter('catalog_dns_consul_received_bytes_total', 'response bytes received from Consul', [], (m) => { const b = consul.stats().bytes; if (b) m.inc(b); });
      counter('catalog_dns_consul_held_back_total', 'updates held back by the removal guard', [], (m) => { if (consul.heldBack) m.inc(consul.heldBack); });
      counter('catalog_dns_consul_rate_limited_total', 'Consul answers 429 (too many connections or requests from this address)', [], (m) => { const n = consul.stats().rateLimited; if (n) m.inc(n); });
      gauge('catalog_dns_consul_connections_budget', 'connections to a Consul address: the budget (consul_max_connections), and lanes for blocking queries in use and allowed', (m) => {
        const st = consul.stats();
        m.set({ kind: 'budget' }, consul.budget);
        m.set({ kind: 'lanes' }, st.lanes);
        m.set({ kind: 'lane_limit' }, st.laneLimit);
      }, ['kind']);
      counter('catalog_dns_consul_reads_total', 'non-blocking service reads: targeted (a detector named the service) or sweeps (a registration change nobody could pin down)', ['kind'], (m) => {
        const st = consul.stats();
        if (st.targetedReads) m.inc({ kind: 'targeted' }, st.targetedReads);
        if (st.sweepReads) m.inc({ kind: 'sweep' }, st.sweepReads);
      });
      counter('catalog_dns_consul_sweeps_total', 'sweeps of the services without a blocking query of their own', [], (m) => { const n = consul.stats().sweeps; if (n) m.inc(n); });
      gauge('catalog_dns_consul_datacenter_up', 'per followed datacenter: 1 while its reads succeed, 0 while they fail', (m) => {
        for (const [dc, d] of consul.datacenters()) m.set({ dc }, d.status === 'unreachable' ? 0 : 1);
      }, ['dc']);
      gauge('catalog_dns_consul_datacenter_fresh_seconds', 'per followed datacenter: seconds since its last fresh answer (from a server in touch with its leader)', (m) => {
        for (const [dc, d] of consul.datacenters()) if (d.lastFresh !== null) m.set({ dc }, (Date.now() - d.lastFresh) / 1000);
      }, ['dc']);
      gauge('catalog_dns_consul_services', 'per followed datacenter: services with a blocking query of their own (watched) and followed by detectors and sweeps (swept)', (m) => {
        for (const [dc, d] of consul.datacenters()) { m.set({ dc, mode: 'watched' }, d.watched); m.set({ dc, mode: 'swept' }, d.swept); }
      }, ['dc', 'mode']);
    }
  }
}

function isConsul(s: CatalogSource): s is ConsulCatalogSource {
  return s.name === 'consul' && 'stats' in s;
}
