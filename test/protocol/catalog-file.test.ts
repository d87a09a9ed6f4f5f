/**
 * The catalog file source on a real file system: only regular files are read (a FIFO, a directory or
 * a device is refused before a byte is read), the size cap, and a file rewritten faster than the
 * quiet window is still picked up while the writes go on.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Catalog } from '../../src/catalog/catalog.js';
import { FileCatalogSource } from '../../src/catalog/file-source.js';
import { silentLogger } from '../../src/log.js';
import { udpQuery } from '../support/dns-client.js';
import { DEMO_CATALOG, startServer } from '../support/server.js';

const demo = JSON.parse(readFileSync(DEMO_CATALOG, 'utf8'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let dir: string;
beforeAll(() => { dir = mkdtempSync(join(tmpdir(), 'cdns-catfile-')); });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('catalog file: only regular files are read', () => {
  it.each([
    ['a FIFO', () => { const p = join(dir, 'fifo.json'); execFileSync('mkfifo', [p]); return p; }],
    ['a directory', () => dir],
    ['a character device', () => '/dev/zero'],
  ])('refuses %s at start with CDNS_ERR_CATALOG_READ, without waiting or reading', async (kind, make) => {
    const path = make();
    const src = new FileCatalogSource({ path, logger: silentLogger() });
    try {
      await expect(src.start(() => {})).rejects.toMatchObject({
        code: 'CDNS_ERR_CATALOG_READ',
        message: `cannot read catalog file ${path}: it is ${kind}, not a regular file`,
      });
      expect(src.ioPending).toBe(false);
    } finally {
      await src.close();
    }
  });

  it('refuses a file over the size cap at start, and later keeps the catalog it has', async () => {
    const path = join(dir, 'capped.json');
    const text = JSON.stringify(demo);
    writeFileSync(path, text);
    const small = new FileCatalogSource({ path, logger: silentLogger(), maxBytes: text.length - 1 });
    try {
      await expect(small.start(() => {})).rejects.toMatchObject({
        code: 'CDNS_ERR_CATALOG_READ',
        message: `cannot read catalog file ${path}: it is ${text.length} bytes, over the ${text.length - 1}-byte limit`,
      });
    } finally {
      await small.close();
    }
    const catalogs: Catalog[] = [];
    const failures: string[] = [];
    const src = new FileCatalogSource({ path, logger: silentLogger(), maxBytes: text.length + 10 });
    try {
      await src.start((c) => catalogs.push(c), (r) => failures.push(r));
      writeFileSync(path, text + ' '.repeat(100));
      for (let i = 0; i < 100 && failures.length === 0; i++) await sleep(50);
      expect(failures[0]).toContain('over the');
      expect(catalogs).toHaveLength(1);
      expect(src.rejected).toBe(1);
    } finally {
      await src.close();
    }
  });
});

describe('catalog file rewritten faster than the quiet window', () => {
  it('serves new content while the writes go on (a commit at least every maxWait)', async () => {
    const path = join(dir, 'rapid.json');
    const version = (n: number) => {
      const doc = structuredClone(demo);
      doc.datacenters.dc1.services.gen = [{ Node: doc.datacenters.dc1.nodes[0], Service: { ID: 'gen', Service: 'gen', Port: n }, Checks: [] }];
      return JSON.stringify(doc);
    };
    writeFileSync(path, version(1));
    const s = await startServer({ catalogFile: path });
    const port = async () => {
      const r = await udpQuery(s.port, 'gen.service.consul', 'SRV');
      return (r.answers[0]?.data as { port: number } | undefined)?.port ?? 0;
    };
    let writing = true;
    let servedWhileWriting = 1;
    try {
      expect(await port()).toBe(1);
      // A writer rewriting the file in place every 20-50 ms for 5 s: never quiet for 100 ms.
      const writer = (async () => {
        const end = Date.now() + 5000;
        for (let n = 2; Date.now() < end; n++) {
          writeFileSync(path, version(n));
          await sleep(20 + Math.floor(Math.random() * 31));
        }
        writing = false;
      })();
      while (writing) {
        const p = await port();
        if (writing) servedWhileWriting = Math.max(servedWhileWriting, p);
        await sleep(100);
      }
      await writer;
      expect(servedWhileWriting).toBeGreaterThan(1);
    } finally {
      writing = false;
      await s.close();
    }
  });
});
