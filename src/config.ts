/**
 * Configuration: one table of options drives flags, environment variables (CATALOG_DNS_*), the JSON
 * config file and --help. Precedence: flag > environment > file > default. Every bad value is a
 * ConfigError naming the option as the user wrote it and the reason.
 *
 * Where Consul's dns_config has the same concept, the file key is Consul's name (node_ttl, ...).
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { ConfigError } from './errors.js';
import { notRegularFile } from './files.js';
import { parseReverseZones } from './zone/reverse-zones.js';

export type Compat = 'rfc' | 'consul';

export interface TtlRule { readonly prefix: string; readonly wildcard: boolean; readonly ttl: number }

export interface Config {
  readonly dnsHost: string;
  readonly dnsPort: number;
  /** /healthcheck and /metrics; null: off. */
  readonly http: { readonly host: string; readonly port: number } | null;
  readonly domain: string;            // canonical: lower case, no trailing dot
  readonly catalogFile: string | null;
  readonly dataDir: string | null;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  readonly compat: Compat;
  readonly nodeTtl: number;
  readonly serviceTtl: readonly TtlRule[];
  readonly onlyPassing: boolean;
  readonly udpAnswerLimit: number;
  readonly aRecordLimit: number;
  readonly enableTruncate: boolean;
  readonly enableAdditionalNodeMetaTxt: boolean;
  readonly translateWanAddrs: boolean;
  readonly soa: { readonly refresh: number; readonly retry: number; readonly expire: number; readonly minTtl: number };
  readonly ptrTtl: number;
  readonly negativeTtl: number | null;
  readonly maxUdpSize: number;
  readonly tcpIdleTimeoutMs: number;
  readonly tcpMaxConnections: number;
  readonly responseCacheBytes: number;
  /** Response rate limiting (README "Response rate limiting"): responses per second per account, 0 = off. */
  readonly rrlResponsesPerSecond: number;
  readonly rrlSlip: number;
  /** Seconds. */
  readonly rrlWindow: number;
  readonly rrlIpv4Prefix: number;
  readonly rrlIpv6Prefix: number;
  readonly tcpFrameTimeoutMs: number;
  /** 0 = no per-client limit. */
  readonly tcpMaxConnectionsPerClient: number;
  /**
   * Apexes of the reverse zones served (canonical, sorted); null = unset: derived from the catalog
   * in rfc mode, Consul's way (every reverse name answered) with compat consul.
   */
  readonly reverseZones: readonly string[] | null;
  /** Consul HTTP API addresses (URL origins), tried in order; empty: no live Consul. */
  readonly consul: readonly string[];
  /** The ACL token (from CONSUL_HTTP_TOKEN, or read from the token file); never logged. */
  readonly consulToken: string | null;
  readonly consulTls: { readonly ca: string | null; readonly cert: string | null; readonly key: string | null; readonly serverName: string | null };
  /** Datacenters to follow; empty: all that Consul lists. */
  readonly datacenters: readonly string[];
  /** Seconds without contact with Consul after which answers become SERVFAIL; null: never. */
  readonly maxStale: number | null;
  /** Percent of all instances one update may remove before it is held back (0 = no guard), and for how long (s). */
  readonly removalGuard: number;
  readonly removalGuardHold: number;
  /** A second domain answered like `domain`, names in its answers under it (Consul's alt_domain); null: none. */
  readonly altDomain: string | null;
  /** One log line per query (client, name, type, rcode, size, duration). */
  readonly queryLog: boolean;
}

type Kind = 'httpaddr' | 'hostport' | 'domain' | 'path' | 'level' | 'compat' | 'duration' | 'int' | 'bool' | 'ttlmap' | 'reversezones' | 'urls' | 'labels' | 'secret';

interface Spec {
  /** JSON file key (Consul's dns_config name where one exists); dotted for nested (soa.refresh). */
  readonly key: string;
  readonly kind: Kind;
  readonly def: unknown;
  readonly help: string;
  readonly min?: number;
  readonly max?: number;
  /** Why values above `max` are refused, said in the error. */
  readonly maxReason?: string;
  /** Consul's own environment variable names for the same setting (read after CATALOG_DNS_*). */
  readonly envAliases?: readonly string[];
  /** Not settable by flag (a secret would show in the process list). */
  readonly noFlag?: boolean;
}

