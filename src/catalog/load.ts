/**
 * Catalog bytes (a catalog file, the persisted snapshot) to a validated catalog.
 *
 * With `preview`, progressively, for a start: the bytes are split (split.ts), the skeleton parsed
 * and checked (openCatalog), and the preview handed over at once, so that service and node names
 * are answered while the service lists are parsed and validated here in slices of a few
 * milliseconds (and the zone is built). A list that is not JSON makes the whole text's parse report
 * the error, as for a file that is not JSON at all.
 */
import { openCatalog, parseCatalog, parseCatalogJson, validateCatalog, type CatalogPreview, type ValidatedCatalog } from './catalog.js';
import { splitCatalog } from './split.js';

/** How long one synchronous slice of validating service entries may run. */
const SLICE_MS = 8;

/** Parses and validates `data`; with `preview`, progressively (see above). Throws CatalogError. */
export async function loadCatalog(data: Buffer, preview?: (p: CatalogPreview) => void): Promise<ValidatedCatalog> {
  if (!preview) return parseCatalog(data.toString('utf8'));
  const split = splitCatalog(data);
  const opened = split ? openCatalog(split.skeleton, split.list) : openCatalog(parseCatalogJson(data.toString('utf8')));
  preview(opened.preview);
  const steps = opened.validate();
  let slice = performance.now();
  try {
    for (;;) {
      const r = steps.next();
      if (r.done) return r.value;
      if (performance.now() - slice > SLICE_MS) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        slice = performance.now();
      }
    }
  } catch (e) {
    if (!(e instanceof SyntaxError)) throw e;
    return validateCatalog(parseCatalogJson(data.toString('utf8')));
  }
}
