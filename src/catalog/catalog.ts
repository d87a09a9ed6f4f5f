/**
 * The catalog: Consul's view of nodes, services and checks, validated and normalised.
 *
 * Input is the catalog-file document (also the persisted snapshot format):
 *   { datacenter, [entry_nodes: true],
 *     datacenters: { <dc>: { nodes: [ /v1/catalog/nodes objects ],
 *                            services: { <name>: [ /v1/health/service/<name> entries ] },
 *                            [gateway_services: { <terminating gateway>: [ <linked service name>, ... ] }] } } }
 * Structural errors throw a CatalogError naming the JSON path; names and addresses that cannot go on the
 * wire are skipped with a warning, never passed on.
 *
 * The data follows Consul's state store (agent/consul/state/catalog.go, catalog_schema.go): service
 * names are indexed lower-cased, so names differing only in case are one service; weights are stored
 * as NodeService.ToServiceNode leaves them (agent/structs/structs.go).
 */
import { ipFamily } from '../zone/ip.js';
import { CatalogError } from '../errors.js';

export type CheckStatus = 'passing' | 'warning' | 'critical' | 'maintenance' | string;

export interface Check {
  readonly checkId: string;
  readonly status: CheckStatus;
  /** "" for node-level checks. */
  readonly serviceId: string;
  readonly serviceName: string;
}

export interface CatalogNode {
  readonly name: string;
  readonly id: string;
  readonly address: string;
  readonly datacenter: string;
  /** lan, lan_ipv4, lan_ipv6, wan, wan_ipv4, wan_ipv6, ... (values already validated where they must be IPs). */
  readonly taggedAddresses: Readonly<Record<string, string>>;
  readonly meta: Readonly<Record<string, string>>;
}

export interface ServiceAddress {
  readonly address: string;
  readonly port: number;
}

export interface ServiceInstance {
  readonly node: CatalogNode;
  readonly id: string;
  readonly service: string;
  readonly tags: readonly string[];
  /** "" when the service uses its node's address. */
  readonly address: string;
  readonly port: number;
  readonly taggedAddresses: Readonly<Record<string, ServiceAddress>>;
  readonly meta: Readonly<Record<string, string>>;
  readonly weights: { readonly passing: number; readonly warning: number };
  readonly kind: string;
  /** For connect-proxy instances: the service they front. */
  readonly proxyDestination: string;
  readonly connectNative: boolean;
  /** Node-level checks and this instance's own checks, as /v1/health/service returns them. */
  readonly checks: readonly Check[];
}

export interface DatacenterCatalog {
  /**
   * Every node, keyed by name: the nodes list, with (in a catalog file without `entry_nodes`) the
   * nodes named only in service entries.
   */
  readonly nodes: ReadonlyMap<string, CatalogNode>;
  /**
   * Instances by service name, one key per name case-insensitively (Consul's state store indexes
   * service names lower-cased: `/v1/health/service/web` returns the instances of "Web" and "web"):
   * the code-unit-smallest spelling ("Web" < "web"). Only servable names (servableServiceName).
   */
  readonly services: ReadonlyMap<string, readonly ServiceInstance[]>;
  /**
   * Terminating gateways' linked services: gateway service name -> the services it links, as
   * `/v1/catalog/gateway-services/<gateway>` gives them (validateGatewayServices). `<svc>.connect`
   * answers the instances of every terminating gateway linking `<svc>` (Consul's
   * checkServiceNodesTxn with connect=true, via serviceGatewayNodes). Names match case-insensitively.
   * Absent: no gateway links.
   */
  readonly gatewayServices?: ReadonlyMap<string, readonly string[]>;
}

export interface Catalog {
  /** The local datacenter: names without a DC label resolve here. */
  readonly datacenter: string;
  readonly datacenters: ReadonlyMap<string, DatacenterCatalog>;
}

export interface ValidatedCatalog {
  readonly catalog: Catalog;
  readonly warnings: readonly string[];
}

const IP_TAGS: Record<string, 4 | 6 | 0> = {
  lan_ipv4: 4, wan_ipv4: 4, lan_ipv6: 6, wan_ipv6: 6, lan: 0, wan: 0,
};

