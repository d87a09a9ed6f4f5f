/**
 * The live Consul catalog source: follows Consul's HTTP API with blocking queries and delivers
 * catalogs, each with the entries that changed since the last one (so a commit costs what changed).
 *
 * Per datacenter: one watch on /v1/catalog/nodes, one on /v1/catalog/services (which services
 * exist), and one on /v1/health/service/<name> per service (a blocking query there wakes only when
 * that service, its checks or its nodes change). Every read is `?stale`: any server answers, so a
 * leader election does not stop the flow. Changes are coalesced in a quiet window (`min` of
 * quiet, at most `max` of waiting) into one catalog. Failures never reach the zone: the last good
 * catalog keeps serving, and the source reports each failure and when it last heard from Consul.
 *
 * The start comes first: every service is read (non-blocking, `concurrency` at a time, over the
 * client's small shared pool) and the first catalog is delivered as soon as the last read is in,
 * then committed; only after that do the per-service watches open their own connections for their
 * blocking queries, a batch per event-loop turn (so DNS queries are answered in between). A change
 * made meanwhile is not lost: each blocking query waits past the index its service was read at,
 * and returns at once when that index has moved.
 */
import { validateNodeList, validateServiceEntries, type Catalog, type CatalogNode, type CatalogPreview, type DatacenterCatalog, type ServiceInstance } from './catalog.js';
import type { ConsulClient, ConsulResponse } from './consul-client.js';
import type { CatalogSource, ChangeHint } from './source.js';
import { BlockingWatch, DEFAULT_TIMING, type WatchTiming } from './watch.js';
import type { Logger } from '../log.js';

export interface ConsulSourceOptions {
  readonly client: ConsulClient;
  readonly logger: Logger;
  /** Datacenters to follow; empty: every datacenter /v1/catalog/datacenters lists. */
  readonly datacenters?: readonly string[];
  readonly timing?: WatchTiming;
  /** Quiet window: commit after `minMs` without a change, and at least every `maxMs` while changes go on. */
  readonly quiet?: { readonly minMs: number; readonly maxMs: number };
  /** The catalog to serve until Consul answers (the snapshot persisted by the last run), or null. */
  readonly initial?: (preview?: (p: CatalogPreview) => void) => Promise<Catalog | null>;
  /** How many initial reads run at once (default 32). */
  readonly concurrency?: number;
  /** How many watches open their blocking query's connection per event-loop turn (default 32). */
  readonly openBatch?: number;
  /**
   * A cheap non-blocking read (/v1/catalog/datacenters, which needs no leader) this often (default
   * 5 s): blocking queries parked on an unchanging catalog say nothing about whether Consul is still
   * there, and max_stale counts from the last answer.
   */
  readonly probeMs?: number;
  /**
   * Hold back an update that removes more than `share` of all instances until it has been seen for
   * `holdMs` (default 0.5 and 60 s); null: no guard.
   */
  readonly guard?: { readonly share: number; readonly holdMs: number } | null;
}

/** Below this many instances the removal guard does not apply (small catalogs change wholesale). */
const GUARD_MIN_INSTANCES = 10;

interface DcState {
  readonly name: string;
  nodes: Map<string, CatalogNode>;
  services: Map<string, readonly ServiceInstance[]>;
  readonly watches: Map<string, BlockingWatch<unknown>>;
  /** Services listed but not read yet (the first catalog waits for them). */
  readonly pending: Set<string>;
  nodesRead: boolean;
  servicesRead: boolean;
}

/** The queued start of a watch, so a service gone before its first read leaves the queue. */
const starters = new WeakMap<BlockingWatch<unknown>, () => void>();

