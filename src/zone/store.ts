/**
 * ZoneStore: the update path (build, swap, persist) kept apart from the query path, which only
 * reads `current()` once per query. A failed build never touches the serving zone; the store
 * remembers when it last succeeded and why it last failed.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Catalog } from '../catalog/catalog.js';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import { buildZone } from './build.js';
import { nextSerial } from './serial.js';
import type { Zone } from './zone.js';

interface SerialState { serial: number; contentHash: string }

export interface CommitResult {
  readonly zone: Zone;
  readonly changed: boolean;
  readonly ms: number;
}

export class ZoneStore {
  private zone: Zone | null = null;
  private state: SerialState | null;
  private readonly statePath: string | null;
  private readonly config: Config;
  private readonly log: Logger;
  private readonly clock: () => number;
  lastSuccess: number | null = null;
  lastError: { at: number; message: string } | null = null;
  commits = 0;

  constructor(opts: { config: Config; logger: Logger; clock?: () => number }) {
    this.config = opts.config;
    this.log = opts.logger.child({ component: 'zone' });
    this.clock = opts.clock ?? Date.now;
    this.statePath = opts.config.dataDir ? join(opts.config.dataDir, 'serial.json') : null;
    this.state = this.loadState();
  }

  current(): Zone | null {
    return this.zone;
  }

  /** Builds a zone from `catalog` and swaps it in. Throws (and keeps the old zone) on failure. */
  commit(catalog: Catalog, source = 'catalog'): CommitResult {
    const t0 = performance.now();
    let zone: Zone;
    try {
      zone = buildZone(catalog, {
        config: this.config,
        serialFor: (hash) =>
          this.state && this.state.contentHash === hash ? this.state.serial : nextSerial(this.state?.serial ?? null, this.clock() / 1000),
        warn: (msg) => this.log.warn({ source }, msg),
      });
    } catch (e) {
      this.lastError = { at: this.clock(), message: (e as Error).message };
      this.log.error({ err: e, source }, 'zone build failed; serving the previous zone');
      throw e;
    }
    const changed = this.zone === null || this.zone.contentHash !== zone.contentHash;
    this.zone = zone; // the swap: readers pick it up on their next query
    this.lastSuccess = this.clock();
    this.lastError = null;
    this.commits++;
    if (!this.state || this.state.serial !== zone.serial || this.state.contentHash !== zone.contentHash) {
      this.state = { serial: zone.serial, contentHash: zone.contentHash };
      this.saveState();
    }
    const ms = Math.round((performance.now() - t0) * 10) / 10;
    if (changed) {
      this.log.info({ serial: zone.serial, names: zone.stats.names, records: zone.stats.records, reverseZones: zone.reverseZones?.length ?? null, ms, source }, 'zone committed');
    }
    else this.log.debug({ serial: zone.serial, ms, source }, 'zone unchanged');
    return { zone, changed, ms };
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

  private saveState(): void {
    if (!this.statePath || !this.state) return;
    try {
      mkdirSync(this.config.dataDir!, { recursive: true });
      const tmp = `${this.statePath}.tmp`;
      writeFileSync(tmp, JSON.stringify(this.state) + '\n');
      renameSync(tmp, this.statePath);
    } catch (e) {
      // Serving goes on; the next restart may reuse a serial, so say so loudly.
      this.log.error({ err: e, path: this.statePath }, 'cannot persist the serial state');
    }
  }
}
