// Shared by the tests of resolvers in front of catalog-dns: what the demo catalog should resolve to
// (the rules: docs/consul-dns.md §4, §5), asking a resolver with dig and reading its output, and the
// catalog-dns side of the README's "Resolvers in front" recipes.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { readmeRecipe } from '../support/recipes.js';

const run = promisify(execFile);

// ---- expectations from the fixture -------------------------------------------------------------

export interface Check { Status: string; ServiceID: string }
export interface Instance {
  Node: { Node: string; Address: string };
  Service: { ID: string; Address: string; Port: number; Weights?: { Passing: number; Warning: number } };
  Checks: Check[];
}
export interface Catalog { datacenter: string; datacenters: Record<string, { services: Record<string, Instance[]> }> }

export const catalog = JSON.parse(
  readFileSync(new URL('../../fixtures/demo-catalog.json', import.meta.url), 'utf8'),
) as Catalog;
export const DC = catalog.datacenter;

const ownChecks = (i: Instance): Check[] => i.Checks.filter((c) => c.ServiceID === '' || c.ServiceID === i.Service.ID);
/** Instances served: none of their own or node checks critical (warning is served). */
export const served = (svc: string): Instance[] =>
  (catalog.datacenters[DC]?.services[svc] ?? []).filter((i) => !ownChecks(i).some((c) => c.Status === 'critical'));
const isV4 = (a: string): boolean => /^\d+\.\d+\.\d+\.\d+$/.test(a);
const hexV4 = (a: string): string => a.split('.').map((o) => Number(o).toString(16).padStart(2, '0')).join('');

export function addressesV4(svc: string): string[] {
  return [...new Set(served(svc).map((i) => i.Service.Address || i.Node.Address).filter(isV4))].sort();
}

/** "priority weight port target" per unique node:address:port. */
export function srvRecords(svc: string): string[] {
  return [...new Set(served(svc).map((i) => {
    const w = i.Service.Weights ?? { Passing: 1, Warning: 1 };
    const weight = ownChecks(i).some((c) => c.Status === 'warning') ? w.Warning : w.Passing;
    const target = isV4(i.Service.Address) ? `${hexV4(i.Service.Address)}.addr.${DC}.consul.` : `${i.Node.Node}.node.${DC}.consul.`;
    return `1 ${weight} ${i.Service.Port} ${target}`;
  }))].sort();
}

/** The node `name` of the local datacenter, as a service entry carries it. */
export function demoNode(name: string): Instance['Node'] {
  for (const list of Object.values(catalog.datacenters[DC]!.services)) {
    const hit = list.find((i) => i.Node.Node === name);
    if (hit !== undefined) return hit.Node;
  }
  throw new Error(`demo catalog has no node ${name} with a service`);
}

export const reverseName = (a: string): string => `${a.split('.').reverse().join('.')}.in-addr.arpa`;

// ---- dig ---------------------------------------------------------------------------------------

export interface Rr { owner: string; type: string; data: string }
export interface Reply { status: string; flags: string[]; answer: Rr[]; authority: Rr[]; text: string }

export function parseReply(text: string): Reply {
  const reply: Reply = {
    status: /status: ([A-Z]+)/.exec(text)?.[1] ?? 'NO-REPLY',
    flags: (/^;; flags:([^;]*);/im.exec(text)?.[1] ?? '').trim().split(/\s+/),
    answer: [], authority: [], text,
  };
  let section: Rr[] | null = null;
  for (const line of text.split('\n')) {
    if (line.startsWith(';; ANSWER SECTION:')) section = reply.answer;
    else if (line.startsWith(';; AUTHORITY SECTION:')) section = reply.authority;
    else if (line.trim() === '' || line.startsWith(';; ')) section = null;
    else if (section !== null && !line.startsWith(';')) {
      const m = /^(\S+)\s+\d+\s+IN\s+(\S+)\s+(.*)$/.exec(line.trim());
      if (m !== null) section.push({ owner: m[1]!, type: m[2]!, data: m[3]!.trim() });
    }
  }
  return reply;
}

export const datas = (r: Reply, type: string): string[] => r.answer.filter((a) => a.type === type).map((a) => a.data).sort();

/** Asks 127.0.0.1 at `port` with dig (recursion desired), one try, `timeSec` to wait. */
export async function digAt(digPath: string, port: number, qname: string, qtype: string, opts: readonly string[] = [], timeSec = 5): Promise<Reply> {
  const args = ['@127.0.0.1', '-p', String(port), qname, qtype, '+tries=1', `+time=${timeSec}`, ...opts];
  return parseReply((await run(digPath, args, { timeout: (timeSec + 5) * 1000 })).stdout);
}

// ---- the catalog-dns side of the recipes ------------------------------------------------------

/**
 * The options of README's `catalog-dns` recipe command as a config object (`--reverse-zones X` ->
 * `{ reverse_zones: X }`), without the listen address and catalog file the tests choose.
 */
export function catalogDnsRecipeConfig(): Record<string, string> {
  const words = readmeRecipe('catalog-dns').trim().split(/\s+/);
  if (words[0] !== 'catalog-dns') throw new Error(`README recipe catalog-dns: expected a catalog-dns command, got: ${words.join(' ')}`);
  const config: Record<string, string> = {};
  for (let i = 1; i < words.length; i += 2) {
    const flag = words[i]!;
    const value = words[i + 1];
    if (!flag.startsWith('--') || value === undefined) throw new Error(`README recipe catalog-dns: expected --flag value pairs, got '${flag}'`);
    const key = flag.slice(2).replace(/-/g, '_');
    if (key !== 'dns' && key !== 'catalog_file') config[key] = value;
  }
  return config;
}
