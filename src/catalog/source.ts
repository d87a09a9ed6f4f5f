import type { Catalog } from './catalog.js';

/**
 * A catalog source produces validated catalogs; the file source and the Consul watcher both
 * implement it. `start` resolves once the first catalog was delivered (or rejects with why not);
 * later failures are reported through `onFailure` and never replace the catalog being served.
 */
export interface CatalogSource {
  readonly name: string;
  start(onCatalog: (catalog: Catalog) => void, onFailure?: (reason: string) => void): Promise<void>;
  close(): Promise<void>;
}
