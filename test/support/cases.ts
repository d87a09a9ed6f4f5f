/**
 * CoreDNS-style answer tables, run in-process with no sockets:
 *
 *   { qname, qtype, [edns], [tcp], [config] } -> { rcode, [aa, tc, ra], answer[], ns[], extra[] }
 *
 * Records are written like zone-file lines (`web.service.consul. 0 IN A 10.0.1.11`) and sections are
 * compared as multisets, because service answers are shuffled. Omitted sections must be empty; OPT
 * is not a line: its presence is checked against whether the query carried EDNS.
 *
 * Also here: small builders for catalog documents in the catalog-file format (the shape of
 * fixtures/demo-catalog.json), so each test file can build its own readable fixture.
 */
import packet from 'dns-packet';
import { expect } from 'vitest';
import { validateCatalog } from '../../src/catalog/catalog.js';
import { loadConfig, type Config } from '../../src/config.js';
import { DnsCounters } from '../../src/dns/counters.js';
import { QueryHandler } from '../../src/dns/handler.js';
import { silentLogger } from '../../src/log.js';
import { buildZone } from '../../src/zone/build.js';
import type { Zone } from '../../src/zone/zone.js';
import { buildQuery, decode, type Decoded } from './dns-client.js';

// ---------------------------------------------------------------------------------------------
// Catalog-file builders
// ---------------------------------------------------------------------------------------------

export type Json = Record<string, unknown>;

export interface NodeOpts {
  readonly meta?: Record<string, string>;
  readonly tagged?: Record<string, string>;
  readonly dc?: string;
}

/** A /v1/catalog/nodes object. */
export function nodeDoc(name: string, address: string, o: NodeOpts = {}): Json {
  return {
    ID: `00000000-0000-4000-8000-${Buffer.from(name).toString('hex').padEnd(12, '0').slice(0, 12)}`,
    Node: name,
    Address: address,
    ...(o.dc ? { Datacenter: o.dc } : {}),
    TaggedAddresses: o.tagged ?? {},
    Meta: o.meta ?? {},
  };
}

export type Status = 'passing' | 'warning' | 'critical' | (string & {});

export interface InstanceOpts {
  readonly id?: string;
  readonly port?: number;
  readonly address?: string;
  readonly tags?: readonly string[];
  readonly weights?: { Passing: number; Warning: number };
  readonly tagged?: Record<string, { Address: string; Port: number } | { address: string; port: number }>;
  /** Status of this instance's own check (omitted: passing). `null`: the instance has no own check. */
  readonly status?: Status | null;
  /** Status of the node-level serfHealth check (omitted: passing). `null`: no node check. */
  readonly nodeStatus?: Status | null;
}

/** A /v1/health/service/<name> entry: { Node, Service, Checks }. */
export function instanceDoc(node: Json, service: string, o: InstanceOpts = {}): Json {
  const id = o.id ?? `${service}-${String(node.Node)}`;
  const checks: Json[] = [];
  if (o.nodeStatus !== null) {
    checks.push({ Node: node.Node, CheckID: 'serfHealth', Status: o.nodeStatus ?? 'passing', ServiceID: '', ServiceName: '' });
  }
  if (o.status !== null) {
    checks.push({ Node: node.Node, CheckID: `service:${id}`, Status: o.status ?? 'passing', ServiceID: id, ServiceName: service });
  }
  return {
    Node: node,
    Service: {
      ID: id,
      Service: service,
      Tags: [...(o.tags ?? [])],
      Address: o.address ?? '',
      TaggedAddresses: o.tagged ?? {},
      Meta: {},
      Port: o.port ?? 0,
      ...(o.weights ? { Weights: o.weights } : {}),
    },
    Checks: checks,
  };
}

export interface DcDoc {
  readonly nodes?: readonly Json[];
  readonly services?: Readonly<Record<string, readonly Json[]>>;
}

/**
 * A catalog document. Nodes named in service entries but missing from `nodes` are added to it,
 * so a fixture only lists nodes that have no service. Shared builder objects are copied apart.
 */
