/**
 * The reverse zones served (README "Reverse zones"): parsing the reverse_zones entries, the default
 * derived from the PTR addresses, and finding the zone of a reverse name.
 */
import { describe, expect, it } from 'vitest';
import { reverseName } from '../../src/zone/ip.js';
import { enclosingApex, parseReverseZone, parseReverseZones, reverseZoneApexes } from '../../src/zone/reverse-zones.js';

describe('parseReverseZone: CIDR prefixes and zone names to apexes', () => {
  it.each([
    ['10.0.0.0/8', '10.in-addr.arpa'],
    ['10.1.0.0/16', '1.10.in-addr.arpa'],
    ['192.168.7.0/24', '7.168.192.in-addr.arpa'],
    ['10.0.1.11/32', '11.1.0.10.in-addr.arpa'],
    ['0.0.0.0/0', 'in-addr.arpa'],
    ['2001:db8::/32', '8.b.d.0.1.0.0.2.ip6.arpa'],
    ['2001:DB8:0:3::/64', '3.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa'],
    ['2001:db8:8000::/36', '8.8.b.d.0.1.0.0.2.ip6.arpa'],
    ['fd00::/8', 'd.f.ip6.arpa'],
    ['::/0', 'ip6.arpa'],
    ['::ffff:10.0.0.0/104', `a.0.f.f.f.f.${'0.'.repeat(20)}ip6.arpa`],
    ['10.in-addr.arpa', '10.in-addr.arpa'],
    [' 1.0.10.IN-ADDR.ARPA. ', '1.0.10.in-addr.arpa'],
    ['8.B.D.0.1.0.0.2.ip6.arpa', '8.b.d.0.1.0.0.2.ip6.arpa'],
    ['in-addr.arpa', 'in-addr.arpa'],
  ])('%s -> %s', (entry, apex) => {
    expect(parseReverseZone(entry)).toBe(apex);
  });

  it.each([
    ['10.0.0.0/20', 'IPv4 reverse zones are on octet boundaries'],
    ['10.0.0.0/33', 'the prefix length must be 0-32'],
    ['10.0.0.0/', 'the prefix length must be 0-32'],
    ['10.0.0.0/-8', 'the prefix length must be 0-32'],
    ['10.1.0.0/8', 'has bits set beyond the /8 prefix'],
    ['2001:db8::/30', 'IPv6 reverse zones are on nibble boundaries'],
    ['2001:db8::1/64', 'has bits set beyond the /64 prefix'],
    ['2001:db8::/129', 'the prefix length must be 0-128'],
    ['example.com/8', 'is not an IP address'],
    ['example.com', 'expected a CIDR prefix'],
    ['300.in-addr.arpa', 'up to 4 labels of 0-255'],
    ['010.in-addr.arpa', 'up to 4 labels of 0-255'],
    ['1.2.3.4.5.in-addr.arpa', 'up to 4 labels of 0-255'],
    ['x.in-addr.arpa', 'up to 4 labels of 0-255'],
    ['g.ip6.arpa', 'of one hex digit'],
    ['10.ip6.arpa', 'of one hex digit'],
    ['arpa', 'expected a CIDR prefix'],
  ])('%s is rejected: %s', (entry, reason) => {
    const r = parseReverseZone(entry);
    expect(typeof r).toBe('object');
    expect((r as { bad: string }).bad).toContain(JSON.stringify(entry));
    expect((r as { bad: string }).bad).toContain(reason);
  });
});

