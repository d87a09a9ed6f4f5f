/**
 * Records to wire fragments: the prepared form of an answer that the response writer shuffles,
 * trims and copies. Derived from records on first use and kept with them; never read back to learn
 * what the zone holds.
 */
import { QNAME_POINTER, nameToWire, rrTail } from '../dns/wire.js';
import { AT, type RR } from './records.js';
import type { RecordAnswer } from './units.js';
import type { Answer, Source, WireUnit, ZoneData } from './zone.js';

/** What an in-zone name answers to ANY (records at `@` = that name), or null when it has nothing. */
export type ChaseLookup = (target: string) => { records: readonly RR[] } | null;

export interface PrepareContext {
  readonly data: ZoneData;
  readonly source: Source;
  /** Resolves in-zone host names (Consul's resolveCNAME); null: no chasing. */
  readonly chase: ChaseLookup | null;
}

/** The record's TYPE..RDATA. */
export function tailOf(r: RR): Buffer {
  return rrTail(r.type, r.ttl, r.data);
}

/** The complete record: `@` owners become the pointer to the question name. */
export function wireOf(r: RR): Buffer {
  return Buffer.concat([r.owner === AT ? QNAME_POINTER : nameToWire(r.owner), tailOf(r)]);
}

const plain = (rr: Buffer): WireUnit => ({ rr, targetAt: -1, glueId: -1, glueOwner: null, glue: [] });

/** Offset of an SRV target inside a record whose owner is the 2-byte question pointer. */
const SRV_TARGET_AT = 2 + 10 + 6;

/**
 * Consul's resolveCNAME: what `target` resolves to inside the zone (A, AAAA, CNAME; at most `depth`
 * levels, which also ends loops), with the TTL of the record that led there.
 */
function resolveTarget(ctx: PrepareContext, target: string, ttl: number, depth: number): Array<{ owner: string; rr: RR }> {
  if (depth < 1 || !ctx.chase) return [];
  const t = target.toLowerCase();
  if (!t.endsWith(`.${ctx.data.domain}`)) return [];
  const found = ctx.chase(t);
  if (!found) return [];
  const out: Array<{ owner: string; rr: RR }> = [];
  for (const r of found.records) {
    if (r.owner !== AT || (r.type !== 'A' && r.type !== 'AAAA' && r.type !== 'CNAME')) continue;
    out.push({ owner: target, rr: { ...r, owner: target, ttl } as RR });
    if (r.type === 'CNAME') out.push(...resolveTarget(ctx, r.data, ttl, depth - 1));
  }
  return out;
}

export function prepareAnswer(ra: RecordAnswer, ctx: PrepareContext): Answer {
  const units: WireUnit[] = [];
  ra.records.forEach((r, i) => {
    const rr = wireOf(r);
    if (r.type !== 'SRV' || r.owner !== AT) { units.push(plain(rr)); return; }
    const target = r.data.target;
    let glue = (ra.glue?.[i] ?? []).map(tailOf);
    if (ra.chase === 'glue' && glue.length === 0) {
      // Glue owners are the SRV target itself: only its direct records can be glue.
      glue = resolveTarget(ctx, target, r.ttl, 3).filter((x) => x.owner === target).map((x) => tailOf(x.rr));
    }
    units.push({ rr, targetAt: SRV_TARGET_AT, glueId: ctx.data.glueId(target), glueOwner: nameToWire(target), glue });
  });
  if (ra.chase === 'answer' && ra.records[0]?.type === 'CNAME') {
    const first = ra.records[0];
    for (const x of resolveTarget(ctx, first.data, first.ttl, 3)) units.push(plain(wireOf(x.rr)));
  }
  const slot = ctx.source.slot ?? 0;
  return {
    verdict: 'answer', units, shuffle: ra.shuffle, addressLimit: ra.addressLimit,
    authority: [], additional: ra.additional.map(wireOf), source: ctx.source, slot, gen: ctx.data.liveness.gens[slot]!,
  };
}
