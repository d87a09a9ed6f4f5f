/**
 * From catalogs to commits: which units a new catalog changes (compared with the one being served),
 * building only those, and the zone version (serial, SOA, NS, negative answers) of a commit.
 *
 * `planCommit` is a generator that yields between units, so a large build can run in slices while
 * the current zone keeps answering (ZoneStore drives it); `buildZone` runs it in one go.
 */
import { servableServiceName, type Catalog, type CatalogNode, type DatacenterCatalog, type ServiceInstance } from '../catalog/catalog.js';
import type { ChangeHint } from '../catalog/source.js';
import type { Config } from '../config.js';
import { apexLines, apexRecords, versionAnswers } from './apex.js';
import { reverseName } from './ip.js';
import { Translator, connectDestination, unitKey, type Unit } from './units.js';
import { cacheBudget } from '../cache-budget.js';
import type { RingTable } from '../ring-table.js';
import { Zone, ZoneData, type Owner, type Source } from './zone.js';

export type { ChangeHint } from '../catalog/source.js';

export interface Plan {
  readonly put: Unit[];
  readonly remove: string[];
}

/**
 * The units that differ between the zone's units and the catalog `next`: services whose
 * instances (or the nodes they run on, or their gateway links) changed, nodes that changed, connect
 * destinations served by a changed service, and units that are gone. Yields after each unit it
 * builds or compares. A service whose name is not servable (servableServiceName) is left out, as
 * catalog files, snapshots and the live source leave it out. With a `hint`, a change of a gateway's
 * links (DatacenterCatalog.gatewayServices) is hinted as a change of the gateway's service.
 */
export function* planCommit(tr: Translator, data: ZoneData, next: Catalog, warn: (msg: string) => void, hint?: ChangeHint): Generator<void, Plan> {
  const put: Unit[] = [];
  const remove: string[] = [];
  const seen = new Set<string>();
  const connectDirty = new Map<string, Set<string>>(); // dc -> destinations to rebuild
  const dirty = (dc: string, dests: Iterable<string>) => {
    let s = connectDirty.get(dc);
    if (!s) connectDirty.set(dc, (s = new Set()));
    for (const d of dests) s.add(d);
  };
  // Gateway links per datacenter, lower-cased once per commit (a few entries).
  const linksByDc = new Map<string, ReadonlyMap<string, readonly string[]>>();
  const linksOf = (dc: string, dcat: DatacenterCatalog | undefined) => {
    let m = linksByDc.get(dc);
    if (!m) linksByDc.set(dc, (m = gatewayLinks(dcat)));
    return m;
  };
  // Each unit remembers the catalog entry it was built from: an equal entry means an equal unit.
  const service = (dc: string, dcat: DatacenterCatalog | undefined, svc: string, list: readonly ServiceInstance[] | undefined) => {
    const key = unitKey('service', dc, svc);
    const was = data.units.get(key);
    if (list && !servableServiceName(svc)) {
      warn(`service ${svc} in ${dc}: the name cannot be a DNS label (1-63 bytes, no dot); not served`);
      list = undefined;
    }
    if (!list) {
      if (was) { remove.push(key); if (was.kind === 'service') dirty(dc, was.connectTo); }
      return;
    }
    const links = linksOf(dc, dcat).get(svc.toLowerCase()) ?? NO_LINKS;
    if (was?.kind === 'service' && was.display === svc && sameInstances(was.input, list) && sameStrings(was.links, links)) return;
    const u = tr.service('service', dc, svc, list, links);
    if (was && was.kind !== 'node') dirty(dc, was.connectTo);
    dirty(dc, u.connectTo);
    put.push(u);
  };
  const node = (dc: string, name: string, n: CatalogNode | undefined) => {
    const key = unitKey('node', dc, name);
    const was = data.units.get(key);
    if (!n) { if (was) remove.push(key); return; }
    if (was?.kind === 'node' && sameNode(was.input, n)) return;
    const u = tr.node(dc, n);
    if (u) put.push(u);
    else warn(`node ${n.name} in ${dc}: name too long for ${tr.domain}; not served`);
  };

  if (hint) {
    // Only the entries the source says changed (a Consul watch knows which service it was).
    for (const [dcRaw, svc] of hint.services ?? []) {
      const dcat = next.datacenters.get(dcRaw);
      service(dcRaw.toLowerCase(), dcat, svc, dcat?.services.get(svc));
      yield;
    }
    for (const [dcRaw, name] of hint.nodes ?? []) {
      node(dcRaw.toLowerCase(), name, next.datacenters.get(dcRaw)?.nodes.get(name));
      yield;
    }
  } else {
    for (const [dcRaw, dcat] of [...next.datacenters].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const dc = dcRaw.toLowerCase();
      for (const [svc, list] of dcat.services) {
        const key = unitKey('service', dc, svc);
        if (seen.has(key)) { warn(`service ${svc} in ${dc} differs from another only by case; first kept`); continue; }
        seen.add(key);
        service(dc, dcat, svc, list);
        yield;
      }
      for (const n of dcat.nodes.values()) {
        const key = unitKey('node', dc, n.name);
        if (seen.has(key)) continue;
        seen.add(key);
        node(dc, n.name, n);
        yield;
      }
    }
    for (const u of data.units.values()) {
      if (u.kind === 'connect' || seen.has(u.key)) continue;
      remove.push(u.key);
      if (u.kind === 'service') dirty(u.dc, u.connectTo);
    }
  }
  // Connect destinations: every proxy, native instance or linked terminating gateway serving them,
  // across the datacenter's services.
  for (const [dc, dests] of connectDirty) {
    if (dests.size === 0) continue;
    const dcat = datacenterOf(next, dc);
    const lists = dcat ? connectInstances(dcat, dests, linksOf(dc, dcat)) : new Map<string, ServiceInstance[]>();
    for (const d of dests) {
      const key = unitKey('connect', dc, d);
      const list = lists.get(d);
      if (list && list.length) put.push(tr.service('connect', dc, d, list));
      else if (data.units.has(key)) remove.push(key);
      yield;
    }
  }
  return { put, remove };
}

