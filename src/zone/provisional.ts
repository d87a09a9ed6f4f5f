/**
 * The provisional zone: what a start answers from while its first zone is built.
 *
 * Building the zone of a large catalog takes a while (about 0.7 s at 10,000 services × 5 instances
 * on a small machine), and so does validating every service entry. A start does not wait for either:
 * once the catalog file is parsed and its node lists checked, it answers from this zone, which builds
 * the unit of a service or a node when a query first names it (from that entry alone, with the
 * validator and the translator the full build uses, so the records are the ones the complete zone
 * will have). The complete zone then replaces it in one assignment.
 *
 * Only positive answers made from one unit's own records are given here. Everything that depends on
 * the whole catalog or on the zone version waits for the complete zone (NOT_YET; the listeners hold
 * such a query and answer it then): the SOA and NS (the serial is the hash of every record),
 * NXDOMAIN and NODATA (they carry the SOA, and a name may exist through a unit not built yet), empty
 * non-terminals, reverse names (a PTR is claimed across units), connect and virtual names (served by
 * every proxy, Connect-native instance and linked gateway of the datacenter), CNAME chains into the
 * zone, and a service one of whose instances runs on
 * a node missing from the nodes list (its node object comes from the first entry naming that node,
 * maybe in another service).
 */
import type { CatalogPreview, PreviewDatacenter } from '../catalog/catalog.js';
import { apexRecords, versionAnswers } from './apex.js';
import { reverseName } from './ip.js';
import type { Translator, NodeUnit, ServiceUnit, Unit } from './units.js';
import { DcIndex, NOT_YET, Zone, ZoneData, type Answer } from './zone.js';

/** The provisional zone's own name memo: it lives for a second or two. */
const MEMO_BYTES = 1024 * 1024;

/** A map that makes a missing entry on first lookup (and remembers a miss as undefined). */
class OnDemand<V> extends Map<string, V> {
  constructor(private readonly make: (name: string) => V | undefined) {
    super();
  }

  override get(name: string): V | undefined {
    if (super.has(name)) return super.get(name);
    const v = this.make(name);
    super.set(name, v as V);
    return v;
  }
}

/** Lower-cased name -> the catalog's spelling (service keys are one per name case-insensitively already). */
function lowerIndex(names: Iterable<string>): Map<string, string> {
  const m = new Map<string, string>();
  for (const n of names) {
    const l = n.toLowerCase();
    if (!m.has(l)) m.set(l, n);
  }
  return m;
}

class ProvisionalZone extends Zone {
  override answer(key: string, qtype: number): Answer | null {
    const a = super.answer(key, qtype);
    // A unit's own positive answer; anything from the zone version (SOA, NS, negative answers,
    // names synthesised per query, chased CNAMEs) or outside the zone waits for the complete zone.
    return a !== null && a.verdict === 'answer' && a.source !== this.answers.source && a.authority.length === 0 && a.units.length > 0 ? a : NOT_YET;
  }
}

/** A provisional zone over `preview`, for the translator (configuration and local datacenter) of the build. */
export function provisionalZone(tr: Translator, preview: CatalogPreview): Zone {
  const data = new ZoneData(tr.domain, tr.localDc, reverseName);
  const take = (u: Unit): void => {
    u.slot ??= data.liveness.slotOf(u.key);
  };
  const clashing = new Set<string>();
  for (const [dcRaw, pd] of preview.datacenters) {
    const dc = dcRaw.toLowerCase();
    // Datacenters whose names differ only by case: the build's outcome needs all of them; wait for it.
    if (data.dcs.has(dc)) { clashing.add(dc); continue; }
    data.dcs.set(dc, dcIndex(tr, dcRaw, pd, take));
  }
  for (const dc of clashing) data.dcs.delete(dc);
  const local = [...preview.datacenters].find(([n]) => n.toLowerCase() === tr.localDc)?.[1];
  const source = { live: true };
  const answers = versionAnswers(tr, apexRecords(tr, local?.service('consul') ?? []), 0, source);
  return new ProvisionalZone({
    serial: 0, domain: tr.domain, contentHash: '', data, answers, rfc: tr.rfc, nodeTtl: tr.cfg.nodeTtl, ptrTtl: tr.cfg.ptrTtl,
    reverseZones: tr.cfg.reverseZones, stats: { names: 0, records: 0 }, memo: MEMO_BYTES,
  });
}

function dcIndex(tr: Translator, dcRaw: string, pd: PreviewDatacenter, take: (u: Unit) => void): DcIndex {
  let services: Map<string, string> | null = null;
  let nodes: Map<string, string> | null = null;
  return new DcIndex(
    new OnDemand<ServiceUnit>((name) => {
      const raw = (services ??= lowerIndex(pd.serviceNames)).get(name);
      const list = raw === undefined ? null : pd.service(raw);
      if (!list) return undefined;
      const u = tr.service('service', dcRaw, raw!, list);
      take(u);
      return u;
    }),
    new Map(), // connect (and virtual): every proxy of the datacenter serves a destination; wait for the build
    new OnDemand<NodeUnit>((name) => {
      const raw = (nodes ??= lowerIndex(pd.nodes.keys())).get(name);
      const n = raw === undefined ? undefined : pd.nodes.get(raw);
      const u = n ? tr.node(dcRaw, n) : null;
      if (!u) return undefined;
      take(u);
      return u;
    }),
  );
}