export function catalogDoc(local: string, dcs: Readonly<Record<string, DcDoc>>): Json {
  const datacenters: Json = {};
  for (const [dc, d] of Object.entries(dcs)) {
    const nodes = [...(d.nodes ?? [])];
    const names = new Set(nodes.map((n) => n.Node));
    for (const list of Object.values(d.services ?? {})) {
      for (const e of list) {
        const n = e.Node as Json;
        if (!names.has(n.Node)) { names.add(n.Node); nodes.push(n); }
      }
    }
    datacenters[dc] = { nodes, services: d.services ?? {} };
  }
  // A deep copy, so tests can edit one place of the document without touching the others.
  return JSON.parse(JSON.stringify({ datacenter: local, datacenters })) as Json;
}

// ---------------------------------------------------------------------------------------------
// In-process server
// ---------------------------------------------------------------------------------------------

/** mulberry32: a small seeded PRNG, so shuffled answers differ per query but runs are repeatable. */
export function seededRandom(seed = 0x2f6b1d3): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Server {
  readonly config: Config;
  readonly zone: Zone;
  readonly warnings: readonly string[];
  readonly counters: DnsCounters;
  /** The raw reply (null when the server drops the query). */
  handle(query: Buffer, tcp?: boolean): Buffer | null;
}

/** Builds the zone for `doc` under `config` (catalog-file keys, as in a config file) and a handler over it. */
export function makeServer(doc: unknown, config: Record<string, unknown> = {}, seed?: number): Server {
  const cfg = loadConfig({ object: config });
  const { catalog, warnings } = validateCatalog(doc);
  const zone = buildZone(catalog, { config: cfg, serialFor: () => 42 });
  const counters = new DnsCounters();
  const handler = new QueryHandler({
    store: { current: () => zone }, config: cfg, logger: silentLogger(), counters, random: seededRandom(seed),
  });
  return { config: cfg, zone, warnings, counters, handle: (q, tcp = false) => handler.handle(q, tcp) };
}

// ---------------------------------------------------------------------------------------------
// Presentation
// ---------------------------------------------------------------------------------------------

const fqdn = (n: string): string => (n === '' || n === '.' ? '.' : n.endsWith('.') ? n : `${n}.`);

/** A TXT character-string in zone-file form: quoted, with `"` and `\` escaped, non-printables as \DDD. */
export function quoteTxt(b: Buffer | string): string {
  const bytes = typeof b === 'string' ? Buffer.from(b) : b;
  let s = '"';
  for (const c of bytes) {
    if (c === 0x22 || c === 0x5c) s += `\\${String.fromCharCode(c)}`;
    else if (c < 0x20 || c > 0x7e) s += `\\${String(c).padStart(3, '0')}`;
    else s += String.fromCharCode(c);
  }
  return `${s}"`;
}

interface AnyRR { name: string; type: string; class?: string; ttl?: number; data?: unknown }

/** A decoded record as a zone-file line: `owner. TTL CLASS TYPE RDATA`. OPT gives null. */
export function formatRR(rr: AnyRR): string | null {
  if (rr.type === 'OPT') return null;
  const head = `${fqdn(rr.name)} ${rr.ttl ?? 0} ${rr.class ?? 'IN'} ${rr.type}`;
  const d = rr.data as never;
  let rdata: string;
  switch (rr.type) {
    case 'A':
    case 'AAAA':
      rdata = String(d);
      break;
    case 'NS':
    case 'CNAME':
    case 'PTR':
      rdata = fqdn(String(d));
      break;
    case 'SRV': {
      const s = d as { priority: number; weight: number; port: number; target: string };
      rdata = `${s.priority} ${s.weight} ${s.port} ${fqdn(s.target)}`;
      break;
    }
    case 'SOA': {
      const s = d as { mname: string; rname: string; serial: number; refresh: number; retry: number; expire: number; minimum: number };
      rdata = `${fqdn(s.mname)} ${fqdn(s.rname)} ${s.serial} ${s.refresh} ${s.retry} ${s.expire} ${s.minimum}`;
      break;
    }
    case 'TXT': {
      const parts = Array.isArray(d) ? (d as Array<Buffer | string>) : [d as Buffer | string];
      rdata = parts.map(quoteTxt).join(' ');
      break;
    }
    case 'MX': {
      const s = d as { preference: number; exchange: string };
      rdata = `${s.preference} ${fqdn(s.exchange)}`;
      break;
    }
    default:
      rdata = Buffer.isBuffer(d) ? `\\# ${(d as Buffer).length} ${(d as Buffer).toString('hex')}` : JSON.stringify(d);
  }
  return `${head} ${rdata}`;
}

