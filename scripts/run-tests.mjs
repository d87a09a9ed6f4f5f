// Runs the whole vitest suite, then prints the closing line CI reads ("N passed, N failed")
// from vitest's JSON report, and exits with vitest's own exit code.
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';

const report = '.vitest-report.json';
rmSync(report, { force: true });
const args = ['node_modules/vitest/vitest.mjs', 'run', '--reporter=default', '--reporter=json',
  `--outputFile.json=${report}`, ...process.argv.slice(2)];
const r = spawnSync(process.execPath, args, { stdio: 'inherit' });
let passed = 0, failed = 0, skipped = 0;
try {
  const j = JSON.parse(readFileSync(report, 'utf8'));
  passed = j.numPassedTests; failed = j.numFailedTests; skipped = j.numPendingTests + (j.numTodoTests ?? 0);
  // A suite that failed to load counts as a failure even if it holds no test.
  if (j.numFailedTestSuites > 0 && failed === 0) failed = j.numFailedTestSuites;
} catch (e) {
  process.stderr.write(`could not read ${report}: ${e.message}\n`);
  if (r.status === 0) r.status = 1;
  failed = Math.max(failed, 1);
}
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(r.status ?? 1);
