/**
 * JSON bodies from Consul parsed without stalling the DNS answers.
 *
 * The DNS server answers from the same event loop that reads Consul's HTTP replies. One
 * `JSON.parse` of a large reply (tens of MiB, from a big catalog or a broken or hostile Consul or
 * proxy) holds the loop for up to a second, and every query waits; a reply nested 200,000 deep
 * (`[[[[…]]]]`) costs as much and breaks whatever walks the result. So a body is parsed in two
 * phases, each in slices of a few milliseconds with a `setImmediate` turn between two slices:
 *
 * 1. A scan over the bytes (never the whole body as a string): string contents are skipped
 *    (`\"` and `\\` escapes followed), brackets counted and matched, and a body nested deeper than
 *    `maxDepth` is refused as soon as the scan gets there. The scan also notes where the top-level
 *    array or object can be cut: at a comma between two of its elements (or members) about every
 *    64 KiB. Cuts are only made at ASCII commas outside strings, so no UTF-8 sequence is split.
 * 2. A small body is then parsed whole. A large one is parsed piece by piece: the bytes between
 *    two cuts, wrapped in the top-level brackets again, are one `JSON.parse`, and the pieces are
 *    joined into one array or object.
 *
 * `JSON.parse` judges every byte of every piece, and the bytes outside the pieces are the brackets,
 * the commas cut at and whitespace (which the scan checks), so a body is accepted exactly when
 * `JSON.parse` would accept it, and the value is the one it would make: duplicate keys keep the
 * first position and the last value, `__proto__` is an own property (the object is built without a
 * prototype and gets `Object.prototype` at the end), and a leading BOM is refused.
 *
 * What cannot be sliced: a top-level scalar (one 40 MiB string) or one element holding most of the
 * body (`{"everything": [...]}`) is one `JSON.parse`, bounded only by the caller's cap on the
 * response size. Consul's list replies (`/v1/catalog/services`, `/v1/catalog/nodes`,
 * `/v1/health/service/<name>`) are one object or array of many small values, which slice well.
 * Two more costs land in a single slice and grow with the number of top-level members, not with
 * the bytes: the result array's slots are allocated and filled once at the end, and V8 rehashes the
 * result object's keys each time it doubles (tens of milliseconds only at hundreds of thousands of
 * members, which a hostile reply can have and a real one does not). Garbage collection of the
 * values built adds to whichever slice it interrupts.
 */

export interface SlicedParseOptions {
  /** Largest nesting depth accepted (default 32; Consul's bodies nest < 10 deep). */
  readonly maxDepth?: number;
  /** Work per synchronous slice in ms before yielding with setImmediate (default 5). */
  readonly sliceMs?: number;
  /** Below this many bytes the body is JSON.parse'd in one go after the depth scan (default 256 KiB). */
  readonly wholeBelow?: number;
  /** Aborts the parse between slices (rejects with signal.reason). */
  readonly signal?: AbortSignal;
}

export type JsonBodyErrorCode = 'CDNS_JSON_TOO_DEEP' | 'CDNS_JSON_SYNTAX';

/** A body refused: nested deeper than allowed, or not JSON. Callers branch on `code`. */
export class JsonBodyError extends Error {
  readonly code: JsonBodyErrorCode;
  constructor(code: JsonBodyErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'JsonBodyError';
  }
}

const DEFAULT_MAX_DEPTH = 32;
const DEFAULT_SLICE_MS = 5;
const DEFAULT_WHOLE_BELOW = 256 * 1024;
/** Bytes scanned between two looks at the clock (small: the first steps run before V8 compiles the loop). */
const SCAN_STEP = 16 * 1024;
/** Smallest piece of a large body given to one JSON.parse (a piece ends at the next comma). */
const PIECE_BYTES = 64 * 1024;

const QUOTE = 0x22, BACKSLASH = 0x5c, COMMA = 0x2c;
const LBRACE = 0x7b, RBRACE = 0x7d, LBRACKET = 0x5b, RBRACKET = 0x5d;
const SPACE = 0x20, TAB = 0x09, LF = 0x0a, CR = 0x0d;
const ARR = 1, OBJ = 2;
/** Where the scan is at depth 0: before the value, in a scalar, in the container, after it. */
const BEFORE = 0, SCALAR = 1, INSIDE = 2, AFTER = 3;