describe('parseReverseZones: the setting', () => {
  it('a comma-separated string or a list; sorted, duplicates dropped', () => {
    expect(parseReverseZones('2001:db8::/32, 10.0.0.0/8,10.in-addr.arpa')).toEqual(['10.in-addr.arpa', '8.b.d.0.1.0.0.2.ip6.arpa']);
    expect(parseReverseZones(['172.16.0.0/16', '10.0.1.0/24'])).toEqual(['1.0.10.in-addr.arpa', '16.172.in-addr.arpa']);
  });
  it('empty: no reverse zones', () => {
    expect(parseReverseZones('')).toEqual([]);
    expect(parseReverseZones(' , ')).toEqual([]);
    expect(parseReverseZones([])).toEqual([]);
  });
  it('zones may not nest', () => {
    expect(parseReverseZones('10.0.0.0/8,10.1.0.0/16')).toEqual({
      bad: '"10.1.0.0/16" (1.10.in-addr.arpa) lies inside "10.0.0.0/8" (10.in-addr.arpa); list only one of them',
    });
    expect(parseReverseZones(['0.0.0.0/0', '1.0.10.in-addr.arpa'])).toMatchObject({ bad: expect.stringContaining('lies inside "0.0.0.0/0"') });
    // A label prefix is not an ancestor: 1.10.in-addr.arpa and 11.10.in-addr.arpa are apart.
    expect(parseReverseZones('10.1.0.0/16,10.11.0.0/16')).toEqual(['1.10.in-addr.arpa', '11.10.in-addr.arpa']);
  });
  it('the first bad entry is the error', () => {
    expect(parseReverseZones('10.0.0.0/8,bad')).toMatchObject({ bad: expect.stringMatching(/^"bad": /) });
  });
  it('other shapes are rejected', () => {
    for (const v of [5, true, {}, [1], ['10.0.0.0/8', null]]) {
      expect(parseReverseZones(v)).toEqual({ bad: 'expected a list of CIDR prefixes or reverse zone names ("10.0.0.0/8,2001:db8::/32")' });
    }
  });
});

describe('reverseZoneApexes', () => {
  const rev = (a: string) => reverseName(a);
  it('default: the /24 of each IPv4 and the /64 of each IPv6 PTR name, sorted and unique', () => {
    expect(reverseZoneApexes(null, ['10.0.1.11', '10.0.1.12', '192.168.5.5', '2001:db8::1', '2001:db8::2', '2001:db8:0:1::1'].map(rev))).toEqual([
      '0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa',
      '1.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa',
      '1.0.10.in-addr.arpa',
      '5.168.192.in-addr.arpa',
    ]);
  });
  it('the default zone of an address is the one parseReverseZone gives for its /24 or /64', () => {
    for (const [a, cidr] of [['10.0.1.11', '10.0.1.0/24'], ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'], ['::ffff:10.0.0.1', '::/64']]) {
      expect(reverseZoneApexes(null, [rev(a!)])).toEqual([parseReverseZone(cidr!)]);
    }
  });
  it('the same set whatever the order of the names', () => {
    const names = ['10.0.3.1', '10.0.1.1', '2001:db8::1', '10.0.2.1'].map(rev);
    expect(reverseZoneApexes(null, names)).toEqual(reverseZoneApexes(null, [...names].reverse()));
  });
  it('configured zones are served as configured, whatever the names', () => {
    expect(reverseZoneApexes(['10.in-addr.arpa'], [rev('192.168.5.5')])).toEqual(['10.in-addr.arpa']);
    expect(reverseZoneApexes([], [rev('10.0.1.11')])).toEqual([]);
  });
  it('no names, no zones', () => {
    expect(reverseZoneApexes(null, [])).toEqual([]);
  });
});

describe('enclosingApex', () => {
  const zones = new Set(['1.0.10.in-addr.arpa', '8.b.d.0.1.0.0.2.ip6.arpa']);
  const labels = (n: string) => n.split('.');
  it.each([
    ['11.1.0.10.in-addr.arpa', '1.0.10.in-addr.arpa'],
    ['1.0.10.in-addr.arpa', '1.0.10.in-addr.arpa'],
    ['x.y.1.0.10.in-addr.arpa', '1.0.10.in-addr.arpa'],
    ['1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa', '8.b.d.0.1.0.0.2.ip6.arpa'],
    ['0.10.in-addr.arpa', null],
    ['11.2.0.10.in-addr.arpa', null],
    ['in-addr.arpa', null],
    ['arpa', null],
  ])('%s -> %s', (name, want) => {
    expect(enclosingApex(labels(name), zones)).toBe(want);
  });
  it('a label holding a "." is never part of an apex', () => {
    expect(enclosingApex(['11', '1.0', '10', 'in-addr', 'arpa'], zones)).toBeNull();
    expect(enclosingApex(['11.1.0.10', 'in-addr', 'arpa'], new Set(['11.1.0.10.in-addr.arpa']))).toBeNull();
    expect(enclosingApex(['a.b', '1', '0', '10', 'in-addr', 'arpa'], zones)).toBe('1.0.10.in-addr.arpa'); // below the apex: in the zone
  });
});
