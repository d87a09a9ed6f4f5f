/** IP address helpers for .addr names and reverse (PTR) owner names. */
import { isIP } from 'node:net';

/**
 * net.isIP with a fast path for the dotted quad: 4, 6 or 0. net.isIP runs a regular expression per
 * call, which showed in the catalog validation and zone build profiles; a dotted quad is checked here
 * by one scan with the same rules (four decimal numbers 0-255 without leading zeros), anything with a
 * colon goes to net.isIP, and nothing else can be an address.
 */
export function ipFamily(s: string): 0 | 4 | 6 {
  const n = s.length;
  if (n >= 7 && n <= 15) {
    let dots = 0, val = 0, digits = 0, ok = true;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 48 && c <= 57) {
        if (digits > 0 && val === 0) { ok = false; break; } // a leading zero
        val = val * 10 + c - 48;
        if (val > 255) { ok = false; break; }
        digits++;
      } else if (c === 46 && digits > 0) {
        dots++;
        val = 0;
        digits = 0;
      } else {
        ok = false;
        break;
      }
    }
    if (ok && dots === 3 && digits > 0) return 4;
  }
  return s.includes(':') ? (isIP(s) as 0 | 4 | 6) : 0;
}

/** The 16 bytes of an IPv6 address (throws on invalid input). */
export function ipv6Bytes(addr: string): Buffer {
  let s = addr;
  const out = Buffer.alloc(16);
  // Embedded IPv4 tail (::ffff:1.2.3.4)
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  let tail: number[] = [];
  if (v4) {
    tail = v4[1]!.split('.').map(Number);
    s = s.slice(0, -v4[1]!.length) + '0:0';
  }
  const [head, rest] = s.includes('::') ? s.split('::') as [string, string] : [s, undefined];
  const h = head ? head.split(':') : [];
  const r = rest !== undefined && rest !== '' ? rest.split(':') : [];
  const groups = rest === undefined ? h : [...h, ...Array<string>(8 - h.length - r.length).fill('0'), ...r];
  if (groups.length !== 8) throw new RangeError(`invalid IPv6 address ${addr}`);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  if (v4) Buffer.from(tail).copy(out, 12);
  return out;
}

export function ipBytes(addr: string): Buffer {
  const fam = isIP(addr);
  if (fam === 4) return Buffer.from(addr.split('.').map(Number));
  if (fam === 6) return ipv6Bytes(addr);
  throw new RangeError(`not an IP address: ${addr}`);
}

/** Consul's encodeIPAsFqdn label: 8 hex digits for IPv4, 32 for IPv6. */
export function ipHex(addr: string): string {
  return ipBytes(addr).toString('hex');
}

/** Canonical text form (lower case, compressed IPv6) so equal addresses compare equal. */
export function canonicalIp(addr: string): string {
  const b = ipBytes(addr);
  if (b.length === 4) return addr.split('.').map(Number).join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
  // Longest run of zero groups (length >= 2) becomes ::
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== '0') { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen && j - i >= 2) { best = i; bestLen = j - i; }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/** The reverse-lookup owner name (in-addr.arpa / ip6.arpa), without trailing dot. */
export function reverseName(addr: string): string {
  const b = ipBytes(addr);
  if (b.length === 4) return `${[...b].reverse().join('.')}.in-addr.arpa`;
  const nibbles = b.toString('hex').split('').reverse();
  return `${nibbles.join('.')}.ip6.arpa`;
}

/** Parses a .addr hex label back to an address text, or null. */
export function addrFromHex(hex: string): { family: 4 | 6; bytes: Buffer } | null {
  if (!/^[0-9a-f]+$/.test(hex)) return null;
  if (hex.length === 8) return { family: 4, bytes: Buffer.from(hex, 'hex') };
  if (hex.length === 32) return { family: 6, bytes: Buffer.from(hex, 'hex') };
  return null;
}
