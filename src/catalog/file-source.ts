/**
 * Catalog from a file, watched: a valid new version is delivered; an invalid one is logged and
 * the previous catalog keeps serving. Watches the directory (editors and `mv` replace the file),
 * with a periodic stat as a fallback for file systems without change events.
 *
 * Changes are coalesced by a quiet window (read once the file has been quiet for `quietMs`, at the
 * latest `maxWaitMs` after the first change), so a file rewritten faster than `quietMs` is still
 * picked up. Only a regular file of at most `maxBytes` is read (see readRegularFile); one read runs
 * at a time, at most one more waits behind it, and close() never waits long for a read that does
 * not finish (a hung network file system).
 */
import { watch, type FSWatcher } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import type { CatalogDnsError } from '../errors.js';
import { readRegularFile } from '../files.js';
import type { Logger } from '../log.js';
import type { Catalog, CatalogPreview } from './catalog.js';
import { loadCatalog, sha256Sliced } from './load.js';
import { QuietWindow, realTimers, type Timers } from './quiet-window.js';
import type { CatalogSource } from './source.js';

export interface FileSourceOptions {
  readonly path: string;
  readonly logger: Logger;
  /** Read once the file has had no change for this long (coalesces bursts of writes). Default 100 ms. */
  readonly quietMs?: number;
  /** ... and at the latest this long after the first change, while writes go on. Default 1 s. */
  readonly maxWaitMs?: number;
  /** Interval of the stat fallback for file systems without change events. Default 2 s. */
  readonly pollMs?: number;
  /** Largest file read; a bigger one is rejected. Default 256 MiB. */
  readonly maxBytes?: number;
  /** A read taking longer than this is logged (once per read). Default 5 s. */
  readonly slowReadMs?: number;
  /** How long close() waits for a read in progress. Default 1 s. */
  readonly closeWaitMs?: number;
  readonly timers?: Timers;
}

export const DEFAULT_MAX_CATALOG_BYTES = 256 * 1024 * 1024;

interface Loaded { readonly catalog: Catalog; readonly digest: string; readonly signature: string; readonly warnings: readonly string[] }

export class FileCatalogSource implements CatalogSource {
  readonly name = 'file';
  readonly path: string;
  private readonly log: Logger;
  private readonly pollMs: number;
  private readonly maxBytes: number;
  private readonly slowReadMs: number;
  private readonly closeWaitMs: number;
  private readonly timers: Timers;
  private readonly window: QuietWindow;
  private watcher: FSWatcher | null = null;
  private poll: NodeJS.Timeout | null = null;
  private polling = false;
  private lastDigest = '';
  /** inode, size and mtime of the file last read: the poll compares against it. */
  private lastSignature = '';
  private onCatalog: ((c: Catalog) => void) | null = null;
  private onFailure: (reason: string) => void = () => {};
  private closed = false;
  /** The check running now, and the one waiting behind it (SIGHUP makes it a forced one). */
  private running: Promise<void> | null = null;
  private queued: { force: boolean; done: () => void; promise: Promise<void> } | null = null;
  /** File system calls started and not finished (a hung one keeps this above 0). */
  private io = 0;
  reloads = 0;
  rejected = 0;

  constructor(opts: FileSourceOptions) {
    this.path = resolve(opts.path);
    this.log = opts.logger.child({ component: 'catalog-file' });
    this.pollMs = opts.pollMs ?? 2000;
    this.maxBytes = opts.maxBytes ?? DEFAULT_MAX_CATALOG_BYTES;
    this.slowReadMs = opts.slowReadMs ?? 5000;
    this.closeWaitMs = opts.closeWaitMs ?? 1000;
    this.timers = opts.timers ?? realTimers;
    this.window = new QuietWindow({
      minMs: opts.quietMs ?? 100,
      maxMs: opts.maxWaitMs ?? 1000,
      timers: this.timers,
      onCommit: () => void this.request(false),
    });
  }

  /** True while a file system call of this source has not returned (e.g. on a hung NFS mount). */
  get ioPending(): boolean {
    return this.io > 0;
  }

  /**
   * Reads and validates the file once, in slices (load.ts: the zone being served keeps answering).
   * Throws CatalogError / CatalogDnsError. With `preview` (a start), the document goes there as soon
   * as its structure and node lists are checked, so that names are answered meanwhile (ZoneStore.preview).
   */
  async load(preview?: (p: CatalogPreview) => void): Promise<Loaded> {
    this.io++;
    const slow = this.timers.setTimeout(() => {
      this.log.warn({ path: this.path, ms: this.slowReadMs }, 'catalog file read is slow; still waiting for it');
    }, this.slowReadMs);
    let read;
    try {
      read = await readRegularFile(this.path, { maxBytes: this.maxBytes, what: 'catalog file' });
    } finally {
      this.timers.clearTimeout(slow);
      this.io--;
    }
    const { catalog, warnings } = await loadCatalog(read.data, preview);
    const digest = await sha256Sliced(read.data);
    return { catalog, digest, signature: signatureOf(read.stats), warnings };
  }

