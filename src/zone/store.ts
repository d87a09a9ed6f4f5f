/**
 * ZoneStore: the update path, kept apart from the query path, which only reads `current()` once per
 * query. A commit compares the new catalog with the one being served, builds only the units that
 * changed (in slices of a few milliseconds, yielding to the event loop, while the current zone keeps
 * answering), then applies them and swaps in the new version in one synchronous step. A failed build
 * never touches the serving zone; the store remembers when it last succeeded and why it last failed.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Catalog, CatalogPreview } from '../catalog/catalog.js';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import { emptyZoneData, planCommit, zoneVersion, type ChangeHint, type Plan } from './build.js';
import { provisionalZone } from './provisional.js';
import { nextSerial } from './serial.js';
import { diffRecords, unitRecords, type RecordDiff } from './listing.js';
import type { RR } from './records.js';
import { Translator, type Unit } from './units.js';
import { cacheBudget } from '../cache-budget.js';
import type { RingTable } from '../ring-table.js';
import { nameMemo, type Owner, type Source, type Zone, type ZoneData } from './zone.js';

interface SerialState { serial: number; contentHash: string }

export interface CommitResult {
  readonly zone: Zone;
  readonly changed: boolean;
  /** Units rebuilt or removed by this commit. */
  readonly units: number;
  /** Wall time of the whole commit, and the longest synchronous slice of it. */
  readonly ms: number;
  readonly maxSliceMs: number;
  /** Records added and removed by this commit (SOA excluded), or null after a build from scratch. */
  readonly diff: RecordDiff | null;
}

/** Above this many changed units, a commit does not compute its record diff (a secondary needs AXFR). */
const MAX_DIFF_UNITS = 500;
/** Up to this many changed units, a commit is applied to the serving index in place. */
const IN_PLACE_UNITS = 500;
/** Units indexed per slice when a new generation of the index is filled. */
const APPLY_CHUNK = 1000;

/** How long one synchronous slice of a build may run before yielding to queries. */
const SLICE_MS = 8;

export class ZoneStore {
  private zone: Zone | null = null;
  private data: ZoneData | null = null;
  private tr: Translator | null = null;
  private catalog: Catalog | null = null;
  private version: Source = { live: true };
  private state: SerialState | null;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly statePath: string | null;
  private config: Config;
  private readonly log: Logger;
  private readonly clock: () => number;
  lastSuccess: number | null = null;
  lastError: { at: number; message: string } | null = null;
  commits = 0;

  private readonly inPlaceUnits: number;
  private readonly memo: RingTable<Owner>;

  constructor(opts: {
    config: Config; logger: Logger; clock?: () => number;
    /** Commits changing more units fill a new index generation in slices (default 500). */
    inPlaceUnits?: number;
  }) {
    this.config = opts.config;
    this.inPlaceUnits = opts.inPlaceUnits ?? IN_PLACE_UNITS;
    this.memo = nameMemo(cacheBudget(opts.config.responseCacheBytes).names);
    this.log = opts.logger.child({ component: 'zone' });
    this.clock = opts.clock ?? Date.now;
    this.statePath = opts.config.dataDir ? join(opts.config.dataDir, 'serial.json') : null;
    this.state = this.loadState();
  }

  /** While set (max_stale passed without contact with the source), queries see no zone: SERVFAIL. */
  withheld = false;

  /** The zone being served: the last one committed. */
  current(): Zone | null {
    return this.withheld ? null : this.zone;
  }

  /** While the first zone is built: the provisional zone queries are answered from (provisional.ts). */
  private early: Zone | null = null;
  private built: Promise<void> | null = null;
  private builtNow: (() => void) | null = null;

  /**
   * Before the first commit completes: answers service and node names from `preview` (see
   * provisional.ts) until it does. Ignored once a zone exists.
   */
  preview(preview: CatalogPreview): void {
    if (this.zone || this.early) return;
    this.early = provisionalZone(new Translator(this.config, preview.datacenter), preview);
  }

  /**
   * No provisional zone any more: the first commit is done, or failed, or the catalog previewed
   * turned out invalid and another will come (the snapshot when Consul is followed). Held queries
   * are handed in again: to the complete zone, or answered as without a zone (SERVFAIL).
   */
  dropPreview(): void {
    if (!this.early) return;
    this.early = null;
    this.builtNow?.();
    this.builtNow = null;
    this.built = null;
  }