/** True when `s` can be one or more DNS labels (1-63 bytes each, no empty label). */
export function isWireName(s: string): boolean {
  if (s.length === 0 || Buffer.byteLength(s) > 253) return false;
  for (const label of s.split('.')) {
    const n = Buffer.byteLength(label);
    if (n === 0 || n > 63) return false;
  }
  return true;
}

/** A single DNS label (1-63 bytes, no dot). */
export function isWireLabel(s: string): boolean {
  const n = Buffer.byteLength(s);
  return n > 0 && n <= 63 && !s.includes('.');
}

/**
 * A service name the zone can serve: one DNS label of 1-63 bytes without a dot. Consul accepts any
 * name (its agent only warns), but `<svc>.service.consul` cannot ask for one with a dot or over 63
 * bytes. One rule for every path: catalog files and snapshots skip other names with a warning, the
 * live source does not follow them, the snapshot writer leaves them out, and the zone ignores them.
 */
export function servableServiceName(name: string): boolean {
  return isWireLabel(name);
}

const HOSTNAME_LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

/** A host name usable as a CNAME/SRV target: LDH (plus underscore) labels, optional trailing dot. */
export function isHostname(s: string): boolean {
  const t = s.endsWith('.') ? s.slice(0, -1) : s;
  if (t.length === 0 || t.length > 253) return false;
  const labels = t.split('.');
  // RFC 1123 §2.1: a dotted quad is an address, never a host name (so `10.0.1.300` is rejected).
  return labels.every((l) => HOSTNAME_LABEL.test(l)) && !/^\d+$/.test(labels[labels.length - 1]!);
}

type Json = unknown;
const isObj = (v: Json): v is Record<string, Json> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Checks and copies catalog JSON. A JSON path is made only for an error or a warning: each check
 * takes the path of the enclosing object (`at`) and the key's suffix (`key`, `.Port`), joined on
 * failure, so that validating a large catalog builds no strings.
 */
class Validator {
  readonly warnings: string[] = [];

