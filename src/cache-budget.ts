/**
 * One memory budget (`response_cache_mb`) for the two things that grow with the variety of queries:
 * the UDP response cache (src/dns/response-cache.ts) and the zone's name memo (src/zone/zone.ts).
 * Each gets a fixed part and keeps its entries in a RingTable (src/ring-table.ts): typed arrays and
 * Buffers sized from the part, no per-entry JavaScript objects, so the bytes they report are the
 * bytes they hold.
 *
 * The one per-entry JavaScript cost left is ANSWER_ID_BYTES, for Node.js 20 on 64-bit Linux (V8
 * without pointer compression: 8-byte tagged fields), measured with bench/cost-model.mjs: it fills
 * the structure and divides the growth of V8's used heap after a full GC by the number of entries,
 * at sizes just past a power of two (where Maps and arrays have just grown), and the constant is the
 * largest figure, rounded up. The same script checks that the RingTables really hold no more than
 * they report. Re-run it after upgrading Node.js.
 */

/** One Answer in the response cache's answer table (Map entry + array slot). */
export const ANSWER_ID_BYTES = 96;

/** Name memo part when the response cache is off (0): about 12,000 names (zone/zone.ts sizing). */
export const NAME_MEMO_MIN_BYTES = 1 << 20;

export interface CacheBudget {
  /** The setting, in bytes. */
  readonly total: number;
  /** The response cache's part (0 = no response cache). */
  readonly responses: number;
  /** The name memo's part. */
  readonly names: number;
}

/**
 * Splits `response_cache_mb`: the name memo gets 1/16 (4 MiB of the default 64, about 49,000
 * names; at least 1 MiB when the total allows, else half), the response cache the rest. With 0
 * there is no response cache and the memo keeps NAME_MEMO_MIN_BYTES: names are still resolved once,
 * not on every query.
 */
export function cacheBudget(totalBytes: number): CacheBudget {
  if (totalBytes <= 0) return { total: 0, responses: 0, names: NAME_MEMO_MIN_BYTES };
  const names = Math.max(Math.floor(totalBytes / 16), Math.min(NAME_MEMO_MIN_BYTES, Math.floor(totalBytes / 2)));
  return { total: totalBytes, responses: totalBytes - names, names };
}
