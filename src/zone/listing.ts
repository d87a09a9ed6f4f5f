/**
 * The zone as a list of records, owner by owner: what a secondary holds after AXFR, and what a diff
 * (IXFR) is computed over. Derived from units; names that are synthesised per query and cannot be
 * listed are left out (documented in README "Zone data"): `.addr` names other than SRV targets, the
 * `<dc>.dc` locality forms, RFC 2782 names without the `service` label, and answers that exist only
 * for one qtype (Consul's TXT-on-service quirk, PTR for any qtype in compat mode).
 */
import { QTYPE } from '../dns/wire.js';
import { rrText, type RR } from './records.js';
import type { OwnerRecords, Unit } from './units.js';

/** The authoritative RRsets of one owner: A, AAAA, SRV, TXT; a CNAME only where nothing else is. */
function ownerRecords(owner: string, o: OwnerRecords, out: RR[]): void {
  const at = (rs: readonly RR[] | undefined, keep: (r: RR) => boolean) => {
    for (const r of rs ?? []) if (r.owner === '@' && keep(r)) out.push({ ...r, owner } as RR);
  };
  const start = out.length;
  at(o.byType.get(QTYPE.A)?.records, (r) => r.type === 'A');
  at(o.byType.get(QTYPE.AAAA)?.records, (r) => r.type === 'AAAA');
  at(o.byType.get(QTYPE.SRV)?.records, (r) => r.type === 'SRV');
  at(o.byType.get(QTYPE.TXT)?.records, (r) => r.type === 'TXT');
  if (out.length === start) {
    // RFC 1034 §3.6.2: a CNAME owner has no other data.
    const cname = (o.byType.get(QTYPE.ANY) ?? o.byType.get(QTYPE.A) ?? o.byType.get(QTYPE.AAAA))?.records.find((r) => r.type === 'CNAME');
    if (cname) out.push({ ...cname, owner } as RR);
  }
}

/** Every record a unit contributes, at every name it can be listed under. */
export function unitRecords(u: Unit, domain: string, localDc: string): RR[] {
  const out: RR[] = [];
  const dcs = u.dc === localDc ? [`.${u.dc}`, ''] : [`.${u.dc}`];
  if (u.kind === 'node') {
    for (const d of dcs) ownerRecords(`${u.name}.node${d}.${domain}`, u.owner, out);
    return out;
  }
  for (const d of dcs) {
    const kind = `${u.kind}${d}.${domain}`;
    if (u.all) {
      ownerRecords(`${u.name}.${kind}`, u.all, out);
      ownerRecords(`_${u.name}._tcp.${kind}`, u.all, out);
    }
    if (u.kind === 'connect') continue;
    for (const [tag, o] of u.byTag) {
      ownerRecords(`${tag}.${u.name}.${kind}`, o, out);
      if (!tag.includes('.') && tag !== 'tcp') ownerRecords(`_${u.name}._${tag}.${kind}`, o, out);
    }
  }
  if (u.virtual) ownerRecords(`${u.name}.virtual.${domain}`, u.virtual, out);
  out.push(...u.addrTargets);
  return out;
}

export interface RecordDiff {
  readonly added: readonly string[];
  readonly removed: readonly string[];
}

/**
 * Added and removed records between two lists (multisets of zone-file lines), each sorted by owner
 * and type: what IXFR sends for the change.
 */
export function diffRecords(before: readonly RR[], after: readonly RR[]): RecordDiff {
  const count = new Map<string, number>();
  for (const r of before) { const t = rrText(r); count.set(t, (count.get(t) ?? 0) + 1); }
  const added: string[] = [];
  for (const r of after) {
    const t = rrText(r);
    const n = count.get(t) ?? 0;
    if (n > 0) count.set(t, n - 1); else added.push(t);
  }
  const removed: string[] = [];
  for (const [t, n] of count) for (let i = 0; i < n; i++) removed.push(t);
  return { added: added.sort(), removed: removed.sort() };
}
