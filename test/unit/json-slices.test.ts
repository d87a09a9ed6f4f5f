/**
 * parseJsonSliced (src/catalog/json-slices.ts): for any body, the value is JSON.parse's (keys in
 * its order, `__proto__` an own property), what JSON.parse refuses is CDNS_JSON_SYNTAX, what nests
 * deeper than maxDepth is CDNS_JSON_TOO_DEEP, and a large body is parsed over several event-loop
 * turns. Each body is parsed twice: whole (the default for a small body) and sliced (`wholeBelow: 0`).
 */
import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import { JsonBodyError, parseJsonSliced, type SlicedParseOptions } from '../../src/catalog/json-slices.js';
import { seededRandom } from '../support/cases.js';

const WHOLE: SlicedParseOptions = {};
const SLICED: SlicedParseOptions = { wholeBelow: 0, sliceMs: 0 };
const PATHS = [['whole', WHOLE], ['sliced', SLICED]] as const;
/** More than the bytes between two cuts of a large body (64 KiB): a body with it is in several pieces. */
const PAST_A_PIECE = 70 * 1024;

const buf = (text: string | Buffer): Buffer => (typeof text === 'string' ? Buffer.from(text, 'utf8') : text);

/**
 * The value parseJsonSliced gives must be JSON.parse's, with the keys in the same order. vitest's
 * toStrictEqual also compares `.constructor`, which a document sets with a "constructor" key
 * (`{"constructor":[1]}` parsed twice is not toStrictEqual to itself), so such documents are
 * compared with node's isDeepStrictEqual alone (prototypes, own keys, Object.is on values).
 */
async function expectSameAsJsonParse(body: Buffer, opts: SlicedParseOptions): Promise<void> {
  const want: unknown = JSON.parse(body.toString('utf8'));
  const got = await parseJsonSliced(body, opts);
  if (!body.includes('"constructor"')) expect(got).toStrictEqual(want);
  expect(isDeepStrictEqual(got, want), body.toString('utf8', 0, 200)).toBe(true);
  expect(JSON.stringify(got)).toBe(JSON.stringify(want));
}

async function expectCode(body: Buffer, opts: SlicedParseOptions, code: JsonBodyError['code']): Promise<void> {
  const err = await parseJsonSliced(body, opts).then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(JsonBodyError);
  expect(err).toMatchObject({ code, name: 'JsonBodyError' });
}

/** `n` nested arrays. */
const nested = (n: number): string => '['.repeat(n) + ']'.repeat(n);

// ---------------------------------------------------------------------------------------------
// Documents
// ---------------------------------------------------------------------------------------------

const catalogServices = `{"consul":[],"web":["primary","v1"],"db":["leader"],"api-gw":["http","grpc","zone-a"]}`;
const catalogNodes = JSON.stringify(
  Array.from({ length: 5 }, (_, i) => ({
    ID: `4b1f-${i}`, Node: `node-${i}`, Address: `10.0.0.${i + 1}`, Datacenter: 'dc1',
    TaggedAddresses: { lan: `10.0.0.${i + 1}`, wan: `198.51.100.${i + 1}` }, Meta: { 'consul-network-segment': '' },
    CreateIndex: 10 + i, ModifyIndex: 20 + i,
  })),
  null, 2,
);
const healthEntry = (i: number) => ({
  Node: { ID: `n-${i}`, Node: `node-${i}`, Address: `10.1.${i >> 8 & 255}.${i & 255}`, Datacenter: 'dc1', Meta: { rack: `r${i % 7}` } },
  Service: { ID: `web-${i}`, Service: 'web', Tags: ['primary', `v${i % 3}`], Address: '', Port: 8080 + (i % 50), Weights: { Passing: 1, Warning: 1 } },
  Checks: [{ CheckID: 'serfHealth', Name: 'Serf Health Status', Status: 'passing', Output: 'Agent alive and reachable', ServiceTags: [] }],
});
const healthService = JSON.stringify([healthEntry(1), healthEntry(2)]);