  obj(v: Json, at: string, key = ''): Record<string, Json> {
    if (!isObj(v)) throw new CatalogError(at + key, 'expected an object');
    return v;
  }
  arr(v: Json, at: string, key = ''): Json[] {
    if (!Array.isArray(v)) throw new CatalogError(at + key, 'expected an array');
    return v;
  }
  /** A required string. */
  str(v: Json, at: string, key: string): string {
    if (typeof v === 'string') return v;
    throw new CatalogError(at + key, v === undefined || v === null ? 'is required' : 'expected a string');
  }
  /** A required, non-empty string. */
  name(v: Json, at: string, key: string): string {
    if (typeof v === 'string' && v.length > 0) return v;
    if (typeof v === 'string') throw new CatalogError(at + key, 'must not be empty');
    return this.str(v, at, key);
  }
  /** An optional string: '' when absent or null. */
  opt(v: Json, at: string, key: string): string {
    if (typeof v === 'string') return v;
    if (v === undefined || v === null) return '';
    throw new CatalogError(at + key, 'expected a string');
  }
  int(v: Json, at: string, key: string, min: number, max: number, dflt?: number): number {
    if ((v === undefined || v === null) && dflt !== undefined) return dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      throw new CatalogError(at + key, `expected an integer ${min}-${max}`);
    }
    return v;
  }
  /**
   * Service weights as Consul's catalog stores them (NodeService.ToServiceNode, agent/structs):
   * absent gives Passing 1 and Warning 1; a Weights object that ValidateWeights refuses (Passing
   * below 1, Warning below 0, either above 65535) is replaced whole by 1 and 1; a field missing from
   * the object is Go's zero value, 0. So an SRV weight is what Consul's findWeight and
   * `uint16(findWeight(...))` answer for the stored value. Not an integer: an error (Consul's JSON
   * decoding refuses it, so no catalog holds it).
   */
  weights(v: Json, at: string): { readonly passing: number; readonly warning: number } {
    if (v === undefined || v === null) return DEFAULT_WEIGHTS;
    const w = this.obj(v, at, '.Service.Weights');
    const weight = (x: Json, key: string): number => {
      if (x === undefined || x === null) return 0;
      if (typeof x !== 'number' || !Number.isInteger(x)) throw new CatalogError(at + key, 'expected an integer');
      return x;
    };
    const passing = weight(w.Passing, '.Service.Weights.Passing');
    const warning = weight(w.Warning, '.Service.Weights.Warning');
    if (passing < 1 || warning < 0 || passing > 65535 || warning > 65535) return DEFAULT_WEIGHTS;
    return passing === 1 && warning === 1 ? DEFAULT_WEIGHTS : { passing, warning };
  }
  strMap(v: Json, at: string, key: string): Record<string, string> {
    if (v === undefined || v === null) return {};
    const o = this.obj(v, at, key);
    const out: Record<string, string> = {};
    for (const k in o) {
      const val = o[k];
      if (typeof val !== 'string') this.str(val, at, `${key}.${k}`);
      out[k] = val as string;
    }
    return out;
  }

  /**
   * A node object at path `at`. `known`: a node of this name is already taken (from the nodes list);
   * this copy is then checked for structure only, since it will not be used.
   */
  node(v: Json, at: string, dc: string, known = false): CatalogNode | null {
    const o = this.obj(v, at);
    const name = this.name(o.Node, at, '.Node');
    const address = this.str(o.Address, at, '.Address');
    const tagged = this.strMap(o.TaggedAddresses, at, '.TaggedAddresses');
    const meta = this.strMap(o.Meta, at, '.Meta');
    const id = this.opt(o.ID, at, '.ID');
    const datacenter = this.opt(o.Datacenter, at, '.Datacenter') || dc;
    if (known) return SKIPPED_NODE;
    if (!isWireName(name)) {
      this.warnings.push(`${at}.Node: node name ${JSON.stringify(name)} cannot be a DNS name (labels of 1-63 bytes); node skipped`);
      return null;
    }
    if (!(ipFamily(address) !== 0 || isHostname(address))) {
      this.warnings.push(`${at}.Address: ${JSON.stringify(address)} is neither an IP address nor a host name; node skipped`);
      return null;
    }
    const taggedAddresses: Record<string, string> = {};
    for (const k in tagged) {
      const a = tagged[k]!;
      const fam = IP_TAGS[k];
      if (fam === undefined) { taggedAddresses[k] = a; continue; }
      const got = ipFamily(a);
      if (a === '' || (fam === 0 ? got === 0 && !isHostname(a) : got !== fam)) {
        if (a !== '') this.warnings.push(`${at}.TaggedAddresses.${k}: ${JSON.stringify(a)} is not a valid ${fam ? `IPv${fam} ` : ''}address; ignored`);
        continue;
      }
      taggedAddresses[k] = a;
    }
    return { name, address, taggedAddresses, meta, id, datacenter };
  }

  checks(v: Json, at: string, key: string): Check[] {
    if (v === undefined || v === null) return [];
    const list = this.arr(v, at, key);
    const out: Check[] = new Array(list.length);
    for (let i = 0; i < list.length; i++) {
      const c = list[i];
      if (!isObj(c)) this.obj(c, at, `${key}[${i}]`);
      const o = c as Record<string, Json>;
      const checkId = o.CheckID, status = o.Status, serviceId = o.ServiceID, serviceName = o.ServiceName;
      // The common case (all strings) without a call per field; anything else goes through the checks.
      out[i] = typeof checkId === 'string' && typeof status === 'string' && status !== '' && typeof serviceId === 'string' && typeof serviceName === 'string'
        ? { checkId, status, serviceId, serviceName }
        : {
          checkId: this.opt(checkId, at, `${key}[${i}].CheckID`),
          status: this.name(status, at, `${key}[${i}].Status`),
          serviceId: this.opt(serviceId, at, `${key}[${i}].ServiceID`),
          serviceName: this.opt(serviceName, at, `${key}[${i}].ServiceName`),
        };
    }
    return out;
  }

  serviceTagged(v: Json, at: string, key: string): Record<string, ServiceAddress> {
    if (v === undefined || v === null) return {};
    const o = this.obj(v, at, key);
    const out: Record<string, ServiceAddress> = {};
    for (const k in o) {
      const p = `${key}.${k}`;
      const e = this.obj(o[k], at, p);
      // Real agents send Go field names (Address/Port); Consul's docs print them lower case.
      const address = this.opt(e.Address ?? e.address, at, `${p}.Address`);
      const port = this.int(e.Port ?? e.port, at, `${p}.Port`, 0, 65535, 0);
      const fam = IP_TAGS[k];
      if (fam !== undefined && address !== '') {
        const got = ipFamily(address);
        if (fam === 0 ? got === 0 && !isHostname(address) : got !== fam) {
          this.warnings.push(`${at}${p}.Address: ${JSON.stringify(address)} is not a valid ${fam ? `IPv${fam} ` : ''}address; ignored`);
          continue;
        }
      }
      if (address !== '' || port !== 0) out[k] = { address, port };
    }
    return out;
  }

  instance(v: Json, path: string, svcName: string, dc: string, nodes: NodeIndex, entryWins = false): ServiceInstance | null {
    const o = this.obj(v, path);
    const s = this.obj(o.Service, path, '.Service');
    const service = this.name(s.Service, path, '.Service.Service');
    // Consul's services table indexes ServiceName lower-cased (catalog_schema.go), so
    // /v1/health/service/web holds the instances of "Web" and "web": each keeps its own spelling.
    if (service !== svcName && service.toLowerCase() !== svcName.toLowerCase()) {
      throw new CatalogError(`${path}.Service.Service`, `expected ${JSON.stringify(svcName)}, in any case (the key it is listed under)`);
    }
    const port = this.int(s.Port, path, '.Service.Port', 0, 65535, 0);
    const address = this.opt(s.Address, path, '.Service.Address');
    const tagsRaw = s.Tags === undefined || s.Tags === null ? [] : this.arr(s.Tags, path, '.Service.Tags');
    const tags: string[] = new Array(tagsRaw.length);
    for (let i = 0; i < tagsRaw.length; i++) tags[i] = this.str(tagsRaw[i], path, `.Service.Tags[${i}]`);
    const weights = this.weights(s.Weights, path);
    const taggedAddresses = this.serviceTagged(s.TaggedAddresses, path, '.Service.TaggedAddresses');
    const meta = this.strMap(s.Meta, path, '.Service.Meta');
    const checks = this.checks(o.Checks, path, '.Checks');
    const proxy = isObj(s.Proxy) ? s.Proxy : {};
    const connect = isObj(s.Connect) ? s.Connect : {};
    const id = this.opt(s.ID, path, '.Service.ID') || service;
    const kind = this.opt(s.Kind, path, '.Service.Kind');
    // One node object per name: the nodes list wins, service entries fill in nodes it lacks. From
    // Consul (entryWins), the entry is the newer copy: the list's object is shared only if equal.
    const nodeRaw = o.Node;
    const name = isObj(nodeRaw) ? nodeRaw.Node : undefined;
    const listed = typeof name === 'string' ? nodes.get(name) : undefined;
    const node = this.node(nodeRaw, `${path}.Node`, dc, !entryWins && listed !== undefined);
    if (!node) return null;
    if (address !== '' && !(ipFamily(address) !== 0 || isHostname(address))) {
      this.warnings.push(`${path}.Service.Address: ${JSON.stringify(address)} is neither an IP address nor a host name; instance skipped`);
      return null;
    }
    let use: CatalogNode;
    if (node === SKIPPED_NODE) use = listed!;
    else if (!listed) { nodes.set(node.name, node); use = node; }
    else use = !entryWins || sameNodeData(listed, node) ? listed : node;
    return {
      node: use, id, service, tags, address, port, taggedAddresses, meta, weights, checks, kind,
      proxyDestination: typeof proxy.DestinationServiceName === 'string' ? proxy.DestinationServiceName : '',
      connectNative: connect.Native === true,
    };
  }
}