const NO_LINKS: readonly string[] = Object.freeze([]);

/** A datacenter of the catalog by its lower-cased name. */
function datacenterOf(c: Catalog, dc: string): DatacenterCatalog | undefined {
  return c.datacenters.get(dc) ?? [...c.datacenters].find(([n]) => n.toLowerCase() === dc)?.[1];
}

/**
 * A datacenter's terminating-gateway links, lower-cased: gateway -> linked services, sorted (the
 * gateway-services table indexes both names lower-cased, catalog_schema.go ServiceNameIndex).
 */
function gatewayLinks(dcat: DatacenterCatalog | undefined): ReadonlyMap<string, readonly string[]> {
  const sets = new Map<string, Set<string>>();
  for (const [gw, names] of dcat?.gatewayServices ?? []) {
    if (!servableServiceName(gw)) continue;
    const g = gw.toLowerCase();
    let set = sets.get(g);
    if (!set) sets.set(g, (set = new Set()));
    for (const n of names) if (servableServiceName(n)) set.add(n.toLowerCase());
  }
  const out = new Map<string, readonly string[]>();
  for (const [g, set] of sets) if (set.size) out.set(g, [...set].sort());
  return out;
}

/**
 * The instances serving each destination in `dests` (lower case), as Consul's checkServiceNodesTxn
 * with connect=true gives them: the `connect` index (connect-proxies by destination, Connect-native
 * instances by name), then, through serviceGatewayNodes, every instance of each terminating gateway
 * linked to the destination.
 */
function connectInstances(dcat: DatacenterCatalog, dests: ReadonlySet<string>, links: ReadonlyMap<string, readonly string[]>): Map<string, ServiceInstance[]> {
  const out = new Map<string, ServiceInstance[]>();
  const add = (d: string, s: ServiceInstance) => {
    let l = out.get(d);
    if (!l) out.set(d, (l = []));
    l.push(s);
  };
  for (const [name, list] of dcat.services) {
    if (!servableServiceName(name)) continue;
    const linked = links.size ? links.get(name.toLowerCase()) : undefined;
    for (const s of list) {
      const dest = connectDestination(s).toLowerCase();
      if (dest && dests.has(dest)) add(dest, s);
      if (linked) for (const d of linked) if (d !== dest && dests.has(d)) add(d, s);
    }
  }
  return out;
}