const MAX_TTL = 2147483647;

export const OPTIONS: readonly Spec[] = [
  { key: 'dns', kind: 'hostport', def: '127.0.0.1:8600', help: 'UDP and TCP listen address, HOST:PORT or [IPv6]:PORT' },
  { key: 'http', kind: 'httpaddr', def: '127.0.0.1:8601', help: 'HTTP address of /healthcheck and /metrics, HOST:PORT, or off' },
  { key: 'domain', kind: 'domain', def: 'consul', help: 'zone served (Consul\'s "domain")' },
  { key: 'catalog_file', kind: 'path', def: null, help: 'catalog file to serve; watched, a valid new version replaces the zone' },
  { key: 'data_dir', kind: 'path', def: null, help: 'directory for state kept across restarts (SOA serial)' },
  { key: 'log_level', kind: 'level', def: 'info', help: 'fatal|error|warn|info|debug|trace|silent' },
  { key: 'compat', kind: 'compat', def: 'rfc', help: 'rfc: RFC-correct fixes on; consul: Consul\'s own DNS behaviour' },
  { key: 'node_ttl', kind: 'duration', def: 0, help: 'TTL of node, .addr and NS records', max: MAX_TTL },
  { key: 'service_ttl', kind: 'ttlmap', def: {}, help: 'service TTLs: "*=5s,web=30s,api*=10s" or a JSON object' },
  { key: 'only_passing', kind: 'bool', def: false, help: 'serve only instances whose checks all pass (else: all but critical)' },
  { key: 'udp_answer_limit', kind: 'int', def: 3, help: 'max answers over UDP without EDNS (capped at 8)', min: 1, max: 65535 },
  { key: 'a_record_limit', kind: 'int', def: 0, help: 'max A/AAAA answers on any transport, 0 = unlimited', min: 0, max: 65535 },
  { key: 'enable_truncate', kind: 'bool', def: null, help: 'set TC when records were dropped (default: true; false with --compat consul)' },
  { key: 'enable_additional_node_meta_txt', kind: 'bool', def: true, help: 'node meta TXT in ADDITIONAL of node A/AAAA and SRV answers' },
  { key: 'translate_wan_addrs', kind: 'bool', def: false, help: 'answer WAN addresses for other datacenters' },
  { key: 'soa.refresh', kind: 'duration', def: 3600, help: 'SOA REFRESH', max: MAX_TTL },
  { key: 'soa.retry', kind: 'duration', def: 600, help: 'SOA RETRY', max: MAX_TTL },
  { key: 'soa.expire', kind: 'duration', def: 86400, help: 'SOA EXPIRE', max: MAX_TTL },
  { key: 'soa.min_ttl', kind: 'duration', def: 0, help: 'SOA MINIMUM and TTL of the SOA record', max: MAX_TTL },
  { key: 'ptr_ttl', kind: 'duration', def: 0, help: 'TTL of PTR records (Consul: always 0)', max: MAX_TTL },
  { key: 'negative_ttl', kind: 'duration', def: null, help: 'TTL of the SOA in negative answers (default: RFC 2308 min(SOA TTL, MINIMUM))', max: MAX_TTL },
  { key: 'max_udp_size', kind: 'int', def: 1232, help: 'largest UDP reply sent to EDNS clients (512-4096)', min: 512, max: 4096,
    maxReason: 'larger UDP replies are fragmented and multiply what a spoofed query can reflect at its victim; clients get large answers over TCP' },
  { key: 'tcp_idle_timeout', kind: 'duration', def: 10, help: 'close TCP connections idle this long, and those whose client reads no reply this long', min: 1, max: 3600 },
  { key: 'tcp_max_connections', kind: 'int', def: 1024, help: 'concurrent TCP connections; at the limit a new one takes an idle or stalled one\'s slot, or is refused', min: 1, max: 1_000_000 },
  { key: 'response_cache_mb', kind: 'int', def: 64, help: 'MiB for repeated questions: encoded UDP responses, and 1/16 for resolved names; 0 = no response cache', min: 0, max: 65536 },
  { key: 'rrl_responses_per_second', kind: 'int', def: 0, help: 'UDP response rate limit per client prefix and answer, 0 = off', min: 0, max: 1_000_000 },
  { key: 'rrl_slip', kind: 'int', def: 2, help: 'every Nth rate-limited UDP response is a TC=1 reply, the rest dropped; 0 = drop all', min: 0, max: 10 },
  { key: 'rrl_window', kind: 'duration', def: 15, help: 'seconds over which the UDP response rate is enforced', min: 1, max: 3600 },
  { key: 'rrl_ipv4_prefix', kind: 'int', def: 24, help: 'IPv4 prefix length that groups clients for rate limiting', min: 0, max: 32 },
  { key: 'rrl_ipv6_prefix', kind: 'int', def: 56, help: 'IPv6 prefix length that groups clients for rate limiting', min: 0, max: 128 },
  { key: 'tcp_frame_timeout', kind: 'duration', def: 3, help: 'close a TCP connection whose query has not arrived whole this long after its first byte', min: 1, max: 3600 },
  { key: 'tcp_max_connections_per_client', kind: 'int', def: 64, help: 'concurrent TCP connections from one client address, 0 = no limit', min: 0, max: 1_000_000 },
  { key: 'consul', kind: 'urls', def: [], help: 'Consul HTTP API address to follow, repeatable (fail-over in order): http://127.0.0.1:8500, https://host:8501 or host:port', envAliases: ['CONSUL_HTTP_ADDR'] },
  { key: 'consul_token', kind: 'secret', def: null, help: 'Consul ACL token, sent as X-Consul-Token (environment or file only)', envAliases: ['CONSUL_HTTP_TOKEN'], noFlag: true },
  { key: 'consul_token_file', kind: 'path', def: null, help: 'file holding the Consul ACL token', envAliases: ['CONSUL_HTTP_TOKEN_FILE'] },
  { key: 'consul_cacert', kind: 'path', def: null, help: 'CA certificate (PEM) to verify Consul\'s TLS certificate', envAliases: ['CONSUL_CACERT'] },
  { key: 'consul_client_cert', kind: 'path', def: null, help: 'client certificate (PEM) for Consul mTLS', envAliases: ['CONSUL_CLIENT_CERT'] },
  { key: 'consul_client_key', kind: 'path', def: null, help: 'client key (PEM) for Consul mTLS', envAliases: ['CONSUL_CLIENT_KEY'] },
  { key: 'consul_tls_server_name', kind: 'path', def: null, help: 'server name to verify Consul\'s certificate against', envAliases: ['CONSUL_TLS_SERVER_NAME'] },
  { key: 'datacenters', kind: 'labels', def: [], help: 'datacenters to follow, "dc1,dc2" (default: every datacenter Consul lists)' },
  { key: 'max_stale', kind: 'duration', def: null, help: 'after this long without hearing from Consul, answer SERVFAIL (default: serve the last good zone forever, as Consul\'s DNS)', min: 1, max: 315_360_000 },
  { key: 'removal_guard', kind: 'int', def: 50, help: 'percent of all instances an update from Consul may remove at once; a larger removal is held back for removal_guard_hold (0 = no guard)', min: 0, max: 100 },
  { key: 'removal_guard_hold', kind: 'duration', def: 60, help: 'how long a removal beyond removal_guard must persist before it is applied', min: 1, max: 86400 },
  { key: 'reverse_zones', kind: 'reversezones', def: null, help: 'reverse zones served: CIDR prefixes on octet/nibble boundaries or zone names, "10.0.0.0/8,2001:db8::/32" (default: the /24 or /64 of each PTR address)' },
  { key: 'alt_domain', kind: 'domain', def: null, help: 'a second domain answered like domain, with the names in answers under it (Consul\'s "alt_domain")' },
  { key: 'query_log', kind: 'bool', def: false, help: 'log one line per query: client, name, type, rcode, size, duration' },
];

