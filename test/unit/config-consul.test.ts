/**
 * A Consul agent's JSON configuration read by --config as it is (README "A Consul agent's
 * configuration"): the keys that mean something here are used, the ones that cannot apply are
 * warned about once each, a key neither knows is an error; and where every value came from.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, loadConfigReport, optionSource, serviceTtlFor, type Sources } from '../../src/config.js';
import { closest } from '../../src/config-consul.js';
import { configError, configFiles } from '../support/config-files.js';

const fixture = new URL('../../fixtures/consul-agent.json', import.meta.url).pathname;
const { dir, file } = configFiles('catalog-dns-config-consul-');

describe('fixtures/consul-agent.json: a Consul server agent configuration with a full dns_config', () => {
  const { config: c, warnings } = loadConfigReport({ configFile: fixture });

  it('uses what means something here', () => {
    expect([c.domain, c.altDomain, c.datacenter, c.dataDir, c.logLevel]).toEqual(['consul', 'consul.example.internal', 'dc1', '/opt/consul', 'info']);
    expect([c.dnsHost, c.dnsPort]).toEqual(['127.0.0.1', 8600]); // addresses.dns over client_addr, ports.dns
    expect([c.nodeTtl, c.onlyPassing, c.udpAnswerLimit, c.aRecordLimit, c.enableTruncate, c.enableAdditionalNodeMetaTxt]).toEqual([30, true, 3, 0, true, true]);
    expect([serviceTtlFor(c.serviceTtl, 'web'), serviceTtlFor(c.serviceTtl, 'db-main'), serviceTtlFor(c.serviceTtl, 'other')]).toEqual([30, 10, 5]);
    expect(c.soa).toEqual({ refresh: 3600, retry: 600, expire: 86400, minTtl: 0 });
    expect(c.maxStale).toBe(87600 * 3600); // Consul's default, the largest max_stale
  });

  it('warns once for each dns_config key that cannot apply, and once listing the agent settings ignored', () => {
    const at = (k: string) => `${fixture}: ${k}`;
    expect(warnings.map((w) => w.where)).toEqual([
      ...['allow_stale', 'recursor_strategy', 'recursor_timeout', 'disable_compression', 'use_cache', 'cache_max_age', 'prefer_namespace'].map((k) => at(`dns_config.${k}`)),
      at('recursors'),
      fixture,
    ]);
    for (const w of warnings) expect(w.reason).not.toContain('\n');
    expect(warnings.find((w) => w.where === at('dns_config.allow_stale'))!.reason).toMatch(/always answers from its snapshot/);
    expect(warnings.find((w) => w.where === at('recursors'))!.reason).toMatch(/authoritative only/);
    expect(warnings.at(-1)!.reason).toBe('ignored Consul agent settings that do not apply to a DNS server fed from the catalog: '
      + 'ports.http, ports.grpc, addresses.http, node_name, server, bootstrap_expect, bind_addr, retry_join, encrypt, ui_config, acl, performance, telemetry');
  });

  it('flags and environment still win over the file', () => {
    const r = loadConfig({ configFile: fixture, env: { CATALOG_DNS_NODE_TTL: '1m' }, flags: { dns: '127.0.0.1:0', data_dir: dir } });
    expect([r.nodeTtl, r.dnsPort, r.dataDir]).toEqual([60, 0, dir]);
  });
});

describe('the DNS listen address from ports.dns, addresses.dns and client_addr (as Consul forms it)', () => {
  it.each([
    [{ ports: { dns: 53 } }, '127.0.0.1', 53],
    [{ addresses: { dns: '10.0.0.5' } }, '10.0.0.5', 8600],
    [{ client_addr: '0.0.0.0' }, '0.0.0.0', 8600],
    [{ client_addr: '0.0.0.0', addresses: { dns: '127.0.0.2' }, ports: { dns: 8653 } }, '127.0.0.2', 8653],
    [{ addresses: { dns: '::1' }, ports: { dns: 5353 } }, '::1', 5353],
    [{ addresses: { http: '0.0.0.0' }, ports: { http: 8500 } }, '127.0.0.1', 8600], // nothing about DNS: our default
  ] as const)('%j -> %s port %i', (doc, host, port) => {
    const c = loadConfig({ object: doc });
    expect([c.dnsHost, c.dnsPort]).toEqual([host, port]);
  });

  it('ports.dns -1 (Consul DNS off, catalog-dns in its place) is accepted with a warning; the default port is used', () => {
    const r = loadConfigReport({ object: { ports: { dns: -1 } } });
    expect([r.config.dnsHost, r.config.dnsPort]).toEqual(['127.0.0.1', 8600]);
    expect(r.warnings).toEqual([{ where: 'ports.dns', reason: "-1 turns Consul's own DNS off; catalog-dns, which serves DNS in its place, listens on port 8600 unless dns says otherwise" }]);
  });

  it('dns in the same file wins, and says so', () => {
    const r = loadConfigReport({ object: { dns: '127.0.0.1:5300', ports: { dns: 53 } } });
    expect(r.config.dnsPort).toBe(5300);
    expect(r.warnings).toEqual([{ where: 'ports.dns', reason: 'ignored: the file also sets dns, which gives the DNS listen address' }]);
  });

  it.each([
    [{ addresses: { dns: '{{ GetPrivateIP }}' } }, 'addresses.dns: "{{ GetPrivateIP }}": go-sockaddr templates are not supported; give the IP address to listen on (or set dns)'],
    [{ client_addr: '{{ GetAllInterfaces | include "flags" "loopback" | join "address" " " }}' }, /^client_addr: .*go-sockaddr templates are not supported/],
    [{ client_addr: '127.0.0.1 10.0.0.5' }, 'client_addr: "127.0.0.1 10.0.0.5": catalog-dns listens on one address; give one IP (or set dns)'],
    [{ addresses: { dns: 'localhost' } }, 'addresses.dns: "localhost" is not an IP address'],
    [{ addresses: { dns: 'unix:///run/consul.sock' } }, /^addresses\.dns: .*give an IP address$/],
    [{ ports: { dns: '8600' } }, 'ports.dns: expected a port number (Consul: -1 turns DNS off)'],
    [{ ports: { dns: 70000 } }, 'ports.dns: expected a port number (Consul: -1 turns DNS off)'],
    [{ ports: { dnz: 53 } }, 'ports.dnz: unknown Consul ports key (catalog-dns uses ports.dns)'],
    [{ addresses: 'x' }, 'addresses: expected an object'],
  ] as Array<[Sources['object'], string | RegExp]>)('%j is refused naming the key', (doc, message) => {
    const e = configError({ object: doc! });
    if (typeof message === 'string') expect(e.message).toBe(message);
    else expect(e.message).toMatch(message);
  });

  it('in a file, the error names the file and the key', () => {
    const p = file({ addresses: { dns: '{{ GetPrivateIP }}' } });
    expect(configError({ configFile: p }).key).toBe(`${p}: addresses.dns`);
  });
});

describe('other agent keys', () => {
  it('a key that neither catalog-dns nor Consul knows stays an error naming it', () => {
    const p = file({ server: true, bootstrap_expect: 3, serverr: true });
    expect(configError({ configFile: p }).message).toBe(`${p}: serverr: unknown option`);
    expect(configError({ object: { dns_config: { recursor: ['1.1.1.1'] } } }).message).toBe('dns_config.recursor: unknown option');
  });

  it('deprecated agent keys Consul still reads are ignored like the others', () => {
    const r = loadConfigReport({ object: { acl_datacenter: 'dc1', start_join: ['10.0.0.1'], ca_file: '/etc/consul/ca.pem' } });
    expect(r.warnings).toHaveLength(1);
    expect(r.warnings[0]!.reason).toMatch(/: acl_datacenter, start_join, ca_file$/);
  });

  it("Consul's internal \"consul\" block is not our list of Consul addresses", () => {
    const r = loadConfigReport({ object: { consul: { raft: { election_timeout: '5s' } } } });
    expect(r.config.consul).toEqual([]);
    expect(r.warnings[0]!.reason).toMatch(/: consul$/);
    expect(loadConfig({ object: { consul: 'http://127.0.0.1:8500' } }).consul).toEqual(['http://127.0.0.1:8500']);
  });

  it("log_level is read in Consul's spellings", () => {
    expect(loadConfig({ object: { log_level: 'DEBUG' } }).logLevel).toBe('debug');
    expect(loadConfig({ object: { log_level: 'err' } }).logLevel).toBe('error');
    expect(loadConfig({ object: { log_level: 'WARN' } }).logLevel).toBe('warn');
  });

  it('allow_stale false gets its own reason: answers always come from the snapshot', () => {
    const r = loadConfigReport({ object: { dns_config: { allow_stale: false } } });
    expect(r.warnings).toEqual([{ where: 'dns_config.allow_stale', reason: expect.stringMatching(/cannot ask the leader per query; max_stale bounds/) }]);
  });
});

describe('datacenter', () => {
  it('is the local datacenter, lower case, from any source', () => {
    expect(loadConfig({ object: { datacenter: 'DC2' } }).datacenter).toBe('dc2');
    expect(loadConfig({ env: { CATALOG_DNS_DATACENTER: 'east' } }).datacenter).toBe('east');
    expect(loadConfig({}).datacenter).toBeNull();
  });

  it('must be among the datacenters followed when those are listed', () => {
    expect(loadConfig({ object: { datacenter: 'dc2', datacenters: ['dc1', 'dc2'] } }).datacenter).toBe('dc2');
    expect(configError({ flags: { datacenter: 'dc3', datacenters: 'dc1,dc2' } }).message)
      .toBe('--datacenter: "dc3" is not among the datacenters followed (--datacenters: dc1,dc2); the local datacenter must be one of them');
  });
});

describe('unknown CATALOG_DNS_* variables', () => {
  it('get a warning naming them, and the closest known name', () => {
    const r = loadConfigReport({ env: { CATALOG_DNS_NODE_TLL: '5s', CATALOG_DNS_ZZZZZZ: 'x', CATALOG_DNS_EMPTY: '', PATH: '/bin' } });
    expect(r.warnings).toEqual([
      { where: 'CATALOG_DNS_NODE_TLL', reason: 'unknown variable, ignored (did you mean CATALOG_DNS_NODE_TTL?)' },
      { where: 'CATALOG_DNS_ZZZZZZ', reason: 'unknown variable, ignored' },
    ]);
  });

  it('CATALOG_DNS_CONFIG is known', () => {
    expect(loadConfigReport({ env: { CATALOG_DNS_CONFIG: '/x.json' } }).warnings).toEqual([]);
  });

  it('closest: a small edit away, or nothing', () => {
    expect(closest('only_pasing', ['only_passing', 'node_ttl'])).toBe('only_passing');
    expect(closest('abc', ['only_passing', 'node_ttl'])).toBeNull();
  });
});

describe('optionSource: where each value came from, for errors found after loading', () => {
  it('names the flag, the variable, the file key as written, or the flag for a default', () => {
    const p = file({ dns_config: { node_ttl: '5s' }, data_dir: '/var/lib/x' });
    const c = loadConfig({ configFile: p, env: { CONSUL_HTTP_ADDR: '127.0.0.1:8500', CATALOG_DNS_CONSUL_CACERT: '/ca.pem' }, flags: { catalog_file: 'c.json' } });
    expect(optionSource(c, 'node_ttl')).toBe(`${p}: dns_config.node_ttl`);
    expect(optionSource(c, 'data_dir')).toBe(`${p}: data_dir`);
    expect(optionSource(c, 'consul')).toBe('CONSUL_HTTP_ADDR');
    expect(optionSource(c, 'consul_cacert')).toBe('CATALOG_DNS_CONSUL_CACERT');
    expect(optionSource(c, 'catalog_file')).toBe('--catalog-file');
    expect(optionSource(c, 'max_stale')).toBe('--max-stale');
    expect(optionSource(c, 'consul_token')).toBe('CATALOG_DNS_CONSUL_TOKEN'); // no flag: never on the command line
    const d = loadConfig({ configFile: file({ data_dir: '/var/lib/y' }), flags: { data_dir: '/var/lib/z' } });
    expect(optionSource(d, 'data_dir')).toBe('--data-dir');
  });

  it('a token file that cannot be read is named by where its path came from', () => {
    const p = file({ consul_token_file: join(dir, 'no-token') });
    expect(configError({ configFile: p }).message).toMatch(new RegExp(`^${p.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: consul_token_file: cannot read `));
    expect(configError({ env: { CONSUL_HTTP_TOKEN_FILE: join(dir, 'no-token') } }).key).toBe('CONSUL_HTTP_TOKEN_FILE');
  });
});
