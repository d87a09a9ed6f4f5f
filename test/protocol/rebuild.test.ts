/**
 * Queries keep being answered, from the zone being served, while a large catalog is rebuilt: the
 * build runs in slices and the new zone is swapped in whole.
 */
import { mkdtempSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { catalogDoc, instanceDoc, nodeDoc, type Json } from '../support/cases.js';
import { udpQuery } from '../support/dns-client.js';
import { startServer, type TestServer } from '../support/server.js';

const SERVICES = 3000;

function doc(port: number): Json {
  const nodes = Array.from({ length: 300 }, (_, i) => nodeDoc(`node-${i}`, `10.1.${i >> 8}.${i & 255}`));
  const services: Record<string, Json[]> = {};
  for (let s = 0; s < SERVICES; s++) {
    services[`svc-${s}`] = [0, 1, 2].map((k) => instanceDoc(nodes[(s * 7 + k * 31) % nodes.length]!, `svc-${s}`, { port: port + k, tags: ['v1'] }));
  }
  return catalogDoc('dc1', { dc1: { nodes, services } });
}

describe('a full rebuild of a large catalog', () => {
  let dir: string;
  let file: string;
  let server: TestServer;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cdns-rebuild-'));
    file = join(dir, 'catalog.json');
    writeFileSync(file, JSON.stringify(doc(8000)));
    server = await startServer({ catalogFile: file });
  });
  afterAll(async () => {
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers every query from the old zone until the new one is complete, then from the new one', async () => {
    const srvPort = async (s: number) => {
      const r = await udpQuery(server.port, `svc-${s}.service.consul`, 'SRV', { edns: 4096, timeoutMs: 3000 });
      expect(r.rcode).toBe('NOERROR');
      const ports = new Set(r.answers.map((a) => (a.data as { port: number }).port));
      // Never a mix of both versions in one answer: the swap is whole.
      expect(ports.size === 3 && ([...ports].every((p) => p < 9000) || [...ports].every((p) => p >= 9000))).toBe(true);
      return Math.min(...ports);
    };
    expect(await srvPort(0)).toBe(8000);
    const serial0 = server.app.store.current()!.serial;
    // Every service changes: a rebuild of every unit.
    writeFileSync(`${file}.tmp`, JSON.stringify(doc(9000)));
    renameSync(`${file}.tmp`, file);
    let answered = 0;
    let sawNew = false;
    for (let i = 0; i < 4000 && !sawNew; i++) {
      const port = await srvPort(i % SERVICES);
      answered++;
      sawNew = port >= 9000 && server.app.store.current()!.serial !== serial0;
    }
    expect(sawNew).toBe(true);
    expect(answered).toBeGreaterThan(0);
    // After the swap every service answers from the new zone.
    for (const s of [0, 1234, SERVICES - 1]) expect(await srvPort(s)).toBe(9000);
  }, 60_000);
});
