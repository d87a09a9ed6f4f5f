// How long a new catalog-dns process is exposed to SIGUSR1 opening Node's inspector: the time from
// the process start until dist/lifecycle.js (the first thing dist/main.js loads) has installed its
// listener, next to a bare `node -e 0`. Before that, Node 20 opens the inspector on SIGUSR1
// (README "Signals and exit codes"). Usage, after `npm run build`:
//   node bench/signal-window.mjs [runs=15]
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const runs = Number(process.argv[2] ?? 15);
const lifecycle = fileURLToPath(new URL('../dist/lifecycle.js', import.meta.url));
const probe = `import(${JSON.stringify(lifecycle)}).then(({ ProcessLifecycle }) => {
  new ProcessLifecycle({ process }); process.stdout.write(String(performance.now()));
});`;
const window = [], bare = [];
for (let i = 0; i < runs; i++) {
  window.push(Number(execFileSync(process.execPath, ['-e', probe], { encoding: 'utf8' })));
  const t0 = performance.now();
  execFileSync(process.execPath, ['-e', '0']);
  bare.push(performance.now() - t0);
}
const stats = (xs) => { xs.sort((a, b) => a - b); return `min ${xs[0].toFixed(0)} ms, median ${xs[xs.length >> 1].toFixed(0)} ms, max ${xs.at(-1).toFixed(0)} ms`; };
console.log(`SIGUSR1 listener installed after: ${stats(window)} (${runs} runs)`);
console.log(`node -e 0, whole run:             ${stats(bare)}`);