  /** The provisional zone while the first one is built, else null. */
  provisional(): Zone | null {
    return this.withheld ? null : this.early;
  }

  /** Settles when there is no provisional zone any more: the first commit has completed or failed. */
  whenBuilt(): Promise<void> {
    if (!this.early) return Promise.resolve();
    return (this.built ??= new Promise<void>((resolve) => (this.builtNow = resolve)));
  }

  /**
   * Commits `catalog`: only what differs from the catalog being served is rebuilt. With a `hint`
   * (the entries the source knows changed), only those are compared, so the cost does not grow with
   * the catalog. Commits run one at a time, in call order. Rejects (and keeps the current zone) on failure.
   */
  commit(catalog: Catalog, source = 'catalog', hint?: ChangeHint): Promise<CommitResult> {
    const run = this.queue.then(() => this.run(catalog, source, hint));
    this.queue = run.catch(() => {});
    return run;
  }

  private async run(catalog: Catalog, source: string, hint?: ChangeHint): Promise<CommitResult> {
    const t0 = performance.now();
    let maxSlice = 0;
    const fresh = !this.data || !this.tr || this.catalog?.datacenter.toLowerCase() !== catalog.datacenter.toLowerCase();
    const tr = fresh ? new Translator(this.config, catalog.datacenter) : this.tr!;
    const data = fresh ? emptyZoneData(this.config, catalog.datacenter) : this.data!;
    let plan: Plan;
    try {
      const gen = planCommit(tr, data, catalog, (msg) => this.log.warn({ source }, msg), fresh ? undefined : hint);
      let sliceStart = performance.now();
      let steps = 0;
      for (;;) {
        const r = gen.next();
        if (r.done) { plan = r.value; break; }
        if (++steps % 32 === 0 && performance.now() - sliceStart > SLICE_MS) {
          maxSlice = Math.max(maxSlice, performance.now() - sliceStart);
          await new Promise<void>((resolve) => setImmediate(resolve));
          sliceStart = performance.now();
        }
      }
      maxSlice = Math.max(maxSlice, performance.now() - sliceStart);
    } catch (e) {
      return this.failed(e, source);
    }

    // Small commits are applied in place, in one synchronous step (a few microseconds per unit).
    // Large ones (and builds from scratch) fill a new generation of the index in slices while the
    // current one keeps serving, and the swap is one assignment.
    const t1 = performance.now();
    const diff = fresh || plan.put.length + plan.remove.length > MAX_DIFF_UNITS ? null : this.diffOf(data, plan, tr);
    let next = data;
    let gone: Unit[];
    if (!fresh && plan.put.length + plan.remove.length <= this.inPlaceUnits) {
      gone = data.apply(plan.put, plan.remove);
    } else {
      next = fresh ? data : data.successor();
      const replaced = new Set([...plan.remove, ...plan.put.map((u) => u.key)]);
      gone = fresh ? [] : [...data.units.values()].filter((u) => replaced.has(u.key));
      const kept = fresh ? [] : [...data.units.values()].filter((u) => !replaced.has(u.key));
      for (const part of [kept, plan.put]) {
        for (let i = 0; i < part.length; i += APPLY_CHUNK) {
          const s0 = performance.now();
          next.apply(part.slice(i, i + APPLY_CHUNK));
          maxSlice = Math.max(maxSlice, performance.now() - s0);
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
      }
    }
    const t2 = performance.now();
    next.setDatacenters(catalog.datacenters.keys());
    const version: Source = { live: true };
    let zone: Zone;
    try {
      // One name memo for the store, emptied for each version (names may resolve differently now).
      this.memo.clear();
      zone = zoneVersion(tr, next, catalog, (hash) => this.serialFor(hash), version, this.memo);
    } catch (e) {
      if (next === data && !fresh) {
        // Put the previous units back: the serving zone must not see a half-applied commit.
        data.apply(gone, plan.put.filter((u) => !gone.some((g) => g.key === u.key)).map((u) => u.key));
        for (const g of gone) g.live = true;
      }
      return this.failed(e, source);
    }
    if (next !== data) for (const g of gone) next.kill(g);
    const changed = this.zone === null || this.zone.contentHash !== zone.contentHash;
    this.version.live = false;
    this.version = version;
    this.zone = zone;
    this.data = next;
    this.tr = tr;
    this.catalog = catalog;
    maxSlice = Math.max(maxSlice, performance.now() - (next === data && !fresh ? t1 : t2));
    this.lastSuccess = this.clock();
    this.lastError = null;
    this.commits++;
    this.dropPreview();
    if (!this.state || this.state.serial !== zone.serial || this.state.contentHash !== zone.contentHash) {
      this.state = { serial: zone.serial, contentHash: zone.contentHash };
      this.saveState();
    }
    const round = (x: number) => Math.round(x * 10) / 10;
    const result: CommitResult = { zone, changed, units: plan.put.length + plan.remove.length, ms: round(performance.now() - t0), maxSliceMs: round(maxSlice), diff };
    if (changed) {
      this.log.info({ serial: zone.serial, names: zone.stats.names, records: zone.stats.records, reverseZones: zone.reverseZoneCount, units: result.units, ms: result.ms, maxSliceMs: result.maxSliceMs, source }, 'zone committed');
    } else {
      this.log.debug({ serial: zone.serial, ms: result.ms, source }, 'zone unchanged');
    }
    return result;
  }

  /** What applying `plan` to `data` adds and removes, from the units' records. */
  private diffOf(data: ZoneData, plan: Plan, tr: Translator): RecordDiff {
    const before: RR[] = [];
    const after: RR[] = [];
    const list = (u: Unit | undefined, into: RR[]) => { if (u) into.push(...unitRecords(u, tr.domain, tr.localDc)); };
    for (const u of plan.put) { list(data.units.get(u.key), before); list(u, after); }
    for (const k of plan.remove) list(data.units.get(k), before);
    return diffRecords(before, after);
  }

  private serialFor(hash: string): number {
    return this.state && this.state.contentHash === hash ? this.state.serial : nextSerial(this.state?.serial ?? null, this.clock() / 1000);
  }

  private failed(e: unknown, source: string): never {
    this.lastError = { at: this.clock(), message: (e as Error).message };
    this.log.error({ err: e, source }, 'zone build failed; serving the previous zone');
    if (!this.zone) this.dropPreview();
    throw e;
  }

  /**
   * A reloaded configuration that changes the zone (domain, TTLs, SOA, compat, reverse zones, ...):
   * the catalog being served is built again from scratch under it (in slices, as any large commit),
   * and swapped in whole.
   */
  reconfigure(config: Config): Promise<CommitResult> | null {
    this.config = config;
    this.tr = null; // the next commit is a build from scratch
    return this.catalog ? this.commit(this.catalog, 'config') : null;
  }

  /** Records a failed sync without touching the zone. */
  recordFailure(message: string): void {
    this.lastError = { at: this.clock(), message };
  }

  private loadState(): SerialState | null {
    if (!this.statePath) return null;
    try {
      const s = JSON.parse(readFileSync(this.statePath, 'utf8')) as SerialState;
      if (Number.isInteger(s.serial) && s.serial >= 0 && s.serial < 2 ** 32 && typeof s.contentHash === 'string') return s;
      this.log.warn({ path: this.statePath }, 'serial state unreadable; starting from the clock');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn({ err: e, path: this.statePath }, 'serial state unreadable; starting from the clock');
    }
    return null;
  }

  /**
   * Durable before it is served: written to a temporary file, the file fsynced, renamed over the
   * old one, and the directory fsynced (the rename itself is then on disk), all in the synchronous
   * step that swaps the new zone in, so no query, NOTIFY or transfer can see a serial that a crash
   * could take back (a secondary would then ignore the next zone, RFC 1982 / RFC 1996). It costs
   * one small write and two fsyncs per commit that changes the serial, on the update path only.
   */
  private saveState(): void {
    if (!this.statePath || !this.state) return;
    try {
      const dir = this.config.dataDir!;
      mkdirSync(dir, { recursive: true });
      const tmp = `${this.statePath}.tmp`;
      const fd = openSync(tmp, 'w', 0o644);
      try {
        writeSync(fd, JSON.stringify(this.state) + '\n');
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, this.statePath);
      const dirFd = openSync(dir, 'r');
      try {
        fsyncSync(dirFd);
      } finally {
        closeSync(dirFd);
      }
    } catch (e) {
      // Serving goes on; the next restart may reuse a serial, so say so loudly.
      this.log.error({ err: e, path: this.statePath }, 'cannot persist the serial state');
    }
  }
}
