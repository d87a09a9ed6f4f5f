/**
 * A Consul agent's JSON configuration file read as a catalog-dns config file (README "A Consul agent's
 * configuration"): the keys that mean something to an authoritative server fed from a snapshot of
 * the catalog are used, the others are accepted with a warning saying why, and a key Consul does not
 * know either stays an error.
 *
 * The key lists follow the `mapstructure` tags of Consul's agent/config `Config`, `DeprecatedConfig`,
 * `DNS`, `Ports` and `Addresses` structures.
 */
import { isIP } from 'node:net';
import { ConfigError } from './errors.js';

/** One value taken from the file: the option key it sets, and the key path as written (for errors). */
export interface FileEntry { readonly key: string; readonly value: unknown; readonly written: string }
export interface ConfigWarning { readonly where: string; readonly reason: string }

/**
 * dns_config keys of Consul that cannot apply here, and why (one warning each). The others either
 * have the same name here (node_ttl, service_ttl, only_passing, udp_answer_limit, a_record_limit,
 * enable_truncate, enable_additional_node_meta_txt, max_stale, soa) or are unknown (an error).
 */
export const CONSUL_DNS_IGNORED: ReadonlyMap<string, (v: unknown) => string> = new Map<string, (v: unknown) => string>([
  ['allow_stale', (v: unknown) => v === false
    ? 'ignored: catalog-dns always answers from its snapshot of the catalog, it cannot ask the leader per query; max_stale bounds how old the snapshot may get'
    : 'ignored: catalog-dns always answers from its snapshot of the catalog (as with allow_stale true); max_stale bounds how old it may get'],
  ['use_cache', () => 'ignored: every answer comes from the snapshot of the catalog held in memory, never from a query to Consul'],
  ['cache_max_age', () => 'ignored: there is no agent cache here; max_stale bounds how old the snapshot may get'],
  ['recursor_strategy', () => 'ignored: catalog-dns is authoritative only and never forwards a query to a recursor (names outside its zones are REFUSED)'],
  ['recursor_timeout', () => 'ignored: catalog-dns is authoritative only and never forwards a query to a recursor (names outside its zones are REFUSED)'],
  ['disable_compression', () => 'ignored: replies compress names where RFC 1035 4.1.4 allows, which every resolver reads'],
  ['prefer_namespace', () => 'ignored: Consul Enterprise namespaces are not served (the catalog read has the default namespace)'],
]);

/** Top-level keys of a Consul agent configuration that catalog-dns uses (the rest are ignored with a warning). */
const CONSUL_USED = new Set(['dns_config', 'domain', 'alt_domain', 'datacenter', 'data_dir', 'log_level', 'translate_wan_addrs', 'ports', 'addresses', 'client_addr', 'recursors']);