/** Normalises a hand-written line: single spaces, and the same text formatRR produces. */
export function normalizeLine(line: string): string {
  return line.trim().replace(/\s+/g, ' ');
}

/** Multiset difference: lines in `expected` missing from `actual`, and lines in `actual` not expected. */
export function multisetDiff(expected: readonly string[], actual: readonly string[]): { missing: string[]; unexpected: string[] } {
  const left = new Map<string, number>();
  for (const l of actual) left.set(l, (left.get(l) ?? 0) + 1);
  const missing: string[] = [];
  for (const l of expected) {
    const n = left.get(l) ?? 0;
    if (n > 0) left.set(l, n - 1);
    else missing.push(l);
  }
  const unexpected: string[] = [];
  for (const [l, n] of left) for (let i = 0; i < n; i++) unexpected.push(l);
  return { missing, unexpected };
}

// ---------------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------------

export interface Question {
  readonly qname: string;
  readonly qtype: string;
  /** EDNS UDP size; omitted = no OPT record. */
  readonly edns?: number;
  readonly ednsOptions?: Array<{ code: number; data: Buffer }>;
  readonly tcp?: boolean;
  /** Config overrides for this case (catalog-file keys), on top of the table's base config. */
  readonly config?: Record<string, unknown>;
}

export interface Expected {
  /** Default NOERROR. */
  readonly rcode?: string;
  /** Default true, false for REFUSED. */
  readonly aa?: boolean;
  readonly tc?: boolean;
  readonly ra?: boolean;
  readonly answer?: readonly string[];
  readonly ns?: readonly string[];
  readonly extra?: readonly string[];
}

export interface Case extends Question, Expected {
  /** A short description; the question is used when omitted. */
  readonly name?: string;
}

export interface Reply {
  readonly raw: Buffer;
  readonly msg: Decoded;
  readonly rcode: string;
  readonly aa: boolean;
  readonly tc: boolean;
  readonly ra: boolean;
  readonly answer: string[];
  readonly ns: string[];
  readonly extra: string[];
  /** The OPT record, if any. */
  readonly opt: { udpPayloadSize: number; flags: number; options: Array<{ code: number; data: Buffer }> } | null;
}

export function caseTitle(c: Case): string {
  const how = [c.tcp ? 'tcp' : 'udp', c.edns !== undefined ? `edns ${c.edns}` : 'no edns'];
  if (c.config) how.push(JSON.stringify(c.config));
  return c.name ?? `${c.qname} ${c.qtype} (${how.join(', ')})`;
}

/** Turns a decoded reply into comparable parts. */
export function summarize(raw: Buffer): Reply {
  const msg = decode(raw);
  const lines = (rrs: readonly unknown[] | undefined) =>
    (rrs ?? []).map((r) => formatRR(r as AnyRR)).filter((l): l is string => l !== null);
  const opt = (msg.additionals ?? []).find((a) => a.type === 'OPT') as Reply['opt'] | undefined;
  return {
    raw, msg, rcode: msg.rcode,
    aa: msg.flag_aa, tc: msg.flag_tc, ra: msg.flag_ra,
    answer: lines(msg.answers), ns: lines(msg.authorities), extra: lines(msg.additionals),
    opt: opt ?? null,
  };
}

/** A table bound to one catalog document and a base config; zones are built once per distinct config. */
export class Table {
  private readonly servers = new Map<string, Server>();
  private nextId = 1;

  constructor(private readonly doc: unknown, private readonly base: Record<string, unknown> = {}) {}

  server(config: Record<string, unknown> = {}): Server {
    const merged = { ...this.base, ...config };
    const key = JSON.stringify(merged);
    let s = this.servers.get(key);
    if (!s) this.servers.set(key, (s = makeServer(this.doc, merged)));
    return s;
  }