const sameStrings = (a: readonly string[], b: readonly string[]): boolean => a === b || (a.length === b.length && a.every((x, i) => x === b[i]));

const sameRecord = (a: Readonly<Record<string, unknown>>, b: Readonly<Record<string, unknown>>): boolean => {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) {
    const x = a[k], y = b[k];
    if (x === y) continue;
    if (typeof x !== 'object' || typeof y !== 'object' || x === null || y === null) return false;
    if (!sameRecord(x as Record<string, unknown>, y as Record<string, unknown>)) return false;
  }
  return true;
};

export function sameNode(a: CatalogNode, b: CatalogNode): boolean {
  return a === b || sameRecord(a as unknown as Record<string, unknown>, b as unknown as Record<string, unknown>);
}

/** Deep equality of two instance lists in the same order (node objects included). */
export function sameInstances(a: readonly ServiceInstance[], b: readonly ServiceInstance[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!, y = b[i]!;
    if (x === y) continue;
    if (!sameRecord(x as unknown as Record<string, unknown>, y as unknown as Record<string, unknown>)) return false;
  }
  return true;
}

/** A ZoneData for a catalog's local datacenter and this configuration. */
export function emptyZoneData(cfg: Config, localDc: string): ZoneData {
  return new ZoneData(cfg.domain, localDc.toLowerCase(), reverseName);
}

/** The zone version of a commit: serial from the content hash, then SOA, NS and negative answers. */
export function zoneVersion(tr: Translator, data: ZoneData, catalog: Catalog, serialFor: (hash: string) => number, source: Source = { live: true },
  memo: RingTable<Owner> | number = cacheBudget(tr.cfg.responseCacheBytes).names): Zone {
  const apex = apexRecords(tr, serviceNamed(datacenterOf(catalog, tr.localDc), 'consul'));
  const contentHash = data.hash.hex(apexLines(tr, apex));
  const serial = serialFor(contentHash);
  // A new version: what was made from the previous one (SOA, NS, negative answers) is stale.
  data.liveness.kill(0);
  return new Zone({
    serial, domain: tr.domain, contentHash, data, answers: versionAnswers(tr, apex, serial, source, data.liveness.gens[0]),
    rfc: tr.rfc, nodeTtl: tr.cfg.nodeTtl, ptrTtl: tr.cfg.ptrTtl, reverseZones: tr.cfg.reverseZones,
    stats: { names: data.units.size + data.ptr.size, records: data.records }, memo,
  });
}

/** A service's instances by its lower-cased name, whatever the spelling of its key. */
function serviceNamed(dcat: DatacenterCatalog | undefined, lower: string): readonly ServiceInstance[] {
  if (!dcat) return [];
  const exact = dcat.services.get(lower);
  if (exact) return exact;
  for (const [name, list] of dcat.services) if (name.toLowerCase() === lower) return list;
  return [];
}

export interface BuildOptions {
  readonly config: Config;
  /** Returns the SOA serial for a zone whose content hash is `hash` (see ZoneStore). */
  readonly serialFor: (hash: string) => number;
  readonly warn?: (msg: string) => void;
}

/** A whole zone from a catalog, in one go (tests, tools). ZoneStore builds the same in slices. */
export function buildZone(catalog: Catalog, opts: BuildOptions): Zone {
  const tr = new Translator(opts.config, catalog.datacenter);
  const data = emptyZoneData(opts.config, catalog.datacenter);
  const gen = planCommit(tr, data, catalog, opts.warn ?? (() => {}));
  let r = gen.next();
  while (!r.done) r = gen.next();
  data.setDatacenters(catalog.datacenters.keys());
  data.apply(r.value.put, r.value.remove);
  return zoneVersion(tr, data, catalog, opts.serialFor);
}