export const flagName = (s: Spec): string => `--${s.key.replace(/[._]/g, '-')}`;
export const envName = (s: Spec): string => `CATALOG_DNS_${s.key.replace(/\./g, '_').toUpperCase()}`;

/** Parses Go-style durations ("10s", "1m30s", "500ms", "2h") or plain seconds; returns whole seconds. */
export function parseDuration(v: unknown): number | null {
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 ? Math.floor(v) : null;
  if (typeof v !== 'string') return null;
  const s = v.trim();
  if (/^\d+$/.test(s)) return Number(s);
  const re = /(\d+(?:\.\d+)?)(ms|h|m|s)/gy;
  let total = 0, seen = 0, m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    const n = Number(m[1]);
    total += m[2] === 'h' ? n * 3600 : m[2] === 'm' ? n * 60 : m[2] === 's' ? n : n / 1000;
    seen = re.lastIndex;
  }
  if (seen === 0 || seen !== s.length) return null;
  return Math.floor(total);
}

function parseHostPort(v: string): { host: string; port: number } | string {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(v) ?? /^([^:[\]]+):(\d+)$/.exec(v);
  if (!m) return 'expected HOST:PORT, or [IPv6]:PORT';
  const host = m[1]!, port = Number(m[2]);
  if (!isIP(host)) return `${JSON.stringify(host)} is not an IP address`;
  if (v.startsWith('[') !== (isIP(host) === 6)) return 'IPv6 addresses must be written in brackets, [::1]:8600';
  if (!Number.isInteger(port) || port > 65535) return 'port must be 0-65535';
  return { host, port };
}

