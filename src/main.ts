#!/usr/bin/env node
/**
 * The catalog-dns command. Exit codes: 0 stopped cleanly, 1 runtime failure (cannot bind), 2 bad
 * configuration or catalog; a second SIGTERM/SIGINT, or a stop that overruns its deadline, ends the
 * process by that signal (see src/lifecycle.ts).
 *
 * The lifecycle is created first, before any other module is loaded (they are imported dynamically
 * below): from the first moment SIGUSR1 cannot open the inspector and SIGHUP does not end the process;
 * SIGTERM/SIGINT are caught from just before the server starts, so a stop during the start is honoured.
 */
import { ProcessLifecycle } from './lifecycle.js';

const lifecycle = new ProcessLifecycle({ process });

const [{ App }, { parseArgs }, { CatalogDnsError }, { createLogger }, { pino }] = await Promise.all([
  import('./app.js'), import('./cli.js'), import('./errors.js'), import('./log.js'), import('pino'),
]);

/** Runs the command; a number is the exit code now, null means the lifecycle owns the exit. */
async function main(): Promise<number | null> {
  let parsed;
  try {
    parsed = parseArgs(process.argv.slice(2), process.env);
  } catch (e) {
    return fail(e);
  }
  if (parsed.kind === 'print') {
    process.stdout.write(parsed.text);
    return 0;
  }
  const config = parsed.config;
  // Synchronous writes to stdout (as process.stdout's own are to pipes and files): a line logged just
  // before the process ends by a signal must not sit in a buffer. Logs are never per query.
  const logger = createLogger(config.logLevel, pino.destination({ dest: 1, sync: true }) as unknown as NodeJS.WritableStream);
  lifecycle.setLogger(logger);
  let app;
  try {
    // SIGHUP reads the configuration again: the same flags, environment and --config file.
    app = new App({ config, logger, reloadConfig: () => { const r = parseArgs(process.argv.slice(2), process.env, { regularConfigOnly: true }); if (r.kind !== 'run') throw new Error('not a run'); return r.config; } });
    lifecycle.catchStopSignals();
    await app.start();
  } catch (e) {
    return fail(e);
  }
  lifecycle.attach(app);
  return null;
}

function fail(e: unknown): number {
  if (e instanceof CatalogDnsError) {
    process.stderr.write(`catalog-dns: ${e.message}\n`);
    return e.code === 'CDNS_ERR_BIND' ? 1 : 2;
  }
  process.stderr.write(`catalog-dns: ${(e as Error)?.stack ?? String(e)}\n`);
  return 1;
}

void main().then((code) => { if (code !== null) lifecycle.exit(code); });
