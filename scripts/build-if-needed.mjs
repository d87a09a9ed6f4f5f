// Builds dist/ with tsc when it is missing or older than a source file, so `npm start` is instant
// after the first build and never serves stale code. npm runs it as `prepare` too (after `npm install`
// or `npm ci` in a clone, and when npm installs catalog-dns from git), which is how a clone gets a
// dist/ and its `catalog-dns` command.
//
// --clean removes dist/ first and always builds: `prepack` uses it, so a tarball (`npm pack`,
// `npm publish`) never carries a file left behind by a source that no longer exists.
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const at = (p) => join(root, p);
const clean = process.argv.includes('--clean');

function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

if (clean) rmSync(at('dist'), { recursive: true, force: true });
const stale = !existsSync(at('dist/main.js')) ||
  Math.max(newest(at('src')), statSync(at('tsconfig.json')).mtimeMs, statSync(at('package.json')).mtimeMs) > statSync(at('dist/main.js')).mtimeMs;
if (stale) {
  let tsc;
  try {
    tsc = join(dirname(createRequire(at('package.json')).resolve('typescript/package.json')), 'bin/tsc');
  } catch {
    process.stderr.write('catalog-dns: dist/ needs a build, but typescript is not installed: run `npm install` (with dev dependencies)\n');
    process.exit(1);
  }
  process.stderr.write('catalog-dns: building dist/ with tsc\n');
  execFileSync(process.execPath, [tsc, '-p', at('tsconfig.json')], { stdio: 'inherit', cwd: root });
}