export class ConsulCatalogSource implements CatalogSource {
  readonly name = 'consul';
  private readonly client: ConsulClient;
  private readonly log: Logger;
  private readonly timing: WatchTiming;
  private readonly quiet: { minMs: number; maxMs: number };
  private readonly dcs = new Map<string, DcState>();
  private readonly listWatches: Array<BlockingWatch<unknown>> = [];
  private localDc = '';
  private onCatalog: ((c: Catalog, hint?: ChangeHint) => void | Promise<unknown>) | null = null;
  private onFailure: (reason: string) => void = () => {};
  private dirtyServices = new Set<string>();
  private dirtyNodes = new Set<string>();
  private pendingSince: number | null = null;
  private quietTimer: NodeJS.Timeout | null = null;
  private maxTimer: NodeJS.Timeout | null = null;
  private firstSync: (() => void) | null = null;
  private closed = false;
  private readonly initial: ((preview?: (p: CatalogPreview) => void) => Promise<Catalog | null>) | null;
  private readonly concurrency: number;
  private readonly probeMs: number;
  private probeTimer: NodeJS.Timeout | null = null;
  private inflight = 0;
  /** Initial reads waiting for a place, in order (a Set: taking the first and removing any are O(1)). */
  private readonly queue = new Set<() => void>();
  private readonly guard: { share: number; holdMs: number } | null;
  private delivered: number | null = null;
  /** Instances at each delivery within the last hold (time, count). */
  private history: Array<[number, number]> = [];
  private heldSince: number | null = null;
  /** Updates held back by the removal guard. */
  heldBack = 0;
  /** When Consul last answered, and whether it is answering now (state transitions are logged). */
  lastContact: number | null = null;
  reachable: boolean | null = null;
  commits = 0;
  /**
   * Watches waiting to open their blocking query's connection (see `beforeBlocking`), released
   * `openBatch` per event-loop turn once the first catalog is committed (`opening`).
   */
  private readonly toOpen: Array<() => void> = [];
  private toOpenAt = 0;
  private opening = false;
  private openScheduled = false;
  private readonly openBatch: number;

  constructor(opts: ConsulSourceOptions) {
    this.client = opts.client;
    this.log = opts.logger.child({ component: 'consul' });
    this.timing = opts.timing ?? DEFAULT_TIMING;
    this.quiet = opts.quiet ?? { minMs: 50, maxMs: 500 };
    this.initial = opts.initial ?? null;
    this.concurrency = opts.concurrency ?? 32;
    this.openBatch = opts.openBatch ?? 32;
    this.probeMs = opts.probeMs ?? 5000;
    this.guard = opts.guard === undefined ? { share: 0.5, holdMs: 60_000 } : opts.guard;
    this.wantDcs = opts.datacenters ?? [];
    this.client.onSuccess = () => this.contact();
  }

  private readonly wantDcs: readonly string[];

  /**
   * Serves the initial catalog at once when there is one (Consul may be down); otherwise resolves
   * once every followed service has been read from Consul.
   */
  async start(onCatalog: (c: Catalog, hint?: ChangeHint) => void | Promise<unknown>, onFailure?: (reason: string) => void,
    onPreview?: (p: CatalogPreview) => void): Promise<void> {
    this.onCatalog = onCatalog;
    if (onFailure) this.onFailure = onFailure;
    const synced = new Promise<void>((resolve) => { this.firstSync = resolve; });
    const initial = this.initial ? await this.initial(onPreview) : null;
    void this.discover();
    this.probeTimer = setInterval(() => {
      if (this.dcs.size) this.client.get('/v1/catalog/datacenters').catch((e: unknown) => this.failed(e));
    }, this.probeMs);
    this.probeTimer.unref();
    if (initial) {
      this.delivered = [...initial.datacenters.values()].reduce((n, d) => n + [...d.services.values()].reduce((m, l) => m + l.length, 0), 0);
      onCatalog(initial);
      return;
    }
    await synced;
  }

  /** Learns the local datacenter and the datacenters to follow, retrying until Consul answers. */
  private async discover(): Promise<void> {
    let failures = 0;
    while (!this.closed) {
      try {
        const self = await this.client.get<{ Config?: { Datacenter?: string } }>('/v1/agent/self');
        const dcs = await this.client.get<string[]>('/v1/catalog/datacenters');
        this.contact();
        this.localDc = self.body.Config?.Datacenter ?? dcs.body[0] ?? 'dc1';
        const names = this.wantDcs.length ? this.wantDcs : dcs.body;
        for (const dc of names) this.follow(dc);
        return;
      } catch (e) {
        failures++;
        this.failed(e);
        await new Promise((r) => setTimeout(r, Math.min(this.timing.maxBackoffMs, this.timing.backoffMs * 2 ** Math.min(failures, 10)) * (0.5 + Math.random() / 2)));
      }
    }
  }

  private follow(dc: string): void {
    const st: DcState = { name: dc, nodes: new Map(), services: new Map(), watches: new Map(), pending: new Set(), nodesRead: false, servicesRead: false };
    this.dcs.set(dc, st);
    const nodes = new BlockingWatch<unknown>(this.client, '/v1/catalog/nodes', { dc, stale: true }, (r) => this.onNodes(st, r), (e) => this.failed(e), this.timing,
      { reuseSameBody: true });
    const services = new BlockingWatch<unknown>(this.client, '/v1/catalog/services', { dc, stale: true }, (r) => this.onServices(st, r), (e) => this.failed(e), this.timing,
      { reuseSameBody: true });
    this.listWatches.push(nodes, services);
    nodes.start();
    services.start();
  }

