// A test Consul: a real HTTP server (127.0.0.1, port 0 by default) serving the read side of Consul's
// HTTP API that a catalog follower uses, from an in-memory catalog that tests change with methods (not
// over HTTP). No mocks: clients talk to it over real sockets, and it can misbehave the way a Consul agent
// or the network does. By default it is as strict as Consul as it ships; each strictness has an option
// to relax it where a test needs leniency.
//
//   const consul = await startFakeConsul({ catalog: demoDoc });
//   afterAll(() => consul.close());
//   consul.setCheck('web-3', 'service:web-3', 'critical');   // wakes /v1/health/service/web only
//   consul.addFault({ kind: 'no-leader' });                       // 500 unless ?stale
//
// What it models, and where in Consul's source each rule was checked (hashicorp/consul unless named):
//
// - Connections (go-connlimit connlimit.go, agent/agent.go listenHTTP + setupHTTPS, agent/config/default.go):
//   at most `maxConnsPerClient` (Consul's limits.http_max_conns_per_client, default 200) concurrent TCP
//   connections per remote IP, counted when accepted (http.StateNew, before any TLS handshake) and
//   freed when closed. One more gets, without any request being read, exactly what
//   Limiter.HTTPConnStateFuncWithDefault429Handler writes ("HTTP/1.1 429 Too Many Requests",
//   "Content-Type: text/plain", "Content-Length: 81", "Connection: close", then "Your IP is issuing too
//   many concurrent connections, please rate limit your calls\n") and is closed (over TLS, after the
//   handshake, as Go's tls.Conn.Write does it). Idle keep-alive connections are never closed by the
//   server (Consul's http.Server has no IdleTimeout); an HTTPS connection must send its first request
//   within `httpsHandshakeTimeoutMs` (limits.https_handshake_timeout, 5s: setupHTTPS sets a read
//   deadline at StateNew and clears it at StateActive).
// - HTTP/2 (option `http2`, with `tls`; agent.go setupHTTPS calls http2.ConfigureServer, tlsutil's
//   IncomingHTTPSConfig offers ALPN ["h2", "http/1.1"], x/net/http2 allows 250 concurrent streams): h2
//   for a client that asks for it, HTTP/1.1 for one that does not, on the same port. Everything above
//   and below holds per request (stream) as over HTTP/1.1. Connections are TCP connections: the per-client
//   limit counts them, not streams (go-connlimit sees net.Conns in the ConnState hook, and net/http
//   reports StateNew/StateClosed for h2 connections too), so 300 blocking queries on one connection are
//   one connection; a 251st concurrent stream waits in the client (the server announced 250). Over the
//   limit, go-connlimit writes its raw HTTP/1.1 429 into the tls.Conn from the StateNew hook: the Write
//   runs the TLS handshake first, ALPN included, so a client that asked for h2 has h2 negotiated and then
//   reads "HTTP/1.1 429 ..." where the server preface should be, a protocol error (it never sees a 429
//   status); so does the client here. The handshake deadline (https_handshake_timeout) ends once the
//   client preface is read (x/net/http2 calls the hook with StateActive then; here on the client's first
//   SETTINGS). `counters.streams`/`streamsTotal` count h2 streams. Faults: 'reset' destroys the TCP
//   connection with every stream on it; 'truncate' resets only its stream (RST_STREAM INTERNAL_ERROR after
//   half the body); 'hang', 'trickle' and the others act on the one stream. No idle timeout over h2.
// - Request parsing (agent/http.go): the token comes from ?token, else X-Consul-Token, else
//   "Authorization: Bearer <t>" (parseTokenInternal / parseTokenFromHeaders: scheme compared
//   lower-cased, the first word after it). parseConsistency: ?stale, ?consistent, ?leader, ?cached,
//   ?max_stale (Go duration; bad: 400 `Invalid max_stale value "<v>"`; > 0 means stale); stale with
//   consistent: 400 "Cannot specify ?stale with ?consistent, conflicting semantics."; cached with
//   consistent: 400 "Cannot specify ?cached with ?consistent, conflicting semantics.". parseWait: ?wait
//   by time.ParseDuration (bad or overflowing: 400 "Invalid wait time"), then ?index by
//   strconv.ParseUint(s, 10, 64) (400 "Invalid index"); only the blocking endpoints parse them
//   (datacenters, agent/self and status/leader do not). ?passing by strconv.ParseBool (getBoolQueryParam:
//   "", 1/t/T/TRUE/true/True, 0/f/F/FALSE/false/False; else 400 "Invalid value for ?passing"). Every
//   /v1 response carries X-Consul-Default-ACL-Policy (setACLDefaultPolicy: the agent's acl
//   default_policy, "allow" unless ACLs are set up here) and Vary: Accept-Encoding; bodies of 1400
//   bytes or more are gzipped for a client that accepts gzip (NYTimes gziphandler, DefaultMinSize).
//   OPTIONS answers 200 with Allow; another method 405 "method X not allowed" with Allow; a path that
//   is no endpoint 404 "Invalid URL path: not a recognized HTTP API endpoint\n" (HTTPHandlers.Index).
// - Per datacenter, a Raft-like index that increases on every write, and an index table like Consul's
//   state store (agent/consul/state: catalog.go, catalog_schema.go, schema.go indexTableSchema, whose
//   keys are lower-cased): "nodes", "services", "checks", "gateway-services", one "service.<name>"
//   entry per lower-cased service name (written when an instance of that name, one of its checks or
//   its node changes; deleted when the name's last instance goes, which sets
//   "service_last_extinction"). A read's X-Consul-Index is what Consul computes:
//     /v1/catalog/nodes, /services, /health/state/<s>   that table's index
//     /v1/health/service/<name>   checkServiceNodesTxn: the name's entry; with no instance,
//                                 maxIndexAndWatchChForService: the extinction index, else the
//                                 name's entry, else max(nodes, services, checks)
//     /v1/catalog/service/<name>  serviceNodesTxn/maxIndexForService: the same, without checks
//     /v1/health/connect/<name>   checkServiceNodesTxn(connect=true): the largest entry of the names in
//                                 the answer (proxies, Connect-native instances and the terminating
//                                 gateways linked to <name>, via serviceGatewayNodes), and the
//                                 largest ModifyIndex of those links; empty: as above
//     /v1/catalog/gateway-services/<gw>  GatewayServices: the gateway-services table index
//   A write that changes nothing (same fields, same status) takes a Raft index but touches no entry,
//   so it wakes nobody (IsSameService). The index is never 0 on the wire (setIndex writes 1).
// - Names (catalog_schema.go: indexServiceNameFromServiceNode, indexConnectNameFromServiceNode, the
//   nodes/services/checks id indexes): service names, Connect destinations, node names, service IDs
//   and check IDs are matched lower-cased. "Web" and "web" are one service for /v1/health/service/web
//   (both sets of instances, one index entry, so a write to "Web" wakes a watch on "web"), while
//   /v1/catalog/services keys instances by the name they were registered with (servicesTagsByName), so
//   both appear. A node, service ID or check ID registered again in another case is the same record.
//   Lists come in Consul's index order (lower-cased node, then lower-cased ID); the tags of
//   /v1/catalog/services come in no set order (servicesTagsByName builds them from a Go map; shuffled
//   per response unless tagOrder: 'sorted').
// - Stored fields (agent/structs/structs.go NodeService.ToServiceNode, ValidateWeights): Weights
//   missing, or with Passing < 1, Warning < 0 or either above 65535, are stored as {Passing: 1,
//   Warning: 1}; a missing Warning is 0. Virtual IPs (catalog.go ensureServiceTxn,
//   assignServiceVirtualIP, freeServiceVirtualIP): a connect-proxy instance gets
//   TaggedAddresses["consul-virtual"] = {Address: its destination's virtual IP, Port: its own port}, a
//   Connect-native instance its own name's; typical services none. Virtual IPs are allocated per
//   lower-cased service name from 240.0.0.1 upwards (240.0.0.0/4 plus a counter), freed IPs first,
//   freed when the name's last instance goes. Go's encoder writes map keys sorted; so does this.
// - Blocking queries (agent/blockingquery/blockingquery.go Query, agent/consul/rpc.go RPCQueryTimeout):
//   `?index=N&wait=D` (N > 0) parks until the index exceeds N or D passes (default 5m, at most 10m,
//   <= 0 means the default, plus jitter up to D/16), then answers with the current data and index.
//   Waiters are indexed by the entries they read, so a write wakes only the requests whose answer it
//   can change. A snapshot restore (resetIndex) wakes every waiter at once (AbandonCh).
// - Consistency and leaders (agent/consul/rpc.go forwardRPC, SetQueryMeta; agent/*_endpoint.go
//   RETRY_ONCE): default and ?consistent reads need a leader (500 "No cluster leader"); ?stale reads are
//   answered by the agent's server with X-Consul-KnownLeader and X-Consul-LastContact as set per
//   datacenter (setLeaderContact); with ?max_stale=D and LastContact > D the read is retried once as a
//   default read. X-Consul-Effective-Consistency is the mode used.
// - Datacenters (rpc.go forwardDC, structs/errors.go): ?dc= names one the fake knows; another gets
//   500 "No path to datacenter"; a known one whose servers are down (setDatacenterReachable) gets 500
//   "Remote DC has no server currently reachable", and requests parked there 500 "rpc error making
//   call: EOF" (agent/pool/pool.go), while it stays listed in /v1/catalog/datacenters.
// - ACLs (acl/errors.go PermissionDeniedError, agent/structs/aclfilter/filter.go, rpc.go
//   maskResultsFilteredByACLs, agent/agent_endpoint.go AgentSelf, agent/consul/health_endpoint.go
//   ServiceNodes): tokens carry rights (agent:read, service:read, node:read, query:read). An unknown
//   token gets 403 "ACL not found"; a request without one uses the agent's default token when set,
//   else the anonymous token (whose rights are `anonymous`, none by default). Catalog and health lists
//   are filtered, never refused: health entries need node:read and service:read, nodes node:read,
//   services service:read, checks node:read and service:read of their service; the response then has
//   X-Consul-Results-Filtered-By-ACLs: true, except for a request that presented no token (Consul
//   masks it then). /v1/health/connect/<name> without service:read on <name> is an empty list (same
//   index, no header). /v1/agent/self needs agent:read on the agent's node name: else 403 "Permission
//   denied: token with AccessorID '<id>' lacks permission 'agent:read' on \"<node>\"" (for the
//   anonymous token: "Permission denied: anonymous token lacks permission ... The anonymous token is
//   used implicitly when a request does not specify a token."). /v1/catalog/datacenters and
//   /v1/status/leader need no token.
// - Faults, switched at runtime for all requests or those whose path (and datacenter) matches:
//   leaderless, 429, 403, any status, hang (holds the request, never writes), reset, a body that is not
//   JSON, a truncated body, a delay, a huge but valid body, a body trickled one byte at a time that
//   never ends, a deeply nested body, a missing or broken X-Consul-Index; stop()/start() for
//   connection refused on the same port with the state kept. close() ends everything by destroying
//   the HTTP/2 sessions and the sockets.
// - Observability: `counters` (plain numbers: requests per endpoint, responses per status, open, total
//   and peak connections, connections refused by the per-client limit, parked, hung and trickling
//   requests, wakeups, open and total HTTP/2 streams), bytesSent(), and until() to wait for a state.
//
// Not modelled: writes over HTTP, KV, sessions, prepared queries, ?filter (answered 400 so a caller that
// relies on it fails loudly), ?near, ?cached (accepted, answered uncached), the streaming backend,
// namespaces and partitions (fields pass through untouched), local tokens across datacenters.
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { constants as h2, createSecureServer, Http2ServerResponse, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { gzipSync } from 'node:zlib';

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
  /** Default: the service name. Unique per node (compared lower-cased). */
  ID?: string;
  Tags?: string[];
  /** "" (the default) means the node's address. */
  Address?: string;
  Port?: number;
  /** Values are {Address, Port}; the lower-case spelling of Consul's docs is accepted and rewritten. */
  TaggedAddresses?: Record<string, { Address?: string; Port?: number; address?: string; port?: number }>;
  Meta?: Record<string, string>;
  /** Stored as Consul stores them: missing or invalid (Passing < 1, Warning < 0, > 65535) is {1, 1}. */
  Weights?: { Passing?: number; Warning?: number };
  /** "" (typical service), "connect-proxy", "mesh-gateway", "terminating-gateway", ... */
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
  /** Accept and never write a byte, until the fault is cleared (then answered normally) or the server
   *  stops (the socket stays open meanwhile). */
  | { kind: 'hang' }
  /** Destroy the connection (TCP RST) without answering. */
  | { kind: 'reset' }
  /** 200 with the usual headers and a body that is not JSON. */
  | { kind: 'bad-json'; body?: string }
  /** The usual headers with the full Content-Length, half the body, then the connection is destroyed. */
  | { kind: 'truncate' }
  /** Wait `ms` before handling the request (a blocking query then blocks as usual). */
  | { kind: 'delay'; ms: number }
  /** The usual headers and a valid JSON body of about `bytes` bytes in the endpoint's shape (e.g. a
   *  services object with that many bytes of names), sent at once. */
  | { kind: 'huge'; bytes: number }
  /** The usual headers (chunked), then the body one byte every `intervalMs` and after it spaces,
   *  never ending until the fault is cleared (then the rest is sent and the response ends) or the
   *  server stops. */
  | { kind: 'trickle'; intervalMs: number }
  /** The usual headers and a valid JSON body nested `depth` levels deep. */
  | { kind: 'deep'; depth: number }
  /** X-Consul-Index missing (null) or set to `value` verbatim (e.g. "0", "abc", "-5"); a blocking
   *  query then answers at once, as a Consul behind a broken proxy would. */
  | { kind: 'index'; value: string | null };

export interface FaultOptions {
  /** Which request paths: a string matches the path exactly, or as a prefix when it ends with "/";
   *  a RegExp is tested against the path. Default: every path. */
  path?: string | RegExp;
  /** Only requests for this datacenter (?dc=, or the local one). Default: any. */
  dc?: string;
  /** Apply to this many requests, then remove the fault. Default: until cleared. */
  times?: number;
}

/** One ACL right: true (any name), false (none), or the names it covers (an entry ending in "*" is a
 *  prefix, like Consul's *_prefix rules). Compared case-sensitively, as Consul's rules are. */
export type AclRule = boolean | readonly string[];

/** What a token may read. A right left out follows the ACL default policy ('deny' unless set). */
export interface AclRights {
  agentRead?: AclRule;
  serviceRead?: AclRule;
  nodeRead?: AclRule;
  queryRead?: AclRule;
  /** The token's AccessorID in "Permission denied" messages. Default: a UUID derived from the secret. */
  accessorId?: string;
}

/** 'read': everything (agent:read too); 'filtered': nothing; 'dns': Consul's documented DNS token
 *  (service:read, node:read, query:read, no agent:read); or the rights themselves. */
export type AclPolicy = 'read' | 'filtered' | 'dns' | AclRights;

export interface AclOptions {
  /** Tokens by secret. The secret "anonymous" is the anonymous token unless listed here. */
  tokens: Record<string, AclPolicy>;
  /** The anonymous token's rights, used by requests without a token (when no defaultToken is set).
   *  Default: none, so every list comes back filtered (200, empty). */
  anonymous?: AclPolicy;
  /** The agent's default token (acl.tokens.default): used by requests without a token, which then
   *  count as authenticated (X-Consul-Results-Filtered-By-ACLs is set). A secret not in `tokens` makes
   *  those requests 403 "ACL not found", as Consul does when that token was deleted. */
  defaultToken?: string;
  /** acl.default_policy: what rights left out of an AclRights mean. Default 'deny' (Consul's own
   *  default is "allow", but a cluster that sets up ACLs sets "deny"). */
  defaultPolicy?: 'allow' | 'deny';
}

export interface LeaderContact {
  /** X-Consul-LastContact of ?stale reads, in ms. */
  lastContactMs?: number;
  /** X-Consul-KnownLeader of ?stale reads; false also makes default and ?consistent reads 500
   *  "No cluster leader" and /v1/status/leader "". */
  knownLeader?: boolean;
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
  /**
   * With `tls` only: serve HTTP/2 as well (ALPN offers h2, then http/1.1; a client that does not ask
   * for h2 gets HTTP/1.1 as before), with 250 concurrent streams per connection. Consul's HTTPS
   * listener speaks h2 (agent.go setupHTTPS: http2.ConfigureServer with golang.org/x/net/http2's
   * defaults, MaxConcurrentStreams 250; tlsutil IncomingHTTPSConfig: NextProtos ["h2", "http/1.1"]), so
   * a test that wants Consul's HTTPS as it ships sets this. Default false: HTTPS with HTTP/1.1 only
   * (an agent behind a proxy that does not speak h2). See "HTTP/2" in the header for what changes.
   */
  http2?: boolean;
  /** limits.http_max_conns_per_client: concurrent connections per client IP. Default 200; 0 = unlimited. */
  maxConnsPerClient?: number;
  /** limits.https_handshake_timeout: an HTTPS connection without a request by then is closed.
   *  Default 5000; 0 = never. */
  httpsHandshakeTimeoutMs?: number;
  /** Close idle keep-alive connections after this many ms (HTTP/1.1 connections only; an HTTP/2
   *  connection is never closed for being idle). Default 0: never, as Consul. */
  idleTimeoutMs?: number;
  /** Assign virtual IPs (TaggedAddresses["consul-virtual"]) to Connect instances as Consul does. Default true. */
  virtualIps?: boolean;
  /** Tags in /v1/catalog/services: 'random' (Consul: no set order, shuffled per response) or 'sorted'. Default 'random'. */
  tagOrder?: 'random' | 'sorted';
  /** Gzip bodies of 1400 bytes or more for clients that accept gzip, as Consul does. Default true. */
  gzip?: boolean;
}

export const ENDPOINTS = [
  'catalog/datacenters', 'catalog/services', 'catalog/nodes', 'catalog/service', 'catalog/gateway-services',
  'health/service', 'health/connect', 'health/state', 'status/leader', 'agent/self', 'other',
] as const;
export type EndpointName = (typeof ENDPOINTS)[number];

/** Live counters, plain numbers (read them, don't write them). */
export interface FakeConsulCounters {
  /** Requests received, by endpoint (counted on arrival, before faults and validation). */
  readonly requests: Record<EndpointName, number>;
  /** Responses sent, by HTTP status (the per-client limit's raw 429s are in connLimited, not here). */
  readonly responses: Record<number, number>;
  /** Currently open TCP connections (those the per-client limit refused are not counted). */
  connections: number;
  connectionsTotal: number;
  /** The most connections open at once. */
  connectionsPeak: number;
  /** Connections refused by the per-client limit (answered with go-connlimit's 429 and closed). */
  connLimited: number;
  /** Blocking queries currently waiting for a change. */
  parked: number;
  /** Requests currently held by a 'hang' fault. */
  hung: number;
  /** Responses currently being trickled by a 'trickle' fault. */
  trickling: number;
  /** Parked queries re-examined because a write touched what they read (one per waiter per write). */
  wakeups: number;
  /** Blocking queries answered because their wait ran out. */
  timeouts: number;
  /** Connections destroyed by 'reset' and 'truncate' faults (over HTTP/2, 'truncate' resets its stream only). */
  resets: number;
  /** HTTP/2 streams currently open (requests over HTTP/1.1 are not counted); at most 250 per connection. */
  streams: number;
  /** HTTP/2 streams opened so far. */
  streamsTotal: number;
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

/** What go-connlimit's HTTPConnStateFuncWithDefault429Handler writes to a connection over the limit. */
export const CONNLIMIT_MESSAGE = 'Your IP is issuing too many concurrent connections, please rate limit your calls\n';
export const CONNLIMIT_RESPONSE = Buffer.from(`HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\nContent-Length: ${CONNLIMIT_MESSAGE.length}\r\nConnection: close\r\n\r\n${CONNLIMIT_MESSAGE}`);
/** acl.AnonymousTokenID. */
export const ANONYMOUS_TOKEN_ID = '00000000-0000-0000-0000-000000000002';

// ---------------------------------------------------------------------------------------------
// State

interface NodeRec {
  /** The spelling last registered (lookups are by the lower-cased name). */
  name: string;
  /** Rendered fields without Node/CreateIndex/ModifyIndex. */
  fields: JsonObject;
  createIndex: number;
  modifyIndex: number;
  /** By lower-cased service ID. */
  readonly instances: Map<string, InstanceRec>;
  /** Every check on the node (node-level and per instance), by lower-cased CheckID. */
  readonly checks: Map<string, CheckRec>;
  json: string | undefined;
}

interface InstanceRec {
  readonly node: NodeRec;
  readonly id: string;
  /** The spelling last registered (the group is the lower-cased name). */
  name: string;
  fields: JsonObject;
  createIndex: number;
  modifyIndex: number;
  /** By lower-cased CheckID. */
  readonly checks: Map<string, CheckRec>;
  /** Group keys it belongs to: "service:<lower name>", and "connect:<lower name>" when Connect-capable. */
  keys: string[];
  json: string | undefined;
}

interface CheckRec {
  readonly node: NodeRec;
  /** The spelling last registered. */
  id: string;
  /** "" for node-level checks (the ID as given). */
  readonly serviceId: string;
  fields: JsonObject;
  createIndex: number;
  modifyIndex: number;
  json: string | undefined;
}

interface GatewayLink {
  readonly gateway: string;
  readonly service: string;
  fields: JsonObject;
  createIndex: number;
  modifyIndex: number;
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

interface CachedBody { index: number; body: Buffer }

class DcState {
  /** The Raft-like index: +1 on every write. */
  index = 0;
  /** By lower-cased node name. */
  readonly nodes = new Map<string, NodeRec>();
  /** "service:<lower>" / "connect:<lower>" -> instances by "<lower node>\0<lower id>". Only non-empty groups. */
  readonly groups = new Map<string, Map<string, InstanceRec>>();
  /** Index table: "nodes", "services", "checks", "gateway-services", "service-extinct", "svc:<lower name>"
   *  (Consul's "service.<name>"), "gw:<lower service>" (touched when its gateway links change). */
  readonly keyIndex = new Map<string, number>();
  /** Waiters by the key they read. */
  readonly waiters = new Map<string, Set<Waiter>>();
  touched = new Set<string>();
  readonly cache = new Map<string, CachedBody>();
  reachable = true;
  lastContactMs = 0;
  knownLeader = true;
  /** Virtual IP offsets (from 240.0.0.0) by lower-cased service name; freed offsets, smallest first. */
  readonly vips = new Map<string, number>();
  freeVips: number[] = [];
  vipCounter = 0;
  /** Terminating-gateway links by lower-cased gateway, then lower-cased service; and the reverse. */
  readonly linksByGateway = new Map<string, Map<string, GatewayLink>>();
  readonly linksByService = new Map<string, Map<string, GatewayLink>>();
  constructor(readonly name: string) {}

  key(k: string): number { return this.keyIndex.get(k) ?? 0; }
  touch(k: string, index: number): void { this.keyIndex.set(k, index); this.touched.add(k); }
  /** Removes an index entry (Consul deletes "service.<name>" when the name goes), waking its readers. */
  drop(k: string): void { this.keyIndex.delete(k); this.touched.add(k); }
}

const DEFAULT_PROXY = Object.freeze({ Mode: '', MeshGateway: {}, Expose: {} });
const WAIT_DEFAULT_MS = 5 * 60_000;
const WAIT_MAX_MS = 10 * 60_000;
const GZIP_MIN_SIZE = 1400;
const STATES = new Set(['any', 'passing', 'warning', 'critical']);
const STATUSES = new Set<string>(['passing', 'warning', 'critical']);
const GO_BOOL = new Map<string, boolean>([
  ['', true], ['1', true], ['t', true], ['T', true], ['TRUE', true], ['true', true], ['True', true],
  ['0', false], ['f', false], ['F', false], ['FALSE', false], ['false', false], ['False', false],
]);
const JSON_TYPE = 'application/json';
const TEXT_TYPE = 'text/plain; charset=utf-8';
const SPACE = Buffer.from(' ');
const ALLOW = 'OPTIONS,GET';
/** golang.org/x/net/http2 defaultMaxStreams: the SETTINGS_MAX_CONCURRENT_STREAMS Consul's HTTPS listener sends. */
const H2_MAX_STREAMS = 250;

/** node's Http2ServerResponse has no `destroyed` (ServerResponse has, and the handler checks it before
 *  every write): here it is its stream's (true once the stream is closed or reset). */
class H2Response extends Http2ServerResponse {}
Object.defineProperty(H2Response.prototype, 'destroyed', {
  configurable: true,
  get(this: Http2ServerResponse): boolean { return this.stream?.destroyed ?? true; },
});

// ---------------------------------------------------------------------------------------------
// Helpers

/** Go's time.ParseDuration, in milliseconds; null when Go would reject it (bad syntax or overflow). */
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
  // time.Duration is an int64 of nanoseconds: Go answers "invalid duration" past about 292 years.
  if (ms * 1e6 > 9.223372036854775807e18) return null;
  return sign * ms;
}

function nodeUuid(name: string): string {
  const h = createHash('sha256').update(name).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

const isObj = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);
const lc = (s: string): string => s.toLowerCase();

/** Copies onto `out` the fields of `o` not in `known` (fields the fake does not model pass through). */
function addUnknown(out: JsonObject, o: JsonObject, known: ReadonlySet<string>): JsonObject {
  for (const k in o) if (!known.has(k)) out[k] = o[k];
  return out;
}

/** A copy with keys in Go's encoding/json order (sorted bytewise). */
function sortedKeys<T>(o: Record<string, T>): Record<string, T> {
  const out: Record<string, T> = {};
  for (const k of Object.keys(o).sort()) out[k] = o[k]!;
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

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
function byNodeName(a: NodeRec, b: NodeRec): number { return cmp(lc(a.name), lc(b.name)); }
function byCheckId(a: CheckRec, b: CheckRec): number { return cmp(lc(a.id), lc(b.id)); }
/** Consul's services index order: lower-cased node, then lower-cased service ID. */
function byNodeThenId(a: InstanceRec, b: InstanceRec): number {
  return cmp(lc(a.node.name), lc(b.node.name)) || cmp(lc(a.id), lc(b.id));
}

/** The name an instance serves Connect for (connectNameFromServiceNode), or undefined. */
function connectNameOf(name: string, fields: JsonObject): string | undefined {
  if (fields.Kind === 'connect-proxy') {
    const proxy = isObj(fields.Proxy) ? fields.Proxy : {};
    return typeof proxy.DestinationServiceName === 'string' ? proxy.DestinationServiceName : '';
  }
  if (isObj(fields.Connect) && fields.Connect.Native === true) return name;
  return undefined;
}

function groupKeysOf(name: string, fields: JsonObject): string[] {
  const keys = [`service:${lc(name)}`];
  const c = connectNameOf(name, fields);
  if (c !== undefined && c !== '') keys.push(`connect:${lc(c)}`);
  return keys;
}

/** NodeService.ToServiceNode: Weights that ValidateWeights rejects (or none) are stored as {1, 1}. */
function storedWeights(w: unknown, what: string): { Passing: number; Warning: number } {
  if (w === undefined || w === null) return { Passing: 1, Warning: 1 };
  if (!isObj(w)) throw new FakeConsulError('FAKE_CONSUL_INVALID', `${what}: Weights: expected an object`);
  const passing = w.Passing ?? 0;
  const warning = w.Warning ?? 0;
  if (!Number.isInteger(passing) || !Number.isInteger(warning)) {
    throw new FakeConsulError('FAKE_CONSUL_INVALID', `${what}: Weights: Passing and Warning must be integers (Consul would not decode the registration)`);
  }
  const p = passing as number;
  const q = warning as number;
  if (p < 1 || q < 0 || p > 65535 || q > 65535) return { Passing: 1, Warning: 1 };
  return { Passing: p, Warning: q };
}

function vipAddress(offset: number): string {
  return `${240 + ((offset >>> 24) & 15)}.${(offset >>> 16) & 255}.${(offset >>> 8) & 255}.${offset & 255}`;
}

function sameFields(a: JsonObject, b: JsonObject): boolean { return JSON.stringify(a) === JSON.stringify(b); }

/** Remote IP as Go prints it (an IPv4-mapped IPv6 address is the IPv4 address). */
function clientIp(s: Socket): string {
  const a = s.remoteAddress ?? '';
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

function acceptsGzip(req: IncomingMessage): boolean {
  const h = req.headers['accept-encoding'];
  if (typeof h !== 'string' || h === '') return false;
  for (const part of h.split(',')) {
    const [coding, ...params] = part.split(';').map((x) => x.trim());
    if (lc(coding ?? '') !== 'gzip') continue;
    let q = 1;
    for (const p of params) if (p.startsWith('q=')) q = Math.min(1, Math.max(0, Number(p.slice(2)) || 0));
    return q > 0;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// ACLs

type RightName = 'agentRead' | 'serviceRead' | 'nodeRead' | 'queryRead';
const RIGHTS: readonly RightName[] = ['agentRead', 'serviceRead', 'nodeRead', 'queryRead'];

interface Principal {
  readonly rights: Readonly<Record<RightName, AclRule>>;
  readonly accessor: string;
  /** A token was presented (or the agent's default one used): Consul then reports filtering. */
  readonly authenticated: boolean;
}

function resolveRights(p: AclPolicy, allowByDefault: boolean): Record<RightName, AclRule> {
  if (p === 'read') return { agentRead: true, serviceRead: true, nodeRead: true, queryRead: true };
  if (p === 'filtered') return { agentRead: false, serviceRead: false, nodeRead: false, queryRead: false };
  if (p === 'dns') return { agentRead: false, serviceRead: true, nodeRead: true, queryRead: true };
  if (typeof p !== 'object' || p === null || Array.isArray(p)) throw new FakeConsulError('FAKE_CONSUL_INVALID', `acl: ${JSON.stringify(p)} is not a token policy (use 'read', 'filtered', 'dns' or rights)`);
  const out = {} as Record<RightName, AclRule>;
  for (const r of RIGHTS) out[r] = p[r] ?? allowByDefault;
  return out;
}

function allows(rule: AclRule, name: string): boolean {
  if (rule === true || rule === false) return rule;
  return rule.some((p) => (p.endsWith('*') ? name.startsWith(p.slice(0, -1)) : p === name));
}

function checkAcl(opts: AclOptions): void {
  if (!isObj(opts) || !isObj(opts.tokens)) throw new FakeConsulError('FAKE_CONSUL_INVALID', 'acl: expected { tokens }');
  if ((opts.anonymous as unknown) === 'reject') {
    throw new FakeConsulError('FAKE_CONSUL_INVALID', "acl.anonymous: 'reject' is gone: Consul never refuses a request for having no token (it uses the anonymous token); for 403 \"ACL not found\" on requests without a token, set defaultToken to a secret that is not in tokens");
  }
  const allow = opts.defaultPolicy === 'allow';
  for (const p of Object.values(opts.tokens)) resolveRights(p, allow);
  if (opts.anonymous !== undefined) resolveRights(opts.anonymous, allow);
}

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
  /** ?max_stale in ms (0: none). */
  maxStaleMs: number;
  /** Set when a no-leader fault matched a stale read. */
  leaderLostAt: number | undefined;
  /** null: ACLs are off. */
  principal: Principal | null;
  bodyFault: FaultRec | undefined;
  /** For the per-name endpoints: the name or state in the path. */
  arg: string;
  passing: boolean;
  tags: string[];
}

interface Rendered { body: Buffer; filtered: boolean }

interface BlockingView {
  index(d: DcState, ctx: RequestCtx): number;
  keys(d: DcState, ctx: RequestCtx): string[];
  render(d: DcState, ctx: RequestCtx, index: number): Rendered;
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

const PATH_PREFIX: Partial<Record<EndpointName, string>> = {
  'catalog/service': '/v1/catalog/service/',
  'catalog/gateway-services': '/v1/catalog/gateway-services/',
  'health/service': '/v1/health/service/',
  'health/connect': '/v1/health/connect/',
  'health/state': '/v1/health/state/',
};

function endpointOf(path: string): EndpointName {
  switch (path) {
    case '/v1/catalog/datacenters': return 'catalog/datacenters';
    case '/v1/catalog/services': return 'catalog/services';
    case '/v1/catalog/nodes': return 'catalog/nodes';
    case '/v1/status/leader': return 'status/leader';
    case '/v1/agent/self': return 'agent/self';
  }
  for (const [e, prefix] of Object.entries(PATH_PREFIX)) if (path.startsWith(prefix)) return e as EndpointName;
  return 'other';
}

/** The endpoints that parse ?stale/?consistent/?wait/?index (HTTPHandlers.parse) and can block. */
const BLOCKING = new Set<EndpointName>(['catalog/services', 'catalog/nodes', 'catalog/service', 'catalog/gateway-services',
  'health/service', 'health/connect', 'health/state']);

// ---------------------------------------------------------------------------------------------
// Hostile bodies

/** A valid JSON body of at least `bytes` bytes in the shape of `endpoint`'s answers. */
function hugeBody(endpoint: EndpointName, bytes: number, dc: string): Buffer {
  const pad = 'x'.repeat(64);
  const node = (i: number) => `{"ID":"${nodeUuid(`huge-${i}`)}","Node":"huge-${i}-${pad}","Address":"10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}","Datacenter":"${dc}","TaggedAddresses":{},"Meta":{},"CreateIndex":1,"ModifyIndex":1}`;
  const service = (i: number) => `{"ID":"huge-${i}","Service":"huge-${i}-${pad}","Tags":[],"Address":"","Meta":{},"Port":80,"Weights":{"Passing":1,"Warning":1},"EnableTagOverride":false,"Proxy":{"Mode":"","MeshGateway":{},"Expose":{}},"Connect":{},"CreateIndex":1,"ModifyIndex":1}`;
  const check = (i: number) => `{"Node":"huge-${i}-${pad}","CheckID":"serfHealth","Name":"Serf Health Status","Status":"passing","Notes":"","Output":"","ServiceID":"","ServiceName":"","ServiceTags":[],"Type":"","ExposedPort":0,"Definition":{},"CreateIndex":1,"ModifyIndex":1}`;
  let open = '[';
  let close = ']';
  let item: (i: number) => string;
  switch (endpoint) {
    case 'catalog/services': open = '{'; close = '}'; item = (i) => `"huge-${i}-${pad}":["${pad}"]`; break;
    case 'catalog/nodes': item = node; break;
    case 'health/service': case 'health/connect': item = (i) => `{"Node":${node(i)},"Service":${service(i)},"Checks":[${check(i)}]}`; break;
    case 'catalog/service': item = (i) => `{"ID":"${nodeUuid(`huge-${i}`)}","Node":"huge-${i}-${pad}","Address":"10.0.0.1","Datacenter":"${dc}","TaggedAddresses":{},"NodeMeta":{},"ServiceKind":"","ServiceID":"huge-${i}","ServiceName":"huge-${pad}","ServiceTags":[],"ServiceAddress":"","ServiceWeights":{"Passing":1,"Warning":1},"ServiceMeta":{},"ServicePort":80,"ServiceEnableTagOverride":false,"ServiceProxy":{},"ServiceConnect":{},"CreateIndex":1,"ModifyIndex":1}`; break;
    case 'health/state': item = check; break;
    case 'catalog/gateway-services': item = (i) => `{"Gateway":{"Name":"huge-gw"},"Service":{"Name":"huge-${i}-${pad}"},"GatewayKind":"terminating-gateway","Port":0,"Protocol":"","Hosts":null,"CAFile":"","CertFile":"","KeyFile":"","SNI":"","FromWildcard":false,"CreateIndex":1,"ModifyIndex":1}`; break;
    case 'agent/self': open = `{"Config":{"Datacenter":"${dc}"},"Meta":{`; close = '}}'; item = (i) => `"huge-${i}":"${pad}"`; break;
    case 'status/leader': return Buffer.from(`"${'x'.repeat(Math.max(0, bytes - 2))}"`);
    default: item = (i) => `"huge-${i}-${pad}"`;
  }
  const parts: string[] = [open];
  let size = open.length + close.length;
  for (let i = 0; size < bytes; i++) {
    const s = (i === 0 ? '' : ',') + item(i);
    parts.push(s);
    size += s.length;
  }
  parts.push(close);
  return Buffer.from(parts.join(''));
}

/** A valid JSON body nested `depth` levels deep (an object at the top for the object endpoints). */
function deepBody(endpoint: EndpointName, depth: number): Buffer {
  const n = Math.max(1, Math.floor(depth));
  if (endpoint === 'catalog/services' || endpoint === 'agent/self') {
    return Buffer.from(n === 1 ? '{}' : `{"deep":${'['.repeat(n - 1)}${']'.repeat(n - 1)}}`);
  }
  return Buffer.from(`${'['.repeat(n)}${']'.repeat(n)}`);
}

// ---------------------------------------------------------------------------------------------
// The server

export class FakeConsul {
  readonly host: string;
  readonly datacenter: string;
  readonly counters: FakeConsulCounters;

  private readonly dcs = new Map<string, DcState>();
  private readonly listener: NetServer;
  /** node:http, node:https, or (option http2) node:http2's secure server with HTTP/1.1 allowed. */
  private readonly http: NetServer;
  /** For HTTPS: completes the TLS handshake of connections over the limit, then writes the 429. */
  private readonly rejectTls: TlsServer | undefined;
  private readonly rawSockets = new Set<Socket>();
  /** The TCP connections counted, by "<address>:<port>" (a TLS or HTTP/2 request's socket is no TCP handle). */
  private readonly rawByKey = new Map<string, Socket>();
  private readonly tlsSockets = new Set<TLSSocket>();
  private readonly sessions = new Set<ServerHttp2Session>();
  private readonly openStreams = new Set<ServerHttp2Stream>();
  private readonly perClient = new Map<string, number>();
  /** HTTPS connections that have not sent a request yet, by "<address>:<port>". */
  private readonly handshakeTimers = new Map<string, NodeJS.Timeout>();
  /** Requests a 'hang' fault holds: their release, by the fault's id. */
  private readonly hungRequests = new Map<() => void, number>();
  /** Responses a 'trickle' fault is writing: their finish, by the fault's id. */
  private readonly trickles = new Map<() => void, { id: number; cleanup: () => void }>();
  private readonly delayTimers = new Set<NodeJS.Timeout>();
  private readonly parkedWaiters = new Set<Waiter>();
  private readonly listeners: Array<() => boolean> = [];
  private faults: FaultRec[] = [];
  private nextFaultId = 1;
  private acl: AclOptions | null;
  private closedBytes = 0;
  private listenPort: number;
  private listening = false;
  private closed = false;
  private flushScheduled = false;
  private epoch = 0;
  private readonly tls: boolean;
  private readonly http2: boolean;
  private readonly jitter: boolean;
  private readonly nodeName: string;
  private readonly dnsDomain: string;
  private readonly leaderAddress: string;
  private readonly maxConnsPerClient: number;
  private readonly httpsHandshakeTimeoutMs: number;
  private readonly virtualIps: boolean;
  private readonly tagOrder: 'random' | 'sorted';
  private readonly gzip: boolean;
  private readonly views: Record<'catalog/services' | 'catalog/nodes' | 'catalog/service' | 'catalog/gateway-services' | 'health/service' | 'health/connect' | 'health/state', BlockingView>;

  constructor(opts: FakeConsulOptions = {}) {
    this.host = opts.host ?? '127.0.0.1';
    this.listenPort = opts.port ?? 0;
    this.datacenter = opts.datacenter ?? opts.catalog?.datacenter ?? 'dc1';
    if (opts.acl) checkAcl(opts.acl);
    this.acl = opts.acl ?? null;
    this.jitter = opts.jitter ?? true;
    this.nodeName = opts.nodeName ?? 'consul-server-1';
    this.dnsDomain = opts.dnsDomain ?? 'consul.';
    this.leaderAddress = opts.leaderAddress ?? '127.0.0.1:8300';
    this.maxConnsPerClient = opts.maxConnsPerClient ?? 200;
    this.httpsHandshakeTimeoutMs = opts.httpsHandshakeTimeoutMs ?? 5000;
    this.virtualIps = opts.virtualIps ?? true;
    this.tagOrder = opts.tagOrder ?? 'random';
    this.gzip = opts.gzip ?? true;
    if (!Number.isInteger(this.maxConnsPerClient) || this.maxConnsPerClient < 0) {
      throw new FakeConsulError('FAKE_CONSUL_INVALID', `maxConnsPerClient: ${opts.maxConnsPerClient} is not a count`);
    }
    const requests = {} as Record<EndpointName, number>;
    for (const e of ENDPOINTS) requests[e] = 0;
    this.counters = {
      requests, responses: {}, connections: 0, connectionsTotal: 0, connectionsPeak: 0, connLimited: 0,
      parked: 0, hung: 0, trickling: 0, wakeups: 0, timeouts: 0, resets: 0, streams: 0, streamsTotal: 0,
    };
    this.views = this.makeViews();
    this.dcOrCreate(this.datacenter);
    for (const dc of opts.datacenters ?? []) this.dcOrCreate(dc);
    if (opts.catalog) this.load(opts.catalog);

    const handler = (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res);
    this.tls = !!opts.tls;
    this.http2 = opts.http2 ?? false;
    if (this.http2 && !opts.tls) throw new FakeConsulError('FAKE_CONSUL_INVALID', 'http2: only with tls (Consul speaks HTTP/2 on its HTTPS listener only)');
    const tlsOpts = opts.tls
      ? { key: opts.tls.key, cert: opts.tls.cert, ...(opts.tls.ca ? { ca: opts.tls.ca, requestCert: true, rejectUnauthorized: true } : {}) }
      : undefined;
    if (tlsOpts && this.http2) {
      // HTTP/2 requests come through node's compatibility API (Http2ServerRequest/Response), used here
      // through the part of IncomingMessage/ServerResponse the handler needs (H2Response adds `destroyed`).
      const server = createSecureServer({
        ...tlsOpts, allowHTTP1: true, settings: { maxConcurrentStreams: H2_MAX_STREAMS }, Http2ServerResponse: H2Response,
      }, handler as unknown as Parameters<typeof createSecureServer>[1]);
      server.on('session', (session) => this.onSession(session));
      // Before the compatibility layer's own listener, so a stream is counted before its request runs.
      server.prependListener('stream', (stream) => this.onStream(stream));
      server.on('sessionError', () => {});
      this.http = server;
    } else {
      this.http = tlsOpts ? createHttpsServer(tlsOpts, handler) : createServer(handler);
    }
    // Consul's http.Server sets no IdleTimeout: an idle keep-alive connection stays open.
    (this.http as NetServer & { keepAliveTimeout?: number }).keepAliveTimeout = opts.idleTimeoutMs ?? 0;
    this.http.on('secureConnection', (s: TLSSocket) => {
      this.tlsSockets.add(s);
      s.on('close', () => this.tlsSockets.delete(s));
    });
    this.http.on('tlsClientError', () => {});
    if (tlsOpts) {
      // Go's crypto/tls negotiates ALPN with the listener's config (h2 first, server preference)
      // before go-connlimit's 429 is written, whatever the client then expects to read.
      this.rejectTls = createTlsServer({ ...tlsOpts, ...(this.http2 ? { ALPNProtocols: ['h2', 'http/1.1'] } : {}) }, (s) => {
        this.tlsSockets.add(s);
        s.on('close', () => this.tlsSockets.delete(s));
        s.on('error', () => {});
        s.resume();
        s.end(CONNLIMIT_RESPONSE, () => s.destroy());
      });
      this.rejectTls.on('tlsClientError', () => {});
    }
    this.listener = createNetServer((s) => this.onConnection(s));
  }

  // ---- lifecycle --------------------------------------------------------------------------

  /** Listens (again, on the same port after stop()). Resolves once it accepts connections. */
  async start(): Promise<void> {
    if (this.closed) throw new FakeConsulError('FAKE_CONSUL_STATE', 'closed');
    if (this.listening) return;
    await new Promise<void>((resolve, reject) => {
      const onError = (e: Error) => reject(e);
      this.listener.once('error', onError);
      this.listener.listen(this.listenPort, this.host, () => {
        this.listener.off('error', onError);
        resolve();
      });
    });
    this.listening = true;
    this.listenPort = (this.listener.address() as AddressInfo).port;
  }

  /** Connection refused from now on: stops listening and destroys every open connection (parked, hung,
   *  trickled and delayed requests included). The catalog, faults and counters are kept; start()
   *  listens again. */
  async stop(): Promise<void> {
    for (const w of [...this.parkedWaiters]) this.unpark(w);
    this.hungRequests.clear();
    this.counters.hung = 0;
    for (const t of [...this.trickles.values()]) t.cleanup();
    for (const t of this.delayTimers) clearTimeout(t);
    this.delayTimers.clear();
    for (const t of this.handshakeTimers.values()) clearTimeout(t);
    this.handshakeTimers.clear();
    const wasListening = this.listening;
    this.listening = false;
    const closing = wasListening
      ? new Promise<void>((resolve) => this.listener.close(() => resolve()))
      : Promise.resolve();
    // HTTP/2 sessions first (their streams end at once, no GOAWAY waited for), then the sockets.
    for (const s of this.sessions) s.destroy();
    this.sessions.clear();
    this.openStreams.clear();
    this.counters.streams = 0;
    // Resolved once every connection has emitted 'close' and is counted out (still in rawSockets: not
    // yet; a TCP socket under a TLS one reports it a turn after the listener's own close).
    const gone = [...this.rawSockets].map((s) => new Promise<void>((resolve) => s.once('close', () => resolve())));
    for (const s of this.tlsSockets) s.destroy();
    for (const s of this.rawSockets) s.destroy();
    await Promise.all([closing, ...gone]);
    this.changed();
  }

  /** stop(), for good. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    await this.stop();
    for (const l of this.listeners.splice(0)) l();
  }

  get port(): number { return this.listenPort; }
  /** http(s)://host:port */
  get url(): string { return `${this.tls ? 'https' : 'http'}://${this.host}:${this.listenPort}`; }

  private onConnection(s: Socket): void {
    this.rawSockets.add(s);
    s.on('error', () => {});
    s.once('close', () => {
      this.rawSockets.delete(s);
      this.closedBytes += s.bytesWritten;
    });
    if (!this.listening) { s.destroy(); return; }
    const ip = clientIp(s);
    const open = this.perClient.get(ip) ?? 0;
    if (this.maxConnsPerClient > 0 && open >= this.maxConnsPerClient) {
      // go-connlimit: refused at http.StateNew, before any request is read.
      this.counters.connLimited++;
      if (this.rejectTls) {
        this.rejectTls.emit('connection', s);
      } else {
        s.resume();
        s.end(CONNLIMIT_RESPONSE, () => s.destroy());
      }
      this.changed();
      return;
    }
    this.perClient.set(ip, open + 1);
    const c = this.counters;
    c.connections++;
    c.connectionsTotal++;
    if (c.connections > c.connectionsPeak) c.connectionsPeak = c.connections;
    const key = `${s.remoteAddress}:${s.remotePort}`;
    this.rawByKey.set(key, s);
    s.once('close', () => {
      if (this.rawByKey.get(key) === s) this.rawByKey.delete(key);
      const n = (this.perClient.get(ip) ?? 1) - 1;
      if (n <= 0) this.perClient.delete(ip); else this.perClient.set(ip, n);
      c.connections--;
      const t = this.handshakeTimers.get(key);
      if (t) { clearTimeout(t); this.handshakeTimers.delete(key); }
      this.changed();
    });
    if (this.tls && this.httpsHandshakeTimeoutMs > 0) {
      this.handshakeTimers.set(key, setTimeout(() => { this.handshakeTimers.delete(key); s.destroy(); }, this.httpsHandshakeTimeoutMs));
    }
    this.http.emit('connection', s);
    this.changed();
  }

  /** An HTTP/2 connection (after TLS and ALPN h2). */
  private onSession(session: ServerHttp2Session): void {
    this.sessions.add(session);
    session.on('error', () => {});
    session.once('close', () => this.sessions.delete(session));
    // x/net/http2 calls the ConnState hook with StateActive once it has read the client preface, and
    // setupHTTPS then clears the handshake deadline: here, when the client's first SETTINGS arrive.
    const key = `${session.socket.remoteAddress}:${session.socket.remotePort}`;
    session.once('remoteSettings', () => this.clearHandshakeTimer(key));
  }

  private onStream(stream: ServerHttp2Stream): void {
    this.openStreams.add(stream);
    this.counters.streams++;
    this.counters.streamsTotal++;
    stream.on('error', () => {});
    stream.once('close', () => {
      if (this.openStreams.delete(stream)) { this.counters.streams--; this.changed(); }
    });
  }

  private clearHandshakeTimer(key: string): void {
    const t = this.handshakeTimers.get(key);
    if (t) { clearTimeout(t); this.handshakeTimers.delete(key); }
  }

  /** The TCP connection a request came on (its `socket` is a TLS socket, or a proxy over HTTP/2). */
  private rawSocketOf(req: IncomingMessage): Socket | undefined {
    return this.rawByKey.get(`${req.socket.remoteAddress}:${req.socket.remotePort}`);
  }

  // ---- test API: the catalog ------------------------------------------------------------

  /** Creates an empty datacenter (listed by /v1/catalog/datacenters, reachable with ?dc=). */
  addDatacenter(name: string): void { this.dcOrCreate(requireStr(name, 'datacenter')); }

  /** Registers a node or updates its fields (and node-level checks). Node names are matched
   *  lower-cased, as in Consul: "Web-1" after "web-1" updates that node. Returns the write's index. */
  registerNode(node: NodeInput, opts: { dc?: string; checks?: CheckInput[] } = {}): number {
    return this.write(opts.dc, (d, idx) => {
      const n = this.upsertNode(d, node, idx);
      for (const c of opts.checks ?? []) this.upsertCheck(d, n.name, { ...c, ServiceID: '' }, idx);
    });
  }

  /** Registers a service instance on a node (given by name, or as an object to register or update in
   *  the same write), with optional checks of its own. Same node and ID (lower-cased): an update.
   *  Returns the index. */
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
      const inst = d.nodes.get(lc(node))?.instances.get(lc(serviceId));
      if (inst) this.removeInstance(d, inst, idx);
    });
  }

  /** Sets a check's status (and output), creating the check if the node has none with this ID:
   *  node-level unless `serviceId` names an instance on the node. Same status and output: no change. */
  setCheck(node: string, checkId: string, status: CheckStatus, opts: { dc?: string; serviceId?: string; name?: string; output?: string; notes?: string } = {}): number {
    return this.write(opts.dc, (d, idx) => {
      const existing = this.nodeOf(d, node).checks.get(lc(checkId));
      const input: CheckInput = existing
        ? { ...existing.fields, CheckID: existing.id, Status: status, ServiceID: existing.serviceId }
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
      const c = d.nodes.get(lc(node))?.checks.get(lc(checkId));
      if (c) this.deleteCheck(d, c, idx);
    });
  }

  /** Replaces a node's Meta. Returns the index. */
  setNodeMeta(node: string, meta: Record<string, string>, opts: { dc?: string } = {}): number {
    return this.write(opts.dc, (d, idx) => {
      const n = this.nodeOf(d, node);
      this.upsertNode(d, { ...(n.fields as NodeInput), Node: n.name, Meta: { ...meta } }, idx);
    });
  }

  /** Removes a node with its services and checks. A missing one is a no-op. */
  removeNode(node: string, opts: { dc?: string } = {}): number {
    return this.write(opts.dc, (d, idx) => {
      const n = d.nodes.get(lc(node));
      if (!n) return;
      for (const inst of [...n.instances.values()]) this.removeInstance(d, inst, idx);
      for (const c of [...n.checks.values()]) this.deleteCheck(d, c, idx);
      d.nodes.delete(lc(node));
      d.touch('nodes', idx);
    });
  }

  /** Links a terminating gateway (the service name its instances register under) to a service, as a
   *  terminating-gateway config entry does: /v1/catalog/gateway-services/<gateway> lists the link and
   *  /v1/health/connect/<service> includes the gateway's instances. `fields` may set CAFile, CertFile,
   *  KeyFile, SNI. Same link again: an update. Returns the index. */
  linkGatewayService(gateway: string, service: string, opts: { dc?: string; fields?: { CAFile?: string; CertFile?: string; KeyFile?: string; SNI?: string } } = {}): number {
    requireStr(gateway, 'gateway');
    requireStr(service, 'service');
    return this.write(opts.dc, (d, idx) => {
      const fields: JsonObject = {
        Gateway: { Name: gateway }, Service: { Name: service }, GatewayKind: 'terminating-gateway', Port: 0, Protocol: '', Hosts: null,
        CAFile: opts.fields?.CAFile ?? '', CertFile: opts.fields?.CertFile ?? '', KeyFile: opts.fields?.KeyFile ?? '', SNI: opts.fields?.SNI ?? '',
        FromWildcard: false,
      };
      let byService = d.linksByGateway.get(lc(gateway));
      const existing = byService?.get(lc(service));
      if (existing) {
        if (sameFields(existing.fields, fields)) return;
        existing.fields = fields;
        existing.modifyIndex = idx;
      } else {
        const link: GatewayLink = { gateway, service, fields, createIndex: idx, modifyIndex: idx };
        if (!byService) { byService = new Map(); d.linksByGateway.set(lc(gateway), byService); }
        byService.set(lc(service), link);
        let byGateway = d.linksByService.get(lc(service));
        if (!byGateway) { byGateway = new Map(); d.linksByService.set(lc(service), byGateway); }
        byGateway.set(lc(gateway), link);
      }
      d.touch('gateway-services', idx);
      d.touch(`gw:${lc(service)}`, idx);
    });
  }

  /** Removes a gateway link. A missing one is a no-op. Returns the index. */
  unlinkGatewayService(gateway: string, service: string, opts: { dc?: string } = {}): number {
    return this.write(opts.dc, (d, idx) => {
      const byService = d.linksByGateway.get(lc(gateway));
      if (!byService?.delete(lc(service))) return;
      if (byService.size === 0) d.linksByGateway.delete(lc(gateway));
      const byGateway = d.linksByService.get(lc(service))!;
      byGateway.delete(lc(gateway));
      if (byGateway.size === 0) d.linksByService.delete(lc(service));
      d.touch('gateway-services', idx);
      d.touch(`gw:${lc(service)}`, idx);
    });
  }

  /** Replaces the catalog of every datacenter in `doc` (catalog-file format), in one write per
   *  datacenter; other datacenters are kept. Every parked query on a replaced datacenter is
   *  re-examined. Virtual IPs are assigned afresh; gateway links are kept. Throws FakeConsulError on
   *  malformed input. */
  load(doc: CatalogDocument): void {
    if (!isObj(doc) || !isObj(doc.datacenters)) throw new FakeConsulError('FAKE_CONSUL_INVALID', 'catalog: expected {datacenter, datacenters}');
    if (doc.datacenter !== this.datacenter) {
      throw new FakeConsulError('FAKE_CONSUL_INVALID', `catalog: datacenter ${JSON.stringify(doc.datacenter)} is not this agent's ${JSON.stringify(this.datacenter)}`);
    }
    for (const [dcName, dcDoc] of Object.entries(doc.datacenters)) {
      if (!isObj(dcDoc)) throw new FakeConsulError('FAKE_CONSUL_INVALID', `datacenters.${dcName}: expected {nodes, services}`);
      const d = this.dcOrCreate(dcName);
      const idx = ++d.index;
      const oldNames = [...d.groups.keys()].filter((k) => k.startsWith('service:')).map((k) => k.slice('service:'.length));
      d.nodes.clear();
      d.groups.clear();
      d.cache.clear();
      d.vips.clear();
      d.freeVips = [];
      d.vipCounter = 0;
      for (const [i, n] of (dcDoc.nodes ?? []).entries()) {
        if (!isObj(n)) throw new FakeConsulError('FAKE_CONSUL_INVALID', `datacenters.${dcName}.nodes[${i}]: expected an object`);
        if (typeof n.Node === 'string' && !d.nodes.has(lc(n.Node))) this.upsertNode(d, n as NodeInput, idx);
        else if (typeof n.Node !== 'string') requireStr(n.Node, `datacenters.${dcName}.nodes[${i}].Node`);
      }
      for (const [svc, entries] of Object.entries(dcDoc.services ?? {})) {
        if (!Array.isArray(entries)) throw new FakeConsulError('FAKE_CONSUL_INVALID', `datacenters.${dcName}.services.${svc}: expected an array`);
        for (const [i, e] of entries.entries()) {
          const p = `datacenters.${dcName}.services.${svc}[${i}]`;
          if (!isObj(e) || !isObj(e.Node) || !isObj(e.Service)) throw new FakeConsulError('FAKE_CONSUL_INVALID', `${p}: expected {Node, Service, Checks}`);
          const nodeName = requireStr(e.Node.Node, `${p}.Node.Node`);
          if (!d.nodes.has(lc(nodeName))) this.upsertNode(d, e.Node as NodeInput, idx);
          const inst = this.upsertInstance(d, this.nodeOf(d, nodeName), e.Service as ServiceInput, idx);
          for (const c of Array.isArray(e.Checks) ? e.Checks : []) {
            if (!isObj(c)) throw new FakeConsulError('FAKE_CONSUL_INVALID', `${p}.Checks: expected objects`);
            const nodeLevel = (c.ServiceID ?? '') === '';
            if (nodeLevel && typeof c.CheckID === 'string' && d.nodes.get(lc(nodeName))!.checks.has(lc(c.CheckID))) continue;
            this.upsertCheck(d, nodeName, { ...(c as CheckInput), ServiceID: nodeLevel ? '' : inst.id }, idx);
          }
        }
      }
      for (const k of ['nodes', 'services', 'checks']) d.touch(k, idx);
      for (const k of d.groups.keys()) {
        if (k.startsWith('service:')) d.touch(`svc:${k.slice('service:'.length)}`, idx);
        else d.touched.add(k);
      }
      let extinct = false;
      for (const name of oldNames) {
        if (!d.groups.has(`service:${name}`)) { d.drop(`svc:${name}`); extinct = true; }
      }
      if (extinct) d.touch('service-extinct', idx);
      for (const k of d.waiters.keys()) d.touched.add(k);
    }
    this.scheduleFlush();
  }

  /** The catalog in the catalog-file format: nodes as /v1/catalog/nodes returns them, services (keyed
   *  by the names they were registered with) as /v1/health/service/<name> does. */
  snapshot(): CatalogDocument {
    const datacenters: CatalogDocument['datacenters'] = {};
    for (const d of this.dcs.values()) {
      const byName = new Map<string, InstanceRec[]>();
      for (const [k, g] of d.groups) {
        if (!k.startsWith('service:')) continue;
        for (const inst of g.values()) {
          let list = byName.get(inst.name);
          if (!list) { list = []; byName.set(inst.name, list); }
          list.push(inst);
        }
      }
      const services: Record<string, JsonObject[]> = {};
      for (const name of [...byName.keys()].sort()) {
        services[name] = byName.get(name)!.sort(byNodeThenId).map((inst) => JSON.parse(this.entryJson(inst)) as JsonObject);
      }
      datacenters[d.name] = { nodes: JSON.parse(this.nodesText(d, null).text) as JsonObject[], services };
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
    for (const byService of d.linksByGateway.values()) {
      for (const l of byService.values()) { l.createIndex = Math.min(l.createIndex, to); l.modifyIndex = Math.min(l.modifyIndex, to); }
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

  /** Turns a fault off; requests a 'hang' fault holds are then answered normally, and responses a
   *  'trickle' fault is writing are finished. */
  clearFault(id: number): void {
    this.faults = this.faults.filter((f) => f.id !== id);
    this.releaseHeld(id);
  }

  clearFaults(): void {
    this.faults = [];
    this.releaseHeld();
  }

  /** null: no ACLs (every request sees everything). */
  setAcl(acl: AclOptions | null): void {
    if (acl) checkAcl(acl);
    this.acl = acl;
  }

  /** X-Consul-LastContact (ms) of ?stale reads of the local datacenter. Default 0. */
  setLastContact(ms: number): void { this.setLeaderContact({ lastContactMs: ms }); }

  /** What ?stale reads of a datacenter (the local one by default) report: X-Consul-LastContact and
   *  X-Consul-KnownLeader, as a server cut off from its cluster answers. knownLeader: false also fails
   *  default and ?consistent reads there with 500 "No cluster leader". Fields left out are kept. */
  setLeaderContact(contact: LeaderContact, opts: { dc?: string } = {}): void {
    const d = this.dc(opts.dc);
    if (contact.lastContactMs !== undefined) {
      if (!(contact.lastContactMs >= 0)) throw new FakeConsulError('FAKE_CONSUL_INVALID', `lastContactMs: ${contact.lastContactMs}`);
      d.lastContactMs = Math.floor(contact.lastContactMs);
    }
    if (contact.knownLeader !== undefined) d.knownLeader = contact.knownLeader;
  }

  /** A federated datacenter whose servers are all down (false) or back (true). While down, every
   *  request with ?dc=<name> gets 500 "Remote DC has no server currently reachable" and blocking
   *  queries parked there 500 "rpc error making call: EOF"; it stays in /v1/catalog/datacenters. */
  setDatacenterReachable(name: string, reachable: boolean): void {
    const d = this.dc(name);
    if (d.name === this.datacenter) {
      throw new FakeConsulError('FAKE_CONSUL_INVALID', `${name} is this agent's datacenter: use stop() to make it unreachable`);
    }
    d.reachable = reachable;
    if (reachable) return;
    for (const w of [...this.parkedWaiters]) {
      if (w.d !== d) continue;
      this.unpark(w);
      this.sendText(w.ctx.res, 500, 'rpc error making call: EOF');
    }
  }

  /** Bytes written on every connection so far, open or closed (as sent on the wire). */
  bytesSent(): number {
    let n = this.closedBytes;
    for (const s of this.rawSockets) n += s.bytesWritten;
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
    const n = d.nodes.get(lc(name));
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
      TaggedAddresses: isObj(input.TaggedAddresses) ? sortedKeys(input.TaggedAddresses) : {},
      Meta: isObj(input.Meta) ? sortedKeys(input.Meta) : {},
    }, input, NODE_FIELDS);
    const existing = d.nodes.get(lc(name));
    if (existing) {
      if (existing.name === name && sameFields(existing.fields, fields)) return existing;
      if (existing.name !== name) {
        existing.name = name;
        for (const c of existing.checks.values()) c.json = undefined;
      }
      existing.fields = fields;
      existing.modifyIndex = idx;
      existing.json = undefined;
      d.touch('nodes', idx);
      // Every answer that embeds this node changes (updateAllServiceIndexesOfNode).
      for (const inst of existing.instances.values()) this.touchInstance(d, inst, idx);
      return existing;
    }
    const n: NodeRec = { name, fields, createIndex: idx, modifyIndex: idx, instances: new Map(), checks: new Map(), json: undefined };
    d.nodes.set(lc(name), n);
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
    const kind = typeof input.Kind === 'string' && input.Kind !== '' ? input.Kind : undefined;
    const port = typeof input.Port === 'number' ? input.Port : 0;
    const proxy = isObj(input.Proxy) ? input.Proxy : DEFAULT_PROXY;
    const connect = isObj(input.Connect) ? input.Connect : {};
    // ensureServiceTxn: a connect-proxy gets its destination's virtual IP, a Connect-native service its own.
    const vipName = this.virtualIps ? connectNameOf(name, { Kind: kind, Proxy: proxy, Connect: connect }) : undefined;
    if (vipName) tagged['consul-virtual'] = { Address: this.assignVip(d, vipName), Port: port };
    const fields: JsonObject = addUnknown({
      ...(kind !== undefined ? { Kind: kind } : {}),
      ID: id,
      Service: name,
      Tags: Array.isArray(input.Tags) ? [...input.Tags] : [],
      Address: typeof input.Address === 'string' ? input.Address : '',
      ...(input.TaggedAddresses !== undefined || vipName ? { TaggedAddresses: sortedKeys(tagged) } : {}),
      Meta: isObj(input.Meta) ? sortedKeys(input.Meta) : {},
      Port: port,
      Weights: storedWeights(input.Weights, `service ${id}`),
      EnableTagOverride: input.EnableTagOverride === true,
      Proxy: proxy,
      Connect: connect,
    }, input, SERVICE_FIELDS);
    const keys = groupKeysOf(name, fields);
    const existing = n.instances.get(lc(id));
    if (existing && lc(existing.name) === lc(name)) {
      if (existing.name === name && sameFields(existing.fields, fields)) return existing;
      // Leave only the groups it no longer belongs to (a group emptied here is a name going away).
      this.ungroup(d, existing, idx, existing.keys.filter((k) => !keys.includes(k)));
      existing.fields = fields;
      existing.name = name;
      existing.keys = keys;
      existing.modifyIndex = idx;
      existing.json = undefined;
      this.group(d, existing, idx);
      this.touchInstance(d, existing, idx);
      d.touch('services', idx);
      return existing;
    }
    // A new instance, or the same ID re-registered under another service name (its checks stay).
    let checks = new Map<string, CheckRec>();
    if (existing) { checks = existing.checks; this.removeInstance(d, existing, idx, true); }
    const inst: InstanceRec = { node: n, id, name, fields, createIndex: idx, modifyIndex: idx, checks, keys, json: undefined };
    n.instances.set(lc(id), inst);
    this.group(d, inst, idx);
    d.touch('services', idx);
    return inst;
  }

  /** Marks every index entry an instance's answers are read from: its name's "service.<name>" entry
   *  and, for Connect instances, its destination's connect group. */
  private touchInstance(d: DcState, inst: InstanceRec, idx: number): void {
    d.touch(`svc:${lc(inst.name)}`, idx);
    for (const k of inst.keys) if (k.startsWith('connect:')) d.touch(k, idx);
  }

  private group(d: DcState, inst: InstanceRec, idx: number): void {
    const k2 = `${lc(inst.node.name)}\0${lc(inst.id)}`;
    for (const k of inst.keys) {
      let g = d.groups.get(k);
      if (!g) { g = new Map(); d.groups.set(k, g); }
      g.set(k2, inst);
      d.touch(k.startsWith('service:') ? `svc:${k.slice('service:'.length)}` : k, idx);
    }
  }

  private ungroup(d: DcState, inst: InstanceRec, idx: number, keys: readonly string[] = inst.keys): void {
    const k2 = `${lc(inst.node.name)}\0${lc(inst.id)}`;
    for (const k of keys) {
      const g = d.groups.get(k);
      if (!g) continue;
      g.delete(k2);
      if (!k.startsWith('service:')) {
        if (g.size === 0) d.groups.delete(k);
        d.touch(k, idx);
        continue;
      }
      const name = k.slice('service:'.length);
      if (g.size > 0) { d.touch(`svc:${name}`, idx); continue; }
      // deleteServiceTxn: the name's last instance went: its entry goes, the extinction index moves,
      // and its virtual IP is freed (freeServiceVirtualIP).
      d.groups.delete(k);
      d.drop(`svc:${name}`);
      d.touch('service-extinct', idx);
      this.freeVip(d, name);
    }
  }

  private removeInstance(d: DcState, inst: InstanceRec, idx: number, keepChecks = false): void {
    this.ungroup(d, inst, idx);
    inst.node.instances.delete(lc(inst.id));
    d.touch('services', idx);
    if (keepChecks) return;
    for (const k of inst.checks.keys()) inst.node.checks.delete(k);
    if (inst.checks.size > 0) d.touch('checks', idx);
  }

  private assignVip(d: DcState, name: string): string {
    const k = lc(name);
    let off = d.vips.get(k);
    if (off === undefined) {
      off = d.freeVips.length > 0 ? d.freeVips.shift()! : ++d.vipCounter;
      d.vips.set(k, off);
    }
    return vipAddress(off);
  }

  private freeVip(d: DcState, lowerName: string): void {
    const off = d.vips.get(lowerName);
    if (off === undefined) return;
    d.vips.delete(lowerName);
    d.freeVips.push(off);
    d.freeVips.sort((a, b) => a - b);
  }

  private upsertCheck(d: DcState, nodeName: string, input: CheckInput, idx: number): void {
    const n = this.nodeOf(d, nodeName);
    const checkId = requireStr(input.CheckID, 'CheckID');
    if (!STATUSES.has(input.Status)) throw new FakeConsulError('FAKE_CONSUL_INVALID', `check ${checkId}: Status: expected passing, warning or critical`);
    const given = typeof input.ServiceID === 'string' ? input.ServiceID : '';
    const inst = given === '' ? undefined : n.instances.get(lc(given));
    if (given !== '' && !inst) throw new FakeConsulError('FAKE_CONSUL_NOT_FOUND', `check ${checkId}: no service ${JSON.stringify(given)} on node ${n.name}`);
    const serviceId = inst ? inst.id : '';
    const existing = n.checks.get(lc(checkId));
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
      if (existing.id === checkId && sameFields(existing.fields, fields)) return;
      existing.id = checkId;
      existing.fields = fields;
      existing.modifyIndex = idx;
      existing.json = undefined;
      this.touchCheckReaders(d, existing, idx);
      return;
    }
    if (existing) this.deleteCheck(d, existing, idx);
    const c: CheckRec = { node: n, id: checkId, serviceId, fields, createIndex: idx, modifyIndex: idx, json: undefined };
    n.checks.set(lc(checkId), c);
    inst?.checks.set(lc(checkId), c);
    this.touchCheckReaders(d, c, idx);
  }

  private deleteCheck(d: DcState, c: CheckRec, idx: number): void {
    c.node.checks.delete(lc(c.id));
    if (c.serviceId !== '') c.node.instances.get(lc(c.serviceId))?.checks.delete(lc(c.id));
    this.touchCheckReaders(d, c, idx);
  }

  /** A check is read by health/state, and by the health answers of the instances it covers: all of
   *  the node's for a node-level check, else its own instance's. */
  private touchCheckReaders(d: DcState, c: CheckRec, idx: number): void {
    d.touch('checks', idx);
    if (c.serviceId === '') {
      for (const inst of c.node.instances.values()) this.touchInstance(d, inst, idx);
    } else {
      const inst = c.node.instances.get(lc(c.serviceId));
      if (inst) this.touchInstance(d, inst, idx);
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

  /** Node-level checks, then the instance's own, each in lower-cased CheckID order (Consul's). */
  private checksOf(inst: InstanceRec): CheckRec[] {
    const nodeChecks: CheckRec[] = [];
    for (const c of inst.node.checks.values()) if (c.serviceId === '') nodeChecks.push(c);
    return [...nodeChecks.sort(byCheckId), ...[...inst.checks.values()].sort(byCheckId)];
  }

  private entryJson(inst: InstanceRec): string {
    return `{"Node":${this.nodeJson(inst.node)},"Service":${this.serviceJson(inst)},"Checks":[${this.checksOf(inst).map((c) => this.checkJson(c)).join(',')}]}`;
  }

  private sortedGroup(d: DcState, key: string): InstanceRec[] {
    const g = d.groups.get(key);
    return g ? [...g.values()].sort(byNodeThenId) : [];
  }

  private cached(d: DcState, key: string, index: number, build: () => string): Rendered {
    const hit = d.cache.get(key);
    if (hit && hit.index === index) return { body: hit.body, filtered: false };
    const c: CachedBody = { index, body: Buffer.from(build()) };
    d.cache.set(key, c);
    return { body: c.body, filtered: false };
  }

  private nodesText(d: DcState, ctx: RequestCtx | null): { text: string; filtered: boolean } {
    let filtered = false;
    const list = [...d.nodes.values()].sort(byNodeName).filter((n) => {
      if (!ctx || this.can(ctx, 'nodeRead', n.name)) return true;
      filtered = true;
      return false;
    });
    return { text: `[${list.map((n) => this.nodeJson(n)).join(',')}]`, filtered };
  }

  // ---- ACL checks ------------------------------------------------------------------------

  private can(ctx: RequestCtx, right: RightName, name: string): boolean {
    return !ctx.principal || allows(ctx.principal.rights[right], name);
  }

  /** Reads everything a list can hold: the cached, unfiltered bodies apply. */
  private readsAll(ctx: RequestCtx): boolean {
    const p = ctx.principal;
    return !p || (p.rights.serviceRead === true && p.rights.nodeRead === true);
  }

  /** CheckServiceNode.CanRead: node:read on its node and service:read on its service. */
  private entryVisible(ctx: RequestCtx, inst: InstanceRec): boolean {
    return this.can(ctx, 'nodeRead', inst.node.name) && this.can(ctx, 'serviceRead', inst.name);
  }

  // ---- index computations (agent/consul/state/catalog.go) ---------------------------------

  private catalogMax(d: DcState, checks: boolean): number {
    return Math.max(d.key('nodes'), d.key('services'), checks ? d.key('checks') : 0);
  }

  /** maxIndexAndWatchChForService for a name without instances. */
  private absentIndex(d: DcState, lowerName: string, checks: boolean): number {
    if (d.keyIndex.has('service-extinct')) return d.key('service-extinct');
    if (d.keyIndex.has(`svc:${lowerName}`)) return d.key(`svc:${lowerName}`);
    return this.catalogMax(d, checks);
  }

  /** What a read of a name without instances waits on: its own entry (the name appearing) and the
   *  extinction index, or before any name went extinct, the services table (as Consul's iterator
   *  watch does; a check or node change moves that index without waking the read). */
  private absentKeys(d: DcState, lowerName: string): string[] {
    return [`svc:${lowerName}`, d.keyIndex.has('service-extinct') ? 'service-extinct' : 'services'];
  }

  private nameIndex(d: DcState, lowerName: string, checks: boolean): number {
    return d.groups.has(`service:${lowerName}`)
      ? d.keyIndex.get(`svc:${lowerName}`) ?? this.catalogMax(d, checks)
      : this.absentIndex(d, lowerName, checks);
  }

  private nameKeys(d: DcState, lowerName: string): string[] {
    return d.groups.has(`service:${lowerName}`) ? [`svc:${lowerName}`] : this.absentKeys(d, lowerName);
  }

  /** /v1/health/connect/<name>: proxies and Connect-native instances for the name, then the
   *  instances of the terminating gateways linked to it; the index and the keys read. */
  private connectAnswer(d: DcState, lowerName: string): { items: InstanceRec[]; index: number; keys: string[] } {
    const items = this.sortedGroup(d, `connect:${lowerName}`);
    const keys = [`connect:${lowerName}`, `gw:${lowerName}`];
    let index = 0;
    const links = [...(d.linksByService.get(lowerName)?.entries() ?? [])].sort(([a], [b]) => cmp(a, b));
    for (const [gw, link] of links) {
      index = Math.max(index, link.modifyIndex);
      items.push(...this.sortedGroup(d, `service:${gw}`));
      keys.push(`svc:${gw}`);
    }
    if (items.length === 0) {
      return { items, index: Math.max(index, this.absentIndex(d, lowerName, true)), keys: [...keys, ...this.absentKeys(d, lowerName)] };
    }
    const names = new Set(items.map((i) => lc(i.name)));
    for (const n of names) {
      index = Math.max(index, d.keyIndex.get(`svc:${n}`) ?? this.catalogMax(d, true));
      if (!keys.includes(`svc:${n}`)) keys.push(`svc:${n}`);
    }
    return { items, index, keys };
  }

  private makeViews(): FakeConsul['views'] {
    const passes = (inst: InstanceRec) => this.checksOf(inst).every((c) => c.fields.Status === 'passing');
    return {
      'catalog/nodes': {
        index: (d) => d.key('nodes'),
        keys: () => ['nodes'],
        render: (d, ctx, index) => {
          if (this.readsAll(ctx)) return this.cached(d, 'nodes', index, () => this.nodesText(d, null).text);
          const { text, filtered } = this.nodesText(d, ctx);
          return { body: Buffer.from(text), filtered };
        },
      },
      'catalog/services': {
        index: (d) => d.key('services'),
        keys: () => ['services'],
        render: (d, ctx, index) => {
          const build = (): { text: string; filtered: boolean } => {
            const tags = new Map<string, Set<string>>();
            for (const [k, g] of d.groups) {
              if (!k.startsWith('service:')) continue;
              for (const inst of g.values()) {
                let set = tags.get(inst.name);
                if (!set) { set = new Set(); tags.set(inst.name, set); }
                for (const t of inst.fields.Tags as string[]) set.add(t);
              }
            }
            let filtered = false;
            const out: Record<string, string[]> = {};
            for (const name of [...tags.keys()].sort(cmp)) {
              if (!this.can(ctx, 'serviceRead', name)) { filtered = true; continue; }
              const list = [...tags.get(name)!];
              if (this.tagOrder === 'sorted') list.sort(cmp);
              else for (let i = list.length - 1; i > 0; i--) { const j = Math.floor(Math.random() * (i + 1)); [list[i], list[j]] = [list[j]!, list[i]!]; }
              out[name] = list;
            }
            return { text: JSON.stringify(out), filtered };
          };
          if (this.tagOrder === 'sorted' && this.readsAll(ctx)) return this.cached(d, 'services', index, () => build().text);
          const { text, filtered } = build();
          return { body: Buffer.from(text), filtered };
        },
      },
      'health/service': {
        index: (d, ctx) => this.nameIndex(d, lc(ctx.arg), true),
        keys: (d, ctx) => this.nameKeys(d, lc(ctx.arg)),
        render: (d, ctx, index) => {
          const key = `service:${lc(ctx.arg)}`;
          if (!ctx.passing && ctx.tags.length === 0 && this.readsAll(ctx)) {
            return this.cached(d, key, index, () => `[${this.sortedGroup(d, key).map((i) => this.entryJson(i)).join(',')}]`);
          }
          // Consul's order: the tag filter in the state store, the ACL filter, then ?passing.
          let filtered = false;
          const list = this.sortedGroup(d, key).filter((inst) => {
            if (!hasTags(inst, ctx.tags)) return false;
            if (!this.entryVisible(ctx, inst)) { filtered = true; return false; }
            return !ctx.passing || passes(inst);
          });
          return { body: Buffer.from(`[${list.map((i) => this.entryJson(i)).join(',')}]`), filtered };
        },
      },
      'health/connect': {
        index: (d, ctx) => this.connectAnswer(d, lc(ctx.arg)).index,
        keys: (d, ctx) => this.connectAnswer(d, lc(ctx.arg)).keys,
        render: (d, ctx) => {
          // Health.ServiceNodes: without service:read on the name, an empty answer (no filter header).
          if (!this.can(ctx, 'serviceRead', ctx.arg)) return { body: Buffer.from('[]'), filtered: false };
          let filtered = false;
          const list = this.connectAnswer(d, lc(ctx.arg)).items.filter((inst) => {
            if (!this.entryVisible(ctx, inst)) { filtered = true; return false; }
            return !ctx.passing || passes(inst);
          });
          return { body: Buffer.from(`[${list.map((i) => this.entryJson(i)).join(',')}]`), filtered };
        },
      },
      'catalog/service': {
        index: (d, ctx) => this.nameIndex(d, lc(ctx.arg), false),
        keys: (d, ctx) => this.nameKeys(d, lc(ctx.arg)),
        render: (d, ctx, index) => {
          const key = `service:${lc(ctx.arg)}`;
          let filtered = false;
          const build = () => `[${this.sortedGroup(d, key).filter((i) => {
            if (!hasTags(i, ctx.tags)) return false;
            if (!this.entryVisible(ctx, i)) { filtered = true; return false; }
            return true;
          }).map((i) => JSON.stringify(flatServiceNode(i))).join(',')}]`;
          if (ctx.tags.length === 0 && this.readsAll(ctx)) return this.cached(d, `catalog:${key}`, index, build);
          const text = build();
          return { body: Buffer.from(text), filtered };
        },
      },
      'health/state': {
        index: (d) => d.key('checks'),
        keys: () => ['checks'],
        render: (d, ctx, index) => {
          let filtered = false;
          const build = () => {
            const out: string[] = [];
            for (const n of [...d.nodes.values()].sort(byNodeName)) {
              for (const c of [...n.checks.values()].sort(byCheckId)) {
                if (ctx.arg !== 'any' && c.fields.Status !== ctx.arg) continue;
                const svc = c.fields.ServiceName as string;
                if (!this.can(ctx, 'nodeRead', n.name) || (svc !== '' && !this.can(ctx, 'serviceRead', svc))) { filtered = true; continue; }
                out.push(this.checkJson(c));
              }
            }
            return `[${out.join(',')}]`;
          };
          if (this.readsAll(ctx)) return this.cached(d, `state:${ctx.arg}`, index, build);
          const text = build();
          return { body: Buffer.from(text), filtered };
        },
      },
      'catalog/gateway-services': {
        index: (d) => d.key('gateway-services'),
        keys: () => ['gateway-services'],
        render: (d, ctx) => {
          let filtered = false;
          const links = [...(d.linksByGateway.get(lc(ctx.arg))?.entries() ?? [])].sort(([a], [b]) => cmp(a, b))
            .map(([, l]) => l).filter((l) => {
              if (this.can(ctx, 'serviceRead', l.service)) return true;
              filtered = true;
              return false;
            });
          const text = `[${links.map((l) => JSON.stringify({ ...l.fields, CreateIndex: l.createIndex, ModifyIndex: l.modifyIndex })).join(',')}]`;
          return { body: Buffer.from(text), filtered };
        },
      },
    };
  }

  // ---- HTTP --------------------------------------------------------------------------------

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    if (this.tls) {
      // setupHTTPS clears the handshake deadline once a request arrives (http.StateActive).
      this.clearHandshakeTimer(`${req.socket.remoteAddress}:${req.socket.remotePort}`);
    }
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
      consistency: 'leader', maxStaleMs: 0, leaderLostAt: undefined, principal: null, bodyFault: undefined,
      arg: '', passing: false, tags: [],
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
      case 'reset': {
        this.counters.resets++;
        // The TCP connection itself: over TLS req.socket has no TCP handle to reset (resetAndDestroy
        // throws), and over HTTP/2 it is a proxy. Over HTTP/2 every stream on it goes too, as with a
        // real reset.
        const raw = this.rawSocketOf(ctx.req);
        if (raw) raw.resetAndDestroy();
        else res.destroy();
        return;
      }
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
      case 'huge':
      case 'trickle':
      case 'deep':
      case 'index':
        ctx.bodyFault = fault;
        this.handle(ctx);
        return;
    }
  }

  private releaseHeld(faultId?: number): void {
    for (const [release, id] of [...this.hungRequests]) if (faultId === undefined || id === faultId) release();
    for (const [finish, t] of [...this.trickles]) if (faultId === undefined || t.id === faultId) finish();
    this.changed();
  }

  private handle(ctx: RequestCtx): void {
    const { req, res, url, endpoint } = ctx;
    const q = url.searchParams;
    if (endpoint === 'other') { this.sendIndex(res, url.pathname); return; }
    if (req.method === 'OPTIONS') { this.sendEmpty(res, 200, { Allow: ALLOW }); return; }
    if (req.method !== 'GET') { this.sendText(res, 405, `method ${req.method} not allowed`, { Allow: ALLOW }); return; }
    // HTTPHandlers.wrap: a query url.ParseQuery rejects is a 500 with no body.
    const raw = url.search.slice(1);
    if (raw.includes(';') || /%(?![0-9a-fA-F]{2})/.test(raw)) { this.sendEmpty(res, 500, {}); return; }

    if (endpoint === 'catalog/datacenters') {
      const names = [...this.dcs.keys()].filter((n) => n !== this.datacenter).sort();
      this.sendJson(ctx, 200, Buffer.from(JSON.stringify([this.datacenter, ...names])), {});
      return;
    }
    if (endpoint === 'agent/self') {
      const p = this.principalOf(ctx);
      if (p === 'unknown') { this.sendText(res, 403, 'ACL not found'); return; }
      if (p && !allows(p.rights.agentRead, this.nodeName)) { this.sendText(res, 403, permissionDenied(p, 'agent', this.nodeName)); return; }
      this.sendJson(ctx, 200, Buffer.from(JSON.stringify(this.agentSelf())), {});
      return;
    }

    // HTTPHandlers.parse: consistency, then ?wait, then ?index (400s before any work).
    let minIndex = 0;
    let waitMs = WAIT_DEFAULT_MS;
    if (BLOCKING.has(endpoint)) {
      let stale = q.has('stale');
      const consistent = q.has('consistent');
      const maxStale = q.get('max_stale');
      if (maxStale) {
        const ms = parseGoDuration(maxStale);
        if (ms === null) { this.sendText(res, 400, `Invalid max_stale value ${JSON.stringify(maxStale)}`); return; }
        ctx.maxStaleMs = ms;
        if (ms > 0) stale = true;
      }
      if (stale && consistent) { this.sendText(res, 400, 'Cannot specify ?stale with ?consistent, conflicting semantics.'); return; }
      if (q.has('cached') && consistent) { this.sendText(res, 400, 'Cannot specify ?cached with ?consistent, conflicting semantics.'); return; }
      ctx.consistency = consistent ? 'consistent' : stale ? 'stale' : 'leader';
      const waitParam = q.get('wait');
      if (waitParam) {
        const ms = parseGoDuration(waitParam);
        if (ms === null) { this.sendText(res, 400, 'Invalid wait time'); return; }
        // RPCQueryTimeout: above max_query_time is capped, <= 0 means default_query_time.
        waitMs = ms > WAIT_MAX_MS ? WAIT_MAX_MS : ms <= 0 ? WAIT_DEFAULT_MS : ms;
      }
      const indexParam = q.get('index');
      if (indexParam) {
        if (!/^\d+$/.test(indexParam) || BigInt(indexParam) > 0xffffffffffffffffn) { this.sendText(res, 400, 'Invalid index'); return; }
        minIndex = Number(indexParam);
      }
    }
    const prefix = PATH_PREFIX[endpoint];
    if (prefix !== undefined) {
      try {
        ctx.arg = decodeURIComponent(url.pathname.slice(prefix.length));
      } catch {
        this.sendText(res, 400, 'Bad request'); return;
      }
      if (ctx.arg === '') {
        this.sendText(res, 400, endpoint === 'health/state' ? 'Missing check state' : endpoint === 'catalog/gateway-services' ? 'Missing gateway name' : 'Missing service name');
        return;
      }
      if (endpoint === 'health/state' && !STATES.has(ctx.arg)) { this.sendText(res, 400, 'Bad check state'); return; }
    }
    if (q.has('passing') && (endpoint === 'health/service' || endpoint === 'health/connect')) {
      const v = GO_BOOL.get(q.get('passing')!);
      if (v === undefined) { this.sendText(res, 400, 'Invalid value for ?passing'); return; }
      ctx.passing = v;
    }
    if (endpoint === 'health/service' || endpoint === 'catalog/service') ctx.tags = q.getAll('tag');
    if (q.get('filter')) { this.sendText(res, 400, 'filter is not supported by this test Consul'); return; }

    // The RPC: forwarded to the datacenter, then to its leader unless stale.
    const d = this.dcs.get(ctx.dcName);
    if (!d) { this.sendText(res, 500, 'No path to datacenter'); return; }
    if (!d.reachable) { this.sendText(res, 500, 'Remote DC has no server currently reachable'); return; }
    const noLeader = this.takeFault(ctx, (x) => x.kind === 'no-leader');
    if (endpoint === 'status/leader') {
      this.sendJson(ctx, 200, Buffer.from(JSON.stringify(noLeader || !d.knownLeader ? '' : this.leaderAddress)), {});
      return;
    }
    if (ctx.consistency === 'stale') {
      const lastContact = noLeader ? Date.now() - noLeader.since : d.lastContactMs;
      // RETRY_ONCE: a stale answer older than ?max_stale is asked again of the leader.
      if (ctx.maxStaleMs > 0 && lastContact > ctx.maxStaleMs) ctx.consistency = 'leader';
      else ctx.leaderLostAt = noLeader?.since;
    }
    if (ctx.consistency !== 'stale' && (noLeader || !d.knownLeader)) { this.sendText(res, 500, 'No cluster leader'); return; }

    const p = this.principalOf(ctx);
    if (p === 'unknown') { this.sendText(res, 403, 'ACL not found'); return; }
    ctx.principal = p;
    if (endpoint === 'catalog/gateway-services' && p && !allows(p.rights.serviceRead, ctx.arg)) {
      this.sendText(res, 403, permissionDenied(p, 'service', ctx.arg));
      return;
    }

    const view = this.views[endpoint as keyof FakeConsul['views']];
    const brokenIndex = ctx.bodyFault?.fault.kind === 'index';
    if (minIndex > 0 && !brokenIndex && view.index(d, ctx) <= minIndex) {
      this.park(ctx, d, view, minIndex, waitMs);
      return;
    }
    this.respond(ctx, view);
  }

  /** The token of a request (parseTokenInternal), resolved to what it may read; null when ACLs are off. */
  private principalOf(ctx: RequestCtx): Principal | null | 'unknown' {
    const acl = this.acl;
    if (!acl) return null;
    const allow = acl.defaultPolicy === 'allow';
    let token = tokenOf(ctx);
    if (token === '' && acl.defaultToken) token = acl.defaultToken;
    const anonymous = acl.anonymous ?? {};
    if (token === '') return { rights: resolveRights(anonymous, allow), accessor: ANONYMOUS_TOKEN_ID, authenticated: false };
    if (Object.hasOwn(acl.tokens, token)) {
      const pol = acl.tokens[token]!;
      return { rights: resolveRights(pol, allow), accessor: (typeof pol === 'object' && pol.accessorId) || nodeUuid(`accessor:${token}`), authenticated: true };
    }
    if (token === 'anonymous') return { rights: resolveRights(anonymous, allow), accessor: ANONYMOUS_TOKEN_ID, authenticated: true };
    return 'unknown';
  }

  private respond(ctx: RequestCtx, view: BlockingView): void {
    if (ctx.res.destroyed) return;
    const d = this.dcs.get(ctx.dcName)!;
    const index = Math.max(1, view.index(d, ctx));
    const rendered = view.render(d, ctx, index);
    const stale = ctx.consistency === 'stale';
    const lost = ctx.leaderLostAt;
    const headers: OutgoingHttpHeaders = {
      'X-Consul-Index': String(index),
      'X-Consul-KnownLeader': String(stale ? lost === undefined && d.knownLeader : true),
      'X-Consul-LastContact': String(!stale ? 0 : lost !== undefined ? Date.now() - lost : d.lastContactMs),
      'X-Consul-Effective-Consistency': ctx.consistency,
    };
    // maskResultsFilteredByACLs: never for a request that presented no token.
    if (rendered.filtered && ctx.principal?.authenticated) headers['X-Consul-Results-Filtered-By-ACLs'] = 'true';
    const f = ctx.bodyFault?.fault;
    if (f?.kind === 'index') {
      if (f.value === null) delete headers['X-Consul-Index'];
      else headers['X-Consul-Index'] = f.value;
    }
    this.sendJson(ctx, 200, rendered.body, headers);
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

  /** Headers HTTPHandlers.wrap and the gzip handler put on every /v1 response. */
  private stdHeaders(headers: OutgoingHttpHeaders): OutgoingHttpHeaders {
    headers['X-Consul-Default-ACL-Policy'] = this.acl ? this.acl.defaultPolicy ?? 'deny' : 'allow';
    headers.Vary = 'Accept-Encoding';
    return headers;
  }

  private sendText(res: ServerResponse, status: number, text: string, extra: OutgoingHttpHeaders = {}): void {
    if (res.destroyed) return;
    const body = Buffer.from(text);
    this.count(status);
    res.writeHead(status, this.stdHeaders({ ...extra, 'Content-Type': TEXT_TYPE, 'Content-Length': body.length }));
    res.end(body);
  }

  private sendEmpty(res: ServerResponse, status: number, extra: OutgoingHttpHeaders): void {
    if (res.destroyed) return;
    this.count(status);
    res.writeHead(status, this.stdHeaders({ ...extra, 'Content-Length': 0 }));
    res.end();
  }

  /** HTTPHandlers.Index: what the agent answers for a path that is no endpoint. */
  private sendIndex(res: ServerResponse, path: string): void {
    if (res.destroyed) return;
    const [status, text] = path === '/'
      ? [200, 'Consul Agent: UI disabled. To enable, set ui_config.enabled=true in the agent configuration and restart.']
      : [404, path.includes('/v1/') ? 'Invalid URL path: not a recognized HTTP API endpoint\n'
        : "Invalid URL path: if attempting to use the HTTP API, ensure the path starts with '/v1/'\n"];
    const body = Buffer.from(text);
    this.count(status);
    res.writeHead(status, { 'Content-Type': TEXT_TYPE, 'Content-Length': body.length });
    res.end(body);
  }

  private sendJson(ctx: RequestCtx, status: number, body: Buffer, headers: OutgoingHttpHeaders): void {
    const { res } = ctx;
    if (res.destroyed) return;
    const rec = ctx.bodyFault;
    const fault = rec?.fault;
    if (fault?.kind === 'bad-json') body = Buffer.from(fault.body ?? '<html><body><h1>502 Bad Gateway</h1></body></html>');
    else if (fault?.kind === 'huge') body = hugeBody(ctx.endpoint, fault.bytes, ctx.dcName);
    else if (fault?.kind === 'deep') body = deepBody(ctx.endpoint, fault.depth);
    this.stdHeaders(headers);
    headers['Content-Type'] = JSON_TYPE;
    if (fault?.kind === 'trickle') { this.trickle(ctx, rec!, status, body, headers); return; }
    if (this.gzip && body.length >= GZIP_MIN_SIZE && acceptsGzip(ctx.req)) {
      body = gzipSync(body);
      headers['Content-Encoding'] = 'gzip';
    }
    headers['Content-Length'] = body.length;
    this.count(status);
    res.writeHead(status, headers);
    if (fault?.kind === 'truncate') {
      this.counters.resets++;
      const half = body.subarray(0, body.length >> 1);
      if (ctx.req.httpVersionMajor === 2) {
        // Over HTTP/2 the body ends with its stream: RST_STREAM INTERNAL_ERROR after half the DATA, what
        // Go's server sends when a handler aborts mid-body (the connection and its other streams stay).
        const stream = (res as unknown as Http2ServerResponse).stream;
        res.write(half, () => stream.close(h2.NGHTTP2_INTERNAL_ERROR));
        return;
      }
      const socket = ctx.req.socket;
      res.write(half, () => socket.destroy());
      return;
    }
    res.end(body);
  }

  /** The headers (chunked), then one byte of the body every intervalMs, then spaces (still valid JSON
   *  once it ends), until the fault is cleared (the rest is written and the response ends) or the
   *  connection closes. */
  private trickle(ctx: RequestCtx, rec: FaultRec, status: number, body: Buffer, headers: OutgoingHttpHeaders): void {
    const { res } = ctx;
    const intervalMs = rec.fault.kind === 'trickle' ? Math.max(1, rec.fault.intervalMs) : 1000;
    this.count(status);
    res.writeHead(status, headers);
    res.flushHeaders();
    let pos = 0;
    const timer = setInterval(() => {
      if (res.destroyed) { cleanup(); return; }
      res.write(pos < body.length ? body.subarray(pos, ++pos) : SPACE);
    }, intervalMs);
    const cleanup = (): void => {
      clearInterval(timer);
      if (this.trickles.delete(finish)) { this.counters.trickling--; this.changed(); }
    };
    const finish = (): void => {
      cleanup();
      if (!res.destroyed) res.end(pos < body.length ? body.subarray(pos) : undefined);
    };
    this.trickles.set(finish, { id: rec.id, cleanup });
    this.counters.trickling++;
    res.on('close', cleanup);
    this.changed();
  }

  private count(status: number): void {
    this.counters.responses[status] = (this.counters.responses[status] ?? 0) + 1;
    this.changed();
  }
}

/** parseTokenInternal: ?token, else X-Consul-Token, else "Authorization: Bearer <token>". */
function tokenOf(ctx: RequestCtx): string {
  const fromQuery = ctx.url.searchParams.get('token');
  if (fromQuery) return fromQuery;
  const h = ctx.req.headers['x-consul-token'];
  const header = Array.isArray(h) ? h[0] : h;
  if (header) return header;
  const auth = ctx.req.headers.authorization;
  if (auth) {
    const parts = auth.split(' ');
    if (parts.length > 1 && lc(parts[0]!) === 'bearer') return parts.slice(1).join(' ').trim().split(' ')[0]!.trim();
  }
  return '';
}

/** acl.PermissionDeniedError.Error() for a read right on a named resource. */
function permissionDenied(p: Principal, resource: string, name: string): string {
  const anonymous = p.accessor === ANONYMOUS_TOKEN_ID;
  let m = `Permission denied: ${anonymous ? 'anonymous token' : `token with AccessorID '${p.accessor}'`} lacks permission '${resource}:read'`;
  if (name !== '') m += ` on "${name}"`;
  if (anonymous) m += '. The anonymous token is used implicitly when a request does not specify a token.';
  return m;
}

function hasTags(inst: InstanceRec, tags: string[]): boolean {
  if (tags.length === 0) return true;
  const have = (inst.fields.Tags as string[]).map((t) => lc(t));
  return tags.every((t) => have.includes(lc(t)));
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