/** Consul's default weights (structs.ToServiceNode), one shared object. */
const DEFAULT_WEIGHTS = Object.freeze({ passing: 1, warning: 1 });

/** Returned by Validator.node for a node whose copy is not used (the known node is). */
const SKIPPED_NODE: CatalogNode = Object.freeze({ name: '', id: '', address: '', datacenter: '', taggedAddresses: {}, meta: {} });

const sameMap = (a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean => {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
};

function sameNodeData(a: CatalogNode, b: CatalogNode): boolean {
  return a.address === b.address && a.id === b.id && a.datacenter === b.datacenter && sameMap(a.taggedAddresses, b.taggedAddresses) && sameMap(a.meta, b.meta);
}

/** Where instances find the node objects they share: `set` adds a node the list lacked. */
export interface NodeIndex {
  get(name: string): CatalogNode | undefined;
  set(name: string, node: CatalogNode): unknown;
}

/** Validates a /v1/catalog/nodes body. Throws CatalogError on structural errors. */
export function validateNodeList(dc: string, doc: unknown): { nodes: Map<string, CatalogNode>; warnings: string[] } {
  const v = new Validator();
  const nodes = new Map<string, CatalogNode>();
  v.arr(doc, `${dc}.nodes`).forEach((n, i) => {
    const node = v.node(n, `${dc}.nodes[${i}]`, dc);
    if (node && !nodes.has(node.name)) nodes.set(node.name, node);
  });
  return { nodes, warnings: v.warnings };
}

/**
 * Validates a /v1/health/service/<name> body. Entries may spell the service in any case (Consul's
 * services table indexes names lower-cased, so the body holds every spelling); each instance keeps
 * its own. Instances share the node objects of `nodes` where it has them (so an unchanged node is the
 * same object); an entry's node that differs from it, or that it lacks, is the instance's own copy
 * (the newer one) and is not added to `nodes`. Throws CatalogError on structural errors.
 */
export function validateServiceEntries(dc: string, name: string, doc: unknown, nodes: ReadonlyMap<string, CatalogNode>): { instances: ServiceInstance[]; warnings: string[] } {
  const v = new Validator();
  const extra = new Map<string, CatalogNode>();
  const index: NodeIndex = { get: (n) => nodes.get(n) ?? extra.get(n), set: (n, node) => extra.set(n, node) };
  const instances: ServiceInstance[] = [];
  v.arr(doc, `${dc}.services.${name}`).forEach((e, i) => {
    const inst = v.instance(e, `${dc}.services.${name}[${i}]`, name, dc, index, true);
    if (inst) instances.push(inst);
  });
  return { instances, warnings: v.warnings };
}

/**
 * Validates a /v1/catalog/gateway-services/<gateway> body (structs.GatewayServices: objects
 * `{Gateway: {Name}, Service: {Name}, GatewayKind, Port, Hosts, CAFile, ..., FromWildcard,
 * ServiceKind}`) and returns the services the gateway links as a terminating gateway: those whose
 * `.connect` answers include the gateway's instances (Consul's serviceGatewayNodes, called by
 * checkServiceNodesTxn for connect lookups, takes only mappings of GatewayKind
 * "terminating-gateway"; an ingress gateway's mappings are left out). The wildcard `*` (expanded by
 * Consul into one mapping per service, and never returned, see collectGatewayServices) is ignored;
 * names that are not servable are skipped with a warning; names are de-duplicated case-insensitively
 * (the gateway-services table indexes them lower-cased), the first spelling kept. Throws
 * CatalogError on structural errors, at paths under `<dc>.gateway_services.<gateway>`.
 */
export function validateGatewayServices(dc: string, gateway: string, doc: unknown): { services: string[]; warnings: string[] } {
  const v = new Validator();
  const at = `${dc}.gateway_services.${gateway}`;
  const names: Array<[string, string]> = [];
  v.arr(doc, at).forEach((e, i) => {
    const p = `${at}[${i}]`;
    const o = v.obj(e, p);
    if (o.Gateway !== undefined && o.Gateway !== null) {
      const g = v.opt(v.obj(o.Gateway, p, '.Gateway').Name, p, '.Gateway.Name');
      if (g !== '' && g.toLowerCase() !== gateway.toLowerCase()) {
        throw new CatalogError(`${p}.Gateway.Name`, `expected ${JSON.stringify(gateway)}, in any case (the gateway asked for)`);
      }
    }
    const name = v.str(v.obj(o.Service, p, '.Service').Name, p, '.Service.Name');
    if (v.opt(o.GatewayKind, p, '.GatewayKind') !== 'terminating-gateway' || name === '*') return;
    names.push([name, `${p}.Service.Name`]);
  });
  return { services: linkedNames(v, names), warnings: v.warnings };
}

/** Linked service names (with the path each came from): servable ones, once each case-insensitively. */
function linkedNames(v: Validator, names: ReadonlyArray<readonly [string, string]>): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const [name, path] of names) {
    if (!servableServiceName(name)) {
      v.warnings.push(`${path}: service name ${JSON.stringify(name)} cannot be a DNS label (1-63 bytes, no dot); link skipped`);
      continue;
    }
    const lower = name.toLowerCase();
    if (seen.has(lower)) continue;
    seen.add(lower);
    out.push(name);
  }
  return out;
}

