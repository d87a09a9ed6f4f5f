/**
 * Configuration: precedence flag > environment > file > default, durations, service_ttl, and every
 * bad value reported as a ConfigError naming the option as the user wrote it.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { OPTIONS, envName, loadConfig, loadConfigReport, parseDuration, serviceTtlFor, type Sources } from '../../src/config.js';
import { configError, configFiles } from '../support/config-files.js';

const { dir, file } = configFiles('catalog-dns-config-');

describe('defaults (Consul dns_config defaults, docs/consul-dns.md §2)', () => {
  const c = loadConfig();
  it.each([
    ['domain', 'consul'],
    ['compat', 'rfc'],
    ['nodeTtl', 0],
    ['serviceTtl', []],
    ['onlyPassing', false],
    ['udpAnswerLimit', 3],
    ['aRecordLimit', 0],
    ['enableTruncate', true], // rfc mode (docs/consul-dns.md §12.2)
    ['enableAdditionalNodeMetaTxt', true],
    ['translateWanAddrs', false],
    ['soa', { refresh: 3600, retry: 600, expire: 86400, minTtl: 0 }],
    ['ptrTtl', 0],
    ['negativeTtl', null],
    ['maxUdpSize', 1232],
    ['rrlResponsesPerSecond', 0], // rate limiting off
    ['rrlSlip', 2],
    ['rrlWindow', 15],
    ['rrlIpv4Prefix', 24],
    ['rrlIpv6Prefix', 56],
    ['reverseZones', null], // derived from the catalog (README "Reverse zones")
  ] as const)('%s = %j', (k, v) => {
    expect(c[k]).toEqual(v);
  });

  it('enable_truncate defaults to false with compat consul, and can be set either way', () => {
    expect(loadConfig({ object: { compat: 'consul' } }).enableTruncate).toBe(false);
    expect(loadConfig({ object: { compat: 'consul', enable_truncate: true } }).enableTruncate).toBe(true);
    expect(loadConfig({ object: { enable_truncate: false } }).enableTruncate).toBe(false);
  });
});

describe('precedence: flag > environment > file > default', () => {
  const path = file({ node_ttl: '10s', only_passing: true, udp_answer_limit: 4 });

  it('file over default', () => {
    const c = loadConfig({ configFile: path });
    expect([c.nodeTtl, c.onlyPassing, c.udpAnswerLimit]).toEqual([10, true, 4]);
  });

  it('environment over file', () => {
    const c = loadConfig({ configFile: path, env: { CATALOG_DNS_NODE_TTL: '20s', CATALOG_DNS_ONLY_PASSING: 'false' } });
    expect([c.nodeTtl, c.onlyPassing, c.udpAnswerLimit]).toEqual([20, false, 4]);
  });

  it('flag over environment', () => {
    const c = loadConfig({ configFile: path, env: { CATALOG_DNS_NODE_TTL: '20s' }, flags: { node_ttl: '30s' } });
    expect(c.nodeTtl).toBe(30);
  });

  it('unrelated environment variables are ignored', () => {
    expect(loadConfig({ env: { CATALOG_DNS_NOPE: 'x', PATH: '/bin' } }).nodeTtl).toBe(0);
  });

  it('an empty environment variable counts as unset, for every option and alias', () => {
    const env: Record<string, string> = {};
    for (const s of OPTIONS) for (const name of [envName(s), ...(s.envAliases ?? [])]) env[name] = '';
    const { config, warnings } = loadConfigReport({ env });
    expect(config).toEqual(loadConfig());
    expect(warnings).toEqual([]);
    // And an empty CATALOG_DNS_* falls through to Consul's variable.
    expect(loadConfig({ env: { CATALOG_DNS_CONSUL: '', CONSUL_HTTP_ADDR: '10.0.0.1:8500' } }).consul).toEqual(['http://10.0.0.1:8500']);
  });

  it('nested soa settings in the file, in dns_config, and from env/flags', () => {
    const p = file({ dns_config: { soa: { refresh: '2h', min_ttl: 5 }, node_ttl: 7 } });
    const c = loadConfig({ configFile: p, env: { CATALOG_DNS_SOA_RETRY: '1m' }, flags: { 'soa.expire': '72h' } });
    expect(c.soa).toEqual({ refresh: 7200, retry: 60, expire: 259200, minTtl: 5 });
    expect(c.nodeTtl).toBe(7);
    expect(loadConfig({ object: { soa: { min_ttl: '30s' } } }).soa.minTtl).toBe(30);
  });

  it('the domain is canonical: lower case, no trailing dot', () => {
    expect(loadConfig({ object: { domain: 'Consul.' } }).domain).toBe('consul');
    expect(loadConfig({ flags: { domain: 'dc.Example.ORG' } }).domain).toBe('dc.example.org');
  });
});

describe('durations (Go style or seconds, whole seconds)', () => {
  it.each([
    ['30s', 30], ['5m', 300], ['1h', 3600], ['1m30s', 90], ['1h30m', 5400], ['2h0m5s', 7205], ['87600h', 315_360_000],
    ['1.5h', 5400], ['0.5m', 30], ['1000ms', 1], ['2000000us', 2], ['3000000000ns', 3], ['0.1s', 0.1],
    ['1500ms', 1.5], ['500ms', 0.5], ['1.5s', 1.5], ['90', 90], [' 10s ', 10], [45, 45], [2.9, 2.9], [0, 0], ['0s', 0],
  ] as const)('%j -> %s seconds, exactly', (v, want) => {
    expect(parseDuration(v)).toBe(want);
  });

  it('adds exactly: 0.1s and 0.2s make 0.3 s, and 0.7s + 300ms a whole second', () => {
    expect(parseDuration('0.1s200ms')).toBe(0.3);
    expect(parseDuration('0.7s300ms')).toBe(1);
  });

  it.each([
    [{ flags: { node_ttl: '1500ms' } }, '--node-ttl: "1500ms" is not a whole number of seconds; this option counts whole seconds (1s or 2s)'],
    [{ env: { CATALOG_DNS_SOA_MIN_TTL: '500ms' } }, 'CATALOG_DNS_SOA_MIN_TTL: "500ms" is less than a second; this option counts whole seconds'],
    [{ object: { dns_config: { node_ttl: 2.5 } } }, 'dns_config.node_ttl: 2.5 is not a whole number of seconds; this option counts whole seconds (2s or 3s)'],
    [{ object: { service_ttl: { web: '1.5s' } } }, 'service_ttl: web: "1.5s" is not a whole number of seconds; this option counts whole seconds (1s or 2s)'],
    [{ object: { tcp_idle_timeout: '0.5s' } }, 'tcp_idle_timeout: "0.5s" is less than a second; this option counts whole seconds'],
  ] as Array<[Sources, string]>)('a fraction of a second is refused, never rounded: %j', (src, message) => {
    expect(configError(src).message).toBe(message);
  });

  it.each([['abc'], ['10x'], ['-5s'], [-5], ['1m30'], [''], ['s'], [true], [null], [{}], [Number.NaN], [Infinity]])('%j is not a duration', (v) => {
    expect(parseDuration(v)).toBeNull();
  });

  it('duration options accept both forms', () => {
    expect(loadConfig({ object: { node_ttl: '1m' } }).nodeTtl).toBe(60);
    expect(loadConfig({ object: { node_ttl: 60 } }).nodeTtl).toBe(60);
    expect(loadConfig({ env: { CATALOG_DNS_PTR_TTL: '60' } }).ptrTtl).toBe(60);
    expect(loadConfig({ object: { tcp_idle_timeout: '2s' } }).tcpIdleTimeoutMs).toBe(2000);
    expect(loadConfig({ object: { tcp_frame_timeout: '5s' } }).tcpFrameTimeoutMs).toBe(5000);
  });
});

describe('TCP slot options', () => {
  it('default to a 3 s frame deadline and 64 connections per client address; 0 lifts the per-client cap', () => {
    const d = loadConfig({});
    expect([d.tcpFrameTimeoutMs, d.tcpMaxConnectionsPerClient]).toEqual([3000, 64]);
    expect(loadConfig({ flags: { tcp_max_connections_per_client: '0' } }).tcpMaxConnectionsPerClient).toBe(0);
    expect(loadConfig({ env: { CATALOG_DNS_TCP_FRAME_TIMEOUT: '1' } }).tcpFrameTimeoutMs).toBe(1000);
  });
});

describe('service_ttl', () => {
  it('as a JSON object in the file', () => {
    const c = loadConfig({ configFile: file({ service_ttl: { '*': '5s', web: '30s', 'db*': 10 } }) });
    expect(c.serviceTtl).toEqual(expect.arrayContaining([
      { prefix: '', wildcard: true, ttl: 5 }, { prefix: 'web', wildcard: false, ttl: 30 }, { prefix: 'db', wildcard: true, ttl: 10 },
    ]));
    expect(c.serviceTtl).toHaveLength(3);
  });

  it('as "name=duration,..." from the environment or a flag', () => {
    const c = loadConfig({ env: { CATALOG_DNS_SERVICE_TTL: '*=5s, web=30s,api*=1m' } });
    expect(serviceTtlFor(c.serviceTtl, 'web')).toBe(30);
    expect(serviceTtlFor(c.serviceTtl, 'api-gw')).toBe(60);
    expect(serviceTtlFor(c.serviceTtl, 'other')).toBe(5);
  });

  it('as a JSON object string', () => {
    const c = loadConfig({ flags: { service_ttl: '{"web": "15s"}' } });
    expect(serviceTtlFor(c.serviceTtl, 'web')).toBe(15);
  });
});

describe('serviceTtlFor: exact, then the longest prefix*, then *, else 0 (docs/consul-dns.md §2)', () => {
  const rules = loadConfig({ object: { service_ttl: { '*': 1, 'w*': 2, 'web*': 3, web: 4, 'web-api*': 5, Billing: 6 } } }).serviceTtl;
  it.each([
    ['web', 4], // exact beats the prefixes that also match
    ['web-api', 5], // longest prefix
    ['web-api-v2', 5],
    ['webhook', 3],
    ['worker', 2],
    ['db', 1], // catch-all
    ['WEB', 4], // names are matched case-insensitively
    ['billing', 6],
  ] as const)('%s -> %i', (name, want) => {
    expect(serviceTtlFor(rules, name)).toBe(want);
  });

  it('no rule and no catch-all: 0 (legacy; v2 used node_ttl)', () => {
    const r = loadConfig({ object: { service_ttl: { web: 4 }, node_ttl: 60 } }).serviceTtl;
    expect(serviceTtlFor(r, 'db')).toBe(0);
    expect(serviceTtlFor([], 'web')).toBe(0);
  });
});

describe('reverse_zones', () => {
  it('from a flag or the environment: comma-separated CIDR prefixes and zone names, as sorted apexes', () => {
    expect(loadConfig({ flags: { reverse_zones: '10.0.0.0/8,2001:db8::/32' } }).reverseZones).toEqual(['10.in-addr.arpa', '8.b.d.0.1.0.0.2.ip6.arpa']);
    expect(loadConfig({ env: { CATALOG_DNS_REVERSE_ZONES: '172.16.in-addr.arpa, 10.0.1.0/24' } }).reverseZones).toEqual(['1.0.10.in-addr.arpa', '172.16.in-addr.arpa']);
  });

  it('from a config file: a JSON list or a string, also under dns_config', () => {
    expect(loadConfig({ configFile: file({ reverse_zones: ['10.0.0.0/8', '10.IN-ADDR.ARPA.'] }) }).reverseZones).toEqual(['10.in-addr.arpa']);
    expect(loadConfig({ configFile: file({ dns_config: { reverse_zones: '192.168.0.0/16' } }) }).reverseZones).toEqual(['168.192.in-addr.arpa']);
  });

  it('empty: no reverse zones (every reverse name REFUSED)', () => {
    expect(loadConfig({ flags: { reverse_zones: '' } }).reverseZones).toEqual([]);
    expect(loadConfig({ object: { reverse_zones: [] } }).reverseZones).toEqual([]);
  });

  it('a flag overrides the file', () => {
    const c = loadConfig({ configFile: file({ reverse_zones: ['10.0.0.0/8'] }), flags: { reverse_zones: '172.16.0.0/16' } });
    expect(c.reverseZones).toEqual(['16.172.in-addr.arpa']);
  });

  it.each([
    [{ flags: { reverse_zones: '10.0.0.0/20' } }, '--reverse-zones: "10.0.0.0/20": IPv4 reverse zones are on octet boundaries (/0, /8, /16, /24, /32)'],
    [{ flags: { reverse_zones: '2001:db8::/30' } }, '--reverse-zones: "2001:db8::/30": IPv6 reverse zones are on nibble boundaries (a prefix length that is a multiple of 4)'],
    [{ env: { CATALOG_DNS_REVERSE_ZONES: '10.1.0.0/8' } }, 'CATALOG_DNS_REVERSE_ZONES: "10.1.0.0/8": has bits set beyond the /8 prefix'],
    [{ object: { reverse_zones: ['example.com'] } }, 'reverse_zones: "example.com": expected a CIDR prefix (10.0.0.0/8, 2001:db8::/32) or a reverse zone name (10.in-addr.arpa)'],
    [{ object: { reverse_zones: '300.in-addr.arpa' } }, 'reverse_zones: "300.in-addr.arpa": an in-addr.arpa zone has up to 4 labels of 0-255 before in-addr.arpa'],
    [{ object: { reverse_zones: '10.0.0.0/8,10.1.0.0/16' } }, 'reverse_zones: "10.1.0.0/16" (1.10.in-addr.arpa) lies inside "10.0.0.0/8" (10.in-addr.arpa); list only one of them'],
    [{ object: { reverse_zones: 8 } }, 'reverse_zones: expected a list of CIDR prefixes or reverse zone names ("10.0.0.0/8,2001:db8::/32")'],
  ] as Array<[Sources, string]>)('%j: %s', (src, message) => {
    expect(configError(src).message).toBe(message);
  });

  it('in a config file: names the file and the key', () => {
    const p = file({ reverse_zones: ['10.0.0.0/7'] });
    expect(configError({ configFile: p }).message).toBe(`${p}: reverse_zones: "10.0.0.0/7": IPv4 reverse zones are on octet boundaries (/0, /8, /16, /24, /32)`);
  });
});

describe('bad values name the option as the user wrote it', () => {
  it.each([
    [{ object: { udp_answer_limit: 0 } }, 'udp_answer_limit'],
    [{ object: { udp_answer_limit: 'many' } }, 'udp_answer_limit'],
    [{ object: { a_record_limit: -1 } }, 'a_record_limit'],
    [{ object: { a_record_limit: 1.5 } }, 'a_record_limit'],
    [{ object: { max_udp_size: 511 } }, 'max_udp_size'],
    [{ object: { node_ttl: 'soon' } }, 'node_ttl'],
    [{ object: { node_ttl: '100000000000s' } }, 'node_ttl'],
    [{ object: { service_ttl: 'web' } }, 'service_ttl'],
    [{ object: { service_ttl: 'web=forever' } }, 'service_ttl'],
    [{ object: { service_ttl: { web: 'x' } } }, 'service_ttl'],
    [{ object: { service_ttl: [1] } }, 'service_ttl'],
    [{ object: { service_ttl: '{broken' } }, 'service_ttl'],
    [{ object: { only_passing: 'maybe' } }, 'only_passing'],
    [{ object: { enable_truncate: 2 } }, 'enable_truncate'],
    [{ object: { enable_additional_node_meta_txt: 'on' } }, 'enable_additional_node_meta_txt'],
    [{ object: { compat: 'bind' } }, 'compat'],
    [{ object: { domain: 'bad..name' } }, 'domain'],
    [{ object: { domain: '' } }, 'domain'],
    [{ object: { dns: 'localhost:53' } }, 'dns'],
    [{ object: { dns: '::1:53' } }, 'dns'],
    [{ object: { dns: '127.0.0.1:70000' } }, 'dns'],
    [{ object: { log_level: 'loud' } }, 'log_level'],
    [{ object: { soa: { refresh: 'later' } } }, 'soa.refresh'],
    [{ object: { soa: { min_ttl: -1 } } }, 'soa.min_ttl'],
    [{ object: { soa: 5 } }, 'soa'],
    [{ object: { tcp_idle_timeout: 0 } }, 'tcp_idle_timeout'],
    [{ object: { max_udp_size: 4097 } }, 'max_udp_size'],
    [{ object: { rrl_responses_per_second: -1 } }, 'rrl_responses_per_second'],
    [{ object: { rrl_slip: 11 } }, 'rrl_slip'],
    [{ object: { rrl_window: 0 } }, 'rrl_window'],
    [{ object: { rrl_window: '2h' } }, 'rrl_window'],
    [{ object: { rrl_ipv4_prefix: 33 } }, 'rrl_ipv4_prefix'],
    [{ object: { rrl_ipv6_prefix: 129 } }, 'rrl_ipv6_prefix'],
    [{ object: { tcp_frame_timeout: 0 } }, 'tcp_frame_timeout'],
    [{ object: { tcp_frame_timeout: '500ms' } }, 'tcp_frame_timeout'],
    [{ object: { dns_config: { only_passing: 'sometimes' } } }, 'dns_config.only_passing'],
    [{ object: { dns_config: { soa: { retry: 'x' } } } }, 'dns_config.soa.retry'],
    [{ object: { datacenter: 'dc 1' } }, 'datacenter'],
    [{ env: { CONSUL_HTTP_ADDR: 'ftp://x:1' } }, 'CONSUL_HTTP_ADDR'],
    [{ env: { CATALOG_DNS_CONSUL: 'ftp://x:1', CONSUL_HTTP_ADDR: '127.0.0.1:8500' } }, 'CATALOG_DNS_CONSUL'],
    [{ object: { tcp_max_connections_per_client: -1 } }, 'tcp_max_connections_per_client'],
    [{ object: { no_such_option: 1 } }, 'no_such_option'],
    [{ env: { CATALOG_DNS_UDP_ANSWER_LIMIT: 'x' } }, 'CATALOG_DNS_UDP_ANSWER_LIMIT'],
    [{ env: { CATALOG_DNS_SOA_MIN_TTL: 'x' } }, 'CATALOG_DNS_SOA_MIN_TTL'],
    [{ env: { CATALOG_DNS_SERVICE_TTL: 'web' } }, 'CATALOG_DNS_SERVICE_TTL'],
    [{ flags: { node_ttl: 'x' } }, '--node-ttl'],
    [{ flags: { 'soa.min_ttl': 'x' } }, '--soa-min-ttl'],
    [{ flags: { enable_additional_node_meta_txt: 'x' } }, '--enable-additional-node-meta-txt'],
  ] as Array<[Sources, string]>)('%j -> %s', (src, key) => {
    const e = configError(src);
    expect(e.key).toBe(key);
    expect(e.message.startsWith(`${key}: `)).toBe(true);
    expect(e.message.length).toBeGreaterThan(key.length + 3); // and a reason
  });

  it('in a config file: names the file and the key', () => {
    const p = file({ node_ttl: 'soon' });
    const e = configError({ configFile: p });
    expect(e.key).toBe(`${p}: node_ttl`);
    const p2 = file({ mystery: 1 });
    expect(configError({ configFile: p2 }).message).toBe(`${p2}: mystery: unknown option`);
    const p3 = file({ dns_config: { node_ttl: 'soon' } });
    expect(configError({ configFile: p3 }).key).toBe(`${p3}: dns_config.node_ttl`);
  });

  it('an unknown key close to a known one says which was probably meant', () => {
    const p = file({ node_tll: '5s' });
    expect(configError({ configFile: p }).message).toBe(`${p}: node_tll: unknown option (did you mean node_ttl?)`);
    expect(configError({ object: { dns_config: { only_pasing: true } } }).message).toBe('dns_config.only_pasing: unknown option (did you mean only_passing?)');
  });

  it('an unreadable or non-object config file names --config, or CATALOG_DNS_CONFIG when the path came from there', () => {
    expect(configError({ configFile: join(dir, 'missing.json') }).key).toBe('--config');
    expect(configError({ configFile: file('{not json') }).key).toBe('--config');
    expect(configError({ configFile: file([1, 2]) }).key).toBe('--config');
    expect(configError({ configFile: join(dir, 'missing.json'), configFileFrom: 'CATALOG_DNS_CONFIG' }).key).toBe('CATALOG_DNS_CONFIG');
  });

  it('a Consul HCL file gets a hint that JSON is read', () => {
    const p = join(dir, 'agent.hcl');
    writeFileSync(p, 'datacenter = "dc1"\n');
    expect(configError({ configFile: p }).message).toMatch(/^--config: cannot read .*agent\.hcl: .*\(catalog-dns reads JSON: write the Consul configuration as JSON\)$/);
  });

  it('the reason says what was expected', () => {
    expect(configError({ object: { udp_answer_limit: 0 } }).message).toBe('udp_answer_limit: expected an integer 1-65535');
    expect(configError({ object: { max_udp_size: 100 } }).message).toBe('max_udp_size: expected an integer 512-4096');
    expect(configError({ object: { service_ttl: 'web=forever' } }).message).toMatch(/^service_ttl: web: "forever" is not a duration/);
  });

  it('max_udp_size is capped at 4096, and the error says why', () => {
    expect(loadConfig({ object: { max_udp_size: 4096 } }).maxUdpSize).toBe(4096);
    expect(loadConfig({ object: { max_udp_size: 512 } }).maxUdpSize).toBe(512);
    const why = 'larger UDP replies are fragmented and multiply what a spoofed query can reflect at its victim; clients get large answers over TCP';
    expect(configError({ object: { max_udp_size: 65535 } }).message).toBe(`max_udp_size: 65535 is above 4096: ${why}`);
    expect(configError({ flags: { max_udp_size: '4097' } }).message).toBe(`--max-udp-size: 4097 is above 4096: ${why}`);
    expect(configError({ env: { CATALOG_DNS_MAX_UDP_SIZE: '8192' } }).message).toBe(`CATALOG_DNS_MAX_UDP_SIZE: 8192 is above 4096: ${why}`);
  });

  it('rate limiting options: set by any source, durations for the window', () => {
    const c = loadConfig({
      object: { rrl_responses_per_second: 10, rrl_window: '1m' },
      env: { CATALOG_DNS_RRL_SLIP: '0' },
      flags: { rrl_ipv4_prefix: '32', rrl_ipv6_prefix: '64' },
    });
    expect([c.rrlResponsesPerSecond, c.rrlWindow, c.rrlSlip, c.rrlIpv4Prefix, c.rrlIpv6Prefix]).toEqual([10, 60, 0, 32, 64]);
  });

  it('udp_answer_limit above 8 is accepted (the handler caps it, like Consul), with a warning naming where it was set', () => {
    expect(loadConfig({ object: { udp_answer_limit: 20 } }).udpAnswerLimit).toBe(20);
    const reason = "20 is capped at 8, as by Consul's DNS: at most 8 answers go into a UDP reply without EDNS";
    expect(loadConfigReport({ flags: { udp_answer_limit: '20' } }).warnings).toEqual([{ where: '--udp-answer-limit', reason }]);
    expect(loadConfigReport({ env: { CATALOG_DNS_UDP_ANSWER_LIMIT: '20' } }).warnings).toEqual([{ where: 'CATALOG_DNS_UDP_ANSWER_LIMIT', reason }]);
    const p = file({ dns_config: { udp_answer_limit: 20 } });
    expect(loadConfigReport({ configFile: p }).warnings).toEqual([{ where: `${p}: dns_config.udp_answer_limit`, reason }]);
    expect(loadConfigReport({ object: { udp_answer_limit: 8 } }).warnings).toEqual([]);
  });

  it('a max_stale shorter than the liveness probe allows is accepted with a warning', () => {
    const r = loadConfigReport({ flags: { max_stale: '5s' } });
    expect(r.config.maxStale).toBe(5);
    expect(r.warnings).toEqual([{ where: '--max-stale', reason: '5s may withhold answers while Consul is healthy: catalog-dns hears from an idle Consul every 5 s, so give at least 10s' }]);
    expect(loadConfigReport({ flags: { max_stale: '10s' } }).warnings).toEqual([]);
  });
});