function parseTtlMap(v: unknown): TtlRule[] | string {
  let obj: Record<string, unknown>;
  if (typeof v === 'string') {
    const t = v.trim();
    if (t.startsWith('{')) {
      try { obj = JSON.parse(t) as Record<string, unknown>; } catch { return 'expected "name=duration,..." or a JSON object'; }
    } else {
      obj = {};
      for (const part of t.split(',').map((p) => p.trim()).filter(Boolean)) {
        const i = part.indexOf('=');
        if (i <= 0) return `${JSON.stringify(part)}: expected name=duration`;
        obj[part.slice(0, i).trim()] = part.slice(i + 1).trim();
      }
    }
  } else if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
    obj = v as Record<string, unknown>;
  } else {
    return 'expected an object of service name (or prefix*) to duration';
  }
  const rules: TtlRule[] = [];
  for (const [name, d] of Object.entries(obj)) {
    const ttl = parseDuration(d);
    if (ttl === null || ttl > MAX_TTL) return `${name}: ${JSON.stringify(d)} is not a duration`;
    const wildcard = name.endsWith('*');
    rules.push({ prefix: (wildcard ? name.slice(0, -1) : name).toLowerCase(), wildcard, ttl });
  }
  return rules;
}

function coerce(spec: Spec, raw: unknown): unknown | string {
  const bad = (reason: string) => ({ bad: reason });
  switch (spec.kind) {
    case 'httpaddr': {
      if (raw === 'off') return 'off';
      if (typeof raw !== 'string') return bad('expected HOST:PORT or off');
      const r = parseHostPort(raw);
      return typeof r === 'string' ? bad(`${r}, or off`) : r;
    }
    case 'hostport': {
      if (typeof raw !== 'string') return bad('expected a string HOST:PORT');
      const r = parseHostPort(raw);
      return typeof r === 'string' ? bad(r) : r;
    }
    case 'domain': {
      if (raw === null) return null;
      if (typeof raw !== 'string') return bad('expected a domain name');
      const d = raw.trim().toLowerCase().replace(/\.$/, '');
      if (d === '' || !d.split('.').every((l) => /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/.test(l)) || d.length > 200) {
        return bad(`${JSON.stringify(raw)} is not a valid domain name`);
      }
      return d;
    }
    case 'path':
      if (raw === null) return null;
      if (typeof raw !== 'string' || raw === '') return bad('expected a path');
      return raw;
    case 'level':
      if (typeof raw !== 'string' || !['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(raw)) {
        return bad('expected one of fatal, error, warn, info, debug, trace, silent');
      }
      return raw;
    case 'compat':
      if (raw !== 'rfc' && raw !== 'consul') return bad('expected rfc or consul');
      return raw;
    case 'duration': {
      if (raw === null) return null;
      const d = parseDuration(raw);
      if (d === null) return bad(`${JSON.stringify(raw)} is not a duration (e.g. 30s, 5m, 1h, or seconds)`);
      if (spec.max !== undefined && d > spec.max) return bad(`must be at most ${spec.max}s`);
      if (spec.min !== undefined && d < spec.min) return bad(`must be at least ${spec.min}s`);
      return d;
    }
    case 'int': {
      const n = typeof raw === 'string' && /^-?\d+$/.test(raw.trim()) ? Number(raw) : raw;
      if (typeof n === 'number' && Number.isInteger(n) && spec.max !== undefined && n > spec.max && spec.maxReason) {
        return bad(`${n} is above ${spec.max}: ${spec.maxReason}`);
      }
      if (typeof n !== 'number' || !Number.isInteger(n) || n < (spec.min ?? 0) || n > (spec.max ?? Number.MAX_SAFE_INTEGER)) {
        return bad(`expected an integer ${spec.min ?? 0}-${spec.max}`);
      }
      return n;
    }
    case 'bool':
      if (raw === null) return null;
      if (typeof raw === 'boolean') return raw;
      if (raw === 'true' || raw === '1' || raw === 'yes') return true;
      if (raw === 'false' || raw === '0' || raw === 'no') return false;
      return bad('expected true or false');
    case 'ttlmap': {
      const r = parseTtlMap(raw);
      return typeof r === 'string' ? bad(r) : r;
    }
    case 'urls': {
      const list = Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(',') : null;
      if (!list || !list.every((x) => typeof x === 'string')) return bad('expected addresses: http://host:port, https://host:port or host:port');
      const out: string[] = [];
      for (const item of (list as string[]).map((x) => x.trim()).filter(Boolean)) {
        const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(item) ? item : `http://${item}`;
        let u: URL;
        try { u = new URL(withScheme); } catch { return bad(`${JSON.stringify(item)} is not an address (http://host:port, https://host:port or host:port)`); }
        if (u.protocol !== 'http:' && u.protocol !== 'https:') return bad(`${JSON.stringify(item)}: only http and https are supported`);
        if (u.pathname !== '/' || u.search || u.username) return bad(`${JSON.stringify(item)}: give the address only (no path, query or credentials)`);
        out.push(u.origin);
      }
      return out;
    }
    case 'labels': {
      const list = Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(',') : null;
      if (!list || !list.every((x) => typeof x === 'string')) return bad('expected a list of names, "dc1,dc2"');
      const out = (list as string[]).map((x) => x.trim()).filter(Boolean);
      const badName = out.find((x) => !/^[A-Za-z0-9_-]{1,63}$/.test(x));
      return badName === undefined ? out : bad(`${JSON.stringify(badName)} is not a datacenter name`);
    }
    case 'secret':
      if (raw === null) return null;
      if (typeof raw !== 'string' || raw.trim() === '') return bad('expected a non-empty string');
      return raw.trim();
    case 'reversezones': {
      if (raw === null) return null;
      const r = parseReverseZones(raw);
      return Array.isArray(r) ? r : bad(r.bad);
    }
  }
}

export interface Sources {
  /** Flag values keyed by spec key (already split from argv). */
  readonly flags?: Readonly<Record<string, unknown>>;
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Path of a JSON config file (from --config or CATALOG_DNS_CONFIG). */
  readonly configFile?: string | null;
  /** An already parsed config object (tests, embedding). Same keys as the file. */
  readonly object?: Readonly<Record<string, unknown>>;
  /**
   * Refuse a --config path that is not a regular file instead of reading it (a reload must never
   * block on a FIFO; at start, waiting on one is the operator's choice).
   */
  readonly regularConfigOnly?: boolean;
}

function flattenFile(doc: Record<string, unknown>, where: string): Map<string, unknown> {
  const out = new Map<string, unknown>();
  const known = new Set(OPTIONS.map((s) => s.key));
  const put = (k: string, v: unknown) => {
    if (!known.has(k)) throw new ConfigError(`${where}${k}`, 'unknown option');
    out.set(k, v);
  };
  for (const [k, v] of Object.entries(doc)) {
    if (k === 'dns_config' || k === 'soa') {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ConfigError(`${where}${k}`, 'expected an object');
      for (const [k2, v2] of Object.entries(v)) {
        if (k === 'soa') put(`soa.${k2}`, v2);
        else if (k2 === 'soa' && typeof v2 === 'object' && v2 !== null) {
          for (const [k3, v3] of Object.entries(v2)) put(`soa.${k3}`, v3);
        } else put(k2, v2);
      }
    } else put(k, v);
  }
  return out;
}

/** Builds the effective configuration. Throws ConfigError naming the option and the reason. */
export function loadConfig(src: Sources = {}): Config {
  const values = new Map<string, unknown>();
  for (const s of OPTIONS) values.set(s.key, s.def);
  const apply = (s: Spec, raw: unknown, name: string) => {
    const v = coerce(s, raw);
    if (typeof v === 'object' && v !== null && 'bad' in v) throw new ConfigError(name, (v as { bad: string }).bad);
    values.set(s.key, v);
  };
  const byKey = new Map(OPTIONS.map((s) => [s.key, s]));
  const layer = (entries: Map<string, unknown>, name: (s: Spec) => string) => {
    for (const [k, raw] of entries) apply(byKey.get(k)!, raw, name(byKey.get(k)!));
  };
  if (src.object) layer(flattenFile(src.object as Record<string, unknown>, ''), (s) => s.key);
  if (src.configFile && src.regularConfigOnly) {
    const why = notRegularFile(src.configFile);
    if (why) throw new ConfigError('--config', why);
  }
  if (src.configFile) {
    let doc: unknown;
    try {
      doc = JSON.parse(readFileSync(src.configFile, 'utf8'));
    } catch (e) {
      throw new ConfigError('--config', `cannot read ${src.configFile}: ${(e as Error).message}`, { cause: e });
    }
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new ConfigError('--config', `${src.configFile}: expected a JSON object`);
    layer(flattenFile(doc as Record<string, unknown>, `${src.configFile}: `), (s) => `${src.configFile}: ${s.key}`);
  }
  if (src.env) {
    const e = new Map<string, unknown>();
    const from = new Map<string, string>();
    for (const s of OPTIONS) {
      for (const name of [envName(s), ...(s.envAliases ?? [])]) {
        const v = src.env[name];
        if (v === undefined || v === '') continue;
        // CONSUL_HTTP_SSL=true: an address without a scheme is https, as for Consul's own CLI.
        const ssl = name === 'CONSUL_HTTP_ADDR' && sslFromEnv(src.env) && !/^[a-z]+:\/\//i.test(v);
        e.set(s.key, ssl ? `https://${v}` : v);
        from.set(s.key, name);
        break;
      }
    }
    layer(e, (s) => from.get(s.key) ?? envName(s));
  }
  if (src.flags) layer(new Map(Object.entries(src.flags)), flagName);

  const g = <T>(k: string) => values.get(k) as T;
  const compat = g<Compat>('compat');
  const hp = g<{ host: string; port: number } | string>('dns');
  const dns = typeof hp === 'string' ? (parseHostPort(hp) as { host: string; port: number }) : hp;
  const hh = g<{ host: string; port: number } | string>('http');
  return {
    dnsHost: dns.host,
    dnsPort: dns.port,
    http: hh === 'off' ? null : typeof hh === 'string' ? (parseHostPort(hh) as { host: string; port: number }) : hh,
    domain: g<string>('domain'),
    catalogFile: g<string | null>('catalog_file'),
    dataDir: g<string | null>('data_dir'),
    logLevel: g<Config['logLevel']>('log_level'),
    compat,
    nodeTtl: g<number>('node_ttl'),
    serviceTtl: Array.isArray(g('service_ttl')) ? g<TtlRule[]>('service_ttl') : (parseTtlMap(g('service_ttl')) as TtlRule[]),
    onlyPassing: g<boolean>('only_passing'),
    udpAnswerLimit: g<number>('udp_answer_limit'),
    aRecordLimit: g<number>('a_record_limit'),
    enableTruncate: g<boolean | null>('enable_truncate') ?? compat === 'rfc',
    enableAdditionalNodeMetaTxt: g<boolean>('enable_additional_node_meta_txt'),
    translateWanAddrs: g<boolean>('translate_wan_addrs'),
    soa: { refresh: g<number>('soa.refresh'), retry: g<number>('soa.retry'), expire: g<number>('soa.expire'), minTtl: g<number>('soa.min_ttl') },
    ptrTtl: g<number>('ptr_ttl'),
    negativeTtl: g<number | null>('negative_ttl'),
    maxUdpSize: g<number>('max_udp_size'),
    tcpIdleTimeoutMs: g<number>('tcp_idle_timeout') * 1000,
    tcpMaxConnections: g<number>('tcp_max_connections'),
    responseCacheBytes: g<number>('response_cache_mb') * 1024 * 1024,
    rrlResponsesPerSecond: g<number>('rrl_responses_per_second'),
    rrlSlip: g<number>('rrl_slip'),
    rrlWindow: g<number>('rrl_window'),
    rrlIpv4Prefix: g<number>('rrl_ipv4_prefix'),
    rrlIpv6Prefix: g<number>('rrl_ipv6_prefix'),
    tcpFrameTimeoutMs: g<number>('tcp_frame_timeout') * 1000,
    tcpMaxConnectionsPerClient: g<number>('tcp_max_connections_per_client'),
    reverseZones: g<string[] | null>('reverse_zones'),
    consul: g<string[]>('consul'),
    consulToken: consulToken(g<string | null>('consul_token'), g<string | null>('consul_token_file')),
    consulTls: {
      ca: g<string | null>('consul_cacert'), cert: g<string | null>('consul_client_cert'),
      key: g<string | null>('consul_client_key'), serverName: g<string | null>('consul_tls_server_name'),
    },
    datacenters: g<string[]>('datacenters'),
    maxStale: g<number | null>('max_stale'),
    removalGuard: g<number>('removal_guard'),
    removalGuardHold: g<number>('removal_guard_hold'),
    altDomain: g<string | null>('alt_domain'),
    queryLog: g<boolean>('query_log'),
  };
}

/** CONSUL_HTTP_SSL=true: addresses given without a scheme use https (as Consul's own CLI does). */
function sslFromEnv(env: Readonly<Record<string, string | undefined>> | undefined): boolean {
  const v = env?.CONSUL_HTTP_SSL;
  return v === 'true' || v === '1';
}

/** The token itself, or the content of the token file (first line, trimmed). */
function consulToken(token: string | null, file: string | null): string | null {
  if (token) return token;
  if (!file) return null;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError('consul_token_file', `cannot read ${file}: ${(e as Error).message}`, { cause: e });
  }
  const t = text.split('\n')[0]!.trim();
  if (!t) throw new ConfigError('consul_token_file', `${file} is empty`);
  return t;
}

/** The service TTL for `name`: exact key, then the longest matching prefix*, then 0 (Consul legacy). */
export function serviceTtlFor(rules: readonly TtlRule[], name: string): number {
  const n = name.toLowerCase();
  let best: TtlRule | undefined;
  for (const r of rules) {
    if (!r.wildcard && r.prefix === n) return r.ttl;
    if (r.wildcard && n.startsWith(r.prefix) && (!best || r.prefix.length > best.prefix.length)) best = r;
  }
  return best ? best.ttl : 0;
}