/**
 * A catalog file's `gateway_services` object (at path `p`): gateway name -> linked service names.
 * Gateway names differing only in case are one gateway (its key the code-unit-smallest spelling, its
 * links the union in document order); names that are not servable are skipped with a warning.
 */
function gatewayServicesOf(v: Validator, raw: Json, p: string): Map<string, string[]> | undefined {
  if (raw === undefined) return undefined;
  const o = v.obj(raw, p);
  const groups = new Map<string, { key: string; names: Array<[string, string]> }>();
  for (const gw in o) {
    const gp = `${p}.${gw}`;
    const list = v.arr(o[gw], gp);
    const names: Array<[string, string]> = list.map((n, i) => [v.str(n, gp, `[${i}]`), `${gp}[${i}]`]);
    if (!servableServiceName(gw)) {
      v.warnings.push(`${gp}: gateway name ${JSON.stringify(gw)} cannot be a DNS label (1-63 bytes, no dot); gateway skipped`);
      continue;
    }
    const lower = gw.toLowerCase();
    const g = groups.get(lower);
    if (!g) groups.set(lower, { key: gw, names });
    else {
      if (gw < g.key) g.key = gw;
      g.names.push(...names);
    }
  }
  const out = new Map<string, string[]>();
  for (const g of groups.values()) {
    const links = linkedNames(v, g.names);
    if (links.length) out.set(g.key, links);
  }
  return out.size ? out : undefined;
}

