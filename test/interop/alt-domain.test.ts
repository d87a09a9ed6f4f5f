// alt_domain read by real dig and kdig (README "DNS behaviour"): the tools parse every reply
// (compression pointers, RDLENGTHs and counts of the rewritten records), and dig's fallback to TCP
// after a truncated UDP reply gets the whole answer under the alt domain.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireProgram, type RequiredProgram } from '../support/programs.js';
import { startServer, type TestServer } from '../support/server.js';

const run = promisify(execFile);
const dig = requireProgram('dig', 'bind9-dnsutils');
const kdig = requireProgram('kdig', 'knot-dnsutils');
const ALT = 'example.internal';

interface Rr { owner: string; type: string; data: string }

/** dig/kdig `+noall +answer +authority +additional` lines (and the header comments, kept as text). */
function records(text: string): Rr[] {
  const out: Rr[] = [];
  for (const l of text.split('\n')) {
    const m = /^(\S+)\s+\d+\s+IN\s+(\S+)\s*(.*)$/.exec(l.trim());
    if (m && !l.startsWith(';')) out.push({ owner: m[1]!.toLowerCase(), type: m[2]!, data: m[3]!.trim().toLowerCase() });
  }
  return out;
}

/** Every domain name in the records (owners and the names in SRV, SOA, NS, CNAME and PTR data). */
function names(rrs: Rr[]): string[] {
  const out: string[] = [];
  for (const r of rrs) {
    out.push(r.owner);
    const f = r.data.split(/\s+/);
    if (r.type === 'SRV') out.push(f[3]!);
    else if (r.type === 'SOA') out.push(f[0]!, f[1]!);
    else if (r.type === 'NS' || r.type === 'CNAME' || r.type === 'PTR') out.push(f[0]!);
  }
  return out;
}

const underAlt = (n: string) => n === `${ALT}.` || n.endsWith(`.${ALT}.`);

describe.skipIf(dig.skip && kdig.skip)('alt_domain with dig and kdig', () => {
  let server: TestServer;
  beforeAll(async () => { server = await startServer({ config: { alt_domain: ALT } }); });
  afterAll(async () => { await server?.close(); });

  async function ask(tool: RequiredProgram, qname: string, qtype: string, opts: string[] = []): Promise<string> {
    const base = tool === kdig ? ['+retry=0', '+time=3', '+norec'] : ['+tries=1', '+time=3', '+norec'];
    const args = [`@${server.host}`, '-p', String(server.port), qname, qtype, ...base, ...opts];
    try {
      const { stdout, stderr } = await run(tool.path, args, { timeout: 10_000 });
      return stdout + stderr;
    } catch (e) {
      const err = e as { stdout?: string; stderr?: string; message: string };
      throw new Error(`${tool.bin} ${args.join(' ')} failed: ${err.message}\n${err.stdout ?? ''}${err.stderr ?? ''}`);
    }
  }

  /** A reply the tool parsed without complaint, its status and records. */
  async function query(tool: RequiredProgram, qname: string, qtype: string, opts: string[] = []) {
    const text = await ask(tool, qname, qtype, opts);
    expect(text, text).not.toMatch(/malformed|bad packet|unexpected|parse error|warning/i);
    const status = /status: ([A-Z]+)/.exec(text)?.[1];
    const flags = (/^;; flags:([^;]*);/im.exec(text)?.[1] ?? '').trim().split(/\s+/);
    return { text, status, flags, rrs: records(text) };
  }

  for (const tool of [dig, kdig]) {
    describe.skipIf(tool.skip)(tool.bin, () => {
      it('SRV with glue and node meta: every name under the alt domain', async () => {
        const r = await query(tool, `_web._tcp.service.${ALT}`, 'SRV', ['+edns']);
        expect(r.status, r.text).toBe('NOERROR');
        expect(r.flags, r.text).toContain('aa');
        expect(r.rrs.filter((x) => x.type === 'SRV').length, r.text).toBe(4);
        expect(r.rrs.filter((x) => x.type === 'A').length, r.text).toBe(3);
        expect(names(r.rrs).every(underAlt), r.text).toBe(true);
      });

      it('SOA and NS at the alt apex, NXDOMAIN with the alt SOA', async () => {
        const soa = await query(tool, ALT, 'SOA', ['+edns']);
        expect(soa.rrs.find((x) => x.type === 'SOA'), soa.text).toMatchObject({ owner: `${ALT}.`, data: expect.stringMatching(new RegExp(`^ns\\.${ALT}\\. hostmaster\\.${ALT}\\. `)) });
        expect(names(soa.rrs).every(underAlt), soa.text).toBe(true);
        const ns = await query(tool, ALT, 'NS', ['+edns']);
        expect(ns.rrs.filter((x) => x.type === 'NS').length, ns.text).toBe(3);
        expect(names(ns.rrs).every(underAlt), ns.text).toBe(true);
        const nx = await query(tool, `nope.service.${ALT}`, 'A', ['+edns']);
        expect(nx.status, nx.text).toBe('NXDOMAIN');
        expect(nx.rrs.map((x) => [x.owner, x.type]), nx.text).toEqual([[`${ALT}.`, 'SOA']]);
      });
    });
  }

  describe.skipIf(dig.skip)('dig without EDNS', () => {
    it('gets a truncated UDP reply, then the whole answer over TCP', async () => {
      const udp = await query(dig, `_web._tcp.service.${ALT}`, 'SRV', ['+noedns', '+ignore']);
      expect(udp.flags, udp.text).toContain('tc');
      expect(udp.rrs.filter((x) => x.type === 'SRV').length, udp.text).toBe(3);
      expect(Number(/MSG SIZE\s+rcvd: (\d+)/.exec(udp.text)?.[1]), udp.text).toBeLessThanOrEqual(512);
      const full = await query(dig, `_web._tcp.service.${ALT}`, 'SRV', ['+noedns']);
      expect(full.flags, full.text).not.toContain('tc');
      expect(full.rrs.filter((x) => x.type === 'SRV').length, full.text).toBe(4);
      expect(names(full.rrs).every(underAlt), full.text).toBe(true);
    });
  });
});
