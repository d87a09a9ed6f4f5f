/**
 * Configuration: one table of options drives flags, environment variables (CATALOG_DNS_*), the JSON
 * config file and --help. Precedence: flag > environment > file > default. Every bad value is a
 * ConfigError naming where it came from (the flag, the variable, or the file and the key as written)
 * and the reason; what is accepted but worth knowing (a key ignored, a value capped) is a warning.
 *
 * Where Consul's dns_config has the same concept, the file key is Consul's name (node_ttl, ...), and a
 * Consul agent's own configuration file is read as it is (src/config-consul.ts).
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { CONSUL_DNS_IGNORED, closest, consulAgentEntries, isConsulTopKey, type ConfigWarning, type FileEntry } from './config-consul.js';
import { ConfigError } from './errors.js';
import { notRegularFile } from './files.js';
import { parseReverseZones } from './zone/reverse-zones.js';

export type { ConfigWarning } from './config-consul.js';

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
  /** Seconds without a fresh answer from Consul after which answers become SERVFAIL; null: never. */
  readonly maxStale: number | null;
  /** Connections catalog-dns may hold open to one Consul address, every use counted. */
  readonly consulMaxConnections: number;
  /** Largest Consul response body accepted, in MiB. */
  readonly consulMaxResponseMb: number;
  /** Percent of all instances one update may remove before it is held back (0 = no guard), and for how long (s). */
  readonly removalGuard: number;
  readonly removalGuardHold: number;
  /** A second domain answered like `domain`, names in its answers under it (Consul's alt_domain); null: none. */
  readonly altDomain: string | null;
  /** One log line per query (client, name, type, rcode, size, duration). */
  readonly queryLog: boolean;
  /** The local datacenter (names without a datacenter label), lower case; null: the catalog's own. */
  readonly datacenter: string | null;
}

type Kind = 'httpaddr' | 'hostport' | 'domain' | 'path' | 'level' | 'compat' | 'duration' | 'int' | 'bool' | 'ttlmap' | 'reversezones' | 'urls' | 'labels' | 'secret' | 'label';

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
/** Consul's DNS puts at most this many answers in a UDP reply without EDNS, whatever udp_answer_limit says. */
export const MAX_UDP_ANSWER_LIMIT = 8;
/** Below this, max_stale may fire between two liveness probes of a healthy, idle Consul (every 5 s). */
const MAX_STALE_ADVISED_MIN = 10;

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
  { key: 'consul_max_connections', kind: 'int', def: 100, help: 'connections to hold open to a Consul address, all uses counted (an agent allows limits.http_max_conns_per_client, 200 by default, per client address)', min: 4, max: 100_000 },
  { key: 'consul_max_response_mb', kind: 'int', def: 64, help: 'largest Consul response accepted, MiB (the largest list at 10,000 services x 5 is about 30 MiB)', min: 1, max: 4096 },
  { key: 'datacenters', kind: 'labels', def: [], help: 'datacenters to follow, "dc1,dc2" (default: every datacenter Consul lists)' },
  { key: 'max_stale', kind: 'duration', def: null, help: 'after this long without a fresh answer from Consul (one from a server in touch with its leader within max_stale), answer SERVFAIL (default: serve the last good zone forever, as Consul\'s DNS)', min: 1, max: 315_360_000 },
  { key: 'removal_guard', kind: 'int', def: 50, help: 'percent of all instances an update from Consul may remove at once; a larger removal is held back for removal_guard_hold (0 = no guard)', min: 0, max: 100 },
  { key: 'removal_guard_hold', kind: 'duration', def: 60, help: 'how long a removal beyond removal_guard must persist before it is applied', min: 1, max: 86400 },
  { key: 'reverse_zones', kind: 'reversezones', def: null, help: 'reverse zones served: CIDR prefixes on octet/nibble boundaries or zone names, "10.0.0.0/8,2001:db8::/32" (default: the /24 or /64 of each PTR address)' },
  { key: 'alt_domain', kind: 'domain', def: null, help: 'a second domain answered like domain, with the names in answers under it (Consul\'s "alt_domain")' },
  { key: 'query_log', kind: 'bool', def: false, help: 'log one line per query: client, name, type, rcode, size, duration' },
  { key: 'datacenter', kind: 'label', def: null, help: 'the local datacenter, answering names without a datacenter label (default: the followed Consul agent\'s, or the catalog file\'s "datacenter")' },
];

export const flagName = (s: Spec): string => `--${s.key.replace(/[._]/g, '-')}`;
export const envName = (s: Spec): string => `CATALOG_DNS_${s.key.replace(/\./g, '_').toUpperCase()}`;

const NS: Readonly<Record<string, bigint>> = { ns: 1n, us: 1_000n, 'µs': 1_000n, 'μs': 1_000n, ms: 1_000_000n, s: 1_000_000_000n, m: 60_000_000_000n, h: 3_600_000_000_000n };

