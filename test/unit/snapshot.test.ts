/**
 * The persisted catalog: written in the catalog-file format and read back to the same zone.
 */
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseCatalog } from '../../src/catalog/catalog.js';
import { readSnapshot, writeSnapshot } from '../../src/catalog/snapshot.js';
import { loadConfig } from '../../src/config.js';
import { buildZone } from '../../src/zone/build.js';
import { rrText } from '../../src/zone/records.js';

const dir = mkdtempSync(join(tmpdir(), 'cdns-snapshot-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const config = loadConfig({ object: { dns: '127.0.0.1:0' } });
const fixture = (f: string) => new URL(`../../fixtures/${f}`, import.meta.url).pathname;

describe('catalog snapshot', () => {
  for (const f of ['demo-catalog.json', 'alias-catalog.json']) {
    it(`${f}: written and read back, it gives the same zone`, async () => {
      const catalog = parseCatalog(readFileSync(fixture(f), 'utf8')).catalog;
      const path = join(dir, `${f}.snapshot`);
      const bytes = await writeSnapshot(path, catalog, 0);
      expect(bytes).toBe(readFileSync(path).length);
      expect(existsSync(`${path}.tmp`)).toBe(false);
      const back = await readSnapshot(path);
      const a = buildZone(catalog, { config, serialFor: () => 1 });
      const b = buildZone(back!, { config, serialFor: () => 1 });
      expect(b.contentHash).toBe(a.contentHash);
      expect([...b.records()].map((r) => rrText(r))).toEqual([...a.records()].map((r) => rrText(r)));
    });
  }
  it('a missing snapshot is null; a corrupt one is an error naming the JSON path', async () => {
    expect(await readSnapshot(join(dir, 'none.json'))).toBeNull();
    const path = join(dir, 'bad.json');
    await writeSnapshot(path, parseCatalog(readFileSync(fixture('demo-catalog.json'), 'utf8')).catalog);
    const { writeFileSync } = await import('node:fs');
    writeFileSync(path, readFileSync(path, 'utf8').slice(0, 100));
    await expect(readSnapshot(path)).rejects.toThrow(/not valid JSON/);
  });
});
