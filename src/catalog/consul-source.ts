/**
 * The live Consul catalog source: follows Consul's HTTP API and delivers catalogs, each with the
 * entries that changed since the last one (so a commit costs what changed). docs/consul-source.md
 * gives the design and its figures; in short:
 *
 * Connections. A Consul agent serves at most `limits.http_max_conns_per_client` (200) connections
 * per client address; a blocking query holds one. The client's budget (`maxConnections`, default
 * 100) is never exceeded: a small pool for non-blocking reads, the rest lanes for blocking queries.
 *
 * Per datacenter, blocking queries on `/v1/catalog/services` (which services exist; its index moves
 * on any registration change) and `/v1/catalog/nodes`. Then every service is followed, within the
 * budget:
 * - watched: a blocking `/v1/health/service/<name>` of its own, which Consul wakes only when that
 *   service, its checks or its nodes change (every service, while they fit);
 * - swept: the rest. Change detectors point at them: blocking queries on `/v1/health/state/critical`
 *   and `/warning` (their index moves on any check change; they list the checks that are not
 *   passing, so the difference between two answers names the services and nodes whose health
 *   changed), the nodes list (a changed node), the services list (a name that appeared). Those are
 *   re-read at once (targeted). A registration change the detectors cannot pin down (an instance
 *   added or removed, a port, tag or address) moves only the services list's index: then every swept
 *   service is re-read (a sweep), and one whose X-Consul-Index did not move is not parsed. A swept
 *   service that keeps changing takes the lane of a watched one that does not.
 * A 429 (too many connections from this address) shrinks the lanes in use; they grow back slowly.
 *
 * Service names are grouped case-insensitively, as Consul's state store indexes them: "Web" and
 * "web" are one service (`/v1/health/service/web` returns both).
 *
 * Every read is `?stale`: any server answers, so a leader election does not stop the flow. A
 * response with `X-Consul-KnownLeader: false`, or an `X-Consul-LastContact` over `max_stale`, is
 * applied but does not count as fresh. Each datacenter is followed on its own: the first catalog is
 * delivered once the local datacenter is read; a datacenter not read yet serves its data from the
 * snapshot on disk (if any); a change in one is committed whatever the others do; each has its
 * state (health, metrics). Changes are coalesced in a quiet window (`min` of quiet, at most `max` of
 * waiting) into one catalog. Failures never reach the zone: the last good catalog keeps serving.
 */
import { spellingGroups, validateGatewayServices, validateNodeList, validateServiceEntries, type Catalog, type CatalogNode, type CatalogPreview, type DatacenterCatalog, type ServiceInstance } from './catalog.js';
import { STOPPED, type ConsulClient, type ConsulResponse } from './consul-client.js';
import { changedChecks, checkStates, type CheckStates } from './check-diff.js';
import { QuietWindow } from './quiet-window.js';
import type { CatalogSource, ChangeHint } from './source.js';
import { BlockingWatch, DEFAULT_TIMING, type WatchTiming } from './watch.js';
import { CatalogDnsError } from '../errors.js';
import type { Logger } from '../log.js';

export interface ConsulSourceOptions {
  readonly client: ConsulClient;
  readonly logger: Logger;
  /** Datacenters to follow; empty: every datacenter /v1/catalog/datacenters lists. */
  readonly datacenters?: readonly string[];
  /**
   * The local datacenter when /v1/agent/self cannot say (a token without agent:read); null: the
   * agent's, else the first /v1/catalog/datacenters lists (Consul sorts them nearest first).
   */
  readonly localDatacenter?: string | null;
  readonly timing?: WatchTiming;
  /** Quiet window: commit after `minMs` without a change, and at least every `maxMs` while changes go on. */
  readonly quiet?: { readonly minMs: number; readonly maxMs: number };
  /** The catalog to serve until Consul answers (the snapshot persisted by the last run), or null. */
  readonly initial?: (preview?: (p: CatalogPreview) => void) => Promise<Catalog | null>;
  /** How many non-blocking reads run at once (default: the client's read pool). */
  readonly concurrency?: number;
  /** How many watches open their blocking query's connection every OPEN_EVERY_MS (default 4: 2,000 a second). */
  readonly openBatch?: number;
  /**
   * A cheap non-blocking read per datacenter (`/v1/catalog/service/consul`, with Consul's
   * consistency headers) this often (default 5 s): blocking queries parked on an unchanging catalog
   * say nothing about whether Consul is still there, and max_stale counts from the last fresh answer.
   */
  readonly probeMs?: number;
  /**
   * Hold back an update that removes more than `share` of all instances until it has been seen for
   * `holdMs` (default 0.5 and 60 s); null: no guard.
   */
  readonly guard?: { readonly share: number; readonly holdMs: number } | null;
  /**
   * max_stale in ms (read at each response; null: unset): a response whose X-Consul-LastContact is
   * larger does not count as fresh.
   */
  readonly maxStaleMs?: () => number | null;
  /** A swept service that changed this many times within `hotWindowMs` takes a lane (default 2, 5 min). */
  readonly hot?: { readonly changes: number; readonly windowMs: number };
}

/** Below this many instances the removal guard does not apply (small catalogs change wholesale). */
const GUARD_MIN_INSTANCES = 10;
/** After a 429, the lanes grow back by a tenth of the budget each time this long passes without one. */
const REGROW_MS = 60_000;
/**
 * Sweep reads per second at most, all datacenters together: what a stream of registrations costs
 * Consul at most (a sweep of 2,000 services takes a second, one of 10,000 five).
 */
const SWEEP_READS_PER_SEC = 2000;
/** Watches open their connections `openBatch` at a time this often. */
const OPEN_EVERY_MS = 2;
/** Sweeps of a datacenter start at most this often (a stream of registrations: one sweep covers many). */
const SWEEP_GAP_MS = 1000;
/** List watches the budget has no lane for poll this often (their token bucket allows 2/s). */
const POLL_MS = 1000;

/** A datacenter as health and metrics see it. */
export type DatacenterStatus = 'starting' | 'ok' | 'stale' | 'unreachable';

export interface DatacenterState {
  readonly status: DatacenterStatus;
  /** When a fresh answer about it last came (ms since the epoch), or null. */
  readonly lastFresh: number | null;
  /** Its data comes from Consul (true) or, until it is read, from the snapshot on disk (false). */
  readonly live: boolean;
  readonly services: number;
  /** Services with a blocking query of their own, and those followed by detectors and sweeps. */
  readonly watched: number;
  readonly swept: number;
  readonly lastError: string | null;
}

/** One service name, case-insensitively (Consul's state store indexes names lower-cased). */
interface Group {
  readonly lower: string;
  /** The spellings /v1/catalog/services lists (usually one). */
  spellings: string[];
  /** The catalog key: the smallest spelling. */
  key: string;
  /** X-Consul-Index of its last read (0: not read yet). */
  index: number;
  watch: BlockingWatch<unknown> | null;
  /** Times of its recent changes (hotness). */
  changes: number[];
  /** Queued for a read, or being read. */
  queued: 0 | 1 | 2;
  reading: boolean;
  /** Another read was asked for while one was in flight. */
  again: boolean;
  /** The last read failed (transport or validation). */
  failed: boolean;
  /** When its last read started (a count of read starts). */
  readStart: number;
}