/**
 * Parses Go-style durations ("10s", "1m30s", "500ms", "1.5h") or plain seconds; returns seconds,
 * exactly (a fraction when the duration has one: "1500ms" is 1.5), or null when it is not a duration.
 * Options measured in seconds refuse a fraction rather than round it (see `wholeSeconds`).
 */
export function parseDuration(v: unknown): number | null {
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 ? v : null;
  if (typeof v !== 'string') return null;
  const s = v.trim();
  if (/^\d+$/.test(s)) return Number(s);
  // Exact arithmetic in nanoseconds: 0.1s + 0.2s is 300ms, not 0.30000000000000004 s.
  const re = /(\d+)(?:\.(\d+))?(ns|us|µs|μs|ms|h|m|s)/gy;
  let ns = 0n, seen = 0, m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    const frac = m[2] ?? '';
    const scaled = BigInt(m[1]! + frac) * NS[m[3]!]!;
    ns += scaled / 10n ** BigInt(frac.length);
    seen = re.lastIndex;
  }
  if (seen === 0 || seen !== s.length) return null;
  return ns % 1_000_000_000n === 0n ? Number(ns / 1_000_000_000n) : Number(ns) / 1e9;
}

/** Why `d` seconds (from `raw`) is not a whole number of seconds, or null when it is. */
function notWholeSeconds(d: number, raw: unknown): string | null {
  if (Number.isInteger(d)) return null;
  return d < 1
    ? `${JSON.stringify(raw)} is less than a second; this option counts whole seconds`
    : `${JSON.stringify(raw)} is not a whole number of seconds; this option counts whole seconds (${Math.floor(d)}s or ${Math.ceil(d)}s)`;
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
    const frac = notWholeSeconds(ttl, d);
    if (frac) return `${name}: ${frac}`;
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
    case 'level': {
      // Case-insensitive, and Consul's "err", so that a Consul agent's log_level reads as it is.
      const l = typeof raw === 'string' ? raw.trim().toLowerCase() : null;
      const level = l === 'err' ? 'error' : l;
      if (level === null || !['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(level)) {
        return bad('expected one of fatal, error, warn, info, debug, trace, silent');
      }
      return level;
    }
    case 'compat':
      if (raw !== 'rfc' && raw !== 'consul') return bad('expected rfc or consul');
      return raw;
    case 'duration': {
      if (raw === null) return null;
      const d = parseDuration(raw);
      if (d === null) return bad(`${JSON.stringify(raw)} is not a duration (e.g. 30s, 5m, 1h, or seconds)`);
      const frac = notWholeSeconds(d, raw);
      if (frac) return bad(frac);
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
    case 'label': {
      if (raw === null) return null;
      if (typeof raw !== 'string' || !/^[A-Za-z0-9_-]{1,63}$/.test(raw.trim())) return bad(`${JSON.stringify(raw)} is not a datacenter name (letters, digits, - and _)`);
      return raw.trim().toLowerCase();
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
  /** Where the path came from, for errors about the file itself: "--config" (default) or "CATALOG_DNS_CONFIG". */
  readonly configFileFrom?: string;
  /** An already parsed config object (tests, embedding). Same keys as the file. */
  readonly object?: Readonly<Record<string, unknown>>;
  /**
   * Refuse a --config path that is not a regular file instead of reading it (a reload must never
   * block on a FIFO; at start, waiting on one is the operator's choice).
   */
  readonly regularConfigOnly?: boolean;
}

/** The configuration and what is worth a warning about it (ignored keys, capped values, unknown variables). */
export interface LoadedConfig {
  readonly config: Config;
  readonly warnings: readonly ConfigWarning[];
}

const KNOWN_KEYS: ReadonlySet<string> = new Set(OPTIONS.map((s) => s.key));
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function unknownKey(name: string, key: string): ConfigError {
  const near = closest(key, KNOWN_KEYS);
  return new ConfigError(name, `unknown option${near ? ` (did you mean ${near}?)` : ''}`);
}

/**
 * The entries of a config file (or object): our keys, Consul's dns_config and soa nested or not, and
 * a Consul agent's own top-level keys (used where they mean something here, else warned about).
 */
function fileEntries(doc: Record<string, unknown>, where: string, warnings: ConfigWarning[]): FileEntry[] {
  const out: FileEntry[] = [];
  const put = (key: string, value: unknown, written: string) => {
    if (!KNOWN_KEYS.has(key)) throw unknownKey(`${where}${written}`, key);
    out.push({ key, value, written });
  };
  const soa = (v: unknown, written: string) => {
    if (!isObject(v)) throw new ConfigError(`${where}${written}`, 'expected an object');
    for (const [k, v2] of Object.entries(v)) put(`soa.${k}`, v2, `${written}.${k}`);
  };
  for (const [k, v] of Object.entries(doc)) {
    if (k === 'dns_config') {
      if (!isObject(v)) throw new ConfigError(`${where}${k}`, 'expected an object');
      for (const [k2, v2] of Object.entries(v)) {
        const ignored = CONSUL_DNS_IGNORED.get(k2);
        if (k2 === 'soa') soa(v2, 'dns_config.soa');
        else if (ignored) warnings.push({ where: `${where}dns_config.${k2}`, reason: ignored(v2) });
        else put(k2, v2, `dns_config.${k2}`);
      }
    } else if (k === 'soa') {
      soa(v, k);
    } else if (KNOWN_KEYS.has(k) && !(k === 'consul' && isObject(v))) {
      put(k, v, k);
    } else if (!isConsulTopKey(k)) {
      throw unknownKey(`${where}${k}`, k);
    }
  }
  const consul = consulAgentEntries(doc, where, KNOWN_KEYS);
  out.push(...consul.entries);
  warnings.push(...consul.warnings);
  if (consul.ignored.length) {
    warnings.push({ where: where.replace(/: $/, '') || 'config', reason: `ignored Consul agent settings that do not apply to a DNS server fed from the catalog: ${consul.ignored.join(', ')}` });
  }
  return out;
}

/** Where each option's value came from (flag, variable, `file: key`), for errors found after loading. */
const ORIGINS = new WeakMap<Config, ReadonlyMap<string, string>>();

/**
 * Where `key`'s value in `config` came from: its flag (`--data-dir`), its variable
 * (`CATALOG_DNS_DATA_DIR`, `CONSUL_HTTP_ADDR`), or the file and the key as written
 * (`/etc/consul.json: data_dir`); the flag when the value is the default.
 */
export function optionSource(config: Config, key: string): string {
  const spec = OPTIONS.find((s) => s.key === key);
  return ORIGINS.get(config)?.get(key) ?? (spec ? (spec.noFlag ? envName(spec) : flagName(spec)) : key);
}

/** An environment variable; empty counts as unset. */
function envValue(env: Readonly<Record<string, string | undefined>>, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v === '' ? undefined : v;
}

/** Builds the effective configuration. Throws ConfigError naming where the value came from and the reason. */
export function loadConfig(src: Sources = {}): Config {
  return loadConfigReport(src).config;
}

/** loadConfig, with the warnings: keys accepted but ignored, values capped, unknown CATALOG_DNS_* variables. */
export function loadConfigReport(src: Sources = {}): LoadedConfig {
  const warnings: ConfigWarning[] = [];
  const values = new Map<string, unknown>();
  const origin = new Map<string, string>();
  for (const s of OPTIONS) values.set(s.key, s.def);
  const byKey = new Map(OPTIONS.map((s) => [s.key, s]));
  const apply = (key: string, raw: unknown, name: string) => {
    const s = byKey.get(key)!;
    const v = coerce(s, raw);
    if (typeof v === 'object' && v !== null && 'bad' in v) throw new ConfigError(name, (v as { bad: string }).bad);
    values.set(s.key, v);
    origin.set(s.key, name);
  };
  if (src.object) for (const e of fileEntries(src.object as Record<string, unknown>, '', warnings)) apply(e.key, e.value, e.written);
  const fileFrom = src.configFileFrom ?? '--config';
  if (src.configFile && src.regularConfigOnly) {
    const why = notRegularFile(src.configFile);
    if (why) throw new ConfigError(fileFrom, why);
  }
  if (src.configFile) {
    const path = src.configFile;
    let doc: unknown;
    try {
      doc = JSON.parse(readFileSync(path, 'utf8'));
    } catch (e) {
      const hcl = /\.hcl$/i.test(path) && e instanceof SyntaxError ? ' (catalog-dns reads JSON: write the Consul configuration as JSON)' : '';
      // One line: a JSON parse error may quote the file, line breaks and all.
      throw new ConfigError(fileFrom, `cannot read ${path}: ${(e as Error).message.replace(/\s+/g, ' ')}${hcl}`, { cause: e });
    }
    if (!isObject(doc)) throw new ConfigError(fileFrom, `${path}: expected a JSON object`);
    for (const e of fileEntries(doc, `${path}: `, warnings)) apply(e.key, e.value, `${path}: ${e.written}`);
  }
  if (src.env) {
    const env = src.env;
    const known = new Set(['CATALOG_DNS_CONFIG']);
    for (const s of OPTIONS) {
      known.add(envName(s));
      for (const name of [envName(s), ...(s.envAliases ?? [])]) {
        const v = envValue(env, name);
        if (v === undefined) continue;
        // CONSUL_HTTP_SSL=true: an address without a scheme is https, as for Consul's own CLI.
        const ssl = name === 'CONSUL_HTTP_ADDR' && sslFromEnv(env) && !/^[a-z]+:\/\//i.test(v);
        apply(s.key, ssl ? `https://${v}` : v, name);
        break;
      }
    }
    for (const name of Object.keys(env).sort()) {
      if (!name.startsWith('CATALOG_DNS_') || known.has(name) || envValue(env, name) === undefined) continue;
      const near = closest(name, known);
      warnings.push({ where: name, reason: `unknown variable, ignored${near ? ` (did you mean ${near}?)` : ''}` });
    }
  }
  if (src.flags) for (const [k, raw] of Object.entries(src.flags)) apply(k, raw, flagName(byKey.get(k)!));

  const from = (k: string) => origin.get(k) ?? flagName(byKey.get(k)!);
  const udpLimit = values.get('udp_answer_limit') as number;
  if (udpLimit > MAX_UDP_ANSWER_LIMIT) {
    warnings.push({ where: from('udp_answer_limit'), reason: `${udpLimit} is capped at ${MAX_UDP_ANSWER_LIMIT}, as by Consul's DNS: at most ${MAX_UDP_ANSWER_LIMIT} answers go into a UDP reply without EDNS` });
  }
  const maxStale = values.get('max_stale') as number | null;
  if (maxStale !== null && maxStale < MAX_STALE_ADVISED_MIN) {
    warnings.push({ where: from('max_stale'), reason: `${maxStale}s may withhold answers while Consul is healthy: catalog-dns hears from an idle Consul every 5 s, so give at least ${MAX_STALE_ADVISED_MIN}s` });
  }
  const dc = values.get('datacenter') as string | null;
  const dcs = values.get('datacenters') as string[];
  if (dc !== null && dcs.length && !dcs.some((d) => d.toLowerCase() === dc)) {
    throw new ConfigError(from('datacenter'), `${JSON.stringify(dc)} is not among the datacenters followed (${from('datacenters')}: ${dcs.join(',')}); the local datacenter must be one of them`);
  }

  const alt = values.get('alt_domain') as string | null;
  const altProblem = alt === null ? null : altDomainProblem(values.get('domain') as string, alt);
  if (altProblem) throw new ConfigError(from('alt_domain'), altProblem);

  const g = <T>(k: string) => values.get(k) as T;
  const compat = g<Compat>('compat');
  const hp = g<{ host: string; port: number } | string>('dns');
  const dns = typeof hp === 'string' ? (parseHostPort(hp) as { host: string; port: number }) : hp;
  const hh = g<{ host: string; port: number } | string>('http');
  const config: Config = {
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
    consulToken: consulToken(g<string | null>('consul_token'), g<string | null>('consul_token_file'), from('consul_token_file')),
    consulTls: {
      ca: g<string | null>('consul_cacert'), cert: g<string | null>('consul_client_cert'),
      key: g<string | null>('consul_client_key'), serverName: g<string | null>('consul_tls_server_name'),
    },
    datacenters: g<string[]>('datacenters'),
    maxStale: g<number | null>('max_stale'),
    consulMaxConnections: g<number>('consul_max_connections'),
    consulMaxResponseMb: g<number>('consul_max_response_mb'),
    removalGuard: g<number>('removal_guard'),
    removalGuardHold: g<number>('removal_guard_hold'),
    altDomain: g<string | null>('alt_domain'),
    queryLog: g<boolean>('query_log'),
    datacenter: g<string | null>('datacenter'),
  };
  ORIGINS.set(config, origin);
  return { config, warnings };
}

/** CONSUL_HTTP_SSL=true: addresses given without a scheme use https (as Consul's own CLI does). */
function sslFromEnv(env: Readonly<Record<string, string | undefined>> | undefined): boolean {
  const v = env?.CONSUL_HTTP_SSL;
  return v === 'true' || v === '1';
}

/** The token itself, or the content of the token file (first line, trimmed). */
function consulToken(token: string | null, file: string | null, from: string): string | null {
  if (token) return token;
  if (!file) return null;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(from, `cannot read ${file}: ${(e as Error).message}`, { cause: e });
  }
  const t = text.split('\n')[0]!.trim();
  if (!t) throw new ConfigError(from, `${file} is empty`);
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

/** Why `alt` cannot be the alt domain of `domain` (both canonical: lower case, no trailing dot), or null. */
export function altDomainProblem(domain: string, alt: string): string | null {
  if (alt === domain) return `"${alt}" is the domain itself`;
  if (alt.endsWith(`.${domain}`)) return `"${alt}" is inside the domain "${domain}" (its names are the domain's)`;
  if (domain.endsWith(`.${alt}`)) return `"${alt}" contains the domain "${domain}"`;
  if (alt === 'arpa' || alt.endsWith('.arpa')) return `"${alt}" is a reverse-lookup name (reverse zones are configured with reverse_zones)`;
  return null;
}
