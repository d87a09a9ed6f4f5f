/**
 * The catalog persisted on disk, in the catalog-file format, so that a restart while Consul is
 * unreachable answers from the last catalog it had. Written in slices (the event loop keeps
 * answering), to a temporary file renamed over the old one (never half a snapshot).
 *
 * Read back (openCatalog), a snapshot gives the catalog it was written from, so the same zone:
 * `entry_nodes: true` keeps each instance's own node copy (the live source keeps the newer copy an
 * entry gives, and does not add the nodes only entries name to the node list), service names that
 * are not servable are not written (the zone does not serve them either), and the terminating
 * gateways' links are written as `gateway_services`.
 */
import { open, readFile, rename, rm } from 'node:fs/promises';
import { servableServiceName, type Catalog, type CatalogNode, type CatalogPreview, type ServiceInstance } from './catalog.js';
import { loadCatalog } from './load.js';

const nodeJson = (n: CatalogNode) => ({
  ID: n.id, Node: n.name, Address: n.address, Datacenter: n.datacenter, TaggedAddresses: n.taggedAddresses, Meta: n.meta,
});

const instanceJson = (s: ServiceInstance) => ({
  Node: nodeJson(s.node),
  Service: {
    ID: s.id, Service: s.service, Tags: s.tags, Address: s.address, Port: s.port,
    TaggedAddresses: Object.fromEntries(Object.entries(s.taggedAddresses).map(([k, v]) => [k, { Address: v.address, Port: v.port }])),
    Meta: s.meta, Weights: { Passing: s.weights.passing, Warning: s.weights.warning },
    ...(s.kind ? { Kind: s.kind } : {}),
    ...(s.proxyDestination ? { Proxy: { DestinationServiceName: s.proxyDestination } } : {}),
    ...(s.connectNative ? { Connect: { Native: true } } : {}),
  },
  Checks: s.checks.map((c) => ({ CheckID: c.checkId, Status: c.status, ServiceID: c.serviceId, ServiceName: c.serviceName })),
});

/** The catalog as catalog-file JSON, piece by piece (one service or a batch of nodes per piece). */
export function* catalogJson(c: Catalog): Generator<string> {
  yield `{"datacenter":${JSON.stringify(c.datacenter)},"entry_nodes":true,"datacenters":{`;
  let firstDc = true;
  for (const [dc, d] of c.datacenters) {
    yield `${firstDc ? '' : ','}${JSON.stringify(dc)}:{"nodes":[`;
    firstDc = false;
    let i = 0;
    for (const n of d.nodes.values()) yield `${i++ ? ',' : ''}${JSON.stringify(nodeJson(n))}`;
    yield '],"services":{';
    i = 0;
    for (const [name, list] of d.services) {
      if (!servableServiceName(name)) continue;
      yield `${i++ ? ',' : ''}${JSON.stringify(name)}:${JSON.stringify(list.map(instanceJson))}`;
    }
    yield '}';
    const links = [...d.gatewayServices ?? []].filter(([gw, l]) => servableServiceName(gw) && l.length > 0);
    if (links.length) yield `,"gateway_services":${JSON.stringify(Object.fromEntries(links))}`;
    yield '}';
  }
  yield '}}\n';
}

/** Writes `c` to `path` (via `path.tmp` and a rename), yielding to the event loop every `sliceMs`. */
export async function writeSnapshot(path: string, c: Catalog, sliceMs = 5): Promise<number> {
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  let bytes = 0;
  try {
    let parts: string[] = [];
    let size = 0;
    let t = performance.now();
    for (const piece of catalogJson(c)) {
      parts.push(piece);
      size += piece.length;
      if (size > 1 << 20 || performance.now() - t > sliceMs) {
        const chunk = parts.join('');
        bytes += Buffer.byteLength(chunk);
        await fh.write(chunk);
        parts = [];
        size = 0;
        await new Promise<void>((r) => setImmediate(r));
        t = performance.now();
      }
    }
    const rest = parts.join('');
    bytes += Buffer.byteLength(rest);
    await fh.write(rest);
    await fh.sync();
  } catch (e) {
    await fh.close();
    await rm(tmp, { force: true });
    throw e;
  }
  await fh.close();
  await rename(tmp, path);
  return bytes;
}

/**
 * The persisted catalog, or null when there is none; throws when it exists but is not valid. With
 * `preview`, read progressively for a start (see load.ts).
 */
export async function readSnapshot(path: string, preview?: (p: CatalogPreview) => void): Promise<Catalog | null> {
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  return (await loadCatalog(data, preview)).catalog;
}