/** Every top-level key of a Consul agent configuration (current and deprecated names). */
const CONSUL_TOP = new Set([
  'acl', 'addresses', 'advertise_addr', 'advertise_addr_ipv4', 'advertise_addr_ipv6', 'advertise_addr_wan', 'advertise_addr_wan_ipv4',
  'advertise_addr_wan_ipv6', 'advertise_reconnect_timeout', 'alt_domain', 'audit', 'auto_config', 'auto_encrypt', 'auto_reload_config',
  'autopilot', 'bind_addr', 'bootstrap', 'bootstrap_expect', 'build_date', 'cache', 'check', 'check_deregister_interval_min',
  'check_output_max_size', 'check_reap_interval', 'check_update_interval', 'checks', 'client_addr', 'cloud', 'config_entries', 'connect',
  'consul', 'data_dir', 'datacenter', 'default_query_time', 'disable_anonymous_signature', 'disable_coordinates', 'disable_host_node_id',
  'disable_http_unprintable_char_filter', 'disable_keyring_file', 'disable_remote_exec', 'disable_update_check', 'discard_check_output',
  'discovery_max_stale', 'dns_config', 'domain', 'enable_agent_tls_for_checks', 'enable_central_service_config', 'enable_debug',
  'enable_local_script_checks', 'enable_script_checks', 'enable_syslog', 'encrypt', 'encrypt_verify_incoming', 'encrypt_verify_outgoing',
  'gossip_lan', 'gossip_wan', 'http_config', 'leave_on_terminate', 'license_path', 'license_poll_base_time', 'license_poll_max_time',
  'license_update_base_time', 'license_update_max_time', 'limits', 'locality', 'log_file', 'log_json', 'log_level', 'log_rotate_bytes',
  'log_rotate_duration', 'log_rotate_max_files', 'log_sublevels', 'max_query_time', 'node_id', 'node_meta', 'node_name',
  'non_voting_server', 'partition', 'peering', 'performance', 'pid_file', 'ports', 'primary_datacenter', 'primary_gateways',
  'primary_gateways_interval', 'protocol', 'raft_logstore', 'raft_protocol', 'raft_snapshot_interval', 'raft_snapshot_threshold',
  'raft_trailing_logs', 'read_replica', 'reconnect_timeout', 'reconnect_timeout_wan', 'recursors', 'rejoin_after_leave', 'reporting',
  'retry_interval', 'retry_interval_wan', 'retry_join', 'retry_join_wan', 'retry_max', 'retry_max_wan', 'revision', 'rpc', 'segment',
  'segment_limit', 'segment_name_limit', 'segments', 'serf_lan', 'serf_lan_allowed_cidrs', 'serf_wan', 'serf_wan_allowed_cidrs', 'server',
  'server_name', 'service', 'services', 'session_ttl_min', 'skip_leave_on_interrupt', 'snapshot_agent', 'sync_coordinate_interval_min',
  'sync_coordinate_rate_target', 'syslog_facility', 'tagged_addresses', 'telemetry', 'tls', 'translate_wan_addrs', 'ui', 'ui_config',
  'ui_content_path', 'ui_dir', 'unix_sockets', 'use_streaming_backend', 'version', 'version_metadata', 'version_prerelease', 'watches', 'xds',
  // Deprecated names Consul still reads.
  'acl_agent_master_token', 'acl_agent_token', 'acl_datacenter', 'acl_default_policy', 'acl_disabled_ttl', 'acl_down_policy',
  'acl_enable_key_list_policy', 'acl_master_token', 'acl_replication_token', 'acl_token', 'acl_ttl', 'ca_file', 'ca_path', 'cert_file',
  'enable_acl_replication', 'key_file', 'raft_boltdb', 'start_join', 'start_join_wan', 'tls_cipher_suites', 'tls_min_version',
  'tls_prefer_server_cipher_suites', 'verify_incoming', 'verify_incoming_https', 'verify_incoming_rpc', 'verify_outgoing',
  'verify_server_hostname',
]);

const CONSUL_PORTS = new Set(['dns', 'http', 'https', 'grpc', 'grpc_tls', 'serf_lan', 'serf_wan', 'server', 'proxy_min_port', 'proxy_max_port',
  'sidecar_min_port', 'sidecar_max_port', 'expose_min_port', 'expose_max_port']);
const CONSUL_ADDRESSES = new Set(['dns', 'http', 'https', 'grpc', 'grpc_tls']);

/** Consul's DNS port when ports.dns is not set. */
const CONSUL_DNS_PORT = 8600;

export const isConsulTopKey = (k: string): boolean => CONSUL_TOP.has(k);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The top-level keys of a Consul agent configuration in `doc` that are not ours: `recursors`, and
 * `ports`/`addresses`/`client_addr` (which give the DNS listen address); `known` are our own option
 * keys. Returns the entries to apply and the warnings; throws for a bad value of a key used here.
 */