  /** Sends one question; returns the raw reply and its decoded parts. Throws if the query was dropped. */
  ask(q: Question): Reply {
    const id = this.nextId++ & 0xffff;
    const query = buildQuery(q.qname, q.qtype, { id, ...(q.edns !== undefined ? { edns: q.edns } : {}), ...(q.ednsOptions ? { ednsOptions: q.ednsOptions } : {}) });
    const raw = this.server(q.config).handle(query, q.tcp ?? false);
    if (raw === null) throw new Error(`${q.qname} ${q.qtype}: query dropped, no reply`);
    const r = summarize(raw);
    if (r.msg.id !== id) throw new Error(`${q.qname} ${q.qtype}: reply ID ${r.msg.id}, query ID ${id}`);
    return r;
  }

  /** Runs one case and asserts rcode, flags, question echo, OPT presence, size bound and the three sections. */
  run(c: Case): Reply {
    const r = this.ask(c);
    const title = caseTitle(c);
    const problems: string[] = [];
    const want = {
      rcode: c.rcode ?? 'NOERROR',
      aa: c.aa ?? (c.rcode !== 'REFUSED'),
      tc: c.tc ?? false,
      ra: c.ra ?? false,
    };
    for (const k of ['rcode', 'aa', 'tc', 'ra'] as const) {
      if (r[k] !== want[k]) problems.push(`${k}: expected ${String(want[k])}, got ${String(r[k])}`);
    }
    const q = r.msg.questions?.[0];
    if (!q || q.name !== c.qname.replace(/\.$/, '') || q.type !== c.qtype) {
      problems.push(`question: expected ${c.qname} ${c.qtype} echoed, got ${q ? `${q.name} ${q.type}` : 'none'}`);
    }
    if ((c.edns !== undefined) !== (r.opt !== null)) {
      problems.push(c.edns !== undefined ? 'OPT: the query had EDNS, the reply has no OPT' : 'OPT: the query had no EDNS, the reply has an OPT');
    }
    if (!c.tcp) {
      const max = c.edns === undefined ? 512 : Math.min(Math.max(512, c.edns), this.server(c.config).config.maxUdpSize);
      if (r.raw.length > max) problems.push(`size: ${r.raw.length} bytes over UDP, limit ${max}`);
    }
    const sections = { answer: c.answer ?? [], ns: c.ns ?? [], extra: c.extra ?? [] };
    for (const s of ['answer', 'ns', 'extra'] as const) {
      const { missing, unexpected } = multisetDiff(sections[s].map(normalizeLine), r[s]);
      for (const l of missing) problems.push(`${s}: missing     ${l}`);
      for (const l of unexpected) problems.push(`${s}: unexpected  ${l}`);
    }
    if (problems.length > 0) {
      const sorted = (a: readonly string[]) => [...a].map(normalizeLine).sort();
      expect(
        { ...pick(r), answer: [...r.answer].sort(), ns: [...r.ns].sort(), extra: [...r.extra].sort() },
        `${title}\n  ${problems.join('\n  ')}`,
      ).toEqual({ ...want, answer: sorted(sections.answer), ns: sorted(sections.ns), extra: sorted(sections.extra) });
      // toEqual can only pass here if a non-section check failed (question, OPT, size).
      throw new Error(`${title}\n  ${problems.join('\n  ')}`);
    }
    return r;
  }
}

const pick = (r: Reply) => ({ rcode: r.rcode, aa: r.aa, tc: r.tc, ra: r.ra });

/** Sends a raw, hand-made message to a server and decodes the reply (null when dropped). */
export function exchangeRaw(s: Server, msg: Buffer, tcp = false): Reply | null {
  const raw = s.handle(msg, tcp);
  return raw === null ? null : summarize(raw);
}

/** Encodes a message with dns-packet (for hand-made queries: opcodes, counts). */
export const encodeMessage = (p: unknown): Buffer => packet.encode(p as packet.Packet);

/** Runs one case against a table (same as `table.run(c)`). */
export const runCase = (table: Table, c: Case): Reply => table.run(c);
