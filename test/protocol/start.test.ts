/**
 * A start answers before its first zone is complete (zone/provisional.ts): service and node names
 * at once, every other question held, over UDP and TCP, and answered from the complete zone.
 *
 * A gated source hands the catalog over as a preview, then waits for the test before it delivers
 * it whole, so what is answered while the zone is not complete is checked deterministically. The
 * file source's own start (a real file, through split.ts) is checked at the end.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { App } from '../../src/app.js';
import { openCatalog, validateCatalog, type Catalog, type CatalogPreview } from '../../src/catalog/catalog.js';
import type { CatalogSource } from '../../src/catalog/source.js';
import { loadConfig } from '../../src/config.js';
import { CatalogError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { buildZone } from '../../src/zone/build.js';
import { buildQuery, decode, tcpExchange, udpQuery, udpRaw } from '../support/dns-client.js';
import { DEMO_CATALOG, startServer } from '../support/server.js';

class GatedSource implements CatalogSource {
  readonly name = 'gated';
  previewed = false;
  private open!: () => void;
  private readonly gate = new Promise<void>((r) => (this.open = r));
  constructor(private readonly doc: unknown) {}

  release(): void {
    this.open();
  }

  async start(onCatalog: (c: Catalog) => void | Promise<unknown>, _onFailure?: (r: string) => void, onPreview?: (p: CatalogPreview) => void): Promise<void> {
    onPreview?.(openCatalog(this.doc).preview);
    this.previewed = true;
    await this.gate;
    await onCatalog(validateCatalog(this.doc).catalog);
  }

  async close(): Promise<void> {}
}

const demo = JSON.parse(readFileSync(DEMO_CATALOG, 'utf8')) as unknown;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits (bounded) until `f` holds. */
async function until(f: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !f(); i++) await sleep(10);
  if (!f()) throw new Error(`never: ${what}`);
}

describe('a start answers while its first zone is built', () => {
  const apps: App[] = [];
  const dirs: string[] = [];
  afterAll(async () => {
    await Promise.all(apps.map((a) => a.close()));
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('service names at once; SOA and NXDOMAIN held over UDP and TCP, then answered from the complete zone', async () => {
    const source = new GatedSource(demo);
    const app = new App({ config: loadConfig({ object: { dns: '127.0.0.1:0', http: 'off' } }), logger: silentLogger(), source });
    apps.push(app);
    const starting = app.start();
    await until(() => source.previewed && app.dnsAddress.port > 0, 'listening on the preview');
    const port = app.dnsAddress.port;
    expect(app.store.current()).toBeNull(); // no complete zone yet

    const web = await udpQuery(port, 'web.service.consul', 'A');
    expect(web.rcode).toBe('NOERROR');
    expect(web.flags & 0x0400).toBe(0x0400); // authoritative
    expect(web.answers.length).toBeGreaterThan(0);

    // Held: nothing comes back until the zone is complete.
    let settled = 0;
    const soaUdp = udpRaw(port, buildQuery('consul', 'SOA', { id: 11 }), 10_000).then((r) => { settled++; return r; });
    const nxUdp = udpRaw(port, buildQuery('nosuch.service.consul', 'A', { id: 12 }), 10_000).then((r) => { settled++; return r; });
    // One TCP connection: a held question, then one the preview could answer; replies stay in order.
    const tcp = tcpExchange(port, [buildQuery('consul', 'SOA', { id: 21 }), buildQuery('web.service.consul', 'A', { id: 22 })], 2, 10_000)
      .then((r) => { settled++; return r; });
    await sleep(300);
    expect(settled).toBe(0);
    // The held queries are counted when they are answered, not twice.
    expect(app.counters.queriesUdp).toBe(1);
    expect(app.counters.held).toBe(3);

    source.release();
    await starting;
    const zone = app.store.current()!;
    expect(zone).not.toBeNull();
    const soa = decode((await soaUdp)!);
    expect(soa.id).toBe(11);
    expect(soa.answers[0]!.type).toBe('SOA');
    expect((soa.answers[0]!.data as { serial: number }).serial).toBe(zone.serial);
    const nx = decode((await nxUdp)!);
    expect([nx.id, nx.rcode]).toEqual([12, 'NXDOMAIN']);
    const [t1, t2] = (await tcp).map(decode);
    expect([t1!.id, t1!.answers[0]!.type]).toEqual([21, 'SOA']);
    expect([t2!.id, t2!.rcode]).toEqual([22, 'NOERROR']);
    expect(app.counters.queriesUdp).toBe(3);
    expect(app.counters.queriesTcp).toBe(2);

    // The preview's answer is the complete zone's answer.
    const after = await udpQuery(port, 'web.service.consul', 'A');
    expect(after.answers.map((a) => a.data).sort()).toEqual(web.answers.map((a) => a.data).sort());
  });

  it('from a catalog file (split and parsed list by list): the zone of a whole parse', async () => {
    const split = await startServer();
    try {
      const config = loadConfig({ object: { dns: '127.0.0.1:0' } });
      const whole = buildZone(validateCatalog(demo).catalog, { config, serialFor: () => 1 });
      expect(split.app.store.current()!.contentHash).toBe(whole.contentHash);
      expect((await udpQuery(split.port, '_web._tcp.service.consul', 'SRV')).answers.length).toBeGreaterThan(0);
    } finally {
      await split.close();
    }
  });

  it('a catalog file whose service list is not JSON stops the start with the error of the whole text', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'catalog-dns-start-'));
    dirs.push(dir);
    const text = readFileSync(DEMO_CATALOG, 'utf8');
    // Break the inside of the first service list: the scan still follows it, JSON.parse does not.
    const at = text.indexOf('"Port"', text.indexOf('"services"'));
    const bad = `${text.slice(0, at)}"Port": tru,${text.slice(at)}`;
    const path = join(dir, 'catalog.json');
    writeFileSync(path, bad);
    let whole: unknown;
    try { JSON.parse(bad); } catch (e) { whole = e; }
    expect(whole).toBeInstanceOf(SyntaxError);
    const app = new App({ config: loadConfig({ object: { dns: '127.0.0.1:0', http: 'off', catalog_file: path } }), logger: silentLogger() });
    const err = await app.start().then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(CatalogError);
    expect((err as Error).message).toContain(`not valid JSON (${(whole as Error).message})`);
    // Nothing was left listening (the listeners open on the preview, before the error is found).
    const port = app.dnsAddress.port;
    if (port !== 0) expect(await udpRaw(port, buildQuery('web.service.consul', 'A', { id: 5 }), 300)).toBeNull();
  });
});