interface Dc {
  readonly name: string;
  nodes: Map<string, CatalogNode>;
  readonly services: Map<string, readonly ServiceInstance[]>;
  readonly groups: Map<string, Group>;
  /** Node name -> the groups with an instance on it (targeted re-reads after a node or node-check change). */
  readonly nodeGroups: Map<string, Set<string>>;
  /** The data served until this datacenter is read (from the snapshot), or null. */
  readonly snapshot: DatacenterCatalog | null;
  readonly lists: Array<BlockingWatch<unknown>>;
  health: Array<BlockingWatch<unknown>> | null;
  /** Non-passing checks per state, from the last answer. */
  readonly checks: Map<string, CheckStates>;
  /** Terminating gateways' linked services (DatacenterCatalog), and the watches that read them. */
  readonly gatewayServices: Map<string, readonly string[]>;
  readonly gatewayWatches: Map<string, BlockingWatch<unknown>>;
  /** Each service's tags as /v1/catalog/services gave them (a change targets the service). */
  readonly tags: Map<string, string>;
  nodesRead: boolean;
  servicesRead: boolean;
  servicesIndex: number;
  /** Every service read once: from now on its data is Consul's, not the snapshot's. */
  live: boolean;
  instanceCount: number;
  /** The sweep under way: the services it has yet to see read (by any read, or given a watch). */
  sweep: { pending: Set<Group>; again: boolean; lastStart: number; timer: NodeJS.Timeout | null };
  lastFresh: number | null;
  fresh: boolean | null;
  /** Failures not yet followed by a success, by what failed (a watch's path, 'probe', 'reads'). */
  readonly failing: Map<string, string>;
  status: DatacenterStatus;
}

const split = (k: string) => k.split('\0') as [string, string];

export class ConsulCatalogSource implements CatalogSource {
  readonly name = 'consul';
  private readonly client: ConsulClient;
  private readonly log: Logger;
  private readonly timing: WatchTiming;
  private readonly dcs = new Map<string, Dc>();
  private localDc = '';
  private onCatalog: ((c: Catalog, hint?: ChangeHint) => void | Promise<unknown>) | null = null;
  private onFailure: (reason: string) => void = () => {};
  private dirtyServices = new Set<string>();
  private dirtyNodes = new Set<string>();
  /** A datacenter switched from snapshot to live data since the last commit: compare everything. */
  private wholesale = false;
  private pendingSince: number | null = null;
  private readonly window: QuietWindow;
  private firstSync: (() => void) | null = null;
  private closed = false;
  private readonly initial: ((preview?: (p: CatalogPreview) => void) => Promise<Catalog | null>) | null;
  private readonly concurrency: number;
  private readonly probeMs: number;
  private probeTimer: NodeJS.Timeout | null = null;
  private inflight = 0;
  /** Reads started so far (see Group.readStart). */
  private readStarts = 0;
  /** Reads waiting for a place: targeted ones first, then sweeps (Sets: take the first, remove any, O(1)). */
  private readonly queues: [Set<[Dc, Group]>, Set<[Dc, Group]>] = [new Set(), new Set()];
  private readonly queuedEntry = new WeakMap<Group, [Dc, Group]>();
  private readonly guard: { share: number; holdMs: number } | null;
  private delivered: number | null = null;
  /** Instances at each delivery within the last hold (time, count). */
  private history: Array<[number, number]> = [];
  private heldSince: number | null = null;
  private readonly wantDcs: readonly string[];
  private readonly configuredLocal: string | null;
  private readonly maxStaleMs: () => number | null;
  private readonly hot: { changes: number; windowMs: number };
  private initialCatalog: Catalog | null = null;
  /** Updates held back by the removal guard. */
  heldBack = 0;
  /** When Consul last gave a fresh answer about the local datacenter, and whether it answers now. */
  lastContact: number | null = null;
  reachable: boolean | null = null;
  commits = 0;
  /** Sweeps run, and reads they made. */
  sweeps = 0;
  sweepReads = 0;
  targetedReads = 0;
  /** Lanes given up after 429s (the budget in use shrinks), and when the last 429 came. */
  private laneLimit: number;
  private lastCapacity: number;
  private lastRateLimited = 0;
  private lastShrink = 0;
  private regrowTimer: NodeJS.Timeout | null = null;
  private rebalanceTimer: NodeJS.Timeout | null = null;
  private readonly toOpen: Array<() => void> = [];
  private toOpenAt = 0;
  private opening = false;
  private openScheduled = false;
  private readonly openBatch: number;
  private retryTimer: NodeJS.Timeout | null = null;
  private retryFailures = 0;
  private readonly retry = new Set<[Dc, Group]>();

  constructor(opts: ConsulSourceOptions) {
    this.client = opts.client;
    this.log = opts.logger.child({ component: 'consul' });
    this.timing = opts.timing ?? DEFAULT_TIMING;
    const quiet = opts.quiet ?? { minMs: 50, maxMs: 500 };
    this.window = new QuietWindow({ minMs: quiet.minMs, maxMs: quiet.maxMs, onCommit: () => this.flush() });
    this.initial = opts.initial ?? null;
    this.concurrency = opts.concurrency ?? this.client.readConnections;
    this.openBatch = opts.openBatch ?? 4;
    this.probeMs = opts.probeMs ?? 5000;
    this.guard = opts.guard === undefined ? { share: 0.5, holdMs: 60_000 } : opts.guard;
    this.wantDcs = opts.datacenters ?? [];
    this.configuredLocal = opts.localDatacenter ?? null;
    this.maxStaleMs = opts.maxStaleMs ?? (() => null);
    this.hot = opts.hot ?? { changes: 2, windowMs: 300_000 };
    this.laneLimit = this.lastCapacity = this.client.laneCapacity;
    this.client.onRateLimited = (connections) => { if (connections) this.rateLimited(); };
  }

  /**
   * Serves the initial catalog at once when there is one (Consul may be down); otherwise resolves
   * once the local datacenter has been read from Consul.
   */
  async start(onCatalog: (c: Catalog, hint?: ChangeHint) => void | Promise<unknown>, onFailure?: (reason: string) => void,
    onPreview?: (p: CatalogPreview) => void): Promise<void> {
    this.onCatalog = onCatalog;
    if (onFailure) this.onFailure = onFailure;
    const synced = new Promise<void>((resolve) => { this.firstSync = resolve; });
    const initial = this.initial ? await this.initial(onPreview) : null;
    this.initialCatalog = initial;
    void this.discover();
    this.probeTimer = setInterval(() => this.probe(), this.probeMs);
    this.probeTimer.unref();
    if (initial) {
      this.localDc ||= initial.datacenter;
      this.delivered = this.countInstances(initial);
      this.commits++;
      const committed = onCatalog(initial);
      // The watches open once the zone of the snapshot is served.
      if (committed) void committed.then(() => this.startOpening(), () => this.startOpening());
      else this.startOpening();
      return;
    }
    await synced;
  }

