/**
 * The npm package as a user gets it: `npm pack` of a copy of the sources without dist/ (the package's
 * prepack/prepare scripts must build it), `npm install -g` of the tarball into a temporary prefix
 * (dependencies from the npm cache or registry), then the installed `catalog-dns` command, started
 * from an unrelated directory with --demo, answers a real DNS query and stops on SIGTERM by its PID.
 * See README "Quick start".
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { udpQuery } from '../support/dns-client.js';
import { freePort } from '../support/daemons.js';

const root = new URL('../..', import.meta.url).pathname;
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name: string; version: string; license: string };
/** What a clone holds that the build and the package need (tests, benches and docs stay out). */
const SOURCES = ['package.json', 'package-lock.json', 'tsconfig.json', 'README.md', 'LICENSE', 'src', 'scripts', 'fixtures'];
const NPM_TIMEOUT_MS = 240_000;

/**
 * npm's own settings are passed to scripts as npm_config_* variables (under `npm test`, e.g. the
 * project's prefix); the npm commands below get the environment without them, and without prompts.
 */
const npmEnv: Record<string, string> = {};
for (const [k, v] of Object.entries(process.env)) {
  if (v !== undefined && !(/^npm_/i.test(k) && !/^npm_config_(cache|registry|userconfig)$/i.test(k))) npmEnv[k] = v;
}
Object.assign(npmEnv, { npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' });

/** Runs npm as the test's own Node runs it: the npm that started the tests if any, else `npm` on PATH. */
async function npm(args: string[], cwd: string): Promise<string> {
  const cli = process.env.npm_execpath;
  const [cmd, argv] = cli && /npm-cli\.js$/.test(cli) ? [process.execPath, [cli, ...args]] : ['npm', args];
  try {
    const r = await promisify(execFile)(cmd, argv, { cwd, env: npmEnv, encoding: 'utf8', timeout: NPM_TIMEOUT_MS, maxBuffer: 16 << 20 });
    return r.stdout;
  } catch (e) {
    const x = e as Error & { stdout?: string; stderr?: string };
    throw new Error(`npm ${args.join(' ')} failed: ${x.message}\n${x.stdout ?? ''}\n${x.stderr ?? ''}`);
  }
}

let work: string;
let prefix: string;
let packed: { filename: string; files: Array<{ path: string }> };
const children = new Set<ChildProcess>();

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'cdns-pkg-'));
  const tree = join(work, 'tree');
  for (const s of SOURCES) cpSync(join(root, s), join(tree, s), { recursive: true });
  // The build needs the dev dependencies (tsc), not a second install of them.
  symlinkSync(join(root, 'node_modules'), join(tree, 'node_modules'), 'dir');
  expect(existsSync(join(tree, 'dist'))).toBe(false);
  mkdirSync(join(work, 'out'));
  packed = (JSON.parse(await npm(['pack', '--json', '--pack-destination', join(work, 'out')], tree)) as Array<typeof packed>)[0]!;
  prefix = join(work, 'prefix');
  await npm(['install', '--global', '--prefix', prefix, '--prefer-offline', join(work, 'out', packed.filename)], work);
}, NPM_TIMEOUT_MS * 2 + 30_000);

afterAll(async () => {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      const gone = new Promise((r) => c.once('exit', r));
      c.kill('SIGKILL');
      await gone;
    }
  }
  if (work) rmSync(work, { recursive: true, force: true });
});

/** The installed command, run from a directory that holds nothing of catalog-dns. */
function command(args: string[]): { child: ChildProcess; out: () => string; exited: Promise<number | null> } {
  const cwd = join(work, 'elsewhere');
  mkdirSync(cwd, { recursive: true });
  // The bin's `#!/usr/bin/env node` must find the Node that runs this test (the CI runs it on two).
  const env = { ...process.env, PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}` };
  const child = spawn(join(prefix, 'bin', 'catalog-dns'), args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, out: () => out, exited };
}

describe('npm package', () => {
  it('packs the built command, its sources for the source maps, the demo catalog and the license', () => {
    const files = packed.files.map((f) => f.path).sort();
    expect(packed.filename).toBe(`${pkg.name}-${pkg.version}.tgz`);
    for (const f of ['package.json', 'README.md', 'LICENSE', 'dist/main.js', 'dist/app.js', 'dist/cli.js', 'fixtures/demo-catalog.json']) expect(files).toContain(f);
    // Every source map ships with the source it points at.
    for (const f of files.filter((p) => p.endsWith('.js.map'))) expect(files).toContain(f.replace(/^dist\//, 'src/').replace(/\.js\.map$/, '.ts'));
    expect(files.filter((f) => !/^(dist|src)\//.test(f))).toEqual(['LICENSE', 'README.md', 'fixtures/demo-catalog.json', 'package.json']);
  });

  it('installs a catalog-dns command that runs from any directory', async () => {
    const bin = join(prefix, 'bin', 'catalog-dns');
    expect(lstatSync(bin).isSymbolicLink()).toBe(true);
    expect(realpathSync(bin)).toBe(realpathSync(join(prefix, 'lib', 'node_modules', pkg.name, 'dist', 'main.js')));
    const version = command(['--version']);
    expect(await version.exited).toBe(0);
    expect(version.out().trim()).toBe(pkg.version);
    const help = command(['--help']);
    expect(await help.exited).toBe(0);
    expect(help.out()).toContain('catalog-dns --demo');
    expect(help.out()).toContain(join(prefix, 'lib', 'node_modules', pkg.name, 'fixtures', 'demo-catalog.json'));
  }, 30_000);

  it('says a catalog source is needed and exits 2 without one', async () => {
    const run = command([]);
    expect(await run.exited).toBe(2);
    expect(run.out()).toContain('--catalog-file: or --consul is required');
  }, 30_000);

  it('serves the demo catalog (--demo) over real DNS and stops on SIGTERM', async () => {
    // A free port can be taken between picking and binding: a start that cannot bind (exit 1) is retried.
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const run = command(['--demo', '--dns', `127.0.0.1:${port}`, '--http', 'off']);
      const serving = await new Promise<boolean>((resolve) => {
        const t = setTimeout(() => resolve(false), 30_000);
        const check = (): void => { if (run.out().includes('"serving"')) { clearTimeout(t); resolve(true); } };
        run.child.stdout!.on('data', check);
        void run.exited.then(() => { clearTimeout(t); resolve(run.out().includes('"serving"')); });
      });
      if (!serving && run.child.exitCode === 1 && attempt < 3) continue;
      expect(serving, run.out()).toBe(true);
      const line = JSON.parse(run.out().split('\n').find((l) => l.includes('"serving"'))!) as Record<string, unknown>;
      expect(line).toMatchObject({ dns: `127.0.0.1:${port}`, catalog: join(prefix, 'lib', 'node_modules', pkg.name, 'fixtures', 'demo-catalog.json') });
      const r = await udpQuery(port, 'web.service.consul', 'A', { timeoutMs: 5000 });
      expect(r.rcode).toBe('NOERROR');
      expect(r.answers.map((a) => a.data).sort()).toEqual(['10.0.1.11', '10.0.1.12', '10.0.1.13']);
      process.kill(run.child.pid!, 'SIGTERM');
      expect(await run.exited).toBe(0);
      return;
    }
  }, 90_000);
});
