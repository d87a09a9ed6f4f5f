// A test Consul: a real HTTP server (node:http on 127.0.0.1, port 0 by default) serving the read side
// of Consul's HTTP API that a catalog follower uses, from an in-memory catalog that tests change with
// methods (not over HTTP). No mocks: clients talk to it over real sockets, and it can misbehave the way
// a Consul agent or the network does.
//
//   const consul = await startFakeConsul({ catalog: demoDoc });
//   afterAll(() => consul.close());
//   consul.setCheck('web-3', 'service:web-web-3', 'critical');   // wakes /v1/health/service/web only
//   consul.addFault({ kind: 'no-leader' });                       // 500 unless ?stale
//
// What it models (after Consul's "Blocking Queries", "Consistency Modes", "Catalog" and "Health" HTTP
// API docs):
//
// - Per datacenter, a Raft-like index that increases on every write, and an index table like Consul's
//   state store: the "nodes", "services" and "checks" tables, one entry per service name, one per
//   Connect destination name, and the index at which a service name last disappeared. A read's
//   X-Consul-Index is the entry that covers what it returns, so deletions count too:
//     /v1/catalog/nodes            nodes table (node registered, changed or removed)
//     /v1/catalog/services         services table (any instance registered, changed or removed)
//     /v1/health/state/<state>     checks table (any check written or removed)
//     /v1/health/service/<name>,   that name's entry: its instances, their nodes (address, meta, ...),
//     /v1/catalog/service/<name>   their node-level checks and their own checks. A name with no instance
//                                  reads the index at which a service name last disappeared (or, before
//                                  any did, the larger of the nodes and services tables), as Consul does.
//     /v1/health/connect/<name>    the same over connect-proxy instances whose destination is <name> and
//                                  Connect-native instances of <name>.
//   A write that changes nothing (same fields, same status) takes a Raft index but touches no entry, so
//   it wakes nobody. The index is never 0 on the wire (Consul writes 1 instead).
// - Blocking queries: `?index=N&wait=D` parks the request until the endpoint's index exceeds N, or
//   until D (Go duration syntax, default 5m, capped at 10m, plus random jitter up to D/16 like Consul)
//   passes, then answers with the current data and index. Waiters are indexed by the entries they read,
//   so a write wakes only the requests whose answer it can change (no work per unrelated waiter).
//   A simulated snapshot restore (resetIndex) wakes every waiter at once, as Consul does when its state
//   store is swapped, and they answer with the lower index.
// - Consistency: ?stale, ?consistent (both: 400), and the X-Consul-KnownLeader, -LastContact and
//   -Effective-Consistency headers. ?dc= for any datacenter the fake knows; others get 500
//   "No path to datacenter".
// - ACLs (optional): tokens from X-Consul-Token, Authorization: Bearer, or ?token=. An unknown token, or
//   none when anonymous reads are rejected, gets 403 "ACL not found"; a "filtered" token gets 200 with
//   empty lists and X-Consul-Results-Filtered-By-ACLs: true, as Consul does for a token without
//   service:read/node:read.
// - Faults, switched at runtime for all requests or those whose path matches: leaderless (500
//   "No cluster leader" unless ?stale, which answers with KnownLeader false), 429, 403, any status, hang,
//   connection reset, a body that is not JSON, a truncated body, a delay; stop()/start() for connection
//   refused on the same port with the state kept.
// - Observability: `counters` (plain numbers: requests per endpoint, responses per status, open and
//   total connections, parked and hung requests, wakeups), bytesSent(), and until() to wait for a state.
//
// Not modelled: writes over HTTP, KV, sessions, prepared queries, ?filter (answered 400 so a caller that
// relies on it fails loudly), ?near, ?cached, namespaces and partitions (fields pass through untouched).
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type OutgoingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';

// ---------------------------------------------------------------------------------------------
// Public types

export type CheckStatus = 'passing' | 'warning' | 'critical';
export type JsonObject = Record<string, unknown>;

/** A node as Consul's catalog register API takes it (Consul's field names; extra fields pass through). */
export interface NodeInput {
  Node: string;
  Address: string;
  /** Default: a UUID derived from the node name. */
  ID?: string;
  TaggedAddresses?: Record<string, string>;
  Meta?: Record<string, string>;
  [field: string]: unknown;
}

/** A service instance as Consul's catalog register API takes it (extra fields pass through). */
export interface ServiceInput {
  Service: string;
  /** Default: the service name. Unique per node. */
  ID?: string;
  Tags?: string[];
  /** "" (the default) means the node's address. */
  Address?: string;
  Port?: number;
  /** Values are {Address, Port}; the lower-case spelling of Consul's docs is accepted and rewritten. */
  TaggedAddresses?: Record<string, { Address?: string; Port?: number; address?: string; port?: number }>;
  Meta?: Record<string, string>;
  Weights?: { Passing: number; Warning: number };
  /** "" (typical service), "connect-proxy", "mesh-gateway", ... */
  Kind?: string;
  /** For connect-proxy instances: { DestinationServiceName, ... }. */
  Proxy?: JsonObject;
  /** { Native: true } for Connect-native services. */
  Connect?: JsonObject;
  EnableTagOverride?: boolean;
  [field: string]: unknown;
}

export interface CheckInput {
  CheckID: string;
  Status: CheckStatus;
  Name?: string;
  /** "" or absent: a node-level check. In registerService's `checks`, forced to the instance's ID. */
  ServiceID?: string;
  Notes?: string;
  Output?: string;
  [field: string]: unknown;
}

/** The catalog-file format (README "Catalog file"), also what snapshot() returns. */
export interface CatalogDocument {
  datacenter: string;
  datacenters: Record<string, { nodes?: JsonObject[]; services?: Record<string, JsonObject[]> }>;
}

export type Fault =
  /** Leaderless period: non-stale reads get 500 "No cluster leader"; ?stale reads succeed with
   *  X-Consul-KnownLeader: false and a LastContact growing from when the fault was added;
   *  /v1/status/leader answers "". /v1/catalog/datacenters and /v1/agent/self need no leader. */
  | { kind: 'no-leader' }
  /** 429 "rate limit exceeded". */
  | { kind: 'rate-limit' }
  /** 403 "Permission denied". */
  | { kind: 'forbidden' }
  /** Any status with a plain-text body. */
  | { kind: 'status'; status: number; body: string }
  /** Accept and never answer, until the fault is cleared (then answered normally) or the server stops. */
  | { kind: 'hang' }
  /** Destroy the connection (TCP RST) without answering. */
  | { kind: 'reset' }
  /** 200 with the usual headers and a body that is not JSON. */
  | { kind: 'bad-json'; body?: string }
  /** The usual headers with the full Content-Length, half the body, then the connection is destroyed. */
  | { kind: 'truncate' }
  /** Wait `ms` before handling the request (a blocking query then blocks as usual). */
  | { kind: 'delay'; ms: number };

export interface FaultOptions {
  /** Which request paths: a string matches the path exactly, or as a prefix when it ends with "/";
   *  a RegExp is tested against the path. Default: every path. */
  path?: string | RegExp;
  /** Only requests for this datacenter (?dc=, or the local one). Default: any. */
  dc?: string;
  /** Apply to this many requests, then remove the fault. Default: until cleared. */
  times?: number;
}

/** ACL tokens and what each may see: 'read' everything, 'filtered' nothing (200, empty lists). */
export interface AclOptions {
  tokens: Record<string, 'read' | 'filtered'>;
  /** Requests without a token. Default 'reject': 403 "ACL not found". */
  anonymous?: 'read' | 'filtered' | 'reject';
}

export interface FakeConsulOptions {
  /** The agent's datacenter (names without ?dc=). Default: catalog.datacenter, else "dc1". */
  datacenter?: string;
  /** Further datacenters to create empty. */
  datacenters?: string[];
  /** Loaded at construction (see load()). */
  catalog?: CatalogDocument;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 (any free port); kept across stop()/start(). */
  port?: number;
  /** /v1/agent/self Config.NodeName. Default "consul-server-1". */
  nodeName?: string;
  /** /v1/agent/self DebugConfig.DNSDomain. Default "consul.". */
  dnsDomain?: string;
  /** /v1/status/leader when there is a leader. Default "127.0.0.1:8300". */
  leaderAddress?: string;
  acl?: AclOptions | null;
  /** Add Consul's random jitter (up to wait/16) to blocking waits. Default true. */
  jitter?: boolean;
  /** Serve HTTPS with this key and certificate (PEM), asking for a client certificate signed by `ca` when given. */
  tls?: { key: string | Buffer; cert: string | Buffer; ca?: string | Buffer };
}