export function consulAgentEntries(doc: Record<string, unknown>, where: string, known: ReadonlySet<string>): { entries: FileEntry[]; warnings: ConfigWarning[]; ignored: string[] } {
  const entries: FileEntry[] = [];
  const warnings: ConfigWarning[] = [];
  const ignored: string[] = [];
  const at = (k: string) => `${where}${k}`;

  if ('recursors' in doc) {
    warnings.push({ where: at('recursors'), reason: 'ignored: catalog-dns is authoritative only and never forwards a query to a recursor (names outside its zones are REFUSED)' });
  }
  for (const [k, block, keys] of [['ports', doc.ports, CONSUL_PORTS], ['addresses', doc.addresses, CONSUL_ADDRESSES]] as const) {
    if (block === undefined) continue;
    if (!isObject(block)) throw new ConfigError(at(k), 'expected an object');
    for (const sub of Object.keys(block)) {
      if (!keys.has(sub)) throw new ConfigError(at(`${k}.${sub}`), `unknown Consul ${k} key (catalog-dns uses ${k}.dns)`);
      if (sub !== 'dns') ignored.push(`${k}.${sub}`);
    }
  }

  // The DNS listen address, as Consul forms it: addresses.dns, else client_addr; ports.dns, else 8600.
  const ports = isObject(doc.ports) ? doc.ports : {};
  const addresses = isObject(doc.addresses) ? doc.addresses : {};
  const hostKey = addresses.dns !== undefined ? 'addresses.dns' : doc.client_addr !== undefined ? 'client_addr' : null;
  const host = hostKey === null ? null : listenIp(hostKey === 'addresses.dns' ? addresses.dns : doc.client_addr, at(hostKey));
  let port: number | null = null;
  if (ports.dns !== undefined) {
    const p = ports.dns;
    if (typeof p !== 'number' || !Number.isInteger(p) || p > 65535) throw new ConfigError(at('ports.dns'), 'expected a port number (Consul: -1 turns DNS off)');
    if (p <= 0) {
      warnings.push({ where: at('ports.dns'), reason: `${p} turns Consul's own DNS off; catalog-dns, which serves DNS in its place, listens on port ${CONSUL_DNS_PORT} unless dns says otherwise` });
    } else {
      port = p;
    }
  }
  if (host !== null || port !== null) {
    const written = port !== null && host === null ? 'ports.dns' : hostKey!;
    const h = host ?? '127.0.0.1';
    const value = `${h.includes(':') ? `[${h}]` : h}:${port ?? CONSUL_DNS_PORT}`;
    if ('dns' in doc) {
      warnings.push({ where: at(written), reason: 'ignored: the file also sets dns, which gives the DNS listen address' });
    } else {
      entries.push({ key: 'dns', value, written });
    }
  }

  for (const k of Object.keys(doc)) {
    if (known.has(k) || CONSUL_USED.has(k)) {
      // Consul's internal "consul" block (raft, coordinate timings) is not our list of Consul addresses.
      if (k === 'consul' && isObject(doc.consul)) ignored.push(k);
      continue;
    }
    if (CONSUL_TOP.has(k)) ignored.push(k);
  }
  return { entries, warnings, ignored };
}

/** A listen address from Consul's addresses.dns or client_addr: one IP; go-sockaddr templates are refused. */
function listenIp(v: unknown, name: string): string {
  if (typeof v !== 'string') throw new ConfigError(name, 'expected an IP address');
  if (v.includes('{{')) throw new ConfigError(name, `${JSON.stringify(v)}: go-sockaddr templates are not supported; give the IP address to listen on (or set dns)`);
  const list = v.trim().split(/\s+/).filter(Boolean);
  if (list.length !== 1) throw new ConfigError(name, `${JSON.stringify(v)}: catalog-dns listens on one address; give one IP (or set dns)`);
  const ip = list[0]!;
  if (ip.startsWith('unix://')) throw new ConfigError(name, `${JSON.stringify(v)}: DNS is served over UDP and TCP; give an IP address`);
  if (!isIP(ip)) throw new ConfigError(name, `${JSON.stringify(v)} is not an IP address`);
  return ip;
}

/** The known name closest to `name` (edit distance at most a third of its length, and at most 3), or null. */
export function closest(name: string, known: Iterable<string>): string | null {
  let best: string | null = null, bestD = Math.min(3, Math.floor(name.length / 3)) + 1;
  for (const k of known) {
    const d = editDistance(name.toLowerCase(), k.toLowerCase(), bestD);
    if (d < bestD) { best = k; bestD = d; }
  }
  return best;
}

/** Levenshtein distance, stopping early at `cap` (returns cap or more then). */
function editDistance(a: string, b: string, cap: number): number {
  if (Math.abs(a.length - b.length) >= cap) return cap;
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    let rowMin = i;
    for (let j = 1; j <= b.length; j++) {
      const v = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      cur.push(v);
      if (v < rowMin) rowMin = v;
    }
    if (rowMin >= cap) return cap;
    prev = cur;
  }
  return prev[b.length]!;
}