/** Large bodies (several pieces on the sliced path) with what the joints must get right. */
function bigServices(): string {
  const members = ['"dup":["first"]', '"__proto__":{"polluted":true}'];
  for (let i = 0; i < 6000; i++) members.push(`"svc-${i}-ñ☃":["t${i}","zone-${i % 9}","q\\"uote","[{"]`);
  members.push('"dup":["last"]', '"__proto__":["second"]', '"constructor":1', '"toString":"x"');
  return `{${members.join(',')}}`;
}
const bigArrayWithGaps = `[1,${' '.repeat(PAST_A_PIECE)}2,\n${'\t'.repeat(PAST_A_PIECE)}"three",{"four":[4]}${' '.repeat(PAST_A_PIECE)}]`;
const bigStrings = JSON.stringify(['x'.repeat(PAST_A_PIECE), 'ü'.repeat(PAST_A_PIECE), '🚀'.repeat(PAST_A_PIECE / 2), { k: '日本'.repeat(PAST_A_PIECE) }]);
const bigHealth = JSON.stringify(Array.from({ length: 2000 }, (_, i) => healthEntry(i)));

const DOCUMENTS: ReadonlyArray<readonly [string, string | Buffer]> = [
  ['/v1/catalog/services', catalogServices],
  ['/v1/catalog/nodes', catalogNodes],
  ['/v1/health/service/web', healthService],
  ['nested values', '{"a":{"b":[1,{"c":[[],[{}],{"d":null}]},true,false,-1.5e-7]},"e":[[[[[["deep"]]]]]]}'],
  ['unicode keys and values', '{"ñødé-☃":"日本語","🚀":["ü","\\ud83d\\ude80"],"ascii":"é"}'],
  ['escapes in strings', String.raw`["a\"b","c\\","\\","\\\"","\u0022","\"\"","\/\b\f\n\r\t","end\\\\"]`],
  ['escaped key', String.raw`{"k\"ey":1,"\\":2,"\u0061":3,"a":4}`],
  ['brackets inside strings', '{"open":"[[[{{{","close":"]]]}}}","mixed":["]",",","{\\"",":"],"s":"},{"}'],
  ['duplicate keys (last wins, first position)', '{"a":1,"b":2,"a":3,"c":{"x":1,"x":[2]}}'],
  ['__proto__ key', '{"__proto__":{"polluted":true},"x":1,"inner":{"__proto__":[1]}}'],
  ['integer-like keys', '{"b":1,"10":2,"2":3,"a":4,"-1":5,"01":6}'],
  ['empty array', '[]'],
  ['empty object', '{}'],
  ['empty containers with whitespace', ' [ \n ] '],
  ['empty object with whitespace', '{\r\n\t}'],
  ['empty containers inside', '[[],{},[{}],{"a":[]}]'],
  ['number', '42'],
  ['negative exponent number', ' -0.5e3 '],
  ['string', '"just a string with ] and }"'],
  ['true', 'true'],
  ['null', '\n null \n'],
  ['whitespace-heavy', ' \n\t[ \r\n 1 ,\t2 , { "a" :\n[ 3 ] , "b" : "c" } ,\n\n[ ] ] \n\t '],
  ['one-element array', '["only"]'],
  ['invalid UTF-8 inside strings', Buffer.from([0x5b, 0x22, 0xff, 0xc3, 0x22, 0x2c, 0x22, 0xe2, 0x82, 0x22, 0x5d])],
  ['large services object (duplicates and __proto__ across pieces)', bigServices()],
  ['large array with whitespace runs between elements', bigArrayWithGaps],
  ['large strings (multi-byte)', bigStrings],
  ['large health array', bigHealth],
  ['large top-level string', JSON.stringify(`ü\\"[${'ü'.repeat(4 * PAST_A_PIECE)}`)],
];

