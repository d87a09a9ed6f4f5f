import type { Catalog, CatalogPreview } from './catalog.js';

/** The catalog entries a new catalog changes, when the source knows them (see ZoneStore.commit). */
export interface ChangeHint {
  /** [datacenter, service name] as the catalog spells them. */
  readonly services?: ReadonlyArray<readonly [string, string]>;
  /** [datacenter, node name]. */
  readonly nodes?: ReadonlyArray<readonly [string, string]>;
  /** When the first of these changes was read (ms since the epoch): propagation lag. */
  readonly since?: number;
}

/**
 * A catalog source produces validated catalogs; the file source and the Consul watcher both
 * implement it. `start` resolves once the first catalog was delivered (or rejects with why not);
 * later failures are reported through `onFailure` and never replace the catalog being served.
 */
export interface CatalogSource {
  readonly name: string;
  /**
   * `onCatalog` may return the commit of the catalog it was given (settled when it is served).
   * `onPreview`, when the source can, gets the first catalog before its service entries are
   * validated (see ZoneStore.preview), then `onCatalog` gets it whole.
   */
  start(onCatalog: (catalog: Catalog, hint?: ChangeHint) => void | Promise<unknown>, onFailure?: (reason: string) => void,
    onPreview?: (preview: CatalogPreview) => void): Promise<void>;
  close(): Promise<void>;
}