export const ENDPOINTS = [
  'catalog/datacenters', 'catalog/services', 'catalog/nodes', 'catalog/service',
  'health/service', 'health/connect', 'health/state', 'status/leader', 'agent/self', 'other',
] as const;
export type EndpointName = (typeof ENDPOINTS)[number];

/** Live counters, plain numbers (read them, don't write them). */
export interface FakeConsulCounters {
  /** Requests received, by endpoint (counted on arrival, before faults and validation). */
  readonly requests: Record<EndpointName, number>;
  /** Responses sent, by HTTP status. */
  readonly responses: Record<number, number>;
  /** Currently open TCP connections. */
  connections: number;
  connectionsTotal: number;
  /** Blocking queries currently waiting for a change. */
  parked: number;
  /** Requests currently held by a 'hang' fault. */
  hung: number;
  /** Parked queries re-examined because a write touched what they read (one per waiter per write). */
  wakeups: number;
  /** Blocking queries answered because their wait ran out. */
  timeouts: number;
  /** Connections destroyed by 'reset' and 'truncate' faults. */
  resets: number;
}

export type FakeConsulErrorCode = 'FAKE_CONSUL_NOT_FOUND' | 'FAKE_CONSUL_INVALID' | 'FAKE_CONSUL_STATE' | 'FAKE_CONSUL_TIMEOUT';

/** Misuse of the test API (unknown node, bad input, wrong lifecycle state). */
export class FakeConsulError extends Error {
  readonly code: FakeConsulErrorCode;
  constructor(code: FakeConsulErrorCode, message: string) {
    super(message);
    this.code = code;
    this.name = 'FakeConsulError';
  }
}

// ---------------------------------------------------------------------------------------------
// State

interface NodeRec {
  readonly name: string;
  /** Rendered fields without Node/CreateIndex/ModifyIndex. */
  fields: JsonObject;
  createIndex: number;
  modifyIndex: number;
  readonly instances: Map<string, InstanceRec>;
  /** Every check on the node (node-level and per instance), by CheckID. */
  readonly checks: Map<string, CheckRec>;
  json: string | undefined;
}

interface InstanceRec {
  readonly node: NodeRec;
  readonly id: string;
  readonly name: string;
  fields: JsonObject;
  createIndex: number;
  modifyIndex: number;
  readonly checks: Map<string, CheckRec>;
  /** Group keys it belongs to: "service:<name>", and "connect:<name>" when Connect-capable. */
  keys: string[];
  json: string | undefined;
}

interface CheckRec {
  readonly node: NodeRec;
  readonly id: string;
  /** "" for node-level checks. */
  readonly serviceId: string;
  fields: JsonObject;
  createIndex: number;
  modifyIndex: number;
  json: string | undefined;
}

interface Waiter {
  readonly ctx: RequestCtx;
  readonly d: DcState;
  readonly view: BlockingView;
  readonly minIndex: number;
  keys: string[];
  timer: NodeJS.Timeout | undefined;
  epoch: number;
  done: boolean;
}

interface CachedBody { index: number; body: Buffer; empty: boolean }

/** The two kinds of per-name entry: instances of a service, and Connect-capable endpoints for a name. */
type GroupPrefix = 'service' | 'connect';

class DcState {
  /** The Raft-like index: +1 on every write. */
  index = 0;
  readonly nodes = new Map<string, NodeRec>();
  /** "service:<name>" / "connect:<name>" -> instances by "<node>\0<id>". Only non-empty groups. */
  readonly groups = new Map<string, Map<string, InstanceRec>>();
  /** Index table: "nodes", "services", "checks", group keys, "<prefix>-extinct". */
  readonly keyIndex = new Map<string, number>();
  /** Waiters by the index-table key they read. */
  readonly waiters = new Map<string, Set<Waiter>>();
  touched = new Set<string>();
  readonly cache = new Map<string, CachedBody>();
  constructor(readonly name: string) {}

  key(k: string): number { return this.keyIndex.get(k) ?? 0; }
  touch(k: string, index: number): void { this.keyIndex.set(k, index); this.touched.add(k); }
}

const DEFAULT_PROXY = Object.freeze({ Mode: '', MeshGateway: {}, Expose: {} });
const WAIT_DEFAULT_MS = 5 * 60_000;
const WAIT_MAX_MS = 10 * 60_000;
const STATES = new Set(['any', 'passing', 'warning', 'critical']);
const STATUSES = new Set<string>(['passing', 'warning', 'critical']);
const JSON_TYPE = 'application/json';
const TEXT_TYPE = 'text/plain; charset=utf-8';
const EMPTY_LIST = Buffer.from('[]');
const EMPTY_OBJECT = Buffer.from('{}');

// ---------------------------------------------------------------------------------------------
// Helpers

/** Go's time.ParseDuration, in milliseconds; null when Go would reject it. */
export function parseGoDuration(s: string): number | null {
  let rest = s;
  let sign = 1;
  if (rest.startsWith('-') || rest.startsWith('+')) { sign = rest[0] === '-' ? -1 : 1; rest = rest.slice(1); }
  if (rest === '0') return 0;
  if (rest === '') return null;
  const part = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|h|m|s)/y;
  const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1e3, m: 6e4, h: 3.6e6 };
  let ms = 0;
  let pos = 0;
  while (pos < rest.length) {
    part.lastIndex = pos;
    const m = part.exec(rest);
    if (!m) return null;
    ms += Number(m[1]) * unit[m[2]!]!;
    pos = part.lastIndex;
  }
  return sign * ms;
}