const INVALID: ReadonlyArray<readonly [string, string | Buffer]> = [
  ['empty body', ''],
  ['whitespace only', ' \n\t '],
  ['truncated array', '[1,2'],
  ['truncated object', '{"a":1'],
  ['truncated inside a string', '{"a":"bc'],
  ['truncated after a backslash', '["abc\\'],
  ['trailing comma in array', '[1,2,]'],
  ['trailing comma in object', '{"a":1,}'],
  ['leading comma', '[,1]'],
  ['double comma', '[1,,2]'],
  ['extra ]', '[1]]'],
  ['extra } at the start', '}'],
  ['mismatched brackets', '[1}'],
  ['mismatched inside', '[{"a":[1}]]'],
  ['unterminated string', '["abc]'],
  ['garbage after the value', '[1] x'],
  ['second value', '{} {}'],
  ['string after an array', '[1] "x"'],
  ['string after an object', '{"a":1}"b"'],
  ['two scalars', '1 2'],
  ['string after a number', '1"a"'],
  ['comma at top level', '1,2'],
  ['lone BOM', '\uFEFF'],
  ['BOM before the value', '\uFEFF{"a":1}'],
  ['missing colon', '{"a" 1}'],
  ['missing comma', '[1 2]'],
  ['non-string key', '{1:2}'],
  ['bare word', '[nope]'],
  ['single quotes', "['a']"],
  ['array-closing brace on an object', '{"a":1]'],
  ['trailing comma after a large element', `["${'x'.repeat(PAST_A_PIECE)}",]`],
  ['trailing comma after a large member', `{"a":"${'x'.repeat(PAST_A_PIECE)}",}`],
  ['empty element between two cuts', `["${'x'.repeat(PAST_A_PIECE)}",${' '.repeat(PAST_A_PIECE)},1]`],
  ['leading comma in a large array', `[,"${'x'.repeat(PAST_A_PIECE)}",1]`],
  ['large array, garbage after it', `["${'x'.repeat(PAST_A_PIECE)}",1] ]`],
  ['large array, a string after it', `["${'x'.repeat(PAST_A_PIECE)}",1] "x"`],
  ['large array, a second array after it', `["${'x'.repeat(PAST_A_PIECE)}",1][1]`],
  ['large array, unclosed', `[["${'x'.repeat(PAST_A_PIECE)}",1]`],
  ['large array, invalid element in a later piece', `["${'x'.repeat(PAST_A_PIECE)}",1,tru]`],
  ['large object, key without a value in a later piece', `{"a":"${'x'.repeat(PAST_A_PIECE)}","b"}`],
];

describe('parseJsonSliced: the value is what JSON.parse makes of the body', () => {
  for (const [name, text] of DOCUMENTS) {
    for (const [path, opts] of PATHS) {
      it(`${name} (${path})`, async () => {
        await expectSameAsJsonParse(buf(text), opts);
      });
    }
  }

  it('__proto__ becomes an own property, on both paths, and nothing is polluted', async () => {
    for (const body of [buf('{"__proto__":{"polluted":true},"x":1}'), buf(bigServices())]) {
      for (const [, opts] of PATHS) {
        const got = (await parseJsonSliced(body, opts)) as Record<string, unknown>;
        expect(Object.getPrototypeOf(got)).toBe(Object.prototype);
        expect(Object.prototype.hasOwnProperty.call(got, '__proto__')).toBe(true);
        expect(Object.keys(got)).toContain('__proto__');
        expect(got['polluted']).toBeUndefined();
        expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
      }
    }
    const sliced = (await parseJsonSliced(buf(bigServices()), SLICED)) as Record<string, unknown>;
    expect(Object.getOwnPropertyDescriptor(sliced, '__proto__')).toEqual({ value: ['second'], writable: true, enumerable: true, configurable: true });
    expect(sliced['dup']).toEqual(['last']);
    expect(Object.keys(sliced)[0]).toBe('dup');
  });

  it('keeps multi-byte characters whole wherever a large body is cut', async () => {
    // Elements of multi-byte text just past a piece each: cuts fall next to multi-byte characters.
    const parts = ['ü', '日', '🚀', 'é☃'].map((c, i) => JSON.stringify({ [`${c}${i}`]: c.repeat(PAST_A_PIECE / c.length / 2 + i) }));
    await expectSameAsJsonParse(buf(`[${parts.join(',')}]`), SLICED);
    const members = ['ü', '日', '🚀'].map((c, i) => `${JSON.stringify(c.repeat(i + 1))}:${JSON.stringify(c.repeat(PAST_A_PIECE))}`);
    await expectSameAsJsonParse(buf(`{${members.join(',')}}`), SLICED);
  });
});

describe('parseJsonSliced: what JSON.parse refuses is CDNS_JSON_SYNTAX', () => {
  for (const [name, text] of INVALID) {
    for (const [path, opts] of PATHS) {
      it(`${name} (${path})`, async () => {
        expect(() => JSON.parse(buf(text).toString('utf8'))).toThrow(SyntaxError);
        await expectCode(buf(text), opts, 'CDNS_JSON_SYNTAX');
      });
    }
  }

  it('passes JSON.parse message on for a small body', async () => {
    const err = await parseJsonSliced(buf('[1,2,]')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JsonBodyError);
    expect((err as JsonBodyError).cause).toBeInstanceOf(SyntaxError);
    expect((err as JsonBodyError).message).toContain((err as { cause: Error }).cause.message);
  });
});

