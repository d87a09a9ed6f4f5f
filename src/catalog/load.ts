/**
 * Catalog bytes (a catalog file, the persisted snapshot) to a validated catalog, in slices of a few
 * milliseconds, so that the zone being served keeps answering while a large file is read again.
 *
 * The bytes are split (split.ts) and the skeleton parsed and checked (openCatalog); `preview`, at a
 * start, gets the result at once, so that service and node names are answered while the service
 * lists are parsed and validated here (and the zone is built). A list that is not JSON makes the
 * whole text's parse report the error, as for a file that is not JSON at all. What stays
 * synchronous: parsing the skeleton (names and node lists) and one service's list at a time.
 */
import { createHash } from 'node:crypto';
import { openCatalog, parseCatalogJson, validateCatalog, type CatalogPreview, type ValidatedCatalog } from './catalog.js';
import { splitCatalogSteps } from './split.js';

/** How long one synchronous slice may run. */
const SLICE_MS = 8;
/** Bytes hashed per slice. */
const HASH_BYTES = 4 << 20;

/** Runs `steps` to completion, yielding to the event loop whenever a slice has run SLICE_MS. */
async function sliced<T>(steps: Generator<void, T>): Promise<T> {
  let slice = performance.now();
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
    if (performance.now() - slice > SLICE_MS) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      slice = performance.now();
    }
  }
}

/** Parses and validates `data` in slices (see above). Throws CatalogError. */
export async function loadCatalog(data: Buffer, preview?: (p: CatalogPreview) => void): Promise<ValidatedCatalog> {
  const split = await sliced(splitCatalogSteps(data));
  const opened = split ? openCatalog(split.skeleton, split.list) : openCatalog(parseCatalogJson(data.toString('utf8')));
  preview?.(opened.preview);
  try {
    return await sliced(opened.validate());
  } catch (e) {
    if (!(e instanceof SyntaxError)) throw e;
    return validateCatalog(parseCatalogJson(data.toString('utf8')));
  }
}

/** SHA-256 of `data` as hex, a few megabytes per slice. */
export async function sha256Sliced(data: Buffer): Promise<string> {
  const h = createHash('sha256');
  for (let i = 0; i < data.length; i += HASH_BYTES) {
    h.update(data.subarray(i, i + HASH_BYTES));
    if (i + HASH_BYTES < data.length) await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return h.digest('hex');
}