  private onNodes(st: DcState, r: ConsulResponse<unknown>): void {
    this.contact();
    if (r.same && st.nodesRead) return; // the same bytes: no node changed
    let list;
    try {
      list = validateNodeList(st.name, r.body);
    } catch (e) {
      this.failed(e);
      return;
    }
    const next = list.nodes;
    for (const [name, n] of next) {
      const old = st.nodes.get(name);
      if (!old || JSON.stringify(old) !== JSON.stringify(n)) this.dirtyNodes.add(`${st.name}\0${name}`);
      else next.set(name, old); // keep the object instances already share
    }
    for (const name of st.nodes.keys()) if (!next.has(name)) this.dirtyNodes.add(`${st.name}\0${name}`);
    st.nodes = next;
    st.nodesRead = true;
    this.changed();
  }

  private onServices(st: DcState, r: ConsulResponse<unknown>): void {
    this.contact();
    // The list's index moves with every registration anywhere; the same names and tags mean no
    // watch to start or stop (the bytes are compared, the body is not even parsed again).
    if (r.same && st.servicesRead) return;
    const body = r.body;
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      this.failed(new Error(`/v1/catalog/services in ${st.name}: expected an object`));
      return;
    }
    const names = new Set(Object.keys(body));
    for (const name of names) {
      if (st.watches.has(name)) continue;
      st.pending.add(name);
      let first = true;
      // The first attempt (answered or failed) frees its place among the initial reads.
      const done = () => { if (first) { first = false; this.inflight--; this.pump(); } };
      const w = new BlockingWatch<unknown>(this.client, `/v1/health/service/${encodeURIComponent(name)}`, { dc: st.name, stale: true },
        (resp) => { done(); this.onService(st, name, resp); }, (e) => { done(); this.failed(e); }, this.timing,
        { beforeBlocking: (signal) => this.openTurn(signal) });
      st.watches.set(name, w);
      const start = () => w.start();
      starters.set(w, start);
      this.limited(start);
    }
    for (const [name, w] of st.watches) {
      if (names.has(name)) continue;
      void w.stop();
      st.watches.delete(name);
      st.pending.delete(name);
      this.queue.delete(starters.get(w)!);
      const gone = st.services.get(name);
      if (gone) {
        this.instanceCount -= gone.length;
        st.services.delete(name);
        this.dirtyServices.add(`${st.name}\0${name}`);
      }
    }
    st.servicesRead = true;
    this.changed();
  }

  /** Starts initial reads a few at a time (the first read of each service is not a blocking one). */
  private limited(start: () => void): void {
    this.queue.add(start);
    this.pump();
  }

  private pump(): void {
    while (this.inflight < this.concurrency && this.queue.size) {
      const start = this.queue.values().next().value!;
      this.queue.delete(start);
      this.inflight++;
      start();
    }
  }

  private onService(st: DcState, name: string, r: ConsulResponse<unknown>): void {
    this.contact();
    st.pending.delete(name);
    if (!st.watches.has(name)) return;
    let v;
    try {
      v = validateServiceEntries(st.name, name, r.body, st.nodes);
    } catch (e) {
      this.failed(e);
      return;
    }
    if (v.instances.length === 0 && r.filteredByAcls) this.log.warn({ dc: st.name, service: name }, 'results filtered by ACLs: the token cannot read this service');
    this.instanceCount += v.instances.length - (st.services.get(name)?.length ?? 0);
    st.services.set(name, v.instances);
    this.dirtyServices.add(`${st.name}\0${name}`);
    this.changed();
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
    setImmediate(() => {
      this.openScheduled = false;
      const end = Math.min(this.toOpen.length, this.toOpenAt + this.openBatch);
      while (this.toOpenAt < end) this.toOpen[this.toOpenAt++]!();
      if (this.toOpenAt === this.toOpen.length) { this.toOpen.length = 0; this.toOpenAt = 0; }
      this.releaseOpens();
    });
  }

  /** The first catalog is in (committed, or held back by the guard): the watches may park. */
  private startOpening(): void {
    if (this.opening) return;
    this.opening = true;
    this.releaseOpens();
  }

  /** Quiet window: wait for `min` without changes, but never longer than `max` since the first. */
  private changed(): void {
    if (this.closed) return;
    this.pendingSince ??= Date.now();
    if (this.commits === 0) {
      // The first catalog waits for every read, not for quiet: delivered when the last one is in.
      if (this.synced()) this.flush();
      return;
    }
    if (this.quietTimer) clearTimeout(this.quietTimer);
    this.quietTimer = setTimeout(() => this.flush(), this.quiet.minMs);
    this.maxTimer ??= setTimeout(() => this.flush(), this.quiet.maxMs);
  }

  private synced(): boolean {
    if (this.dcs.size === 0) return false;
    for (const st of this.dcs.values()) if (!st.nodesRead || !st.servicesRead || st.pending.size) return false;
    return true;
  }

  private flush(): void {
    if (this.quietTimer) clearTimeout(this.quietTimer);
    if (this.maxTimer) clearTimeout(this.maxTimer);
    this.quietTimer = this.maxTimer = null;
    if (this.closed || !this.onCatalog || !this.synced()) return;
    if (!this.dirtyServices.size && !this.dirtyNodes.size && this.commits > 0) return;
    if (this.guarded()) {
      this.startOpening();
      return;
    }
    const split = (k: string) => k.split('\0') as [string, string];
    const hint: ChangeHint = { services: [...this.dirtyServices].map(split), nodes: [...this.dirtyNodes].map(split), since: this.pendingSince ?? Date.now() };
    this.pendingSince = null;
    this.dirtyServices.clear();
    this.dirtyNodes.clear();
    // The source's own maps, not copies (a copy per commit would cost what the catalog holds): a
    // commit compares the entries it is told about with what each unit was built from, and every
    // entry (a service's instance list, a node) is replaced, never changed in place.
    const datacenters = new Map<string, DatacenterCatalog>();
    for (const [dc, st] of this.dcs) datacenters.set(dc, st);
    const first = this.commits === 0;
    this.commits++;
    this.delivered = this.instances();
    this.history.push([Date.now(), this.delivered]);
    const committed = this.onCatalog({ datacenter: this.localDc, datacenters }, first ? undefined : hint);
    if (first) {
      // Thousands of connections opened while the first zone is built would only delay it.
      if (committed) void committed.then(() => this.startOpening(), () => this.startOpening());
      else this.startOpening();
      this.log.info({ datacenters: [...this.dcs.keys()], services: [...this.dcs.values()].reduce((n, s) => n + s.services.size, 0) }, 'consul catalog read');
      this.firstSync?.();
      this.firstSync = null;
    }
  }

  /** Instances in the catalog, kept as services come and go (not counted per commit). */
  private instances(): number {
    return this.instanceCount;
  }
  private instanceCount = 0;

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
      // Asked again before the hold is over (another change, or the timer firing a little early:
      // timers run on the loop's clock, not Date.now()): look again when it is over, or a removal
      // that persists would wait for the next change in Consul to be applied.
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

  private contact(): void {
    this.lastContact = Date.now();
    if (this.reachable !== true) {
      if (this.reachable === false) this.log.info({ address: this.client.address }, 'consul reachable again');
      this.reachable = true;
    }
  }

  private failed(e: unknown): void {
    const message = (e as Error).message ?? String(e);
    if (this.log.isLevelEnabled('debug')) this.log.debug({ err: message }, 'consul request failed');
    if (this.reachable !== false) {
      this.log.warn({ err: message, code: (e as { code?: string }).code }, 'consul unavailable; serving the last good catalog');
      this.reachable = false;
    }
    this.onFailure(message);
  }

  /** Datacenter, parked watches and request figures (health, metrics, benches). */
  stats(): { watches: number; requests: number; bytes: number; errors: number } {
    let watches = this.listWatches.length;
    for (const st of this.dcs.values()) watches += st.watches.size;
    return { watches, requests: this.client.requests, bytes: this.client.bytesReceived, errors: this.client.errors };
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.probeTimer) clearInterval(this.probeTimer);
    if (this.quietTimer) clearTimeout(this.quietTimer);
    if (this.maxTimer) clearTimeout(this.maxTimer);
    if (this.guardTimer) clearTimeout(this.guardTimer);
    this.firstSync?.();
    const all = [...this.listWatches, ...[...this.dcs.values()].flatMap((s) => [...s.watches.values()])];
    await Promise.all(all.map((w) => w.stop()));
    await this.client.destroy();
  }
}
