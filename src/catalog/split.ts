/**
 * A catalog file split for a fast start. Most of a large catalog file is the service entry lists
 * (`datacenters.<dc>.services.<name>`); parsing the whole document at once costs about half a second
 * at 10,000 services × 5 instances, before anything could be answered. Instead, one scan over the
 * bytes finds where each of those lists is (strings are skipped, brackets counted), the rest of the
 * document, small (names, node lists), is parsed at once with each list replaced by a marker, and
 * the lists are parsed one by one when needed: the one a query names first, then all of them in
 * slices while the zone is built (see openCatalog).
 *
 * JSON.parse still judges every byte: the skeleton and each list are parsed by it, so what is
 * accepted, and the values, are JSON.parse's (escapes in names, duplicate keys: the last wins).
 * When the scan cannot make sense of the bytes (invalid JSON), null is returned and the caller
 * parses the whole text, which reports the syntax error as it always has.
 */
import { randomBytes } from 'node:crypto';

export interface SplitCatalog {
  /** The document with each service entry list replaced by a marker string (see `list`). */
  readonly skeleton: unknown;
  /** The value a marker stands for (parsed now), or undefined when `v` is not a marker. Throws SyntaxError. */
  list(v: unknown): unknown;
}

const QUOTE = 0x22, BACKSLASH = 0x5c, COMMA = 0x2c;
const LBRACE = 0x7b, RBRACE = 0x7d, LBRACKET = 0x5b, RBRACKET = 0x5d;
const OBJ = 1, ARR = 2;

/** Bytes scanned between two yields of splitCatalogSteps (a few milliseconds). */
const STEP_BYTES = 1 << 20;

/** Splits catalog-file bytes (see above); null when the scan finds no lists or cannot follow the bytes. */
export function splitCatalog(buf: Buffer): SplitCatalog | null {
  const steps = splitCatalogSteps(buf);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/** splitCatalog, yielding about every megabyte scanned (a service list is skipped in one go). */
export function* splitCatalogSteps(buf: Buffer): Generator<void, SplitCatalog | null> {
  const n = buf.length;
  let pause = STEP_BYTES;
  const lists: number[] = []; // start, end (exclusive) pairs
  const stack: number[] = [];
  // Decoded keys of the members being read at depth 1 (the document) and 3 (a datacenter).
  let key1: unknown = null, key3: unknown = null;
  let expectKey = false;
  for (let i = 0; i < n; i++) {
    if (i >= pause) {
      yield;
      pause = i + STEP_BYTES;
    }
    const c = buf[i]!;
    if (c === QUOTE) {
      const start = i;
      i++;
      while (i < n && buf[i] !== QUOTE) i += buf[i] === BACKSLASH ? 2 : 1;
      if (i >= n) return null;
      if (expectKey) {
        const d = stack.length;
        if (d === 1 || d === 3) {
          let k: unknown;
          try {
            k = JSON.parse(buf.toString('utf8', start, i + 1));
          } catch {
            return null;
          }
          if (d === 1) key1 = k; else key3 = k;
        }
        expectKey = false;
      }
    } else if (c === LBRACKET && stack.length === 4 && key1 === 'datacenters' && key3 === 'services' && stack[0] === OBJ && stack[1] === OBJ && stack[2] === OBJ && stack[3] === OBJ) {
      // A service's entry list: skip to its end, counting brackets only.
      const end = skipArray(buf, i);
      if (end < 0) return null;
      lists.push(i, end);
      i = end - 1;
    } else if (c === LBRACE || c === LBRACKET) {
      stack.push(c === LBRACE ? OBJ : ARR);
      expectKey = c === LBRACE;
    } else if (c === RBRACE || c === RBRACKET) {
      if (stack.pop() === undefined) return null;
      expectKey = false;
    } else if (c === COMMA) {
      expectKey = stack[stack.length - 1] === OBJ;
    }
  }
  if (lists.length === 0 || stack.length !== 0) return null;

  // The marker: a string no catalog holds by chance (a random nonce per split).
  const prefix = `\u0000${randomBytes(8).toString('hex')}:`;
  const quoted = JSON.stringify(prefix);
  const open = quoted.slice(0, -1);
  let text = '';
  let at = 0;
  for (let k = 0; k < lists.length; k += 2) {
    // List boundaries are ASCII brackets: the pieces are whole UTF-8 sequences.
    text += buf.toString('utf8', at, lists[k]) + open + k / 2 + '"';
    at = lists[k + 1]!;
  }
  text += buf.toString('utf8', at);
  yield;
  let skeleton: unknown;
  try {
    skeleton = JSON.parse(text);
  } catch {
    return null;
  }
  return {
    skeleton,
    list(v: unknown): unknown {
      if (typeof v !== 'string' || !v.startsWith(prefix)) return undefined;
      const k = Number(v.slice(prefix.length)) * 2;
      return JSON.parse(buf.toString('utf8', lists[k], lists[k + 1]));
    },
  };
}

/** The end (exclusive) of the array that starts at `i`, or -1 when the bytes end first. */
function skipArray(buf: Buffer, i: number): number {
  const n = buf.length;
  let depth = 0;
  for (; i < n; i++) {
    const c = buf[i]!;
    if (c === QUOTE) {
      i++;
      while (i < n && buf[i] !== QUOTE) i += buf[i] === BACKSLASH ? 2 : 1;
    } else if (c === LBRACE || c === LBRACKET) {
      depth++;
    } else if (c === RBRACE || c === RBRACKET) {
      if (--depth === 0) return i + 1;
    }
  }
  return -1;
}
