/**
 * The reverse zones served (in-addr.arpa / ip6.arpa apexes): parsing the `reverse_zones` setting
 * and deriving the default from the addresses that get PTR records. Pure functions; names are
 * canonical (lower case, no trailing dot), apex lists sorted and free of duplicates.
 *
 * Each apex is a zone of its own: its SOA is at the apex and is the SOA of its negative answers
 * (RFC 2308 §3: the SOA of the zone the name is in; resolvers cache negative answers under it, §5).
 */
import { isIP } from 'node:net';
import { ipBytes } from './ip.js';

/**
 * The default zone per address when `reverse_zones` is unset: the /24 of an IPv4 address (the
 * customary unit of IPv4 reverse delegation) and the /64 of an IPv6 address (the size of an IPv6
 * subnet, RFC 4291 §2.5.1). See README "Reverse zones".
 */
export const DEFAULT_PREFIX = { v4: 24, v6: 64 } as const;

const V4_SUFFIX = 'in-addr.arpa';
const V6_SUFFIX = 'ip6.arpa';

/** The reverse apex for the first `prefix` bits of an address (octets for IPv4, nibbles for IPv6). */
function apexOf(bytes: Buffer, prefix: number): string {
  if (bytes.length === 4) {
    const octets = [...bytes.subarray(0, prefix / 8)].reverse();
    return [...octets.map(String), V4_SUFFIX].join('.');
  }
  const nibbles = bytes.toString('hex').slice(0, prefix / 4).split('').reverse();
  return [...nibbles, V6_SUFFIX].join('.');
}

/** One entry of the setting: a CIDR prefix or a reverse zone name, as its apex; or why not. */
export function parseReverseZone(entry: string): string | { readonly bad: string } {
  const text = entry.trim().toLowerCase().replace(/\.$/, '');
  const shown = JSON.stringify(entry.trim());
  const slash = text.indexOf('/');
  if (slash >= 0) {
    const addr = text.slice(0, slash);
    const len = text.slice(slash + 1);
    const fam = isIP(addr);
    if (fam === 0) return { bad: `${shown}: ${JSON.stringify(addr)} is not an IP address` };
    const bits = fam === 4 ? 32 : 128;
    const step = fam === 4 ? 8 : 4;
    if (!/^\d{1,3}$/.test(len) || Number(len) > bits) return { bad: `${shown}: the prefix length must be 0-${bits}` };
    const prefix = Number(len);
    if (prefix % step !== 0) {
      return { bad: fam === 4
        ? `${shown}: IPv4 reverse zones are on octet boundaries (/0, /8, /16, /24, /32)`
        : `${shown}: IPv6 reverse zones are on nibble boundaries (a prefix length that is a multiple of 4)` };
    }
    const bytes = ipBytes(addr);
    if (!hostBitsZero(bytes, prefix)) return { bad: `${shown}: has bits set beyond the /${prefix} prefix` };
    return apexOf(bytes, prefix);
  }
  const labels = text.split('.');
  if (text === V4_SUFFIX || text.endsWith(`.${V4_SUFFIX}`)) {
    const octets = labels.slice(0, -2);
    if (octets.length <= 4 && octets.every((o) => /^(0|[1-9]\d{0,2})$/.test(o) && Number(o) <= 255)) return text;
    return { bad: `${shown}: an in-addr.arpa zone has up to 4 labels of 0-255 before in-addr.arpa` };
  }
  if (text === V6_SUFFIX || text.endsWith(`.${V6_SUFFIX}`)) {
    const nibbles = labels.slice(0, -2);
    if (nibbles.length <= 32 && nibbles.every((n) => /^[0-9a-f]$/.test(n))) return text;
    return { bad: `${shown}: an ip6.arpa zone has up to 32 labels of one hex digit before ip6.arpa` };
  }
  return { bad: `${shown}: expected a CIDR prefix (10.0.0.0/8, 2001:db8::/32) or a reverse zone name (10.in-addr.arpa)` };
}

function hostBitsZero(bytes: Buffer, prefix: number): boolean {
  for (let bit = prefix; bit < bytes.length * 8; bit++) {
    if (bytes[bit >> 3]! & (0x80 >> (bit & 7))) return false;
  }
  return true;
}

/**
 * The setting's value: a comma-separated string or an array of strings (an empty one: no reverse
 * zones at all). Returns the sorted apexes, or why the value is bad (one zone inside another is:
 * the inner one could only be served as a delegation from the outer one).
 */
export function parseReverseZones(raw: unknown): string[] | { readonly bad: string } {
  let entries: string[];
  if (typeof raw === 'string') entries = raw.split(',').filter((e) => e.trim() !== '');
  else if (Array.isArray(raw) && raw.every((e) => typeof e === 'string')) entries = raw as string[];
  else return { bad: 'expected a list of CIDR prefixes or reverse zone names ("10.0.0.0/8,2001:db8::/32")' };
  const byApex = new Map<string, string>();
  for (const e of entries) {
    const apex = parseReverseZone(e);
    if (typeof apex !== 'string') return apex;
    if (!byApex.has(apex)) byApex.set(apex, e.trim());
  }
  const apexes = sortApexes(byApex.keys());
  for (const inner of apexes) {
    for (const outer of apexes) {
      if (inner !== outer && inner.endsWith(`.${outer}`)) {
        return { bad: `${JSON.stringify(byApex.get(inner))} (${inner}) lies inside ${JSON.stringify(byApex.get(outer))} (${outer}); list only one of them` };
      }
    }
  }
  return apexes;
}

/**
 * The reverse zones to serve: the configured ones, or (null) the zone of each PTR owner name by
 * DEFAULT_PREFIX: the parent of an in-addr.arpa name (its /24) and the 16th ancestor of an ip6.arpa
 * name (its /64). `ptrNames` are full reverse names (reverseName of an address).
 */
export function reverseZoneApexes(configured: readonly string[] | null, ptrNames: Iterable<string>): string[] {
  if (configured !== null) return sortApexes(configured);
  const out = new Set<string>();
  for (const n of ptrNames) {
    const apex = defaultReverseApex(n);
    if (apex) out.add(apex);
  }
  return sortApexes(out);
}

/** The default reverse zone of a full reverse name (see reverseZoneApexes), or null. */
export function defaultReverseApex(n: string): string | null {
  // 4 octet labels: drop 1 (32 - 24 bits); 32 nibble labels of 2 characters ("x."): drop 16.
  if (n.endsWith(`.${V4_SUFFIX}`)) return n.slice(n.indexOf('.') + 1);
  if (n.endsWith(`.${V6_SUFFIX}`)) return n.slice(((128 - DEFAULT_PREFIX.v6) / 4) * 2);
  return null;
}

/** Sorted by code unit (the same order whatever the locale), without duplicates. */
function sortApexes(apexes: Iterable<string>): string[] {
  return [...new Set(apexes)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * The apex among `apexes` that is `labels` (left to right, lower case) or an ancestor of it, or
 * null when the name is in no served zone. Served zones never nest, so the first match is the one.
 * A label holding a "." byte is never part of an apex: the search stops there.
 */
export function enclosingApex(labels: readonly string[], apexes: { has(apex: string): boolean }): string | null {
  let suffix = '';
  for (let i = labels.length - 1; i >= 0; i--) {
    const l = labels[i]!;
    if (l.includes('.')) return null;
    suffix = suffix === '' ? l : `${l}.${suffix}`;
    if (apexes.has(suffix)) return suffix;
  }
  return null;
}
