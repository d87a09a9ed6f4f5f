/**
 * The packaging facts that live in several files and must agree: the supported Node versions
 * (package.json engines, .ci/run, the Dockerfile, README "Supported Node.js"), the license, what the
 * package exports, and `--demo`, the one way to the demo catalog (npm start, the image, --help).
 */
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DEMO_CATALOG, helpText, parseArgs } from '../../src/cli.js';
import { ConfigError } from '../../src/errors.js';

const read = (p: string): string => readFileSync(new URL(`../../${p}`, import.meta.url), 'utf8');
const pkg = JSON.parse(read('package.json')) as {
  version: string; license: string; engines: { node: string }; bin: Record<string, string>;
  exports: Record<string, string>; main?: string; files: string[]; scripts: Record<string, string>;
};
const ci = read('.ci/run');
const dockerfile = read('Dockerfile');
const readme = read('README.md');

describe('supported Node.js versions', () => {
  const lts = /^NODE_LTS_VERSION=(\d+\.\d+\.\d+)$/m.exec(ci)?.[1];

  it('.ci/run pins one exact LTS version, and the Docker image is that version', () => {
    expect(lts).toMatch(/^24\.\d+\.\d+$/);
    expect(dockerfile).toMatch(new RegExp(`^ARG NODE_IMAGE=node:${lts!.replaceAll('.', '\\.')}-slim$`, 'm'));
  });

  it('package.json engines and the README state the same floor and the LTS line', () => {
    expect(pkg.engines.node).toBe('>=20.18.1');
    expect(readme).toContain('Node.js 20.18.1 or newer');
    expect(readme).toContain(`Node.js ${lts}`);
  });
});

describe('package metadata', () => {
  it('ships the MPL-2.0 text the license field names', () => {
    expect(pkg.license).toBe('MPL-2.0');
    expect(read('LICENSE').startsWith('Mozilla Public License Version 2.0\n')).toBe(true);
    expect(dockerfile).toContain('org.opencontainers.image.licenses="MPL-2.0"');
  });

  it('is a command, not a library: a bin and no JavaScript entry point', () => {
    expect(pkg.bin).toEqual({ 'catalog-dns': 'dist/main.js' });
    expect(pkg.exports).toEqual({ './package.json': './package.json' });
    expect(pkg.main).toBeUndefined();
  });

  it('builds when npm prepares or packs it', () => {
    expect(pkg.scripts.prepare).toContain('scripts/build-if-needed.mjs');
    expect(pkg.scripts.prepack).toContain('scripts/build-if-needed.mjs --clean');
  });

  it('the image is labelled with the package version', () => {
    expect(dockerfile).toContain(`org.opencontainers.image.version="${pkg.version}"`);
  });
});

describe('--demo', () => {
  it('serves the demo catalog found next to the code, whatever the working directory', () => {
    expect(existsSync(DEMO_CATALOG)).toBe(true);
    const r = parseArgs(['--demo', '--dns', '127.0.0.1:5353'], {});
    expect(r.kind === 'run' && r.config.catalogFile).toBe(DEMO_CATALOG);
  });

  it('overrides the catalog file from the environment, like any flag', () => {
    const r = parseArgs(['--demo'], { CATALOG_DNS_CATALOG_FILE: '/elsewhere.json' });
    expect(r.kind === 'run' && r.config.catalogFile).toBe(DEMO_CATALOG);
  });

  it.each([[['--demo', '--catalog-file', 'x.json']], [['--consul', 'http://127.0.0.1:8500', '--demo']]])('is refused with another catalog source: %j', (argv) => {
    expect(() => parseArgs(argv, {})).toThrow(ConfigError);
    expect(() => parseArgs(argv, {})).toThrow(/--demo: serves the demo catalog: leave out --catalog-file and --consul/);
  });

  it('is what npm start, --help and the README use', () => {
    expect(pkg.scripts.start).toBe('exec node dist/main.js --demo');
    expect(helpText()).toContain('catalog-dns --demo');
    expect(readme).toContain('docker run --rm -p 8600:8600/udp -p 8600:8600/tcp catalog-dns --demo');
  });
});
