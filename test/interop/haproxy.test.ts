// README "Resolvers in front", HAProxy: a backend filled from `_web._tcp.service.consul` SRV records
// by HAProxy's own resolver, with the README's recipe exactly as documented (only the knob the
// README names, `hold obsolete`, shortened), in front of catalog-dns serving a
// catalog file of the test's own. The backend is read with the runtime API; it must be the healthy
// instances, and follow a rewrite of the catalog file (by rename, as README "Catalog file" says).
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { catalogDoc, instanceDoc, nodeDoc, type Json, type Status } from '../support/cases.js';
import { type Daemon, haproxyCommand, haproxySocket, printLogsOnFailure, startHaproxy } from '../support/daemons.js';
import { requireProgram } from '../support/programs.js';
import { overrideLine, readmeRecipe, withPlaceholders } from '../support/recipes.js';
import { startServer, type TestServer } from '../support/server.js';

const haproxyBin = requireProgram('haproxy', 'haproxy');

// ---- the catalog: instances on loopback addresses (HAProxy's health checks connect to them) -----

interface Inst { node: string; address: string; id: string; port: number; status: Status }

function catalogOf(instances: readonly Inst[]): Json {
  return catalogDoc('dc1', {
    dc1: {
      services: {
        web: instances.map((i) => instanceDoc(nodeDoc(i.node, i.address), 'web', { id: i.id, port: i.port, status: i.status })),
      },
    },
  });
}

/** The backend HAProxy should have: an address:port per instance that is not critical. */
const healthy = (instances: readonly Inst[]): string[] =>
  instances.filter((i) => i.status !== 'critical').map((i) => `${i.address}:${i.port}`).sort();

const BEFORE: Inst[] = [
  { node: 'n1', address: '127.0.1.1', id: 'web-n1', port: 8080, status: 'passing' },
  { node: 'n1', address: '127.0.1.1', id: 'web-n1-admin', port: 8081, status: 'passing' }, // same address, another port
  { node: 'n2', address: '127.0.1.2', id: 'web-n2', port: 8080, status: 'passing' },
  { node: 'n3', address: '127.0.1.3', id: 'web-n3', port: 8080, status: 'critical' },
  { node: 'n4', address: '127.0.1.4', id: 'web-n4', port: 8080, status: 'warning' },
];
const AFTER: Inst[] = [
  { node: 'n1', address: '127.0.1.1', id: 'web-n1', port: 8080, status: 'passing' },
  { node: 'n1', address: '127.0.1.1', id: 'web-n1-admin', port: 8081, status: 'passing' },
  { node: 'n2', address: '127.0.1.2', id: 'web-n2', port: 8080, status: 'critical' }, // now failing
  { node: 'n2', address: '127.0.1.2', id: 'web-n2-b', port: 9090, status: 'passing' }, // new, on n2's address
  { node: 'n3', address: '127.0.1.3', id: 'web-n3', port: 8080, status: 'passing' }, // recovered
  // n4 deregistered
];

/** Writes the catalog file the safe way: a temp file in the same directory, then rename over it. */
async function writeCatalog(path: string, instances: readonly Inst[]): Promise<void> {
  const tmp = `${path}.tmp`;
  await writeFile(tmp, JSON.stringify(catalogOf(instances), null, 2));
  await rename(tmp, path);
}

// ---- the backend, as HAProxy's runtime API reports it -----------------------------------------

interface ServerState { name: string; addr: string; port: string; admin: number }

const SRV_ADMF_RMAINT = 0x20; // in maintenance because its name does not resolve (HAProxy's server.h)

async function serversState(d: Daemon): Promise<ServerState[]> {
  const text = await haproxyCommand(haproxySocket(d), 'show servers state web');
  const lines = text.split('\n');
  const header = lines.find((l) => l.startsWith('# be_id'));
  if (header === undefined) throw new Error(`no 'show servers state' header in:\n${text}`);
  const cols = header.slice(2).trim().split(/\s+/);
  const col = (fields: string[], name: string): string => {
    const at = cols.indexOf(name);
    if (at < 0) throw new Error(`no column ${name} in: ${header}`);
    return fields[at]!;
  };
  return lines.filter((l) => /^\d+ /.test(l)).map((l) => { // the first line is the format version alone
    const f = l.trim().split(/\s+/);
    return { name: col(f, 'srv_name'), addr: col(f, 'srv_addr'), port: col(f, 'srv_port'), admin: Number(col(f, 'srv_admin_state')) };
  });
}

/** address:port of every server slot that holds an instance (resolved, not in resolution maintenance). */
async function backend(d: Daemon): Promise<string[]> {
  return (await serversState(d))
    .filter((s) => s.addr !== '-' && (s.admin & SRV_ADMF_RMAINT) === 0)
    .map((s) => `${s.addr}:${s.port}`)
    .sort();
}

/** Polls until `ok(value)` or the deadline; returns the last value (the caller asserts on it). */
async function pollUntil<T>(get: () => Promise<T>, ok: (v: T) => boolean, deadlineMs = 40_000): Promise<T> {
  const end = Date.now() + deadlineMs;
  let v = await get();
  while (!ok(v) && Date.now() < end) {
    await sleep(200);
    v = await get();
  }
  return v;
}

const same = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

describe.skipIf(haproxyBin.skip)('README recipe: HAProxy server-template on _web._tcp.service.consul', () => {
  let dir: string | undefined;
  let server: TestServer | undefined;
  let haproxy: Daemon | undefined;
  let catalogPath = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cdns-haproxy-catalog-'));
    catalogPath = join(dir, 'catalog.json');
    await writeCatalog(catalogPath, BEFORE);
    server = await startServer({ catalogFile: catalogPath });
    let recipe = withPlaceholders(readmeRecipe('haproxy'), { '127.0.0.1:8600': `127.0.0.1:${server.port}` });
    // The one knob README names for the test to change: how long a vanished SRV record is kept.
    recipe = overrideLine(recipe, /^\s*hold obsolete\s/, 'hold obsolete 1s');
    haproxy = await startHaproxy({ config: recipe, bin: haproxyBin.path });
  });
  afterAll(async () => {
    await haproxy?.stop();
    await server?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });
  printLogsOnFailure(() => [haproxy]);

  it('the backend is the healthy instances, two of them on one address', async () => {
    const want = healthy(BEFORE);
    expect(want).toEqual(['127.0.1.1:8080', '127.0.1.1:8081', '127.0.1.2:8080', '127.0.1.4:8080']);
    const got = await pollUntil(() => backend(haproxy!), (b) => same(b, want));
    expect(got).toEqual(want);
  }, 60_000);

  it('follows a rewrite of the catalog file: failed, deregistered and recovered instances, a new one on a shared address', async () => {
    await writeCatalog(catalogPath, AFTER);
    const want = healthy(AFTER);
    expect(want).toEqual(['127.0.1.1:8080', '127.0.1.1:8081', '127.0.1.2:9090', '127.0.1.3:8080']);
    const got = await pollUntil(() => backend(haproxy!), (b) => same(b, want));
    expect(got).toEqual(want);
  }, 60_000);
});
