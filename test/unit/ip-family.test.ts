import { isIP } from 'node:net';
import { describe, expect, it } from 'vitest';
import { ipFamily } from '../../src/zone/ip.js';
import { seededRandom } from '../support/cases.js';


describe('ipFamily (the fast path of net.isIP)', () => {
  it('agrees with net.isIP on the edge cases', () => {
    const cases = ['1.2.3.4', '0.0.0.0', '255.255.255.255', '256.1.1.1', '01.2.3.4', '1.2.3.04', '10.0.0.0', '1.2.3', '1.2.3.4.5',
      '1..2.3', '.1.2.3', '1.2.3.', '1.2.3.4 ', ' 1.2.3.4', '1.2.3.-4', '1.2.3.4/24', '', '::', '::1', '::ffff:1.2.3.4', 'fe80::1%eth0',
      '2001:db8::1', '1:2:3:4:5:6:7:8:9', 'web.example.com', '999.999.999.999', '1.2.3.4\n', '١.٢.٣.٤'];
    for (const c of cases) expect(ipFamily(c), JSON.stringify(c)).toBe(isIP(c));
  });

  it('agrees with net.isIP on 200,000 generated near-addresses', () => {
    const r = seededRandom(7);
    const octet = (): string => {
      const k = r();
      if (k < 0.7) return String(Math.floor(r() * 256));
      if (k < 0.8) return String(256 + Math.floor(r() * 800));
      if (k < 0.9) return `0${Math.floor(r() * 100)}`;
      return ['', 'a', '-1', ' ', '00', '1e2'][Math.floor(r() * 6)]!;
    };
    for (let i = 0; i < 200_000; i++) {
      const n = r() < 0.9 ? 4 : 2 + Math.floor(r() * 4);
      const s = Array.from({ length: n }, octet).join(r() < 0.97 ? '.' : ':');
      if (ipFamily(s) !== isIP(s)) expect(ipFamily(s), JSON.stringify(s)).toBe(isIP(s));
    }
  });
});