describe('parseJsonSliced: nesting deeper than maxDepth is CDNS_JSON_TOO_DEEP', () => {
  for (const [path, opts] of PATHS) {
    it(`refuses 200,000 nested arrays (${path})`, async () => {
      await expectCode(buf(nested(200_000)), opts, 'CDNS_JSON_TOO_DEEP');
    });

    it(`refuses 200,000 unclosed arrays (${path})`, async () => {
      await expectCode(buf('['.repeat(200_000)), opts, 'CDNS_JSON_TOO_DEEP');
    });

    it(`refuses 33 levels and accepts 32 (default maxDepth, ${path})`, async () => {
      await expectCode(buf(nested(33)), opts, 'CDNS_JSON_TOO_DEEP');
      await expectSameAsJsonParse(buf(nested(32)), opts);
      const objects = (n: number) => '{"a":'.repeat(n - 1) + '{}' + '}'.repeat(n - 1);
      await expectCode(buf(`[${objects(32)}]`), opts, 'CDNS_JSON_TOO_DEEP');
      await expectSameAsJsonParse(buf(`[${objects(31)}]`), opts);
    });

    it(`counts no brackets inside strings (${path})`, async () => {
      await expectSameAsJsonParse(buf(`[${JSON.stringify('['.repeat(1000) + '{'.repeat(1000))}]`), opts);
    });

    it(`follows maxDepth (${path})`, async () => {
      await expectCode(buf('[[[]]]'), { ...opts, maxDepth: 2 }, 'CDNS_JSON_TOO_DEEP');
      await expectSameAsJsonParse(buf('[[[]]]'), { ...opts, maxDepth: 3 });
      await expectSameAsJsonParse(buf(nested(100)), { ...opts, maxDepth: 100 });
    });
  }

  it('refuses a deep body even when it is broken elsewhere later', async () => {
    await expectCode(buf(`${nested(40)} garbage`), SLICED, 'CDNS_JSON_TOO_DEEP');
  });
});

describe('parseJsonSliced: a large body is parsed over several event-loop turns', () => {
  it('parses a ~20 MiB array of node objects equal to JSON.parse, yielding between slices', async () => {
    const nodes: string[] = [];
    let size = 0;
    for (let i = 0; size < 20 * 1024 * 1024; i++) {
      const s = JSON.stringify({ ...healthEntry(i), Note: `ünïcødé "${i}" \\ [${i}]` });
      nodes.push(s);
      size += s.length + 1;
    }
    const body = buf(`[${nodes.join(',')}]`);

    let turns = 0;
    let running = true;
    const spin = (): void => {
      turns++;
      if (running) setImmediate(spin);
    };
    setImmediate(spin);
    let got: unknown;
    try {
      got = await parseJsonSliced(body);
    } finally {
      running = false;
    }
    expect(turns).toBeGreaterThan(1);
    // node's comparison: vitest's toStrictEqual takes seconds on ~50,000 objects.
    expect(isDeepStrictEqual(got, JSON.parse(body.toString('utf8')))).toBe(true);
  });

  it('rejects with signal.reason when aborted mid-parse', async () => {
    const body = buf(`[${'"x",'.repeat(100_000)}${bigHealth.slice(1)}`);
    const ac = new AbortController();
    const reason = new Error('stop');
    setImmediate(() => ac.abort(reason));
    await expect(parseJsonSliced(body, { ...SLICED, signal: ac.signal })).rejects.toBe(reason);
  });

  it('rejects with signal.reason when aborted before it starts', async () => {
    const ac = new AbortController();
    ac.abort('gone');
    await expect(parseJsonSliced(buf('[1]'), { signal: ac.signal })).rejects.toBe('gone');
  });

  it('refuses nonsensical options', async () => {
    await expect(parseJsonSliced(buf('[]'), { maxDepth: 0 })).rejects.toThrow(RangeError);
    await expect(parseJsonSliced(buf('[]'), { maxDepth: 1.5 })).rejects.toThrow(RangeError);
    await expect(parseJsonSliced(buf('[]'), { sliceMs: -1 })).rejects.toThrow(RangeError);
    await expect(parseJsonSliced(buf('[]'), { wholeBelow: Number.NaN })).rejects.toThrow(RangeError);
  });
});

// ---------------------------------------------------------------------------------------------
// Random documents
// ---------------------------------------------------------------------------------------------

/**
 * Random JSON text (not JSON.stringify: escapes of every kind, duplicate keys, odd whitespace).
 * With `big`, some whitespace runs and strings near the top are longer than a piece, so the
 * sliced path cuts the document next to them.
 */