  private countInstances(c: Catalog): number {
    let n = 0;
    for (const d of c.datacenters.values()) for (const l of d.services.values()) n += l.length;
    return n;
  }

  /** Learns the local datacenter and the datacenters to follow, retrying until Consul answers. */
  private async discover(): Promise<void> {
    let failures = 0;
    let selfReadable = true;
    while (!this.closed) {
      try {
        let agentDc: string | null = null;
        if (selfReadable && this.configuredLocal === null) {
          try {
            const self = await this.client.get<{ Config?: { Datacenter?: string } }>('/v1/agent/self');
            const d = self.body?.Config?.Datacenter;
            agentDc = typeof d === 'string' && d ? d : null;
          } catch (e) {
            if ((e as { code?: string }).code !== 'CDNS_ERR_CONSUL_ACL') throw e;
            // A DNS-only token (service:read, node:read, query:read) cannot read the agent.
            selfReadable = false;
            this.log.warn({ err: (e as Error).message }, 'cannot read /v1/agent/self (the token lacks agent:read): the local datacenter is the first /v1/catalog/datacenters lists; set datacenter to choose it');
          }
        }
        const dcs = await this.client.get<unknown>('/v1/catalog/datacenters');
        const listed = Array.isArray(dcs.body) ? dcs.body.filter((d): d is string => typeof d === 'string' && d !== '') : null;
        if (!listed || listed.length === 0) throw new CatalogDnsError('CDNS_ERR_CONSUL_BAD_RESPONSE', '/v1/catalog/datacenters: expected a list of datacenter names');
        const local = this.configuredLocal === null ? agentDc ?? listed[0]! : listed.find((d) => d.toLowerCase() === this.configuredLocal!.toLowerCase()) ?? this.configuredLocal;
        if (this.initialCatalog && this.localDc && this.localDc !== local) {
          this.log.warn({ snapshot: this.localDc, consul: local }, 'the local datacenter differs from the snapshot\'s');
        }
        this.localDc = local;
        if (this.reachable === false) this.log.info({ address: this.client.address }, 'consul reachable again');
        // An HTTPS agent speaks HTTP/2: blocking queries then share a few connections.
        if (await this.client.detectHttp2()) {
          if (this.laneLimit === this.lastCapacity) this.laneLimit = this.client.laneCapacity;
          this.log.info({ lanes: this.client.laneCapacity }, 'consul speaks HTTP/2: blocking queries share connections');
        }
        this.lastCapacity = this.client.laneCapacity;
        const names = this.wantDcs.length ? [...this.wantDcs] : listed;
        // The local datacenter first: its watches get lanes first.
        names.sort((a, b) => (a === local ? -1 : b === local ? 1 : 0));
        for (const dc of names) this.follow(dc);
        return;
      } catch (e) {
        if (e === STOPPED) return;
        failures++;
        this.failedAt(null, 'discover', e);
        await new Promise((r) => setTimeout(r, Math.min(this.timing.maxBackoffMs, this.timing.backoffMs * 2 ** Math.min(failures, 10)) * (0.5 + Math.random() / 2)));
      }
    }
  }

  /** Every service (read or not) fits next to the list watches. */
  private fitsAll(): boolean {
    let n = this.fixedLanes();
    for (const st of this.dcs.values()) n += st.groups.size;
    return n <= this.laneLimit;
  }

  /** Lanes of the watches every way of following needs: the lists and the gateways' links. */
  private fixedLanes(): number {
    let n = 0;
    for (const st of this.dcs.values()) n += st.lists.length + st.gatewayWatches.size;
    return n;
  }

  /** Lanes held by list and detector watches (they come first). */
  private listLanes(): number {
    let n = this.fixedLanes();
    for (const st of this.dcs.values()) n += st.health?.length ?? 0;
    return n;
  }

  /** Whether a new list watch gets a lane (else it polls): one is free within the limit. */
  private listMode(): { pollMs?: number } {
    let inUse = this.listLanes();
    for (const st of this.dcs.values()) for (const g of st.groups.values()) if (g.watch) inUse++;
    return inUse < this.laneLimit ? {} : { pollMs: POLL_MS };
  }

  private follow(dc: string): void {
    if (this.dcs.has(dc) || this.closed) return;
    const snapshot = this.initialCatalog?.datacenters.get(dc) ?? null;
    const st: Dc = {
      name: dc, nodes: new Map(), services: new Map(), groups: new Map(), nodeGroups: new Map(), snapshot,
      lists: [], health: null, checks: new Map(), tags: new Map(), gatewayServices: new Map(), gatewayWatches: new Map(), nodesRead: false, servicesRead: false, servicesIndex: 0, live: false, instanceCount: 0,
      sweep: { pending: new Set(), again: false, lastStart: 0, timer: null }, lastFresh: null, fresh: null, failing: new Map(), status: 'starting',
    };
    this.dcs.set(dc, st);
    const q = { dc, stale: true };
    const nodes = new BlockingWatch<unknown>(this.client, '/v1/catalog/nodes', q, (r) => this.onNodes(st, r), (e) => this.failedAt(st, 'nodes', e), this.timing,
      { reuseSameBody: true, ...this.listMode() });
    st.lists.push(nodes);
    const services = new BlockingWatch<unknown>(this.client, '/v1/catalog/services', q, (r) => this.onServices(st, r), (e) => this.failedAt(st, 'services', e), this.timing,
      { reuseSameBody: true, ...this.listMode() });
    st.lists.push(services);
    nodes.onSame = (r) => this.answered(st, 'nodes', r);
    services.onSame = (r) => this.answered(st, 'services', r);
    nodes.start();
    services.start();
  }

  // -------------------------------------------------------------------------------------------
  // Freshness and failures, per datacenter

  /** A response came: the datacenter answers; it is fresh unless the server lost its leader. */
  private answered(st: Dc, what: string, r: ConsulResponse<unknown>): void {
    st.failing.delete(what);
    const maxStale = this.maxStaleMs();
    const fresh = r.knownLeader !== false && (maxStale === null || r.lastContact === null || r.lastContact <= maxStale);
    if (fresh) st.lastFresh = Date.now();
    if (fresh !== st.fresh) {
      if (!fresh) this.log.warn({ dc: st.name, knownLeader: r.knownLeader, lastContactMs: r.lastContact }, 'consul answers without a current leader: its data does not count as fresh');
      else if (st.fresh === false) this.log.info({ dc: st.name }, 'consul answers with a current leader again');
      st.fresh = fresh;
    }
    if (st.name === this.localDc && fresh) this.lastContact = st.lastFresh;
    this.judge(st);
  }

  private failedAt(st: Dc | null, what: string, e: unknown): void {
    if (e === STOPPED || this.closed) return;
    const message = (e as Error).message ?? String(e);
    if (this.log.isLevelEnabled('debug')) this.log.debug({ dc: st?.name, what, err: message }, 'consul request failed');
    this.onFailure(message);
    if (!st) {
      if (this.reachable !== false) {
        this.log.warn({ err: message, code: (e as { code?: string }).code }, 'consul unavailable; serving the last good catalog');
        this.reachable = false;
      }
      return;
    }
    st.failing.set(what, message);
    this.judge(st);
  }

