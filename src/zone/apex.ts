/**
 * The records of one zone version that depend on the serial or on the zone as a whole: the apex SOA
 * and NS (with glue), and the negative answers (which carry the SOA). Rebuilt on every commit; cheap.
 */
import { isIP } from 'node:net';
import type { ServiceInstance } from '../catalog/catalog.js';
import { isWireName } from '../catalog/catalog.js';
import { packBlock, withFirstOwner, type PackRecord } from '../dns/pack.js';
import { QTYPE, nameToWire, rrAt } from '../dns/wire.js';
import { wireOf } from './prepare.js';
import { AT, TYPE_CODE, rrText, type RR, type SoaData } from './records.js';
import type { Translator } from './units.js';
import { FixedOwner, TypedOwner, type Answer, type Owner, type Source, type VersionAnswers } from './zone.js';

/** A reverse zone's own answers: its SOA (NS in AUTHORITY), its NS, and negative answers with its SOA. */
export interface ReverseZoneAnswers {
  readonly soa: Answer;
  readonly ns: Answer;
  readonly nxdomain: Answer;
  readonly nodata: Answer;
}

export interface ApexRecords {
  /** NS records at the apex and their glue (A/AAAA at the name servers' names). */
  readonly ns: readonly RR[];
  readonly glue: readonly RR[];
  /** `ns.<domain>` answers when the catalog has no consul servers: the listen address, if specific. */
  readonly fallback: RR | null;
}

/**
 * Apex NS: up to 3 healthy consul servers of the local datacenter, sorted by node name (Consul's
 * getNameserversAndNodeRecord picks them at random); without any, `ns.<domain>` with this server's
 * own listen address as glue, when that is a specific address.
 */
export function apexRecords(tr: Translator, consul: readonly ServiceInstance[]): ApexRecords {
  const { cfg, domain, localDc } = tr;
  const ns: RR[] = [];
  const glue: RR[] = [];
  const servers = consul.filter((s) => tr.healthy(s))
    .map((s) => s.node).filter((n, i, a) => a.indexOf(n) === i)
    .filter((n) => isWireName(`${n.name}.node.${localDc}.${domain}`))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).slice(0, 3);
  for (const n of servers) {
    const target = `${n.name}.node.${localDc}.${domain}`;
    ns.push({ owner: domain, type: 'NS', ttl: cfg.nodeTtl, data: target });
    const addr = tr.nodeAddr(localDc, n, 'any');
    const rec = isIP(addr) ? tr.addrRecord(QTYPE.ANY, addr, cfg.nodeTtl, target) : null;
    if (rec) glue.push(rec);
  }
  let fallback: RR | null = null;
  if (ns.length === 0) {
    const target = `ns.${domain}`;
    ns.push({ owner: domain, type: 'NS', ttl: cfg.nodeTtl, data: target });
    const own = cfg.dnsHost === '0.0.0.0' || cfg.dnsHost === '::' ? null : tr.addrRecord(QTYPE.ANY, cfg.dnsHost, cfg.nodeTtl, target);
    if (own) { glue.push(own); fallback = own; }
  }
  return { ns, glue, fallback };
}

/** Zone-file lines of the apex records and zone-wide settings: part of the zone's content hash. */
export function apexLines(tr: Translator, apex: ApexRecords): string {
  const c = tr.cfg;
  return [...apex.ns, ...apex.glue].map((r) => rrText(r)).join('\n') + JSON.stringify([c.domain, c.soa, c.negativeTtl, c.compat, c.ptrTtl, c.reverseZones]);
}

const packOf = (r: RR): PackRecord => ({ owner: r.owner, type: r.type, ttl: r.ttl, data: r.data } as PackRecord);