function nodeUuid(name: string): string {
  const h = createHash('sha256').update(name).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

const isObj = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Copies onto `out` the fields of `o` not in `known` (fields the fake does not model pass through). */
function addUnknown(out: JsonObject, o: JsonObject, known: ReadonlySet<string>): JsonObject {
  for (const k in o) if (!known.has(k)) out[k] = o[k];
  return out;
}

const NODE_FIELDS = new Set(['ID', 'Node', 'Address', 'Datacenter', 'TaggedAddresses', 'Meta', 'CreateIndex', 'ModifyIndex']);
const SERVICE_FIELDS = new Set(['ID', 'Service', 'Tags', 'Address', 'TaggedAddresses', 'Meta', 'Port', 'Weights',
  'EnableTagOverride', 'Proxy', 'Connect', 'Kind', 'CreateIndex', 'ModifyIndex']);
const CHECK_FIELDS = new Set(['Node', 'CheckID', 'Name', 'Status', 'Notes', 'Output', 'ServiceID', 'ServiceName', 'ServiceTags',
  'Type', 'ExposedPort', 'Definition', 'CreateIndex', 'ModifyIndex']);

function requireStr(v: unknown, what: string): string {
  if (typeof v !== 'string' || v === '') throw new FakeConsulError('FAKE_CONSUL_INVALID', `${what}: expected a non-empty string`);
  return v;
}

function byName<T extends { name: string }>(a: T, b: T): number { return a.name < b.name ? -1 : a.name > b.name ? 1 : 0; }
function byId<T extends { id: string }>(a: T, b: T): number { return a.id < b.id ? -1 : a.id > b.id ? 1 : 0; }
function byNodeThenId(a: InstanceRec, b: InstanceRec): number {
  return a.node.name < b.node.name ? -1 : a.node.name > b.node.name ? 1 : byId(a, b);
}

function groupKeysOf(name: string, fields: JsonObject): string[] {
  const keys = [`service:${name}`];
  const proxy = isObj(fields.Proxy) ? fields.Proxy : {};
  if (fields.Kind === 'connect-proxy' && typeof proxy.DestinationServiceName === 'string' && proxy.DestinationServiceName !== '') {
    keys.push(`connect:${proxy.DestinationServiceName}`);
  } else if (isObj(fields.Connect) && fields.Connect.Native === true) {
    keys.push(`connect:${name}`);
  }
  return keys;
}

function sameFields(a: JsonObject, b: JsonObject): boolean { return JSON.stringify(a) === JSON.stringify(b); }

// ---------------------------------------------------------------------------------------------
// Requests

type Consistency = 'leader' | 'stale' | 'consistent';

interface RequestCtx {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly url: URL;
  readonly endpoint: EndpointName;
  readonly dcName: string;
  consistency: Consistency;
  /** Set when a no-leader fault matched a stale read. */
  leaderLostAt: number | undefined;
  acl: 'read' | 'filtered';
  bodyFault: Fault | undefined;
  /** For health/* and catalog/service: the name or state in the path. */
  arg: string;
  passing: boolean;
  tags: string[];
}

interface BlockingView {
  index(d: DcState, ctx: RequestCtx): number;
  keys(d: DcState, ctx: RequestCtx): string[];
  body(d: DcState, ctx: RequestCtx, index: number): CachedBody;
}

interface FaultRec {
  readonly id: number;
  readonly fault: Fault;
  readonly path: string | RegExp | undefined;
  readonly dc: string | undefined;
  remaining: number;
  readonly since: number;
}

function pathMatches(pattern: string | RegExp | undefined, path: string): boolean {
  if (pattern === undefined) return true;
  if (typeof pattern === 'string') return pattern.endsWith('/') ? path.startsWith(pattern) : path === pattern;
  pattern.lastIndex = 0;
  return pattern.test(path);
}

function endpointOf(path: string): EndpointName {
  switch (path) {
    case '/v1/catalog/datacenters': return 'catalog/datacenters';
    case '/v1/catalog/services': return 'catalog/services';
    case '/v1/catalog/nodes': return 'catalog/nodes';
    case '/v1/status/leader': return 'status/leader';
    case '/v1/agent/self': return 'agent/self';
  }
  if (path.startsWith('/v1/catalog/service/')) return 'catalog/service';
  if (path.startsWith('/v1/health/service/')) return 'health/service';
  if (path.startsWith('/v1/health/connect/')) return 'health/connect';
  if (path.startsWith('/v1/health/state/')) return 'health/state';
  return 'other';
}

const PATH_PREFIX: Partial<Record<EndpointName, string>> = {
  'catalog/service': '/v1/catalog/service/',
  'health/service': '/v1/health/service/',
  'health/connect': '/v1/health/connect/',
  'health/state': '/v1/health/state/',
};

// ---------------------------------------------------------------------------------------------
// The server

export class FakeConsul {
  readonly host: string;
  readonly datacenter: string;
  readonly counters: FakeConsulCounters;

  private readonly dcs = new Map<string, DcState>();
  private readonly server: Server | HttpsServer;
  private readonly sockets = new Set<Socket>();
  /** Requests a 'hang' fault holds: their release, by the fault's id. */
  private readonly hungRequests = new Map<() => void, number>();
  private readonly delayTimers = new Set<NodeJS.Timeout>();
  private readonly parkedWaiters = new Set<Waiter>();
  private readonly listeners: Array<() => boolean> = [];
  private faults: FaultRec[] = [];
  private nextFaultId = 1;
  private acl: AclOptions | null;
  private lastContactMs = 0;
  private closedBytes = 0;
  private listenPort: number;
  private listening = false;
  private closed = false;
  private flushScheduled = false;
  private epoch = 0;
  private readonly jitter: boolean;
  private readonly nodeName: string;
  private readonly dnsDomain: string;
  private readonly leaderAddress: string;
  private readonly views: Record<'catalog/services' | 'catalog/nodes' | 'catalog/service' | 'health/service' | 'health/connect' | 'health/state', BlockingView>;

  constructor(opts: FakeConsulOptions = {}) {
    this.host = opts.host ?? '127.0.0.1';
    this.listenPort = opts.port ?? 0;
    this.datacenter = opts.datacenter ?? opts.catalog?.datacenter ?? 'dc1';
    this.acl = opts.acl ?? null;
    this.jitter = opts.jitter ?? true;
    this.nodeName = opts.nodeName ?? 'consul-server-1';
    this.dnsDomain = opts.dnsDomain ?? 'consul.';
    this.leaderAddress = opts.leaderAddress ?? '127.0.0.1:8300';
    const requests = {} as Record<EndpointName, number>;
    for (const e of ENDPOINTS) requests[e] = 0;
    this.counters = {
      requests, responses: {}, connections: 0, connectionsTotal: 0, parked: 0, hung: 0, wakeups: 0, timeouts: 0, resets: 0,
    };
    this.dcOrCreate(this.datacenter);
    for (const dc of opts.datacenters ?? []) this.dcOrCreate(dc);
    if (opts.catalog) this.load(opts.catalog);

    const handler = (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res);
    this.tls = !!opts.tls;
    this.server = opts.tls
      ? createHttpsServer({ key: opts.tls.key, cert: opts.tls.cert, ...(opts.tls.ca ? { ca: opts.tls.ca, requestCert: true, rejectUnauthorized: true } : {}) }, handler)
      : createServer(handler);
    // TLS sockets are counted when the handshake is done (a plain socket when it connects).
    this.server.on(opts.tls ? 'secureConnection' : 'connection', (socket: Socket) => {
      this.sockets.add(socket);
      this.counters.connections++;
      this.counters.connectionsTotal++;
      socket.on('close', () => {
        this.sockets.delete(socket);
        this.closedBytes += socket.bytesWritten;
        this.counters.connections--;
        this.changed();
      });
      this.changed();
    });
    this.views = this.makeViews();
  }

  // ---- lifecycle --------------------------------------------------------------------------

  /** Listens (again, on the same port after stop()). Resolves once it accepts connections. */
  async start(): Promise<void> {
    if (this.closed) throw new FakeConsulError('FAKE_CONSUL_STATE', 'closed');
    if (this.listening) return;
    await new Promise<void>((resolve, reject) => {
      const onError = (e: Error) => reject(e);
      this.server.once('error', onError);
      this.server.listen(this.listenPort, this.host, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
    this.listening = true;
    this.listenPort = (this.server.address() as AddressInfo).port;
  }

  /** Connection refused from now on: stops listening and ends every open connection (parked, hung and
   *  delayed requests included). The catalog, faults and counters are kept; start() listens again. */
  async stop(): Promise<void> {
    for (const w of [...this.parkedWaiters]) this.unpark(w);
    this.hungRequests.clear();
    this.counters.hung = 0;
    for (const t of this.delayTimers) clearTimeout(t);
    this.delayTimers.clear();
    const wasListening = this.listening;
    this.listening = false;
    const closing = wasListening
      ? new Promise<void>((resolve) => this.server.close(() => resolve()))
      : Promise.resolve();
    for (const s of this.sockets) s.destroy();
    await closing;
    this.changed();
  }

  /** stop(), for good. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    await this.stop();
    for (const l of this.listeners.splice(0)) l();
  }

  get port(): number { return this.listenPort; }
  /** http://host:port */
  get url(): string { return `${this.tls ? 'https' : 'http'}://${this.host}:${this.listenPort}`; }
  private tls = false;

  // ---- test API: the catalog ------------------------------------------------------------

  /** Creates an empty datacenter (listed by /v1/catalog/datacenters, reachable with ?dc=). */
  addDatacenter(name: string): void { this.dcOrCreate(requireStr(name, 'datacenter')); }

  /** Registers a node or updates its fields (and node-level checks). Returns the write's index. */
  registerNode(node: NodeInput, opts: { dc?: string; checks?: CheckInput[] } = {}): number {
    return this.write(opts.dc, (d, idx) => {
      const n = this.upsertNode(d, node, idx);
      for (const c of opts.checks ?? []) this.upsertCheck(d, n.name, { ...c, ServiceID: '' }, idx);
    });
  }

  /** Registers a service instance on a node (given by name, or as an object to register or update in
   *  the same write), with optional checks of its own. Same node and ID: an update. Returns the index. */
  registerService(node: string | NodeInput, service: ServiceInput, opts: { dc?: string; checks?: CheckInput[] } = {}): number {
    return this.write(opts.dc, (d, idx) => {
      const n = typeof node === 'string' ? this.nodeOf(d, node) : this.upsertNode(d, node, idx);
      const inst = this.upsertInstance(d, n, service, idx);
      for (const c of opts.checks ?? []) this.upsertCheck(d, n.name, { ...c, ServiceID: inst.id }, idx);
    });
  }

  /** Removes a service instance and its checks. A missing one is a no-op (as in Consul). */
  deregisterService(node: string, serviceId: string, opts: { dc?: string } = {}): number {
    return this.write(opts.dc, (d, idx) => {
      const inst = d.nodes.get(node)?.instances.get(serviceId);
      if (inst) this.removeInstance(d, inst, idx);
    });
  }

  /** Sets a check's status (and output), creating the check if the node has none with this ID:
   *  node-level unless `serviceId` names an instance on the node. Same status and output: no change. */
  setCheck(node: string, checkId: string, status: CheckStatus, opts: { dc?: string; serviceId?: string; name?: string; output?: string; notes?: string } = {}): number {
    return this.write(opts.dc, (d, idx) => {
      const existing = this.nodeOf(d, node).checks.get(checkId);
      const input: CheckInput = existing
        ? { ...existing.fields, CheckID: checkId, Status: status, ServiceID: existing.serviceId }
        : { CheckID: checkId, Status: status, ServiceID: opts.serviceId ?? '' };
      if (opts.name !== undefined) input.Name = opts.name;
      if (opts.output !== undefined) input.Output = opts.output;
      if (opts.notes !== undefined) input.Notes = opts.notes;
      this.upsertCheck(d, node, input, idx);
    });
  }

  /** Removes a check. A missing one is a no-op. */
  removeCheck(node: string, checkId: string, opts: { dc?: string } = {}): number {
    return this.write(opts.dc, (d, idx) => {
      const c = d.nodes.get(node)?.checks.get(checkId);
      if (c) this.deleteCheck(d, c, idx);
    });
  }

  /** Replaces a node's Meta. Returns the index. */
  setNodeMeta(node: string, meta: Record<string, string>, opts: { dc?: string } = {}): number {
    return this.write(opts.dc, (d, idx) => {
      const n = this.nodeOf(d, node);
      this.upsertNode(d, { ...(n.fields as NodeInput), Node: node, Meta: { ...meta } }, idx);
    });
  }

  /** Removes a node with its services and checks. A missing one is a no-op. */
  removeNode(node: string, opts: { dc?: string } = {}): number {
    return this.write(opts.dc, (d, idx) => {
      const n = d.nodes.get(node);
      if (!n) return;
      for (const inst of [...n.instances.values()]) this.removeInstance(d, inst, idx);
      for (const c of [...n.checks.values()]) this.deleteCheck(d, c, idx);
      d.nodes.delete(node);
      d.touch('nodes', idx);
    });
  }

  /** Replaces the catalog of every datacenter in `doc` (catalog-file format), in one write per
   *  datacenter; other datacenters are kept. Every parked query on a replaced datacenter is
   *  re-examined. Throws FakeConsulError on malformed input. */
  load(doc: CatalogDocument): void {
    if (!isObj(doc) || !isObj(doc.datacenters)) throw new FakeConsulError('FAKE_CONSUL_INVALID', 'catalog: expected {datacenter, datacenters}');
    if (doc.datacenter !== this.datacenter) {
      throw new FakeConsulError('FAKE_CONSUL_INVALID', `catalog: datacenter ${JSON.stringify(doc.datacenter)} is not this agent's ${JSON.stringify(this.datacenter)}`);
    }
    for (const [dcName, dcDoc] of Object.entries(doc.datacenters)) {
      if (!isObj(dcDoc)) throw new FakeConsulError('FAKE_CONSUL_INVALID', `datacenters.${dcName}: expected {nodes, services}`);
      const d = this.dcOrCreate(dcName);
      const idx = ++d.index;
      const oldGroups = [...d.groups.keys()];
      d.nodes.clear();
      d.groups.clear();
      d.cache.clear();
      for (const [i, n] of (dcDoc.nodes ?? []).entries()) {
        if (!isObj(n)) throw new FakeConsulError('FAKE_CONSUL_INVALID', `datacenters.${dcName}.nodes[${i}]: expected an object`);
        if (!d.nodes.has(n.Node as string)) this.upsertNode(d, n as NodeInput, idx);
      }
      for (const [svc, entries] of Object.entries(dcDoc.services ?? {})) {
        if (!Array.isArray(entries)) throw new FakeConsulError('FAKE_CONSUL_INVALID', `datacenters.${dcName}.services.${svc}: expected an array`);
        for (const [i, e] of entries.entries()) {
          const p = `datacenters.${dcName}.services.${svc}[${i}]`;
          if (!isObj(e) || !isObj(e.Node) || !isObj(e.Service)) throw new FakeConsulError('FAKE_CONSUL_INVALID', `${p}: expected {Node, Service, Checks}`);
          const nodeName = requireStr(e.Node.Node, `${p}.Node.Node`);
          if (!d.nodes.has(nodeName)) this.upsertNode(d, e.Node as NodeInput, idx);
          const inst = this.upsertInstance(d, this.nodeOf(d, nodeName), e.Service as ServiceInput, idx);
          for (const c of Array.isArray(e.Checks) ? e.Checks : []) {
            if (!isObj(c)) throw new FakeConsulError('FAKE_CONSUL_INVALID', `${p}.Checks: expected objects`);
            const nodeLevel = (c.ServiceID ?? '') === '';
            if (nodeLevel && d.nodes.get(nodeName)!.checks.has(c.CheckID as string)) continue;
            this.upsertCheck(d, nodeName, { ...(c as CheckInput), ServiceID: nodeLevel ? '' : inst.id }, idx);
          }
        }
      }
      for (const k of ['nodes', 'services', 'checks', ...oldGroups, ...d.groups.keys()]) d.touch(k, idx);
      for (const k of oldGroups) {
        if (!d.groups.has(k)) d.touch(`${k.slice(0, k.indexOf(':'))}-extinct`, idx);
      }
      for (const k of d.waiters.keys()) d.touched.add(k);
    }
    this.scheduleFlush();
  }

  /** The catalog in the catalog-file format: nodes as /v1/catalog/nodes returns them, services as
   *  /v1/health/service/<name> does. */
  snapshot(): CatalogDocument {
    const datacenters: CatalogDocument['datacenters'] = {};
    for (const d of this.dcs.values()) {
      const services: Record<string, JsonObject[]> = {};
      const names = [...d.groups.keys()].filter((k) => k.startsWith('service:')).sort();
      for (const k of names) {
        services[k.slice('service:'.length)] = this.sortedGroup(d, k).map((inst) => JSON.parse(this.entryJson(inst)) as JsonObject);
      }
      datacenters[d.name] = { nodes: JSON.parse(this.nodesBody(d).toString()) as JsonObject[], services };
    }
    return { datacenter: this.datacenter, datacenters };
  }

  /** The current Raft index of a datacenter (the local one by default). */
  index(dc?: string): number { return this.dc(dc).index; }

  /** Simulates a snapshot restore to an older state: the datacenter's index drops to `to`, every
   *  stored index above it is lowered to it, and every parked query answers at once with the lower
   *  index (Consul wakes blocking queries when it swaps its state store). The catalog is kept. */
  resetIndex(to: number, opts: { dc?: string } = {}): void {
    if (!Number.isInteger(to) || to < 0) throw new FakeConsulError('FAKE_CONSUL_INVALID', `resetIndex: ${to} is not an index`);
    const d = this.dc(opts.dc);
    d.index = to;
    for (const [k, v] of d.keyIndex) if (v > to) d.keyIndex.set(k, to);
    for (const n of d.nodes.values()) {
      n.createIndex = Math.min(n.createIndex, to); n.modifyIndex = Math.min(n.modifyIndex, to); n.json = undefined;
      for (const inst of n.instances.values()) {
        inst.createIndex = Math.min(inst.createIndex, to); inst.modifyIndex = Math.min(inst.modifyIndex, to); inst.json = undefined;
      }
      for (const c of n.checks.values()) {
        c.createIndex = Math.min(c.createIndex, to); c.modifyIndex = Math.min(c.modifyIndex, to); c.json = undefined;
      }
    }
    d.cache.clear();
    for (const w of [...this.parkedWaiters]) {
      if (w.d !== d) continue;
      this.unpark(w);
      this.respond(w.ctx, w.view);
    }
  }

  // ---- test API: behaviour ---------------------------------------------------------------

  /** Turns on a fault; returns its id for clearFault(). Faults are tried in the order added; a request
   *  gets at most one of the non-leader faults. */
  addFault(fault: Fault, opts: FaultOptions = {}): number {
    const id = this.nextFaultId++;
    this.faults.push({ id, fault, path: opts.path, dc: opts.dc, remaining: opts.times ?? Infinity, since: Date.now() });
    return id;
  }

  /** Turns a fault off; requests a 'hang' fault holds are then answered normally. */
  clearFault(id: number): void {
    this.faults = this.faults.filter((f) => f.id !== id);
    this.releaseHung(id);
  }

  clearFaults(): void {
    this.faults = [];
    this.releaseHung();
  }

  /** null: no ACLs (every request sees everything). */
  setAcl(acl: AclOptions | null): void { this.acl = acl; }

  /** X-Consul-LastContact (ms) of ?stale reads while there is a leader. Default 0. */
  setLastContact(ms: number): void { this.lastContactMs = ms; }

  /** Bytes written to every connection so far, open or closed. */
  bytesSent(): number {
    let n = this.closedBytes;
    for (const s of this.sockets) n += s.bytesWritten;
    return n;
  }

  /** Resolves once `predicate(counters)` holds (checked now and after every request, response,
   *  connection and park/unpark); rejects with FAKE_CONSUL_TIMEOUT after `timeoutMs`. */
  until(predicate: (c: FakeConsulCounters) => boolean, timeoutMs = 15_000): Promise<void> {
    if (predicate(this.counters)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.listeners.indexOf(check);
        if (i >= 0) this.listeners.splice(i, 1);
        reject(new FakeConsulError('FAKE_CONSUL_TIMEOUT', `condition not met within ${timeoutMs} ms; counters: ${JSON.stringify(this.counters)}`));
      }, timeoutMs);
      // Returns true when done (to be removed). close() calls every listener once to settle it.
      const check = (): boolean => {
        if (!this.closed && !predicate(this.counters)) return false;
        clearTimeout(timer);
        if (predicate(this.counters)) resolve();
        else reject(new FakeConsulError('FAKE_CONSUL_STATE', 'closed while waiting'));
        return true;
      };
      this.listeners.push(check);
    });
  }

  // ---- mutations (one write = one index) -------------------------------------------------

  /** One write: the next Raft index, taken even when the write changes nothing or throws (as a Raft
   *  entry would be), and the parked queries it touched re-examined once the caller yields. */
  private write(dc: string | undefined, apply: (d: DcState, idx: number) => void): number {
    const d = this.dc(dc);
    const idx = d.index + 1;
    try {
      apply(d, idx);
    } finally {
      d.index = idx;
      this.scheduleFlush();
    }
    return idx;
  }

  private dc(name: string | undefined): DcState {
    const d = this.dcs.get(name ?? this.datacenter);
    if (!d) throw new FakeConsulError('FAKE_CONSUL_NOT_FOUND', `no datacenter ${JSON.stringify(name)}`);
    return d;
  }

  private dcOrCreate(name: string): DcState {
    let d = this.dcs.get(name);
    if (!d) { d = new DcState(name); this.dcs.set(name, d); }
    return d;
  }

  private nodeOf(d: DcState, name: string): NodeRec {
    const n = d.nodes.get(name);
    if (!n) throw new FakeConsulError('FAKE_CONSUL_NOT_FOUND', `no node ${JSON.stringify(name)} in ${d.name}`);
    return n;
  }

  private upsertNode(d: DcState, input: NodeInput, idx: number): NodeRec {
    const name = requireStr(input.Node, 'Node');
    if (typeof input.Address !== 'string') throw new FakeConsulError('FAKE_CONSUL_INVALID', `node ${name}: Address: expected a string`);
    const fields: JsonObject = addUnknown({
      ID: typeof input.ID === 'string' && input.ID !== '' ? input.ID : nodeUuid(name),
      Address: input.Address,
      Datacenter: d.name,
      TaggedAddresses: isObj(input.TaggedAddresses) ? { ...input.TaggedAddresses } : {},
      Meta: isObj(input.Meta) ? { ...input.Meta } : {},
    }, input, NODE_FIELDS);
    const existing = d.nodes.get(name);
    if (existing) {
      if (sameFields(existing.fields, fields)) return existing;
      existing.fields = fields;
      existing.modifyIndex = idx;
      existing.json = undefined;
      d.touch('nodes', idx);
      // Every answer that embeds this node changes.
      for (const inst of existing.instances.values()) for (const k of inst.keys) d.touch(k, idx);
      return existing;
    }
    const n: NodeRec = { name, fields, createIndex: idx, modifyIndex: idx, instances: new Map(), checks: new Map(), json: undefined };
    d.nodes.set(name, n);
    d.touch('nodes', idx);
    return n;
  }

  private upsertInstance(d: DcState, n: NodeRec, input: ServiceInput, idx: number): InstanceRec {
    const name = requireStr(input.Service, 'Service');
    const id = input.ID === undefined || input.ID === '' ? name : requireStr(input.ID, 'ID');
    const tagged: Record<string, { Address: string; Port: number }> = {};
    if (isObj(input.TaggedAddresses)) {
      for (const [k, v] of Object.entries(input.TaggedAddresses)) {
        const o = isObj(v) ? v : {};
        tagged[k] = { Address: String(o.Address ?? o.address ?? ''), Port: Number(o.Port ?? o.port ?? 0) };
      }
    }
    const fields: JsonObject = addUnknown({
      ...(typeof input.Kind === 'string' && input.Kind !== '' ? { Kind: input.Kind } : {}),
      ID: id,
      Service: name,
      Tags: Array.isArray(input.Tags) ? [...input.Tags] : [],
      Address: typeof input.Address === 'string' ? input.Address : '',
      ...(input.TaggedAddresses !== undefined ? { TaggedAddresses: tagged } : {}),
      Meta: isObj(input.Meta) ? { ...input.Meta } : {},
      Port: typeof input.Port === 'number' ? input.Port : 0,
      Weights: isObj(input.Weights) ? { ...input.Weights } : { Passing: 1, Warning: 1 },
      EnableTagOverride: input.EnableTagOverride === true,
      Proxy: isObj(input.Proxy) ? input.Proxy : DEFAULT_PROXY,
      Connect: isObj(input.Connect) ? input.Connect : {},
    }, input, SERVICE_FIELDS);
    const keys = groupKeysOf(name, fields);
    const existing = n.instances.get(id);
    if (existing && existing.name === name) {
      if (sameFields(existing.fields, fields)) return existing;
      // Leave only the groups it no longer belongs to (a group emptied here is a name going away).
      const left = existing.keys.filter((k) => !keys.includes(k));
      this.ungroup(d, existing, idx, left);
      existing.fields = fields;
      existing.keys = keys;
      existing.modifyIndex = idx;
      existing.json = undefined;
      this.group(d, existing, idx);
      d.touch('services', idx);
      return existing;
    }
    // A new instance, or the same ID re-registered under another service name (its checks stay).
    let checks = new Map<string, CheckRec>();
    if (existing) { checks = existing.checks; this.removeInstance(d, existing, idx, true); }
    const inst: InstanceRec = { node: n, id, name, fields, createIndex: idx, modifyIndex: idx, checks, keys, json: undefined };
    n.instances.set(id, inst);
    this.group(d, inst, idx);
    d.touch('services', idx);
    return inst;
  }

  private group(d: DcState, inst: InstanceRec, idx: number): void {
    const k2 = `${inst.node.name}\0${inst.id}`;
    for (const k of inst.keys) {
      let g = d.groups.get(k);
      if (!g) { g = new Map(); d.groups.set(k, g); }
      g.set(k2, inst);
      d.touch(k, idx);
    }
  }

  private ungroup(d: DcState, inst: InstanceRec, idx: number, keys: readonly string[] = inst.keys): void {
    const k2 = `${inst.node.name}\0${inst.id}`;
    for (const k of keys) {
      const g = d.groups.get(k);
      if (!g) continue;
      g.delete(k2);
      d.touch(k, idx);
      if (g.size === 0) {
        d.groups.delete(k);
        d.touch(`${k.slice(0, k.indexOf(':'))}-extinct`, idx);
      }
    }
  }

  private removeInstance(d: DcState, inst: InstanceRec, idx: number, keepChecks = false): void {
    this.ungroup(d, inst, idx);
    inst.node.instances.delete(inst.id);
    d.touch('services', idx);
    if (keepChecks) return;
    for (const c of inst.checks.values()) inst.node.checks.delete(c.id);
    if (inst.checks.size > 0) d.touch('checks', idx);
  }

  private upsertCheck(d: DcState, nodeName: string, input: CheckInput, idx: number): void {
    const n = this.nodeOf(d, nodeName);
    const checkId = requireStr(input.CheckID, 'CheckID');
    if (!STATUSES.has(input.Status)) throw new FakeConsulError('FAKE_CONSUL_INVALID', `check ${checkId}: Status: expected passing, warning or critical`);
    const serviceId = typeof input.ServiceID === 'string' ? input.ServiceID : '';
    const inst = serviceId === '' ? undefined : n.instances.get(serviceId);
    if (serviceId !== '' && !inst) throw new FakeConsulError('FAKE_CONSUL_NOT_FOUND', `check ${checkId}: no service ${JSON.stringify(serviceId)} on node ${nodeName}`);
    const existing = n.checks.get(checkId);
    const fields: JsonObject = addUnknown({
      Name: typeof input.Name === 'string' ? input.Name
        : inst ? `Service '${inst.name}' check` : checkId === 'serfHealth' ? 'Serf Health Status' : checkId,
      Status: input.Status,
      Notes: typeof input.Notes === 'string' ? input.Notes : '',
      Output: typeof input.Output === 'string' ? input.Output : '',
      ServiceID: serviceId,
      // Consul copies the service's name and tags into the check when the check is written.
      ServiceName: inst ? inst.name : '',
      ServiceTags: inst ? [...(inst.fields.Tags as string[])] : [],
      Type: typeof input.Type === 'string' ? input.Type : '',
      ExposedPort: 0,
      Definition: {},
    }, input, CHECK_FIELDS);
    if (existing && existing.serviceId === serviceId) {
      if (sameFields(existing.fields, fields)) return;
      existing.fields = fields;
      existing.modifyIndex = idx;
      existing.json = undefined;
      this.touchCheckReaders(d, existing, idx);
      return;
    }
    if (existing) this.deleteCheck(d, existing, idx);
    const c: CheckRec = { node: n, id: checkId, serviceId, fields, createIndex: idx, modifyIndex: idx, json: undefined };
    n.checks.set(checkId, c);
    inst?.checks.set(checkId, c);
    this.touchCheckReaders(d, c, idx);
  }

  private deleteCheck(d: DcState, c: CheckRec, idx: number): void {
    c.node.checks.delete(c.id);
    if (c.serviceId !== '') c.node.instances.get(c.serviceId)?.checks.delete(c.id);
    this.touchCheckReaders(d, c, idx);
  }

  /** A check is read by health/state, and by the health answers of the instances it covers: all of
   *  the node's for a node-level check, else its own instance's. */
  private touchCheckReaders(d: DcState, c: CheckRec, idx: number): void {
    d.touch('checks', idx);
    if (c.serviceId === '') {
      for (const inst of c.node.instances.values()) for (const k of inst.keys) d.touch(k, idx);
    } else {
      const inst = c.node.instances.get(c.serviceId);
      if (inst) for (const k of inst.keys) d.touch(k, idx);
    }
  }

  // ---- waking parked queries -------------------------------------------------------------

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // Writes made in one synchronous stretch are seen together, like reads that run after them.
    queueMicrotask(() => this.flush());
  }

  private flush(): void {
    this.flushScheduled = false;
    for (const d of this.dcs.values()) {
      if (d.touched.size === 0) continue;
      const touched = d.touched;
      d.touched = new Set();
      if (d.waiters.size === 0) continue;
      const epoch = ++this.epoch;
      for (const k of touched) {
        const set = d.waiters.get(k);
        if (!set) continue;
        for (const w of [...set]) {
          if (w.epoch === epoch || w.done) continue;
          w.epoch = epoch;
          this.counters.wakeups++;
          this.reexamine(w);
        }
      }
    }
  }

  private reexamine(w: Waiter): void {
    if (w.view.index(w.d, w.ctx) > w.minIndex) {
      this.unpark(w);
      this.respond(w.ctx, w.view);
      return;
    }
    // Still nothing newer; what it reads may have moved (a service that appeared or went away).
    const keys = w.view.keys(w.d, w.ctx);
    if (keys.length !== w.keys.length || keys.some((k, i) => k !== w.keys[i])) {
      this.unregister(w);
      w.keys = keys;
      this.register(w);
    }
  }

  private park(ctx: RequestCtx, d: DcState, view: BlockingView, minIndex: number, waitMs: number): void {
    const w: Waiter = { ctx, d, view, minIndex, keys: view.keys(d, ctx), timer: undefined, epoch: 0, done: false };
    const ms = waitMs + (this.jitter ? Math.random() * (waitMs / 16) : 0);
    w.timer = setTimeout(() => {
      if (w.done) return;
      this.counters.timeouts++;
      this.unpark(w);
      this.respond(w.ctx, w.view);
    }, ms);
    this.register(w);
    this.parkedWaiters.add(w);
    this.counters.parked++;
    ctx.res.on('close', () => { if (!w.done) this.unpark(w); });
    this.changed();
  }

  private unpark(w: Waiter): void {
    if (w.done) return;
    w.done = true;
    clearTimeout(w.timer);
    this.unregister(w);
    this.parkedWaiters.delete(w);
    this.counters.parked--;
    this.changed();
  }

  private register(w: Waiter): void {
    for (const k of w.keys) {
      let set = w.d.waiters.get(k);
      if (!set) { set = new Set(); w.d.waiters.set(k, set); }
      set.add(w);
    }
  }

  private unregister(w: Waiter): void {
    for (const k of w.keys) {
      const set = w.d.waiters.get(k);
      if (!set) continue;
      set.delete(w);
      if (set.size === 0) w.d.waiters.delete(k);
    }
  }

  private changed(): void {
    if (this.listeners.length === 0) return;
    for (let i = this.listeners.length - 1; i >= 0; i--) if (this.listeners[i]!()) this.listeners.splice(i, 1);
  }

  // ---- rendering -------------------------------------------------------------------------

  private nodeJson(n: NodeRec): string {
    if (n.json === undefined) {
      const f = n.fields;
      n.json = JSON.stringify({
        ...addUnknown({ ID: f.ID, Node: n.name, Address: f.Address, Datacenter: f.Datacenter, TaggedAddresses: f.TaggedAddresses, Meta: f.Meta }, f, NODE_FIELDS),
        CreateIndex: n.createIndex, ModifyIndex: n.modifyIndex,
      });
    }
    return n.json;
  }

  private serviceJson(inst: InstanceRec): string {
    if (inst.json === undefined) inst.json = JSON.stringify({ ...inst.fields, CreateIndex: inst.createIndex, ModifyIndex: inst.modifyIndex });
    return inst.json;
  }

  private checkJson(c: CheckRec): string {
    if (c.json === undefined) {
      c.json = JSON.stringify({ Node: c.node.name, CheckID: c.id, ...c.fields, CreateIndex: c.createIndex, ModifyIndex: c.modifyIndex });
    }
    return c.json;
  }

  /** Node-level checks, then the instance's own, each sorted by CheckID (Consul's order). */
  private checksOf(inst: InstanceRec): CheckRec[] {
    const nodeChecks: CheckRec[] = [];
    for (const c of inst.node.checks.values()) if (c.serviceId === '') nodeChecks.push(c);
    return [...nodeChecks.sort(byId), ...[...inst.checks.values()].sort(byId)];
  }

  private entryJson(inst: InstanceRec): string {
    return `{"Node":${this.nodeJson(inst.node)},"Service":${this.serviceJson(inst)},"Checks":[${this.checksOf(inst).map((c) => this.checkJson(c)).join(',')}]}`;
  }

  private sortedGroup(d: DcState, key: string): InstanceRec[] {
    const g = d.groups.get(key);
    return g ? [...g.values()].sort(byNodeThenId) : [];
  }

  private cached(d: DcState, key: string, index: number, build: () => string): CachedBody {
    const hit = d.cache.get(key);
    if (hit && hit.index === index) return hit;
    const text = build();
    const c: CachedBody = { index, body: Buffer.from(text), empty: text === '[]' || text === '{}' };
    d.cache.set(key, c);
    return c;
  }

  private nodesBody(d: DcState): Buffer {
    return this.cached(d, 'nodes', d.key('nodes'), () =>
      `[${[...d.nodes.values()].sort(byName).map((n) => this.nodeJson(n)).join(',')}]`).body;
  }

  /** Index of a service or connect name: its entry, or after it disappeared (or before it existed) the
   *  last time any name of that kind disappeared, else the larger of the nodes and services tables. */
  private groupIndex(d: DcState, key: string, prefix: GroupPrefix): number {
    if (d.groups.has(key)) return d.key(key);
    return d.key(`${prefix}-extinct`) || Math.max(d.key('nodes'), d.key('services'));
  }

  private groupKeys(d: DcState, key: string, prefix: GroupPrefix): string[] {
    if (d.groups.has(key)) return [key];
    const extinct = `${prefix}-extinct`;
    return d.key(extinct) ? [key, extinct] : [key, extinct, 'nodes', 'services'];
  }

  private healthView(prefix: GroupPrefix): BlockingView {
    return {
      index: (d, ctx) => this.groupIndex(d, `${prefix}:${ctx.arg}`, prefix),
      keys: (d, ctx) => this.groupKeys(d, `${prefix}:${ctx.arg}`, prefix),
      body: (d, ctx, index) => {
        const key = `${prefix}:${ctx.arg}`;
        if (!ctx.passing && ctx.tags.length === 0) {
          return this.cached(d, key, index, () => `[${this.sortedGroup(d, key).map((i) => this.entryJson(i)).join(',')}]`);
        }
        const list = this.sortedGroup(d, key).filter((inst) =>
          (!ctx.passing || this.checksOf(inst).every((c) => c.fields.Status === 'passing')) && hasTags(inst, ctx.tags));
        const text = `[${list.map((i) => this.entryJson(i)).join(',')}]`;
        return { index, body: Buffer.from(text), empty: list.length === 0 };
      },
    };
  }

  private makeViews(): FakeConsul['views'] {
    return {
      'catalog/nodes': {
        index: (d) => d.key('nodes'),
        keys: () => ['nodes'],
        body: (d, _ctx, index) => ({ index, body: this.nodesBody(d), empty: d.nodes.size === 0 }),
      },
      'catalog/services': {
        index: (d) => d.key('services'),
        keys: () => ['services'],
        body: (d, _ctx, index) => this.cached(d, 'services', index, () => {
          const out: Record<string, string[]> = {};
          for (const k of [...d.groups.keys()].sort()) {
            if (!k.startsWith('service:')) continue;
            const tags = new Set<string>();
            for (const inst of d.groups.get(k)!.values()) for (const t of inst.fields.Tags as string[]) tags.add(t);
            out[k.slice('service:'.length)] = [...tags].sort();
          }
          return JSON.stringify(out);
        }),
      },
      'health/service': this.healthView('service'),
      'health/connect': this.healthView('connect'),
      'catalog/service': {
        index: (d, ctx) => this.groupIndex(d, `service:${ctx.arg}`, 'service'),
        keys: (d, ctx) => this.groupKeys(d, `service:${ctx.arg}`, 'service'),
        body: (d, ctx, index) => {
          const build = () => `[${this.sortedGroup(d, `service:${ctx.arg}`).filter((i) => hasTags(i, ctx.tags))
            .map((i) => JSON.stringify(flatServiceNode(i))).join(',')}]`;
          if (ctx.tags.length > 0) { const t = build(); return { index, body: Buffer.from(t), empty: t === '[]' }; }
          return this.cached(d, `catalog:${ctx.arg}`, index, build);
        },
      },
      'health/state': {
        index: (d) => d.key('checks'),
        keys: () => ['checks'],
        body: (d, ctx, index) => this.cached(d, `state:${ctx.arg}`, index, () => {
          const out: string[] = [];
          for (const n of [...d.nodes.values()].sort(byName)) {
            for (const c of [...n.checks.values()].sort(byId)) {
              if (ctx.arg === 'any' || c.fields.Status === ctx.arg) out.push(this.checkJson(c));
            }
          }
          return `[${out.join(',')}]`;
        }),
      },
    };
  }

  // ---- HTTP --------------------------------------------------------------------------------

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://consul');
    } catch {
      this.counters.requests.other++;
      this.sendText(res, 400, 'Bad request');
      return;
    }
    const endpoint = endpointOf(url.pathname);
    this.counters.requests[endpoint]++;
    const ctx: RequestCtx = {
      req, res, url, endpoint, dcName: url.searchParams.get('dc') || this.datacenter,
      consistency: 'leader', leaderLostAt: undefined, acl: 'read', bodyFault: undefined, arg: '', passing: false, tags: [],
    };
    this.changed();
    this.applyFaults(ctx);
  }

  private takeFault(ctx: RequestCtx, pick: (f: Fault) => boolean): FaultRec | undefined {
    const path = ctx.url.pathname;
    for (const f of this.faults) {
      if (!pick(f.fault) || (f.dc !== undefined && f.dc !== ctx.dcName) || !pathMatches(f.path, path)) continue;
      if (--f.remaining <= 0) this.faults = this.faults.filter((g) => g !== f);
      return f;
    }
    return undefined;
  }

  private applyFaults(ctx: RequestCtx): void {
    const fault = this.takeFault(ctx, (x) => x.kind !== 'no-leader');
    if (!fault) { this.handle(ctx); return; }
    const f = fault.fault;
    const { res } = ctx;
    switch (f.kind) {
      case 'rate-limit': this.sendText(res, 429, 'rate limit exceeded'); return;
      case 'forbidden': this.sendText(res, 403, 'Permission denied'); return;
      case 'status': this.sendText(res, f.status, f.body); return;
      case 'reset':
        this.counters.resets++;
        ctx.req.socket.resetAndDestroy();
        return;
      case 'hang': {
        const release = (): void => {
          this.hungRequests.delete(release);
          this.counters.hung--;
          if (!res.destroyed) this.handle(ctx);
        };
        this.hungRequests.set(release, fault.id);
        this.counters.hung++;
        res.on('close', () => {
          if (this.hungRequests.delete(release)) { this.counters.hung--; this.changed(); }
        });
        this.changed();
        return;
      }
      case 'delay': {
        const t = setTimeout(() => {
          this.delayTimers.delete(t);
          if (!res.destroyed) this.handle(ctx);
        }, f.ms);
        this.delayTimers.add(t);
        return;
      }
      case 'bad-json':
      case 'truncate':
        ctx.bodyFault = f;
        this.handle(ctx);
        return;
    }
  }

  private releaseHung(faultId?: number): void {
    for (const [release, id] of [...this.hungRequests]) if (faultId === undefined || id === faultId) release();
    this.changed();
  }

  private handle(ctx: RequestCtx): void {
    const { req, res, url, endpoint } = ctx;
    const q = url.searchParams;
    if (req.method !== 'GET') { this.sendText(res, 405, `method ${req.method} not allowed`); return; }
    if (endpoint === 'other') { this.sendText(res, 404, '404 page not found'); return; }

    // Parameters (Consul answers 400 before doing any work).
    if (q.has('stale') && q.has('consistent')) {
      this.sendText(res, 400, 'Cannot specify ?stale with ?consistent, conflicting semantics.');
      return;
    }
    ctx.consistency = q.has('stale') ? 'stale' : q.has('consistent') ? 'consistent' : 'leader';
    let minIndex = 0;
    const indexParam = q.get('index');
    if (indexParam) {
      if (!/^\d{1,20}$/.test(indexParam) || BigInt(indexParam) > 0xffffffffffffffffn) { this.sendText(res, 400, 'Invalid index'); return; }
      minIndex = Number(indexParam);
    }
    let waitMs = WAIT_DEFAULT_MS;
    const waitParam = q.get('wait');
    if (waitParam) {
      const ms = parseGoDuration(waitParam);
      if (ms === null) { this.sendText(res, 400, 'Invalid wait time'); return; }
      waitMs = ms > WAIT_MAX_MS ? WAIT_MAX_MS : ms <= 0 ? WAIT_DEFAULT_MS : ms;
    }
    if (q.has('filter')) { this.sendText(res, 400, 'filter is not supported by this test Consul'); return; }
    const prefix = PATH_PREFIX[endpoint];
    if (prefix !== undefined) {
      try {
        ctx.arg = decodeURIComponent(url.pathname.slice(prefix.length));
      } catch {
        this.sendText(res, 400, 'Bad request'); return;
      }
      if (ctx.arg === '') { this.sendText(res, 400, endpoint === 'health/state' ? 'Missing check state' : 'Missing service name'); return; }
      if (endpoint === 'health/state' && !STATES.has(ctx.arg)) { this.sendText(res, 400, 'Bad check state'); return; }
    }
    if (q.has('passing') && (endpoint === 'health/service' || endpoint === 'health/connect')) {
      const v = q.get('passing')!.toLowerCase();
      if (!['', '1', 't', 'true', '0', 'f', 'false'].includes(v)) { this.sendText(res, 400, 'Invalid value for ?passing'); return; }
      ctx.passing = v === '' || v === '1' || v === 't' || v === 'true';
    }
    if (endpoint === 'health/service' || endpoint === 'catalog/service') ctx.tags = q.getAll('tag');

    if (endpoint === 'catalog/datacenters') {
      const names = [...this.dcs.keys()].filter((n) => n !== this.datacenter).sort();
      this.sendJson(ctx, 200, Buffer.from(JSON.stringify([this.datacenter, ...names])), {});
      return;
    }
    if (endpoint === 'agent/self') {
      const policy = this.tokenPolicy(ctx);
      if (policy === 'unknown') { this.sendText(res, 403, 'ACL not found'); return; }
      if (policy === 'filtered') { this.sendText(res, 403, 'Permission denied'); return; }
      this.sendJson(ctx, 200, Buffer.from(JSON.stringify(this.agentSelf())), {});
      return;
    }

    const d = this.dcs.get(ctx.dcName);
    if (!d) { this.sendText(res, 500, 'No path to datacenter'); return; }
    const noLeader = this.takeFault(ctx, (x) => x.kind === 'no-leader');
    if (endpoint === 'status/leader') {
      this.sendJson(ctx, 200, Buffer.from(JSON.stringify(noLeader ? '' : this.leaderAddress)), {});
      return;
    }
    if (noLeader) {
      if (ctx.consistency !== 'stale') { this.sendText(res, 500, 'No cluster leader'); return; }
      ctx.leaderLostAt = noLeader.since;
    }
    const policy = this.tokenPolicy(ctx);
    if (policy === 'unknown') { this.sendText(res, 403, 'ACL not found'); return; }
    ctx.acl = policy;

    const view = this.views[endpoint];
    if (minIndex > 0 && view.index(d, ctx) <= minIndex) {
      this.park(ctx, d, view, minIndex, waitMs);
      return;
    }
    this.respond(ctx, view);
  }

  private tokenPolicy(ctx: RequestCtx): 'read' | 'filtered' | 'unknown' {
    if (!this.acl) return 'read';
    const h = ctx.req.headers;
    let token = typeof h['x-consul-token'] === 'string' ? h['x-consul-token'] : '';
    const auth = h.authorization;
    if (!token && auth && /^bearer\s+/i.test(auth)) token = auth.replace(/^bearer\s+/i, '').trim();
    if (!token) token = ctx.url.searchParams.get('token') ?? '';
    if (!token) {
      const anon = this.acl.anonymous ?? 'reject';
      return anon === 'reject' ? 'unknown' : anon;
    }
    return Object.hasOwn(this.acl.tokens, token) ? this.acl.tokens[token]! : 'unknown';
  }

  private respond(ctx: RequestCtx, view: BlockingView): void {
    if (ctx.res.destroyed) return;
    const d = this.dcs.get(ctx.dcName)!;
    const index = Math.max(1, view.index(d, ctx));
    const rendered = view.body(d, ctx, index);
    const headers: OutgoingHttpHeaders = {
      'X-Consul-Index': String(index),
      'X-Consul-KnownLeader': ctx.leaderLostAt === undefined ? 'true' : 'false',
      'X-Consul-LastContact': String(ctx.consistency !== 'stale' ? 0
        : ctx.leaderLostAt !== undefined ? Date.now() - ctx.leaderLostAt : this.lastContactMs),
      'X-Consul-Effective-Consistency': ctx.consistency,
    };
    let body = rendered.body;
    if (ctx.acl === 'filtered') {
      body = ctx.endpoint === 'catalog/services' ? EMPTY_OBJECT : EMPTY_LIST;
      if (!rendered.empty) headers['X-Consul-Results-Filtered-By-ACLs'] = 'true';
    }
    this.sendJson(ctx, 200, body, headers);
  }

  private agentSelf(): JsonObject {
    return {
      Config: {
        Datacenter: this.datacenter, PrimaryDatacenter: this.datacenter, NodeName: this.nodeName,
        NodeID: nodeUuid(this.nodeName), Revision: 'fake', Server: true, Version: '1.20.1', BuildDate: '2024-10-29T19:04:05Z',
      },
      DebugConfig: {
        Datacenter: this.datacenter, NodeName: this.nodeName, DNSDomain: this.dnsDomain, DNSAltDomain: '',
        DNSAllowStale: true, DNSNodeTTL: '0s', DNSOnlyPassing: false,
      },
      Coord: null,
      Member: { Name: this.nodeName, Addr: '127.0.0.1', Port: 8301, Tags: { dc: this.datacenter, role: 'consul' }, Status: 1 },
      Meta: {},
      Stats: {},
    };
  }

  private sendText(res: ServerResponse, status: number, text: string): void {
    if (res.destroyed) return;
    const body = Buffer.from(text);
    this.count(status);
    res.writeHead(status, { 'Content-Type': TEXT_TYPE, 'Content-Length': body.length });
    res.end(body);
  }

  private sendJson(ctx: RequestCtx, status: number, body: Buffer, headers: OutgoingHttpHeaders): void {
    const { res } = ctx;
    if (res.destroyed) return;
    const fault = ctx.bodyFault;
    if (fault?.kind === 'bad-json') body = Buffer.from(fault.body ?? '<html><body><h1>502 Bad Gateway</h1></body></html>');
    headers['Content-Type'] = JSON_TYPE;
    headers['Content-Length'] = body.length;
    this.count(status);
    res.writeHead(status, headers);
    if (fault?.kind === 'truncate') {
      this.counters.resets++;
      const socket = ctx.req.socket;
      res.write(body.subarray(0, body.length >> 1), () => socket.destroy());
      return;
    }
    res.end(body);
  }

  private count(status: number): void {
    this.counters.responses[status] = (this.counters.responses[status] ?? 0) + 1;
    this.changed();
  }
}