  /** A datacenter's status from its failures and freshness; transitions are logged once. */
  private judge(st: Dc): void {
    const next: DatacenterStatus = st.failing.size ? 'unreachable' : !st.live && !st.snapshot ? 'starting' : st.fresh === false ? 'stale' : 'ok';
    if (next === st.status) return;
    const was = st.status;
    st.status = next;
    if (next === 'unreachable') {
      const [what, err] = st.failing.entries().next().value!;
      this.log.warn({ dc: st.name, what, err }, st.name === this.localDc ? 'consul unavailable; serving the last good catalog' : 'consul datacenter unavailable; serving its last good data');
    } else if (was === 'unreachable') {
      this.log.info({ dc: st.name, address: this.client.address }, st.name === this.localDc ? 'consul reachable again' : 'consul datacenter reachable again');
    }
    // The local datacenter says whether Consul answers ('starting' says nothing yet).
    if (st.name === this.localDc && next !== 'starting') this.reachable = next !== 'unreachable';
  }

  /** Per datacenter: a cheap read with Consul's consistency headers (liveness and leader contact). */
  private probe(): void {
    for (const st of this.dcs.values()) {
      this.client.get<unknown>('/v1/catalog/service/consul', { dc: st.name, stale: true, requireIndex: true })
        .then((r) => this.answered(st, 'probe', r), (e) => this.failedAt(st, 'probe', e));
    }
    // Every 12th probe (a minute by default): a datacenter federated since the start is followed too
    // (unless `datacenters` names the ones to follow). One that goes keeps its last data.
    if (++this.probes % 12 === 0 && this.wantDcs.length === 0 && this.dcs.size) {
      this.client.get<unknown>('/v1/catalog/datacenters').then((r) => {
        if (!Array.isArray(r.body)) return;
        for (const dc of r.body) {
          if (typeof dc !== 'string' || dc === '' || this.dcs.has(dc) || this.closed) continue;
          this.log.info({ dc }, 'consul lists a new datacenter: following it');
          this.follow(dc);
        }
      }, () => {});
    }
  }
  private probes = 0;

  // -------------------------------------------------------------------------------------------
  // The lists

  private onNodes(st: Dc, r: ConsulResponse<unknown>): void {
    if (r.same && st.nodesRead) { this.answered(st, 'nodes', r); return; } // the same bytes: no node changed
    let list;
    try {
      list = validateNodeList(st.name, r.body);
    } catch (e) {
      this.failedAt(st, 'nodes', e);
      return;
    }
    this.answered(st, 'nodes', r);
    const next = list.nodes;
    const changed: string[] = [];
    for (const [name, n] of next) {
      const old = st.nodes.get(name);
      if (!old || JSON.stringify(old) !== JSON.stringify(n)) changed.push(name);
      else next.set(name, old); // keep the object instances already share
    }
    for (const name of st.nodes.keys()) if (!next.has(name)) changed.push(name);
    st.nodes = next;
    for (const name of changed) {
      this.dirtyNodes.add(`${st.name}\0${name}`);
      // A swept service on a changed node carries the node's old copy: read it again.
      if (st.nodesRead) for (const lower of st.nodeGroups.get(name) ?? []) this.target(st, lower);
    }
    st.nodesRead = true;
    this.changed(st);
  }