export function versionAnswers(tr: Translator, apex: ApexRecords, serial: number, source: Source, gen = 0): VersionAnswers {
  // Slot 0 of the zone's Liveness is the version: its answers are good until the next commit.
  const tag = { source, slot: 0, gen };
  const { cfg, domain } = tr;
  const soaData: SoaData = {
    mname: `ns.${domain}`, rname: `hostmaster.${domain}`, serial,
    refresh: cfg.soa.refresh, retry: cfg.soa.retry, expire: cfg.soa.expire, minimum: cfg.soa.minTtl,
  };
  const soa: RR = { owner: domain, type: 'SOA', ttl: cfg.soa.minTtl, data: soaData };
  // RFC 2308 §5: the SOA in a negative answer carries min(SOA TTL, SOA MINIMUM) -- both are
  // soa.min_ttl here -- unless negative_ttl is configured.
  const neg: RR = { ...soa, ttl: cfg.negativeTtl ?? cfg.soa.minTtl };
  const negSoa = rrAt(nameToWire(domain), 'SOA', neg.ttl, soaData);
  const negPacked = packBlock([], [packOf(neg)], []);
  const negative = (verdict: 'nxdomain' | 'nodata'): Answer => ({
    verdict, units: [], shuffle: false, addressLimit: false, authority: [negSoa], additional: [], packed: negPacked, ...tag,
  });
  const nsRRs = apex.ns.map(wireOf);
  const glue = apex.glue.map(wireOf);
  const plain = (rr: Buffer) => ({ rr, targetAt: -1, glueId: -1, glueOwner: null, glue: [] });
  const soaAnswer: Answer = {
    verdict: 'answer', units: [plain(wireOf(soa))], shuffle: false, addressLimit: false, authority: nsRRs, additional: glue,
    packed: packBlock([packOf(soa)], apex.ns.map(packOf), apex.glue.map(packOf)), ...tag,
  };
  const nsAnswer: Answer = {
    verdict: 'answer', units: nsRRs.map(plain), shuffle: false, addressLimit: false, authority: [], additional: glue,
    packed: packBlock(apex.ns.map(packOf), [], apex.glue.map(packOf)), ...tag,
  };
  const empty: Answer = { verdict: 'empty', units: [], shuffle: false, addressLimit: false, authority: [], additional: [], ...tag };
  const nodata = negative('nodata');
  const nxdomain = negative('nxdomain');
  let fallbackNs: Owner | null = null;
  if (apex.ns.length === 1 && apex.ns[0]!.data === `ns.${domain}`) {
    if (apex.fallback) {
      const a: Answer = { verdict: 'answer', units: [plain(wireOf({ ...apex.fallback, owner: AT }))], shuffle: false, addressLimit: false, authority: [], additional: [], ...tag };
      fallbackNs = new TypedOwner(new Map([[TYPE_CODE[apex.fallback.type], a], [QTYPE.ANY, a]]), nodata);
    } else {
      fallbackNs = new FixedOwner(tr.rfc ? nodata : nxdomain);
    }
  }
  const records = [soa, ...apex.ns, ...apex.glue.filter((g) => g.owner === `ns.${domain}`)];
  // Each reverse zone: its own SOA at its apex (MNAME, RNAME, timers and serial as the domain's) in its
  // negative answers; its apex answers SOA and NS (the domain's name servers, with glue). Built when a
  // zone is first asked about in this version (a catalog over many subnets has many zones).
  const negTemplate = packBlock([], [{ ...packOf(neg), owner: '.' } as PackRecord], []);
  const reverse = (apexName: string): ReverseZoneAnswers => {
    const owner = nameToWire(apexName);
    const zNeg: RR = { ...neg, owner: apexName };
    const zNegPacked = withFirstOwner(negTemplate, owner);
    const zNegative = (verdict: 'nxdomain' | 'nodata'): Answer => ({
      verdict, units: [], shuffle: false, addressLimit: false, authority: [wireOf(zNeg)], additional: [], packed: zNegPacked, ...tag,
    });
    const zSoa: RR = { ...soa, owner: apexName };
    const zNs = apex.ns.map((r): RR => ({ ...r, owner: apexName }));
    const zNsRRs = zNs.map(wireOf);
    return {
      soa: {
        verdict: 'answer', units: [plain(wireOf(zSoa))], shuffle: false, addressLimit: false, authority: zNsRRs, additional: glue,
        packed: packBlock([packOf(zSoa)], zNs.map(packOf), apex.glue.map(packOf)), ...tag,
      },
      ns: {
        verdict: 'answer', units: zNsRRs.map(plain), shuffle: false, addressLimit: false, authority: [], additional: glue,
        packed: packBlock(zNs.map(packOf), [], apex.glue.map(packOf)), ...tag,
      },
      nxdomain: zNegative('nxdomain'),
      nodata: zNegative('nodata'),
    };
  };
  return { soa: soaAnswer, ns: nsAnswer, nxdomain, nodata, empty, negSoa, fallbackNs, source, records, reverse };
}