/** Identity of an instance in Consul's services table: node and service ID, lower-cased (catalog_schema.go). */
const instanceId = (s: ServiceInstance): string => `${s.node.name.toLowerCase()}\0${s.id.toLowerCase()}`;

/**
 * Adds the instances of another spelling of a service to `into` (one service in Consul, see
 * DatacenterCatalog.services): in document order, each (node, ID) once, the first kept. A file
 * assembled from `/v1/catalog/services` lists every spelling with the whole union under each.
 */
function mergeSpelling(into: ServiceInstance[], more: readonly ServiceInstance[]): void {
  const seen = new Set(into.map(instanceId));
  for (const s of more) {
    const id = instanceId(s);
    if (!seen.has(id)) { seen.add(id); into.push(s); }
  }
}

/**
 * Servable service names grouped case-insensitively: lower-cased name -> key (smallest spelling) and
 * spellings in document order. The rule for catalog files, snapshots and the live source alike.
 */
export function spellingGroups(names: Iterable<string>): Map<string, { key: string; spellings: string[] }> {
  const groups = new Map<string, { key: string; spellings: string[] }>();
  for (const name of names) {
    if (!servableServiceName(name)) continue;
    const lower = name.toLowerCase();
    const g = groups.get(lower);
    if (!g) groups.set(lower, { key: name, spellings: [name] });
    else { g.spellings.push(name); if (name < g.key) g.key = name; }
  }
  return groups;
}

/**
 * A catalog document whose structure and node lists are checked and whose service entries are not
 * yet: what a start answers service and node names from while the rest is validated and the zone
 * built (see zone/provisional.ts). Only wire-label datacenters are in it, as in the catalog.
 */
export interface CatalogPreview {
  readonly datacenter: string;
  readonly datacenters: ReadonlyMap<string, PreviewDatacenter>;
}

export interface PreviewDatacenter {
  /** The nodes list, validated (nodes named only in service entries are not in it). */
  readonly nodes: ReadonlyMap<string, CatalogNode>;
  /** The services' keys (servable names, one per name case-insensitively, as in the catalog), in document order. */
  readonly serviceNames: readonly string[];
  /**
   * One service's instances (given its name in any case), exactly as the validated catalog will have
   * them; null when that is not known from the entries alone: an entry is invalid (validation will
   * say why), or it runs on a node the list lacks (whose object then comes from the first entry
   * naming it, maybe another service's; not so with `entry_nodes`, where each entry has its own).
   */
  service(name: string): ServiceInstance[] | null;
}

