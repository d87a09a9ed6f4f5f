// Runs `tsc` only when dist/ is missing or older than a source file, so `npm start` is instant
// after the first build and never serves stale code.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';

function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

const stale = !existsSync('dist/main.js') ||
  Math.max(newest('src'), statSync('tsconfig.json').mtimeMs, statSync('package.json').mtimeMs) > statSync('dist/main.js').mtimeMs;
if (stale) {
  process.stderr.write('catalog-dns: building dist/ with tsc\n');
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json'], { stdio: 'inherit' });
}
