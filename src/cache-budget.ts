/**
 * One memory budget (`response_cache_mb`) for the two things that grow with the variety of queries:
 * the UDP response cache (src/dns/response-cache.ts) and the zone's name memo (src/zone/zone.ts).
 * Each gets a fixed part, and each counts what it really holds against its part.
 *
 * The per-entry costs of JavaScript objects below are for Node.js 20 on 64-bit Linux (V8 without
 * pointer compression: 8-byte tagged fields). They were measured with bench/cost-model.mjs, which
 * fills the real structures and divides the growth of `v8.getHeapStatistics().used_heap_size` after
 * a full GC by the number of entries; each constant is the largest figure seen, rounded up, so the
 * growth slack of Maps and arrays is included. Re-run it after upgrading Node.js.
 */

/** Memory of a sequential one-byte V8 string of `length` characters (16-byte header, 8-byte aligned). */
export function stringBytes(length: number): number {
  return 16 + ((length + 7) & ~7);
}

/**
 * One name memo entry beyond its key string: the memo's Map entry and its list slots (lru-cache
 * without `max`: five growable arrays) and the `{ owner, inZone }` record.
 */
export const NAME_MEMO_ENTRY_BYTES = 200;

/** An owner made for one name at lookup time (zone/build.ts): a `.addr` name's answers. */
export const ADDR_OWNER_BYTES = 1100;

/** An owner made for one name at lookup time: an RFC 2782 name outside `.service` (wraps a shared owner). */
export const SRV_ONLY_OWNER_BYTES = 48;

/** One Answer in the response cache's answer table (Map entry + array slot). */
export const ANSWER_ID_BYTES = 96;

/** Name memo part when the response cache is off (0): enough for a few thousand names. */
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
 * Splits `response_cache_mb`: the name memo gets 1/8 (at least 1 MiB when the total allows, else
 * half), the response cache the rest. With 0 there is no response cache and the memo keeps
 * NAME_MEMO_MIN_BYTES: names are still resolved once, not per query.
 */
export function cacheBudget(totalBytes: number): CacheBudget {
  if (totalBytes <= 0) return { total: 0, responses: 0, names: NAME_MEMO_MIN_BYTES };
  const names = Math.max(Math.floor(totalBytes / 8), Math.min(NAME_MEMO_MIN_BYTES, Math.floor(totalBytes / 2)));
  return { total: totalBytes, responses: totalBytes - names, names };
}