/** A checked document: its preview, and the validation of the rest, in steps (one per service). */
export interface OpenedCatalog {
  readonly preview: CatalogPreview;
  /** Validates every service entry, yielding between services; returns what validateCatalog does. */
  validate(): Generator<void, ValidatedCatalog>;
}

/**
 * Checks a catalog document's structure and validates its node lists and gateway links (cheap: one
 * entry per node); the service entries, most of a large catalog, are validated by `validate()`.
 * Throws CatalogError on structural errors found so far. With `list` (a split file, split.ts), a
 * service's entry list may be a marker in `doc`, parsed when first needed; `validate()` then throws
 * its SyntaxError, if any.
 *
 * `entry_nodes: true` (what the snapshot of a live catalog says, snapshot.ts): each service entry's
 * Node is that instance's own copy, as the live source keeps it (validateServiceEntries), and the
 * `nodes` list is the whole node list. Without it (a file assembled by hand or with curl), the
 * `nodes` list wins over entries and a node named only in entries is added to it.
 */
export function openCatalog(doc: unknown, list?: (v: unknown) => unknown): OpenedCatalog {
  const top = new Validator().obj(doc, '$');
  const v0 = new Validator();
  const local = v0.name(top.datacenter, 'datacenter', '');
  if (!isWireLabel(local)) throw new CatalogError('datacenter', 'must be a single DNS label of 1-63 bytes');
  if (top.entry_nodes !== undefined && typeof top.entry_nodes !== 'boolean') throw new CatalogError('entry_nodes', 'expected true or false');
  const entryNodes = top.entry_nodes === true;
  const dcs = v0.obj(top.datacenters, 'datacenters');
  if (!(local in dcs)) throw new CatalogError('datacenters', `has no entry for the local datacenter ${JSON.stringify(local)}`);
  interface Dc {
    dc: string; p: string; v: Validator; nodes: Map<string, CatalogNode>; servicesRaw: Record<string, Json>; parsed: Map<string, Json>;
    gatewayServices: Map<string, string[]> | undefined;
  }
  const opened: Dc[] = [];
  const previews = new Map<string, PreviewDatacenter>();
  for (const [dc, dcDoc] of Object.entries(dcs)) {
    // One validator per datacenter: its warnings keep the order of a validation in one pass.
    const v = new Validator();
    const p = `datacenters.${dc}`;
    const d = v.obj(dcDoc, p);
    const nodesRaw = d.nodes === undefined ? [] : v.arr(d.nodes, `${p}.nodes`);
    const servicesRaw = d.services === undefined ? {} : v.obj(d.services, `${p}.services`);
    const nodes = new Map<string, CatalogNode>();
    nodesRaw.forEach((n, i) => {
      const node = v.node(n, `${p}.nodes[${i}]`, dc);
      if (!node) return;
      if (nodes.has(node.name)) v.warnings.push(`${p}.nodes[${i}].Node: duplicate node ${JSON.stringify(node.name)}; first kept`);
      else nodes.set(node.name, node);
    });
    const gatewayServices = gatewayServicesOf(v, d.gateway_services, `${p}.gateway_services`);
    // Lists parsed for the preview, kept for validate() (which takes them out).
    const parsed = new Map<string, Json>();
    opened.push({ dc, p, v, nodes, servicesRaw, parsed, gatewayServices });
    if (!isWireLabel(dc)) continue;
    const listed: ReadonlyMap<string, CatalogNode> = new Map(nodes);
    let groups: Map<string, { key: string; spellings: string[] }> | null = null;
    const spellings = () => (groups ??= spellingGroups(Object.keys(servicesRaw)));
    const one = (name: string): ServiceInstance[] | null => {
      let raw = servicesRaw[name];
      if (list && !parsed.has(name)) {
        try {
          const l = list(raw);
          if (l !== undefined) parsed.set(name, l);
        } catch {
          return null; // not JSON: validate() reports it
        }
      }
      raw = parsed.get(name) ?? raw;
      return previewService(dc, `${p}.services.${name}`, name, raw, listed, entryNodes);
    };
    previews.set(dc, {
      nodes: listed,
      get serviceNames() { return [...spellings().values()].map((g) => g.key); },
      service: (name) => {
        const g = spellings().get(name.toLowerCase());
        if (!g) return null;
        let out: ServiceInstance[] | null = null;
        for (const s of g.spellings) {
          const l = one(s);
          if (!l) return null;
          if (!out) out = l; else mergeSpelling(out, l);
        }
        return out;
      },
    });
  }
  return {
    preview: { datacenter: local, datacenters: previews },
    *validate() {
      const warnings: string[] = [...v0.warnings];
      const datacenters = new Map<string, DatacenterCatalog>();
      for (const { dc, p, v, nodes, servicesRaw, parsed, gatewayServices } of opened) {
        // Names differing only in case are one service (see DatacenterCatalog.services).
        const groups = new Map<string, { key: string; instances: ServiceInstance[] }>();
        const extra = new Map<string, CatalogNode>();
        const index: NodeIndex = entryNodes ? { get: (n) => nodes.get(n) ?? extra.get(n), set: (n, node) => extra.set(n, node) } : nodes;
        for (const [name, value] of Object.entries(servicesRaw)) {
          const sp = `${p}.services.${name}`;
          let raw = parsed.get(name);
          if (raw === undefined) raw = list ? list(value) ?? value : value;
          else parsed.delete(name);
          const entries = v.arr(raw, sp);
          const instances: ServiceInstance[] = [];
          entries.forEach((e, i) => {
            const inst = v.instance(e, `${sp}[${i}]`, name, dc, index, entryNodes);
            if (inst) instances.push(inst);
          });
          yield;
          if (!servableServiceName(name)) {
            v.warnings.push(`${sp}: service name ${JSON.stringify(name)} cannot be a DNS label (1-63 bytes, no dot); service skipped`);
            continue;
          }
          const lower = name.toLowerCase();
          const g = groups.get(lower);
          if (!g) groups.set(lower, { key: name, instances });
          else {
            if (name < g.key) g.key = name;
            mergeSpelling(g.instances, instances);
          }
        }
        const services = new Map<string, ServiceInstance[]>();
        for (const g of groups.values()) services.set(g.key, g.instances);
        if (!isWireLabel(dc)) v.warnings.push(`${p}: datacenter name ${JSON.stringify(dc)} cannot be a DNS label; datacenter skipped`);
        else datacenters.set(dc, gatewayServices ? { nodes, services, gatewayServices } : { nodes, services });
        warnings.push(...v.warnings);
      }
      return { catalog: { datacenter: local, datacenters }, warnings };
    },
  };
}

