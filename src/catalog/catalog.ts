/**
 * The catalog: Consul's view of nodes, services and checks, validated and normalised.
 *
 * Input is the catalog-file document (also the persisted snapshot format):
 *   { datacenter, datacenters: { <dc>: { nodes: [ /v1/catalog/nodes objects ],
 *                                        services: { <name>: [ /v1/health/service/<name> entries ] } } } }
 * Structural errors throw a CatalogError naming the JSON path; names and addresses that cannot go on the
 * wire are skipped with a warning, never passed on.
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
  /** Every node, keyed by name (nodes named only in service entries are included). */
  readonly nodes: ReadonlyMap<string, CatalogNode>;
  readonly services: ReadonlyMap<string, readonly ServiceInstance[]>;
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
    if (service !== svcName) throw new CatalogError(`${path}.Service.Service`, `expected ${JSON.stringify(svcName)} (the key it is listed under)`);
    const port = this.int(s.Port, path, '.Service.Port', 0, 65535, 0);
    const address = this.opt(s.Address, path, '.Service.Address');
    const tagsRaw = s.Tags === undefined || s.Tags === null ? [] : this.arr(s.Tags, path, '.Service.Tags');
    const tags: string[] = new Array(tagsRaw.length);
    for (let i = 0; i < tagsRaw.length; i++) tags[i] = this.str(tagsRaw[i], path, `.Service.Tags[${i}]`);
    const w = s.Weights === undefined || s.Weights === null ? {} : this.obj(s.Weights, path, '.Service.Weights');
    const weights = {
      passing: this.int(w.Passing, path, '.Service.Weights.Passing', 0, 65535, 1),
      warning: this.int(w.Warning, path, '.Service.Weights.Warning', 0, 65535, 1),
    };
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
 * Validates a /v1/health/service/<name> body. Instances share the node objects of `nodes` where it
 * has them (so an unchanged node is the same object). Throws CatalogError on structural errors.
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
  /** Service names that are wire labels, in document order. */
  readonly serviceNames: readonly string[];
  /**
   * One service's instances, exactly as the validated catalog will have them; null when that is not
   * known from the entries alone: an entry is invalid (validation will say why), or it runs on a node
   * the list lacks (whose object then comes from the first entry naming it, maybe another service's).
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
 * Checks a catalog document's structure and validates its node lists (cheap: one entry per node);
 * the service entries, most of a large catalog, are validated by `validate()`. Throws CatalogError on
 * structural errors found so far. With `list` (a split file, split.ts), a service's entry list may
 * be a marker in `doc`, parsed when first needed; `validate()` then throws its SyntaxError, if any.
 */
export function openCatalog(doc: unknown, list?: (v: unknown) => unknown): OpenedCatalog {
  const top = new Validator().obj(doc, '$');
  const v0 = new Validator();
  const local = v0.name(top.datacenter, 'datacenter', '');
  if (!isWireLabel(local)) throw new CatalogError('datacenter', 'must be a single DNS label of 1-63 bytes');
  const dcs = v0.obj(top.datacenters, 'datacenters');
  if (!(local in dcs)) throw new CatalogError('datacenters', `has no entry for the local datacenter ${JSON.stringify(local)}`);
  interface Dc { dc: string; p: string; v: Validator; nodes: Map<string, CatalogNode>; servicesRaw: Record<string, Json>; parsed: Map<string, Json> }
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
    // Lists parsed for the preview, kept for validate() (which takes them out).
    const parsed = new Map<string, Json>();
    opened.push({ dc, p, v, nodes, servicesRaw, parsed });
    if (!isWireLabel(dc)) continue;
    const listed: ReadonlyMap<string, CatalogNode> = new Map(nodes);
    previews.set(dc, {
      nodes: listed,
      serviceNames: Object.keys(servicesRaw).filter(isWireLabel),
      service: (name) => {
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
        return previewService(dc, `${p}.services.${name}`, name, raw, listed);
      },
    });
  }
  return {
    preview: { datacenter: local, datacenters: previews },
    *validate() {
      const warnings: string[] = [...v0.warnings];
      const datacenters = new Map<string, DatacenterCatalog>();
      for (const { dc, p, v, nodes, servicesRaw, parsed } of opened) {
        const services = new Map<string, ServiceInstance[]>();
        for (const [name, value] of Object.entries(servicesRaw)) {
          const sp = `${p}.services.${name}`;
          let raw = parsed.get(name);
          if (raw === undefined) raw = list ? list(value) ?? value : value;
          else parsed.delete(name);
          const entries = v.arr(raw, sp);
          const instances: ServiceInstance[] = [];
          entries.forEach((e, i) => {
            const inst = v.instance(e, `${sp}[${i}]`, name, dc, nodes);
            if (inst) instances.push(inst);
          });
          yield;
          if (!isWireLabel(name)) {
            v.warnings.push(`${sp}: service name ${JSON.stringify(name)} cannot be a DNS label (1-63 bytes, no dot); service skipped`);
            continue;
          }
          services.set(name, instances);
        }
        if (!isWireLabel(dc)) v.warnings.push(`${p}: datacenter name ${JSON.stringify(dc)} cannot be a DNS label; datacenter skipped`);
        else datacenters.set(dc, { nodes, services });
        warnings.push(...v.warnings);
      }
      return { catalog: { datacenter: local, datacenters }, warnings };
    },
  };
}

/** PreviewDatacenter.service: one service's entries against the nodes list alone. */
function previewService(dc: string, sp: string, name: string, raw: Json, listed: ReadonlyMap<string, CatalogNode>): ServiceInstance[] | null {
  if (!Array.isArray(raw)) return null;
  // A node the list lacks makes the answer unknown (valid copy or not: another service's entry may
  // have given the node first).
  let unlisted = false;
  const index: NodeIndex = {
    get: (n) => { const node = listed.get(n); if (!node) unlisted = true; return node; },
    set: () => {},
  };
  const v = new Validator();
  const out: ServiceInstance[] = [];
  try {
    for (let i = 0; i < raw.length; i++) {
      const inst = v.instance(raw[i], `${sp}[${i}]`, name, dc, index);
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