  async start(onCatalog: (c: Catalog) => void, onFailure?: (reason: string) => void, onPreview?: (p: CatalogPreview) => void): Promise<void> {
    if (onFailure) this.onFailure = onFailure;
    const first = await this.load(onPreview);
    if (this.closed) return;
    for (const w of first.warnings) this.log.warn({ path: this.path }, w);
    this.lastDigest = first.digest;
    this.lastSignature = first.signature;
    this.onCatalog = onCatalog;
    onCatalog(first.catalog);
    const file = basename(this.path);
    try {
      this.watcher = watch(dirname(this.path), (_event, name) => {
        if (name === null || name === file) this.window.touch();
      });
      this.watcher.on('error', (e) => this.log.warn({ err: e }, 'file watch failed; polling only'));
    } catch (e) {
      this.log.warn({ err: e }, 'file watch unavailable; polling only');
    }
    this.poll = setInterval(() => this.pollOnce(), this.pollMs);
    this.poll.unref();
  }

  /** Re-reads the file now (SIGHUP), even if it looks unchanged. */
  reload(): Promise<void> {
    this.window.cancel(); // this read covers the changes seen so far
    return this.request(true);
  }

  /** One stat at a time: on a hung file system, polls must not pile up on the thread pool. */
  private pollOnce(): void {
    if (this.polling || this.closed) return;
    this.polling = true;
    this.io++;
    stat(this.path).then((s) => signatureOf(s), () => '').then((sig) => {
      if (sig === this.lastSignature) return;
      this.lastSignature = sig;
      this.window.touch();
    }).finally(() => { this.io--; this.polling = false; });
  }

  /** After a failed read: what is there now, so the poll does not re-read (and re-log) it every round. */
  private async noteSignature(): Promise<void> {
    this.io++;
    try {
      this.lastSignature = signatureOf(await stat(this.path));
    } catch {
      this.lastSignature = '';
    } finally {
      this.io--;
    }
  }

  /** Runs a check now, or after the running one (coalescing every request made meanwhile). */
  private request(force: boolean): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (!this.running) return this.run(force);
    if (this.queued) {
      if (force) this.queued = { ...this.queued, force: true };
      return this.queued.promise;
    }
    let done!: () => void;
    const promise = new Promise<void>((r) => (done = r));
    this.queued = { force, done, promise };
    return promise;
  }

  private run(force: boolean): Promise<void> {
    const p = this.check(force).catch((e: unknown) => {
      this.log.error({ err: e, path: this.path }, 'catalog file check failed');
    }).finally(() => {
      this.running = null;
      const next = this.queued;
      this.queued = null;
      if (!next) return;
      if (this.closed) next.done();
      else void this.run(next.force).then(next.done);
    });
    this.running = p;
    return p;
  }

  private async check(force: boolean): Promise<void> {
    let loaded: Loaded;
    try {
      loaded = await this.load();
    } catch (e) {
      if (this.closed || !this.onCatalog) return;
      await this.noteSignature();
      if (((e as CatalogDnsError).cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
        this.log.warn({ path: this.path }, 'catalog file missing; keeping the current zone');
        this.onFailure(`catalog file ${this.path} is missing`);
        return;
      }
      this.rejected++;
      this.log.error({ path: this.path, reason: (e as Error).message }, 'catalog file rejected; keeping the current zone');
      this.onFailure((e as Error).message);
      return;
    }
    if (this.closed || !this.onCatalog) return;
    this.lastSignature = loaded.signature;
    if (!force && loaded.digest === this.lastDigest) return;
    for (const w of loaded.warnings) this.log.warn({ path: this.path }, w);
    this.lastDigest = loaded.digest;
    this.reloads++;
    this.onCatalog(loaded.catalog);
  }

  /**
   * Stops watching. A read in progress is waited for at most `closeWaitMs`, then abandoned (its
   * result is dropped); `ioPending` tells whether one is still out.
   */
  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.onCatalog = null;
      this.window.close();
      this.watcher?.close();
      this.watcher = null;
      if (this.poll) clearInterval(this.poll);
      this.poll = null;
      this.queued?.done();
      this.queued = null;
    }
    const running = this.running;
    if (!running) return;
    let timer: unknown = null;
    await Promise.race([running, new Promise<void>((r) => (timer = this.timers.setTimeout(r, this.closeWaitMs)))]);
    this.timers.clearTimeout(timer);
  }
}

function signatureOf(s: { ino: number; size: number; mtimeMs: number }): string {
  return `${s.ino}:${s.size}:${s.mtimeMs}`;
}