/** PreviewDatacenter.service: one spelling's entries against the nodes list alone. */
function previewService(dc: string, sp: string, name: string, raw: Json, listed: ReadonlyMap<string, CatalogNode>, entryNodes: boolean): ServiceInstance[] | null {
  if (!Array.isArray(raw)) return null;
  // A node the list lacks makes the answer unknown (valid copy or not: another service's entry may
  // have given the node first), unless each entry has its own node copy (entry_nodes).
  let unlisted = false;
  const index: NodeIndex = {
    get: (n) => { const node = listed.get(n); if (!node && !entryNodes) unlisted = true; return node; },
    set: () => {},
  };
  const v = new Validator();
  const out: ServiceInstance[] = [];
  try {
    for (let i = 0; i < raw.length; i++) {
      const inst = v.instance(raw[i], `${sp}[${i}]`, name, dc, index, entryNodes);
      if (unlisted) return null;
      if (inst) out.push(inst);
    }
  } catch {
    return null;
  }
  return out;
}

/** Validates a catalog document. Throws CatalogError on structural errors. */
export function validateCatalog(doc: unknown): ValidatedCatalog {
  const steps = openCatalog(doc).validate();
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/** Parses and validates catalog-file text. JSON syntax errors are reported at path `$`. */
export function parseCatalog(text: string): ValidatedCatalog {
  return validateCatalog(parseCatalogJson(text));
}

/** JSON.parse, its syntax errors reported as CatalogError at path `$`. */
export function parseCatalogJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new CatalogError('$', `not valid JSON (${(e as Error).message})`, { cause: e });
  }
}