  private onServices(st: Dc, r: ConsulResponse<unknown>): void {
    const moved = r.index !== st.servicesIndex;
    const first = !st.servicesRead;
    st.servicesIndex = r.index;
    // The list's index moves with every registration anywhere. The same names and tags mean no
    // service came or went (the bytes are compared, the body is not parsed again); but an instance
    // of a swept service may have changed: sweep.
    if (r.same && !first) {
      this.answered(st, 'services', r);
      if (moved) this.sweep(st);
      return;
    }
    const body = r.body;
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      this.failedAt(st, 'services', new CatalogDnsError('CDNS_ERR_CONSUL_BAD_RESPONSE', `/v1/catalog/services in ${st.name}: expected an object`));
      return;
    }
    this.answered(st, 'services', r);
    if (first && Object.keys(body).length === 0) {
      // Filtered lists come back 200: an empty one is worth a word (Consul lists at least itself).
      this.log.warn({ dc: st.name, filteredByAcls: r.filteredByAcls },
        this.client.hasToken ? 'consul lists no services: does the token have service:read?'
          : 'consul lists no services: no token is set, so Consul answered with the anonymous token\'s rights (set consul_token)');
    }
    const names = Object.keys(body);
    // One rule for the live source and the snapshot (catalog.ts): a name that cannot be a DNS label
    // is not followed at all; spellings of one name case-insensitively are one service.
    const spellings = spellingGroups(names);
    let unservable = names.length;
    for (const g of spellings.values()) unservable -= g.spellings.length;
    if (unservable && unservable !== this.unservableLogged.get(st.name)) {
      this.log.warn({ dc: st.name, services: unservable }, 'services whose names cannot be DNS labels (1-63 bytes, no dot) are not served');
      this.unservableLogged.set(st.name, unservable);
    }
    let groupsChanged = false;
    const rec = body as Record<string, unknown>;
    for (const [lower, { spellings: names }] of spellings) {
      names.sort(); // the smallest first: the catalog key
      // Tags changed: one of its instances changed (re-read it now rather than at the next sweep).
      // (Consul lists a name's tags from a Go map, in no set order: compared sorted.)
      const tags = names.map((n) => { const t = rec[n]; return Array.isArray(t) ? JSON.stringify([...t].sort()) : 'null'; }).join('\0');
      const oldTags = st.tags.get(lower);
      st.tags.set(lower, tags);
      if (oldTags !== undefined && oldTags !== tags) this.target(st, lower);
      let g = st.groups.get(lower);
      if (!g) {
        g = { lower, spellings: names, key: names[0]!, index: 0, watch: null, changes: [], queued: 0, reading: false, again: false, failed: false, readStart: 0 };
        st.groups.set(lower, g);
        groupsChanged = true;
        this.enqueue(st, g, 0); // the services list named it: a targeted read (not rate-limited as sweeps are)
        continue;
      }
      if (names.join('\0') !== g.spellings.join('\0')) {
        g.spellings = names;
        if (names[0] !== g.key) {
          // The catalog key follows the smallest spelling: the entry moves.
          const list = st.services.get(g.key);
          this.dirtyServices.add(`${st.name}\0${g.key}`);
          st.services.delete(g.key);
          g.key = names[0]!;
          if (list) st.services.set(g.key, list);
          this.dirtyServices.add(`${st.name}\0${g.key}`);
        }
        this.target(st, lower);
      }
    }
    for (const [lower, g] of st.groups) {
      if (spellings.has(lower)) continue;
      this.drop(st, g);
      groupsChanged = true;
    }
    st.servicesRead = true;
    if (groupsChanged) this.scheduleRebalance();
    // More services than lanes: the detectors start now, so that their first answers (the baseline)
    // come before most first reads.
    if (!this.fitsAll()) this.startHealth(st);
    if (moved && !first) this.sweep(st);
    this.changed(st);
  }

  private readonly unservableLogged = new Map<string, number>();

  /** A service gone from the list: its watch stops, its entry goes. */
  private drop(st: Dc, g: Group): void {
    st.groups.delete(g.lower);
    st.failing.delete(`service ${g.key}`);
    st.tags.delete(g.lower);
    if (g.watch) { this.stopping(g.watch.stop()); g.watch = null; }
    const entry = this.queuedEntry.get(g);
    if (entry) { this.queues[0].delete(entry); this.queues[1].delete(entry); this.retry.delete(entry); }
    g.queued = 0;
    this.swept(st, g);
    this.gateway(st, g, false);
    const gone = st.services.get(g.key);
    if (gone) {
      st.instanceCount -= gone.length;
      this.unlinkNodes(st, g.lower, gone);
      st.services.delete(g.key);
      this.dirtyServices.add(`${st.name}\0${g.key}`);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Reads: targeted (a detector named the service) before sweeps

  /** A read of `g` as soon as a place is free (a watched service needs none: its watch wakes). */
  private target(st: Dc, lower: string): void {
    const g = st.groups.get(lower);
    if (!g || g.watch) return;
    this.enqueue(st, g, 0);
  }

  private enqueue(st: Dc, g: Group, level: 0 | 1): void {
    if (this.closed) return;
    if (g.reading) { g.again = true; return; }
    let entry = this.queuedEntry.get(g);
    if (!entry) { entry = [st, g]; this.queuedEntry.set(g, entry); }
    if (g.queued === 1 && level === 0) this.queues[1].delete(entry); // promoted to targeted
    else if (g.queued) return;
    g.queued = level === 0 ? 2 : 1;
    this.queues[level].add(entry);
    this.pump();
  }

  private pump(): void {
    while (this.inflight < this.concurrency && !this.closed) {
      if (!this.queues[0].size && this.queues[1].size && !this.sweepToken()) return;
      const q = this.queues[0].size ? this.queues[0] : this.queues[1];
      const next = q.values().next();
      if (next.done) return;
      q.delete(next.value);
      const [st, g] = next.value;
      const sweep = g.queued === 1;
      g.queued = 0;
      if (st.groups.get(g.lower) !== g) continue;
      if (g.watch) { this.swept(st, g); continue; } // given a watch meanwhile
      this.inflight++;
      g.reading = true;
      g.readStart = this.readStarts++;
      if (sweep) this.sweepReads++; else this.targetedReads++;
      void this.read(st, g).finally(() => {
        g.reading = false;
        this.inflight--;
        if (g.again) { g.again = false; this.enqueue(st, g, 0); }
        else this.swept(st, g);
        this.pump();
      });
    }
  }

  private async read(st: Dc, g: Group): Promise<void> {
    let r: ConsulResponse<unknown>;
    try {
      r = await this.client.get<unknown>(`/v1/health/service/${encodeURIComponent(g.key)}`, {
        dc: st.name, stale: true, requireIndex: true, ...(g.index && !g.failed ? { unchangedAt: g.index } : {}),
      });
    } catch (e) {
      if (e === STOPPED || this.closed) return;
      g.failed = true;
      this.failedAt(st, 'reads', e);
      this.retryLater(st, g);
      return;
    }
    this.onService(st, g, r);
    if (!g.failed && [...this.retry].every(([s]) => s !== st)) st.failing.delete('reads');
  }

  /** A failed read is asked again after a backoff (all of them together). */
  private retryLater(st: Dc, g: Group): void {
    const entry = this.queuedEntry.get(g) ?? [st, g];
    this.queuedEntry.set(g, entry);
    this.retry.add(entry);
    if (this.retryTimer || this.closed) return;
    this.retryFailures++;
    const ms = Math.min(this.timing.maxBackoffMs, this.timing.backoffMs * 2 ** Math.min(this.retryFailures - 1, 20)) * (0.5 + Math.random() / 2);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      const all = [...this.retry];
      this.retry.clear();
      for (const [s, x] of all) if (s.groups.get(x.lower) === x) this.enqueue(s, x, 0);
    }, ms);
    this.retryTimer.unref();
  }

  /** A service's health/service answer (a read, or its watch waking). */
  private onService(st: Dc, g: Group, r: ConsulResponse<unknown>): void {
    if (st.groups.get(g.lower) !== g) return;
    const what = g.watch ? `service ${g.key}` : 'reads';
    // A read whose index did not move brings nothing new (the body is not even validated).
    if (g.index !== 0 && r.index === g.index && !g.failed) {
      this.answered(st, what, r);
      return;
    }
    let v;
    try {
      v = validateServiceEntries(st.name, g.key, r.body, st.nodes);
    } catch (e) {
      // Never replaces good data; read again after a backoff (a watch retries by itself).
      g.index = g.index || r.index;
      g.failed = true;
      this.failedAt(st, what, e);
      if (!g.watch) this.retryLater(st, g);
      this.changed(st);
      return;
    }
    g.failed = false;
    this.answered(st, what, r);
    if (v.instances.length === 0 && r.filteredByAcls) this.log.warn({ dc: st.name, service: g.key }, 'results filtered by ACLs: the token cannot read this service');
    const first = g.index === 0;
    g.index = r.index;
    const old = st.services.get(g.key);
    if (old && sameInstances(old, v.instances)) { this.changed(st); return; }
    st.instanceCount += v.instances.length - (old?.length ?? 0);
    if (old) this.unlinkNodes(st, g.lower, old);
    for (const inst of v.instances) {
      const s = st.nodeGroups.get(inst.node.name);
      if (s) s.add(g.lower); else st.nodeGroups.set(inst.node.name, new Set([g.lower]));
    }
    st.services.set(g.key, v.instances);
    this.dirtyServices.add(`${st.name}\0${g.key}`);
    this.gateway(st, g, v.instances.some((i) => i.kind === 'terminating-gateway'));
    if (!first) this.heat(g);
    this.changed(st);
  }

  private unlinkNodes(st: Dc, lower: string, list: readonly ServiceInstance[]): void {
    for (const inst of list) {
      const s = st.nodeGroups.get(inst.node.name);
      if (!s) continue;
      s.delete(lower);
      if (s.size === 0) st.nodeGroups.delete(inst.node.name);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Sweeps: every swept service read again after a registration change nobody could pin down

  /**
   * A token of the sweep reads' bucket (SWEEP_READS_PER_SEC, a burst of a tenth of that); false,
   * with a pump scheduled for when one is due, if there is none.
   */
  private sweepToken(): boolean {
    const now = performance.now();
    this.sweepTokens = Math.min(SWEEP_READS_PER_SEC / 10, this.sweepTokens + ((now - this.sweepRefill) / 1000) * SWEEP_READS_PER_SEC);
    this.sweepRefill = now;
    if (this.sweepTokens >= 1) { this.sweepTokens--; return true; }
    if (!this.sweepTimer) {
      this.sweepTimer = setTimeout(() => { this.sweepTimer = null; this.pump(); }, Math.ceil(((1 - this.sweepTokens) / SWEEP_READS_PER_SEC) * 1000));
      this.sweepTimer.unref();
    }
    return false;
  }
  private sweepTokens = SWEEP_READS_PER_SEC / 10;
  private sweepRefill = performance.now();
  private sweepTimer: NodeJS.Timeout | null = null;

  private sweep(st: Dc): void {
    if (!st.live || this.closed) return;
    if (st.sweep.pending.size || st.sweep.timer) { st.sweep.again = true; return; }
    // At most one sweep start a second: under a stream of registrations a sweep covers them all.
    const wait = st.sweep.lastStart + SWEEP_GAP_MS - Date.now();
    if (wait > 0) {
      st.sweep.timer = setTimeout(() => { st.sweep.timer = null; this.sweep(st); }, wait);
      st.sweep.timer.unref();
      return;
    }
    st.sweep.lastStart = Date.now();
    st.sweep.again = false;
    const pending = st.sweep.pending;
    for (const g of st.groups.values()) {
      if (g.watch) continue;
      pending.add(g);
      this.enqueue(st, g, 1);
    }
    if (pending.size === 0) return;
    this.sweeps++;
  }

  /** `g` was read (whatever asked for it), given a watch, or went: the sweep under way has seen it. */
  private swept(st: Dc, g: Group): void {
    if (!st.sweep.pending.delete(g) || st.sweep.pending.size) return;
    if (st.sweep.again) {
      st.sweep.again = false;
      this.sweep(st);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Detectors: the non-passing checks

  private startHealth(st: Dc): void {
    if (st.health || this.closed) return;
    st.health = [];
    for (const state of ['critical', 'warning']) {
      const what = `health ${state}`;
      const w = new BlockingWatch<unknown>(this.client, `/v1/health/state/${state}`, { dc: st.name, stale: true },
        (r) => this.onChecks(st, state, r), (e) => this.failedAt(st, what, e), this.timing, { reuseSameBody: true, ...this.listMode() });
      w.onSame = (r) => this.answered(st, what, r);
      st.health.push(w);
      w.start();
    }
  }

  private stopHealth(st: Dc): void {
    const h = st.health;
    if (!h) return;
    st.health = null;
    st.checks.clear();
    for (const w of h) void w.stop();
  }

  private onChecks(st: Dc, state: string, r: ConsulResponse<unknown>): void {
    const what = `health ${state}`;
    if (!Array.isArray(r.body)) {
      this.failedAt(st, what, new CatalogDnsError('CDNS_ERR_CONSUL_BAD_RESPONSE', `/v1/health/state/${state} in ${st.name}: expected a list`));
      return;
    }
    this.answered(st, what, r);
    const next = checkStates(r.body as unknown[]);
    const prev = st.checks.get(state);
    st.checks.set(state, next);
    if (!prev) {
      // The first answers are the baseline; a check that changed between a service's read and the
      // baseline would be missed: once both are in, the swept services whose last read started
      // before are read again (at the start, the detectors start with the first list of services,
      // so that is only the reads of that moment).
      if (st.checks.size === st.health?.length) {
        const mark = this.readStarts;
        for (const g of st.groups.values()) if (!g.watch && g.index > 0 && g.readStart < mark) this.enqueue(st, g, 1);
      }
      return;
    }
    const changed = changedChecks(prev, next);
    for (const service of changed.services) this.target(st, service.toLowerCase());
    for (const node of changed.nodes) for (const lower of st.nodeGroups.get(node) ?? []) this.target(st, lower);
  }

  /**
   * A terminating gateway's linked services (`<svc>.connect` answers its instances): a watch on
   * /v1/catalog/gateway-services/<gateway> while the service has a terminating-gateway instance.
   */
  private gateway(st: Dc, g: Group, is: boolean): void {
    const w = st.gatewayWatches.get(g.lower);
    if (is === (w !== undefined)) return;
    if (!is) {
      this.stopping(w!.stop());
      st.gatewayWatches.delete(g.lower);
      st.failing.delete(`gateway ${g.lower}`);
      if (st.gatewayServices.delete(g.key)) this.dirtyServices.add(`${st.name}\0${g.key}`);
      return;
    }
    const what = `gateway ${g.lower}`;
    const watch = new BlockingWatch<unknown>(this.client, `/v1/catalog/gateway-services/${encodeURIComponent(g.key)}`, { dc: st.name, stale: true },
      (r) => {
        if (st.gatewayWatches.get(g.lower) !== watch) return;
        let links;
        try {
          links = validateGatewayServices(st.name, g.key, r.body).services;
        } catch (e) {
          this.failedAt(st, what, e);
          return;
        }
        this.answered(st, what, r);
        const old = st.gatewayServices.get(g.key);
        if (old && old.join('\0') === links.join('\0')) return;
        if (links.length) st.gatewayServices.set(g.key, links); else st.gatewayServices.delete(g.key);
        if (old || links.length) { this.dirtyServices.add(`${st.name}\0${g.key}`); this.changed(st); }
      },
      (e) => this.failedAt(st, what, e), this.timing, { reuseSameBody: true, ...this.listMode() });
    watch.onSame = (r) => this.answered(st, what, r);
    st.gatewayWatches.set(g.lower, watch);
    watch.start();
  }

  // -------------------------------------------------------------------------------------------
  // Who gets a lane

  /** A swept service changed: hot ones may take a watched one's lane. */
  private heat(g: Group): void {
    const t = Date.now();
    g.changes.push(t);
    while (g.changes.length && g.changes[0]! < t - this.hot.windowMs) g.changes.shift();
    if (!g.watch && g.changes.length >= this.hot.changes) this.scheduleRebalance();
  }

  private scheduleRebalance(): void {
    if (this.rebalanceTimer || this.closed) return;
    this.rebalanceTimer = setTimeout(() => { this.rebalanceTimer = null; this.rebalance(); }, 100);
    this.rebalanceTimer.unref();
  }

  /**
   * Gives lanes to services: all of them while they fit next to the list watches; otherwise the
   * detectors start and the hottest services (most changes within the window; the watched ones win
   * ties, so lanes do not move for nothing) get the lanes left. Lanes are given up first, and taken
   * only once their connections are closed: the budget holds at every moment.
   */
  private rebalance(): void {
    if (this.closed || !this.opening) return;
    if (this.rebalancing) { this.rebalanceAgain = true; return; }
    this.rebalancing = true;
    void this.rebalanceSteps().finally(() => {
      this.rebalancing = false;
      if (this.rebalanceAgain) { this.rebalanceAgain = false; this.scheduleRebalance(); }
    });
  }
  private rebalancing = false;
  private rebalanceAgain = false;
  /** Watches being stopped outside a rebalance: their connections are closed before lanes are taken. */
  private readonly closing = new Set<Promise<void>>();
  private stopping(p: Promise<void>): void {
    this.closing.add(p);
    void p.finally(() => this.closing.delete(p));
  }

  private async rebalanceSteps(): Promise<void> {
    const all: Array<[Dc, Group]> = [];
    for (const st of this.dcs.values()) for (const g of st.groups.values()) if (g.index > 0) all.push([st, g]);
    const lists = this.fixedLanes();
    const fits = all.length + lists <= this.laneLimit;
    let chosen: Set<Group>;
    if (fits) chosen = new Set(all.map(([, g]) => g));
    else {
      const health = [...this.dcs.values()].reduce((n, st) => n + (st.live ? 2 : 0), 0);
      const room = Math.max(0, this.laneLimit - lists - health);
      const t = Date.now() - this.hot.windowMs;
      const heat = (g: Group) => g.changes.filter((x) => x >= t).length;
      const ranked = all.map(([st, g]) => ({ g, h: heat(g), w: g.watch ? 1 : 0, local: st.name === this.localDc ? 1 : 0 }));
      ranked.sort((a, b) => b.h - a.h || b.w - a.w || b.local - a.local);
      chosen = new Set(ranked.slice(0, room).map((x) => x.g));
    }
    // First the lanes given up, their connections closed...
    const stops: Array<Promise<void>> = [];
    for (const [st, g] of all) {
      if (g.watch && !chosen.has(g)) {
        stops.push(g.watch.stop());
        g.watch = null;
        st.failing.delete(`service ${g.key}`);
        this.target(st, g.lower); // a change between its last wake and now is not lost
      }
    }
    if (fits) for (const st of this.dcs.values()) { const h = st.health; if (h) { this.stopHealth(st); stops.push(...h.map((w) => w.stop())); } }
    await Promise.all([...stops, ...this.closing]);
    if (this.closed) return;
    // ... then the lanes taken.
    if (!fits) for (const st of this.dcs.values()) if (st.live) this.startHealth(st);
    const room = Math.max(0, this.laneLimit - this.listLanes());
    let watched = 0;
    for (const [st, g] of all) if (g.watch && st.groups.get(g.lower) === g) watched++;
    for (const [st, g] of all) {
      if (g.watch || !chosen.has(g) || watched >= room || st.groups.get(g.lower) !== g) continue;
      this.watch(st, g);
      watched++;
    }
    for (const st of this.dcs.values()) this.judge(st);
  }

  /** A blocking query of its own for `g`, from the index it was read at (a change since is not lost). */
  private watch(st: Dc, g: Group): void {
    const what = () => `service ${g.key}`;
    const w = new BlockingWatch<unknown>(this.client, `/v1/health/service/${encodeURIComponent(g.key)}`, { dc: st.name, stale: true },
      (r) => this.onService(st, g, r), (e) => this.failedAt(st, what(), e), this.timing,
      { startIndex: g.index, beforeBlocking: (signal) => this.openTurn(signal) });
    w.onSame = (r) => this.answered(st, what(), r);
    g.watch = w;
    w.start();
    this.swept(st, g); // its own blocking query waits past the index it was read at
  }

  /** The agent's connection limit: use fewer lanes (it, or another client on this host, is at its limit). */
  private rateLimited(): void {
    const now = Date.now();
    this.lastRateLimited = now;
    // At most one shrink a second: the 429s of one moment are one signal.
    if (now - this.lastShrink < 1000) return;
    this.lastShrink = now;
    // Multiplicative decrease, additive increase (as TCP): 30% of the lanes in use go (at least
    // one), down to those of the list watches, which every other way of following depends on (they
    // retry after a backoff if even they are refused); see regrow().
    const inUse = Math.min(this.laneLimit, this.client.laneCount);
    const floor = [...this.dcs.values()].reduce((n, st) => n + st.lists.length, 0);
    const next = Math.max(floor, Math.min(inUse - 1, Math.floor(inUse * 0.7)));
    if (next >= this.laneLimit) return;
    this.log.warn({ lanes: inUse, next, budget: this.client.maxConnections }, 'consul refused a connection (429): using fewer connections');
    this.laneLimit = next;
    this.scheduleRebalance();
    this.regrowTimer ??= setInterval(() => this.regrow(), REGROW_MS);
    this.regrowTimer.unref();
  }

  private regrow(): void {
    if (Date.now() - this.lastRateLimited < REGROW_MS) return;
    const cap = this.client.laneCapacity;
    this.laneLimit = Math.min(cap, this.laneLimit + Math.max(1, Math.ceil(cap / 10)));
    if (this.laneLimit >= cap && this.regrowTimer) { clearInterval(this.regrowTimer); this.regrowTimer = null; }
    this.scheduleRebalance();
  }

  /**
   * Resolves when a watch may open its connection: after the first catalog is committed, at most
   * `openBatch` per event-loop turn (or at once when `signal` aborts).
   */
  private openTurn(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => { signal.removeEventListener('abort', done); resolve(); };
      signal.addEventListener('abort', done, { once: true });
      this.toOpen.push(done);
      this.releaseOpens();
    });
  }

  private releaseOpens(): void {
    if (!this.opening || this.openScheduled || this.toOpenAt >= this.toOpen.length || this.closed) return;
    this.openScheduled = true;
    // Paced by the clock, not by event-loop turns: opening thousands of connections (a raised
    // budget) in back-to-back turns kept the loop busy for a second and DNS answers waited 76 ms.
    setTimeout(() => {
      this.openScheduled = false;
      const end = Math.min(this.toOpen.length, this.toOpenAt + this.openBatch);
      while (this.toOpenAt < end) this.toOpen[this.toOpenAt++]!();
      if (this.toOpenAt === this.toOpen.length) { this.toOpen.length = 0; this.toOpenAt = 0; }
      this.releaseOpens();
    }, OPEN_EVERY_MS);
  }

  /** The first catalog is served (or held back by the guard): watches may open their lanes. */
  private startOpening(): void {
    if (this.opening) return;
    this.opening = true;
    this.releaseOpens();
    this.rebalance();
  }

  // -------------------------------------------------------------------------------------------
  // Delivery

  /** Every service of `st` read once: its data is Consul's from now on. */
  private goLive(st: Dc): boolean {
    if (st.live) return true;
    if (!st.nodesRead || !st.servicesRead) return false;
    for (const g of st.groups.values()) if (g.index === 0) return false;
    st.live = true;
    // Its entries replace the snapshot's, or arrive for the first time, all at once: the commit
    // compares everything (the entries named so far went into commits that did not have it).
    if (this.commits > 0) this.wholesale = true;
    this.log.info({ dc: st.name, services: st.services.size, nodes: st.nodes.size }, 'consul datacenter read');
    this.judge(st);
    if (this.opening) this.rebalance();
    return true;
  }

  private changed(st: Dc): void {
    if (this.closed) return;
    const wasLive = st.live;
    const live = this.goLive(st);
    if (!live) return;
    if (!wasLive && this.commits === 0 && st.name !== this.localDc) return;
    if (!this.dirtyServices.size && !this.dirtyNodes.size && wasLive) return;
    this.pendingSince ??= Date.now();
    if (this.commits === 0) {
      // The first catalog waits for the local datacenter, not for quiet.
      if (this.localLive()) this.flush();
      return;
    }
    this.window.touch();
  }

  private localLive(): boolean {
    return this.dcs.get(this.localDc)?.live === true;
  }

  /** The catalog to deliver: live datacenters, the snapshot's data for those not read yet. */
  private catalog(): Catalog {
    const datacenters = new Map<string, DatacenterCatalog>();
    for (const [dc, st] of this.dcs) {
      if (st.live) datacenters.set(dc, st);
      else if (st.snapshot) datacenters.set(dc, st.snapshot);
    }
    // A datacenter of the snapshot that is not followed any more keeps no data.
    return { datacenter: this.localDc, datacenters };
  }

  private instances(): number {
    let n = 0;
    for (const st of this.dcs.values()) {
      if (st.live) n += st.instanceCount;
      else if (st.snapshot) for (const l of st.snapshot.services.values()) n += l.length;
    }
    return n;
  }

  private flush(): void {
    if (this.closed || !this.onCatalog || !this.localLive()) return;
    if (!this.dirtyServices.size && !this.dirtyNodes.size && !this.wholesale && this.commits > 0) return;
    if (this.guarded()) {
      this.startOpening();
      return;
    }
    const hint: ChangeHint | undefined = this.wholesale ? undefined
      : { services: [...this.dirtyServices].map(split), nodes: [...this.dirtyNodes].map(split), since: this.pendingSince ?? Date.now() };
    this.pendingSince = null;
    this.dirtyServices.clear();
    this.dirtyNodes.clear();
    this.wholesale = false;
    // The source's own maps, not copies (a copy per commit would cost what the catalog holds): a
    // commit compares the entries it is told about with what each unit was built from, and every
    // entry (a service's instance list, a node) is replaced, never changed in place.
    const catalog = this.catalog();
    const first = this.commits === 0;
    this.commits++;
    this.delivered = this.instances();
    this.history.push([Date.now(), this.delivered]);
    const committed = this.onCatalog(catalog, first ? undefined : hint);
    if (first) {
      // Lanes opened while the first zone is built would only delay it.
      if (committed) void committed.then(() => this.startOpening(), () => this.startOpening());
      else this.startOpening();
      this.firstSync?.();
      this.firstSync = null;
    }
  }

  /**
   * The removal guard: an update that takes away more than `guard.share` of all instances (a token
   * that lost its rights gets 200 with silently filtered, empty lists) is held back until it has
   * been seen for `guard.holdMs`; then it is applied. Logged both ways.
   */
  private guarded(): boolean {
    const g = this.guard;
    if (!g || this.delivered === null) return false;
    // Against the most instances served within the hold, so that a removal spread over several
    // windows is judged as a whole.
    const since = Date.now() - g.holdMs;
    this.history = this.history.filter(([t]) => t >= since);
    const before = Math.max(this.delivered, ...this.history.map(([, n]) => n));
    if (before < GUARD_MIN_INSTANCES) return false;
    const now = this.instances();
    if ((before - now) / before <= g.share) {
      if (this.heldSince !== null) this.log.info({ before, now }, 'removal guard: the catalog recovered; applying it');
      this.heldSince = null;
      return false;
    }
    const t = Date.now();
    if (this.heldSince === null) {
      this.heldSince = t;
      this.heldBack++;
      this.log.warn({ before, now, holdMs: g.holdMs }, 'removal guard: an update removes most instances (ACL token without rights?); holding it back');
      this.guardRecheck(g.holdMs);
      return true;
    }
    if (t - this.heldSince < g.holdMs) {
      // Asked again before the hold is over: look again when it is over, or a removal that
      // persists would wait for the next change in Consul to be applied.
      this.guardRecheck(g.holdMs - (t - this.heldSince) + 1);
      return true;
    }
    this.log.warn({ before, now, heldMs: t - this.heldSince }, 'removal guard: the removal persisted; applying it');
    this.heldSince = null;
    this.history = []; // the smaller catalog is the new reference
    return false;
  }

  /** One pending re-check of a held-back removal at a time. */
  private guardRecheck(ms: number): void {
    if (this.guardTimer) clearTimeout(this.guardTimer);
    this.guardTimer = setTimeout(() => {
      this.guardTimer = null;
      this.flush();
    }, ms);
    this.guardTimer.unref();
  }
  private guardTimer: NodeJS.Timeout | null = null;

  // -------------------------------------------------------------------------------------------
  // What health and metrics read

  /** Each followed datacenter's state. */
  datacenters(): Map<string, DatacenterState> {
    const out = new Map<string, DatacenterState>();
    for (const [dc, st] of this.dcs) {
      let watched = 0;
      for (const g of st.groups.values()) if (g.watch) watched++;
      out.set(dc, {
        status: st.status, lastFresh: st.lastFresh, live: st.live, services: st.groups.size, watched, swept: st.groups.size - watched,
        lastError: st.failing.size ? st.failing.values().next().value! : null,
      });
    }
    return out;
  }

  /** How a service is followed: its own blocking query, or detectors and sweeps (null: unknown). */
  mode(dc: string, service: string): 'watched' | 'swept' | null {
    const g = this.dcs.get(dc)?.groups.get(service.toLowerCase());
    return g ? (g.watch ? 'watched' : 'swept') : null;
  }

  /** The connection budget per Consul address. */
  get budget(): number {
    return this.client.maxConnections;
  }

  /** Something is not as it should be: a datacenter unreachable, stale or not read yet. */
  get degraded(): boolean {
    if (this.reachable === false) return true;
    for (const st of this.dcs.values()) if (st.status !== 'ok') return true;
    return false;
  }

  /** Watches, lanes and request figures (health, metrics, benches). */
  stats(): { watches: number; lanes: number; laneLimit: number; requests: number; bytes: number; errors: number; rateLimited: number;
    sweeps: number; sweepReads: number; targetedReads: number } {
    let watches = this.fixedLanes();
    for (const st of this.dcs.values()) {
      watches += st.health?.length ?? 0;
      for (const g of st.groups.values()) if (g.watch) watches++;
    }
    return {
      watches, lanes: this.client.laneCount, laneLimit: this.laneLimit, requests: this.client.requests, bytes: this.client.bytesReceived,
      errors: this.client.errors, rateLimited: this.client.rateLimited, sweeps: this.sweeps, sweepReads: this.sweepReads, targetedReads: this.targetedReads,
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.probeTimer) clearInterval(this.probeTimer);
    if (this.regrowTimer) clearInterval(this.regrowTimer);
    if (this.rebalanceTimer) clearTimeout(this.rebalanceTimer);
    if (this.guardTimer) clearTimeout(this.guardTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.sweepTimer) clearTimeout(this.sweepTimer);
    this.window.close();
    this.firstSync?.();
    const all: Array<BlockingWatch<unknown>> = [];
    for (const st of this.dcs.values()) {
      if (st.sweep.timer) clearTimeout(st.sweep.timer);
      all.push(...st.lists, ...(st.health ?? []), ...st.gatewayWatches.values());
      for (const g of st.groups.values()) if (g.watch) all.push(g.watch);
    }
    await Promise.all([...all.map((w) => w.stop()), this.client.destroy()]);
  }
}

/** The same instances (validated objects compared field by field, cheaply). */
function sameInstances(a: readonly ServiceInstance[], b: readonly ServiceInstance[]): boolean {
  if (a.length !== b.length) return false;
  return JSON.stringify(a) === JSON.stringify(b);
}