function hasTags(inst: InstanceRec, tags: string[]): boolean {
  if (tags.length === 0) return true;
  const have = (inst.fields.Tags as string[]).map((t) => t.toLowerCase());
  return tags.every((t) => have.includes(t.toLowerCase()));
}

/** /v1/catalog/service/<name>: one flat object per instance, node fields then Service* fields. */
function flatServiceNode(inst: InstanceRec): JsonObject {
  const n = inst.node.fields;
  const s = inst.fields;
  return {
    ID: n.ID, Node: inst.node.name, Address: n.Address, Datacenter: n.Datacenter,
    TaggedAddresses: n.TaggedAddresses, NodeMeta: n.Meta,
    ServiceKind: s.Kind ?? '', ServiceID: s.ID, ServiceName: s.Service, ServiceTags: s.Tags, ServiceAddress: s.Address,
    ...(s.TaggedAddresses !== undefined ? { ServiceTaggedAddresses: s.TaggedAddresses } : {}),
    ServiceWeights: s.Weights, ServiceMeta: s.Meta, ServicePort: s.Port, ServiceEnableTagOverride: s.EnableTagOverride,
    ServiceProxy: s.Proxy, ServiceConnect: s.Connect,
    CreateIndex: inst.createIndex, ModifyIndex: inst.modifyIndex,
  };
}

/** A started FakeConsul (call close() when done). */
export async function startFakeConsul(opts: FakeConsulOptions = {}): Promise<FakeConsul> {
  const c = new FakeConsul(opts);
  await c.start();
  return c;
}