function randomDocument(rand: () => number, big: boolean): string {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const ws = (depth: number): string => {
    if (big && depth <= 1 && rand() < 0.1) return pick([' ', '\n', '\t']).repeat(PAST_A_PIECE);
    return rand() < 0.7 ? '' : pick([' ', '\n', '\t', '\r\n', '  \t ']);
  };
  const chars = ['a', 'Z', '0', ' ', ',', ':', '[', ']', '{', '}', 'ü', 'é', '日', '☃', '🚀', '\\"', '\\\\', '\\/', '\\n', '\\t', '\\u0022', '\\u005c', '\\u00e9', '\\ud83d\\ude80', '\\ud800'];
  const str = (depth: number): string => {
    if (big && depth <= 1 && rand() < 0.1) return `"${pick(['x', 'ü', '日', '🚀', '\\"']).repeat(PAST_A_PIECE / 2)}"`;
    let s = '"';
    const n = Math.floor(rand() * (rand() < 0.05 ? 400 : 12));
    for (let i = 0; i < n; i++) s += pick(chars);
    return `${s}"`;
  };
  const keys = ['a', 'b', '__proto__', 'constructor', 'ñ', '0', '10', 'Service', 'Node', 'Tags'];
  const key = (depth: number): string => (rand() < 0.6 ? JSON.stringify(pick(keys)) : str(depth));
  const scalar = (depth: number): string => {
    const r = rand();
    if (r < 0.15) return String(Math.floor(rand() * 2000) - 1000);
    if (r < 0.25) return (rand() * 1e6 - 5e5).toExponential(3);
    if (r < 0.35) return pick(['true', 'false', 'null', '-0', '0.5']);
    return str(depth);
  };
  const value = (depth: number): string => {
    const r = rand();
    if (depth >= 6 || r < 0.4) return scalar(depth);
    const n = Math.floor(rand() * (depth === 0 ? 30 : 6));
    const parts: string[] = [];
    const w = (): string => ws(depth + 1);
    if (r < 0.7) {
      for (let i = 0; i < n; i++) parts.push(w() + value(depth + 1) + w());
      return `[${parts.join(',') || w()}]`;
    }
    for (let i = 0; i < n; i++) parts.push(`${w()}${key(depth + 1)}${w()}:${w()}${value(depth + 1)}${w()}`);
    return `{${parts.join(',') || w()}}`;
  };
  return ws(0) + value(0) + ws(0);
}

/** A random change that most likely breaks the text: cut, a byte dropped, a structural byte added. */
function mutate(doc: string, rand: () => number): string {
  const at = Math.floor(rand() * (doc.length + 1));
  const r = rand();
  if (r < 0.3) return doc.slice(0, at);
  if (r < 0.6) return doc.slice(0, at) + doc.slice(at + 1);
  const ins = ['[', ']', '{', '}', ',', ':', '"', '\\', 'x', '\uFEFF'][Math.floor(rand() * 10)]!;
  return doc.slice(0, at) + ins + doc.slice(at);
}

describe('parseJsonSliced: random documents', () => {
  it('parses 300 random documents as JSON.parse does (sliced, tiny slices)', async () => {
    const rand = seededRandom(0x5eed);
    let cut = 0; // documents long enough to be parsed in pieces
    for (let i = 0; i < 300; i++) {
      const doc = randomDocument(rand, i % 3 === 0);
      if (Buffer.byteLength(doc) > 64 * 1024) cut++;
      expect(() => JSON.parse(doc), doc.slice(0, 200)).not.toThrow();
      await expectSameAsJsonParse(buf(doc), { wholeBelow: 0, sliceMs: 0.01 });
    }
    expect(cut).toBeGreaterThan(20);
  });

  it('accepts and refuses 300 mutated documents exactly as JSON.parse does, on both paths', async () => {
    const rand = seededRandom(0xbad5eed);
    let refused = 0;
    for (let i = 0; i < 300; i++) {
      const doc = mutate(randomDocument(rand, i % 3 === 0), rand);
      let ok = true;
      try {
        JSON.parse(doc);
      } catch {
        ok = false;
      }
      for (const [, opts] of PATHS) {
        if (ok) await expectSameAsJsonParse(buf(doc), opts);
        else await expectCode(buf(doc), opts, 'CDNS_JSON_SYNTAX');
      }
      if (!ok) refused++;
    }
    expect(refused).toBeGreaterThan(100);
  });
});
