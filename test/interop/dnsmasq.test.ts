// dnsmasq forwarding consul. to catalog-dns: what a client gets through it.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Daemon, printLogsOnFailure, startDnsmasq } from '../support/daemons.js';
import { requireProgram } from '../support/programs.js';
import { startServer } from '../support/server.js';

const run = promisify(execFile);
const dig = requireProgram('dig', 'bind9-dnsutils');
const dnsmasqBin = requireProgram('dnsmasq', 'dnsmasq');

// ---- expectations from the fixture (docs/consul-dns.md §4, §5) ---------------------------------

interface Check { Status: string; ServiceID: string }
interface Instance {
  Node: { Node: string; Address: string };
  Service: { ID: string; Address: string; Port: number; Weights?: { Passing: number; Warning: number } };
  Checks: Check[];
}
interface Catalog { datacenter: string; datacenters: Record<string, { services: Record<string, Instance[]> }> }

const catalog = JSON.parse(
  readFileSync(new URL('../../fixtures/demo-catalog.json', import.meta.url), 'utf8'),
) as Catalog;
const DC = catalog.datacenter;
const ownChecks = (i: Instance): Check[] => i.Checks.filter((c) => c.ServiceID === '' || c.ServiceID === i.Service.ID);
const served = (svc: string): Instance[] =>
  (catalog.datacenters[DC]?.services[svc] ?? []).filter((i) => !ownChecks(i).some((c) => c.Status === 'critical'));
const isV4 = (a: string): boolean => /^\d+\.\d+\.\d+\.\d+$/.test(a);
const hexV4 = (a: string): string => a.split('.').map((o) => Number(o).toString(16).padStart(2, '0')).join('');

function addressesV4(svc: string): string[] {
  return [...new Set(served(svc).map((i) => i.Service.Address || i.Node.Address).filter(isV4))].sort();
}

function srvRecords(svc: string): string[] {
  return [...new Set(served(svc).map((i) => {
    const w = i.Service.Weights ?? { Passing: 1, Warning: 1 };
    const weight = ownChecks(i).some((c) => c.Status === 'warning') ? w.Warning : w.Passing;
    const target = isV4(i.Service.Address) ? `${hexV4(i.Service.Address)}.addr.${DC}.consul.` : `${i.Node.Node}.node.${DC}.consul.`;
    return `1 ${weight} ${i.Service.Port} ${target}`;
  }))].sort();
}

// ---- dig output -------------------------------------------------------------------------------

interface Reply { status: string; flags: string[]; answer: Array<{ type: string; data: string }>; text: string }

function parseReply(text: string): Reply {
  const reply: Reply = {
    status: /status: ([A-Z]+)/.exec(text)?.[1] ?? 'NO-REPLY',
    flags: (/^;; flags:([^;]*);/im.exec(text)?.[1] ?? '').trim().split(/\s+/),
    answer: [], text,
  };
  let inAnswer = false;
  for (const line of text.split('\n')) {
    if (line.startsWith(';; ANSWER SECTION:')) inAnswer = true;
    else if (line.trim() === '') inAnswer = false;
    else if (inAnswer && !line.startsWith(';')) {
      const m = /^\S+\s+\d+\s+IN\s+(\S+)\s+(.*)$/.exec(line.trim());
      if (m !== null) reply.answer.push({ type: m[1]!, data: m[2]!.trim() });
    }
  }
  return reply;
}

const datas = (r: Reply, type: string): string[] => r.answer.filter((a) => a.type === type).map((a) => a.data).sort();

describe.skipIf(dig.skip || dnsmasqBin.skip)('dnsmasq forwarding consul. to catalog-dns', () => {
  let server: Awaited<ReturnType<typeof startServer>> | undefined;
  let dnsmasq: Daemon | undefined;
  beforeAll(async () => {
    server = await startServer();
    dnsmasq = await startDnsmasq({ upstreamPort: server.port, bin: dnsmasqBin.path });
  });
  afterAll(async () => {
    await dnsmasq?.stop();
    await server?.close();
  });
  printLogsOnFailure(() => [dnsmasq]);

  async function resolve(qname: string, qtype: string, opts: string[] = []): Promise<Reply> {
    const args = ['@127.0.0.1', '-p', String(dnsmasq!.port), qname, qtype, '+tries=1', '+time=5', ...opts];
    return parseReply((await run(dig.path, args, { timeout: 10_000 })).stdout);
  }

  it('web.service.consul A: the served web addresses', async () => {
    const r = await resolve('web.service.consul', 'A');
    expect(r.status, r.text).toBe('NOERROR');
    expect(datas(r, 'A'), r.text).toEqual(addressesV4('web'));
  });

  it('_web._tcp.service.consul SRV: every instance with its port', async () => {
    const r = await resolve('_web._tcp.service.consul', 'SRV');
    expect(r.status, r.text).toBe('NOERROR');
    expect(datas(r, 'SRV'), r.text).toEqual(srvRecords('web'));
  });

  it('api.service.consul SRV over TCP to dnsmasq: addr-form targets', async () => {
    const r = await resolve('api.service.consul', 'SRV', ['+tcp']);
    expect(r.status, r.text).toBe('NOERROR');
    expect(datas(r, 'SRV'), r.text).toEqual(srvRecords('api'));
  });

  it('nosuch.service.consul A: NXDOMAIN', async () => {
    const r = await resolve('nosuch.service.consul', 'A');
    expect(r.status, r.text).toBe('NXDOMAIN');
    expect(r.answer).toEqual([]);
  });

  it('logged the forwarding to catalog-dns', async () => {
    const r = await resolve('redis.service.consul', 'AAAA');
    expect(r.status, r.text).toBe('NOERROR');
    const line = new RegExp(`forwarded redis\\.service\\.consul to 127\\.0\\.0\\.1#${server!.port}`);
    // dnsmasq logs to a pipe: give the line a moment (bounded) to arrive.
    for (let i = 0; i < 40 && !line.test(dnsmasq!.log()); i++) await sleep(50);
    expect(dnsmasq!.log()).toMatch(line);
  });
});