/** Parses `body` as JSON; resolves with exactly what JSON.parse(body.toString('utf8')) would return, or rejects with JsonBodyError. */
export async function parseJsonSliced(body: Buffer, opts: SlicedParseOptions = {}): Promise<unknown> {
  const maxDepth = option(opts.maxDepth, DEFAULT_MAX_DEPTH, 'maxDepth', 1);
  const sliceMs = option(opts.sliceMs, DEFAULT_SLICE_MS, 'sliceMs', 0);
  const wholeBelow = option(opts.wholeBelow, DEFAULT_WHOLE_BELOW, 'wholeBelow', 0);
  const clock = new SliceClock(sliceMs, opts.signal);
  opts.signal?.throwIfAborted();

  const scan = new Scan(body, maxDepth);
  while (scan.step()) await clock.tick();
  const odd = scan.finish();

  if (body.length < wholeBelow) return parseWhole(body);
  if (odd !== null) throw new JsonBodyError('CDNS_JSON_SYNTAX', `JSON body: ${odd}`);
  if (scan.top === 0) return parseWhole(body);
  await clock.tick();
  return parsePieces(body, scan, clock);
}

/** A non-negative number option (an integer where `min` is 1), or its default. */
function option(v: number | undefined, dflt: number, name: string, min: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || Number.isNaN(v) || v < min || (min === 1 && !Number.isInteger(v))) {
    throw new RangeError(`parseJsonSliced: ${name} must be ${min === 1 ? 'a positive integer' : 'a number >= 0'}, not ${String(v)}`);
  }
  return v;
}

/** Measures the current slice; `tick` yields one event-loop turn once it has lasted sliceMs. */
class SliceClock {
  private start = performance.now();
  constructor(private readonly sliceMs: number, private readonly signal: AbortSignal | undefined) {}

  async tick(): Promise<void> {
    if (performance.now() - this.start < this.sliceMs) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.signal?.throwIfAborted();
    this.start = performance.now();
  }
}

/** The whole body in one JSON.parse (a SyntaxError becomes CDNS_JSON_SYNTAX). */
function parseWhole(body: Buffer): unknown {
  return jsonParse(body.toString('utf8'), '');
}

function jsonParse(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    if (!(e instanceof SyntaxError)) throw e;
    throw new JsonBodyError('CDNS_JSON_SYNTAX', `JSON body: ${e.message}${where}`, { cause: e });
  }
}

/**
 * The byte scan, run SCAN_STEP bytes per `step`. It follows strings and brackets only; what it
 * cannot follow (an unmatched bracket, an unterminated string, a second value) is `finish`'s
 * reason, and everything else is left to JSON.parse.
 */
class Scan {
  /** ARR or OBJ: the top-level container; 0 for a scalar. */
  top = 0;
  /** Offsets of the top-level brackets. */
  open = -1;
  close = -1;
  /** Offsets of the top-level commas the body is cut at, ascending. */
  readonly cuts: number[] = [];
  private pos = 0;
  private depth = 0;
  private inString = false;
  private phase = BEFORE;
  private lastCut = -1;
  private odd: string | null = null;
  /** The container type of each open level. */
  private readonly stack: Uint8Array;

  constructor(private readonly buf: Buffer, private readonly maxDepth: number) {
    this.stack = new Uint8Array(maxDepth);
  }

  /** Scans up to SCAN_STEP more bytes; false once the scan is over. Throws CDNS_JSON_TOO_DEEP. */
  step(): boolean {
    if (this.odd !== null || this.pos >= this.buf.length) return false;
    const lim = Math.min(this.buf.length, this.pos + SCAN_STEP);
    if (this.inString) this.resumeString(lim);
    if (!this.inString) this.scanTo(lim);
    return this.odd === null && this.pos < this.buf.length;
  }

  /** Null when the body can be parsed as scanned, else why not. */
  finish(): string | null {
    if (this.odd !== null) return this.odd;
    if (this.inString) return 'unterminated string at the end';
    if (this.depth > 0) return `${this.depth} unclosed bracket(s) at the end`;
    if (this.phase === BEFORE) return 'no value';
    return null;
  }

  private resumeString(lim: number): void {
    const i = skipString(this.buf, this.pos, lim);
    if (i >= lim) {
      this.pos = i;
      return;
    }
    this.inString = false;
    this.pos = i + 1;
  }

