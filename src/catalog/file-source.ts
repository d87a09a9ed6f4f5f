/**
 * Catalog from a file, watched: a valid new version is delivered; an invalid one is logged and
 * the previous catalog keeps serving. Watches the directory (editors and `mv` replace the file),
 * with a periodic stat as a fallback for file systems without change events.
 */
import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { CatalogDnsError } from '../errors.js';
import type { Logger } from '../log.js';
import { parseCatalog, type Catalog } from './catalog.js';
import type { CatalogSource } from './source.js';

export interface FileSourceOptions {
  readonly path: string;
  readonly logger: Logger;
  /** Delay after a change event before reading (coalesces bursts of writes). */
  readonly debounceMs?: number;
  readonly pollMs?: number;
}

export class FileCatalogSource implements CatalogSource {
  readonly name = 'file';
  readonly path: string;
  private readonly log: Logger;
  private readonly debounceMs: number;
  private readonly pollMs: number;
  private watcher: FSWatcher | null = null;
  private poll: NodeJS.Timeout | null = null;
  private timer: NodeJS.Timeout | null = null;
  private lastDigest = '';
  private lastMtime = 0;
  private onCatalog: ((c: Catalog) => void) | null = null;
  private onFailure: (reason: string) => void = () => {};
  private reading: Promise<void> = Promise.resolve();
  reloads = 0;
  rejected = 0;

  constructor(opts: FileSourceOptions) {
    this.path = resolve(opts.path);
    this.log = opts.logger.child({ component: 'catalog-file' });
    this.debounceMs = opts.debounceMs ?? 100;
    this.pollMs = opts.pollMs ?? 2000;
  }

  /** Reads and validates the file once. Throws CatalogError / CatalogDnsError. */
  async load(): Promise<{ catalog: Catalog; digest: string; warnings: readonly string[] }> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (e) {
      throw new CatalogDnsError('CDNS_ERR_CATALOG_READ', `cannot read catalog file ${this.path}: ${(e as Error).message}`, { cause: e });
    }
    const digest = createHash('sha256').update(text).digest('hex');
    const { catalog, warnings } = parseCatalog(text);
    return { catalog, digest, warnings };
  }

  async start(onCatalog: (c: Catalog) => void, onFailure?: (reason: string) => void): Promise<void> {
    if (onFailure) this.onFailure = onFailure;
    const first = await this.load();
    for (const w of first.warnings) this.log.warn({ path: this.path }, w);
    this.lastDigest = first.digest;
    this.lastMtime = (await stat(this.path)).mtimeMs;
    this.onCatalog = onCatalog;
    onCatalog(first.catalog);
    const file = basename(this.path);
    try {
      this.watcher = watch(dirname(this.path), (_event, name) => {
        if (name === null || name === file) this.schedule();
      });
      this.watcher.on('error', (e) => this.log.warn({ err: e }, 'file watch failed; polling only'));
    } catch (e) {
      this.log.warn({ err: e }, 'file watch unavailable; polling only');
    }
    this.poll = setInterval(() => {
      stat(this.path).then((s) => { if (s.mtimeMs !== this.lastMtime) this.schedule(); }, () => {});
    }, this.pollMs);
    this.poll.unref();
  }

  /** Re-reads the file now (SIGHUP). */
  reload(): Promise<void> {
    this.reading = this.reading.then(() => this.check(true));
    return this.reading;
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.reading = this.reading.then(() => this.check(false));
    }, this.debounceMs);
  }

  private async check(force: boolean): Promise<void> {
    if (!this.onCatalog) return;
    try {
      this.lastMtime = (await stat(this.path)).mtimeMs;
    } catch {
      this.log.warn({ path: this.path }, 'catalog file missing; keeping the current zone');
      this.onFailure(`catalog file ${this.path} is missing`);
      return;
    }
    try {
      const { catalog, digest, warnings } = await this.load();
      if (!force && digest === this.lastDigest) return;
      for (const w of warnings) this.log.warn({ path: this.path }, w);
      this.lastDigest = digest;
      this.reloads++;
      this.onCatalog(catalog);
    } catch (e) {
      this.rejected++;
      this.log.error({ path: this.path, reason: (e as Error).message }, 'catalog file rejected; keeping the current zone');
      this.onFailure((e as Error).message);
    }
  }

  async close(): Promise<void> {
    this.onCatalog = null;
    this.watcher?.close();
    this.watcher = null;
    if (this.poll) clearInterval(this.poll);
    if (this.timer) clearTimeout(this.timer);
    this.poll = this.timer = null;
    await this.reading.catch(() => {});
  }
}