  private scanTo(lim: number): void {
    const buf = this.buf;
    let i = this.pos;
    for (; i < lim; i++) {
      const c = buf[i]!;
      if (c === QUOTE) {
        if (this.depth === 0 && !this.topString(i)) return;
        i = skipString(buf, i + 1, lim);
        if (i >= lim) {
          this.inString = true;
          break;
        }
      } else if (c === LBRACKET || c === LBRACE) {
        if (!this.openAt(i, c === LBRACKET ? ARR : OBJ)) return;
      } else if (c === RBRACKET || c === RBRACE) {
        if (!this.closeAt(i, c === RBRACKET ? ARR : OBJ)) return;
      } else if (c === COMMA) {
        if (this.depth === 1) this.cutAt(i);
        else if (this.depth === 0) return this.fail(i, "',' outside the value");
      } else if (this.depth === 0 && !this.topByte(i, c)) {
        return;
      }
    }
    this.pos = i;
  }

  private fail(i: number, what: string): void {
    this.odd = `${what} at byte ${i}`;
    this.pos = i;
  }

  /** A string starting at depth 0: the whole value, unless something came before it. */
  private topString(i: number): boolean {
    if (this.phase !== BEFORE) {
      this.fail(i, 'unexpected string after the value');
      return false;
    }
    this.phase = AFTER;
    return true;
  }

  /** A byte at depth 0 other than a bracket, quote or comma. */
  private topByte(i: number, c: number): boolean {
    if (c === SPACE || c === LF || c === CR || c === TAB) return true;
    if (this.phase === BEFORE) this.phase = SCALAR;
    else if (this.phase === AFTER) {
      this.fail(i, 'unexpected byte after the value');
      return false;
    }
    return true;
  }

  private openAt(i: number, type: number): boolean {
    if (this.depth === 0) {
      if (this.phase !== BEFORE) {
        this.fail(i, 'unexpected bracket after the value');
        return false;
      }
      this.phase = INSIDE;
      this.top = type;
      this.open = this.lastCut = i;
    }
    if (this.depth >= this.maxDepth) {
      throw new JsonBodyError('CDNS_JSON_TOO_DEEP', `JSON body nested deeper than ${this.maxDepth} at byte ${i}`);
    }
    this.stack[this.depth++] = type;
    return true;
  }

  private closeAt(i: number, type: number): boolean {
    const ch = type === ARR ? ']' : '}';
    if (this.depth === 0) {
      this.fail(i, `unexpected '${ch}'`);
      return false;
    }
    if (this.stack[this.depth - 1] !== type) {
      this.fail(i, `mismatched '${ch}'`);
      return false;
    }
    if (--this.depth === 0) {
      this.close = i;
      this.phase = AFTER;
    }
    return true;
  }

  private cutAt(i: number): void {
    if (i - this.lastCut < PIECE_BYTES) return;
    this.cuts.push(i);
    this.lastCut = i;
  }
}

/** The offset of the quote ending the string whose contents start at `i`, or >= lim when not before lim. */
function skipString(buf: Buffer, i: number, lim: number): number {
  while (i < lim) {
    const c = buf[i]!;
    if (c === QUOTE) return i;
    i += c === BACKSLASH ? 2 : 1;
  }
  return i;
}

/** The top-level container, parsed piece by piece (between the scan's cuts) and joined. */
async function parsePieces(body: Buffer, scan: Scan, clock: SliceClock): Promise<unknown> {
  const bounds = [scan.open, ...scan.cuts, scan.close];
  const isArray = scan.top === ARR;
  const items: unknown[][] = [];
  const members: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (let k = 0; k + 1 < bounds.length; k++) {
    const from = bounds[k]! + 1, to = bounds[k + 1]!;
    const text = body.toString('utf8', from, to);
    const where = ` (in bytes ${from}..${to} of the body)`;
    const piece = jsonParse(isArray ? `[${text}]` : `{${text}}`, where);
    // Every piece next to a comma holds at least one element: `[1,   ]` must not pass as two pieces.
    if (bounds.length > 2 && isEmpty(piece, isArray)) {
      throw new JsonBodyError('CDNS_JSON_SYNTAX', `JSON body: no value between two commas${where}`);
    }
    if (isArray) items.push(piece as unknown[]);
    else Object.assign(members, piece); // no prototype: `__proto__` stays an own property
    await clock.tick();
  }
  // One copy at the end (not a growing array): the top level's slots are allocated once.
  if (isArray) return items.length === 1 ? items[0] : ([] as unknown[]).concat(...items);
  return Object.setPrototypeOf(members, Object.prototype) as unknown;
}

function isEmpty(piece: unknown, isArray: boolean): boolean {
  return isArray ? (piece as unknown[]).length === 0 : Object.keys(piece as object).length === 0;
}
