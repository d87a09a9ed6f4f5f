#!/usr/bin/env node
/**
 * The catalog-dns command. Exit codes: 0 stopped cleanly, 1 runtime failure (cannot bind), 2 bad
 * configuration or catalog; a second SIGTERM/SIGINT, or a stop that overruns its deadline, ends the
 * process by that signal (see src/lifecycle.ts).
 *
 * A failed start is one human line on stderr (`catalog-dns: <reason>`) and one JSON log line on
 * stdout (level fatal, with the error's `code`), so that both a terminal and a log pipeline see it.
 *
 * The lifecycle is created first, before any other module is loaded (they are imported dynamically
 * below): from the first moment SIGUSR1 cannot open the inspector and SIGHUP does not end the process;
 * SIGTERM/SIGINT are caught from just before the server starts, so a stop during the start is honoured.
 */
import { ProcessLifecycle } from './lifecycle.js';

const lifecycle = new ProcessLifecycle({ process });

const [{ App }, { parseArgs, version }, { CatalogDnsError }, { createLogger }, { pino }] = await Promise.all([
  import('./app.js'), import('./cli.js'), import('./errors.js'), import('./log.js'), import('pino'),
]);
type Logger = import('./log.js').Logger;
type ConfigWarning = import('./config.js').ConfigWarning;

/** Synchronous writes to stdout (as process.stdout's own are to pipes and files): a line logged just
 * before the process ends by a signal must not sit in a buffer. Logs are never per query. */
const stdoutLogger = (level: Parameters<typeof createLogger>[0]): Logger =>
  createLogger(level, pino.destination({ dest: 1, sync: true }) as unknown as NodeJS.WritableStream);

const logWarnings = (logger: Logger, warnings: readonly ConfigWarning[]): void => {
  for (const w of warnings) logger.warn({ where: w.where, reason: w.reason }, 'configuration warning');
};

/** Runs the command; a number is the exit code now, null means the lifecycle owns the exit. */
async function main(): Promise<number | null> {
  let parsed;
  try {
    parsed = parseArgs(process.argv.slice(2), process.env);
  } catch (e) {
    return fail(e, null);
  }
  if (parsed.kind === 'print') {
    process.stdout.write(parsed.text);
    return 0;
  }
  const config = parsed.config;
  const logger = stdoutLogger(config.logLevel);
  lifecycle.setLogger(logger);
  logWarnings(logger, parsed.warnings);
  let app;
  try {
    // SIGHUP reads the configuration again: the same flags, environment and --config file.
    const reloadConfig = () => {
      const r = parseArgs(process.argv.slice(2), process.env, { regularConfigOnly: true });
      if (r.kind !== 'run') throw new Error('not a run');
      logWarnings(logger, r.warnings);
      return r.config;
    };
    app = new App({ config, logger, reloadConfig, version: version() });
    lifecycle.catchStopSignals();
    await app.start();
  } catch (e) {
    return fail(e, logger);
  }
  lifecycle.attach(app);
  return null;
}

/** One line on stderr and one fatal JSON line on stdout; returns the exit code. */
function fail(e: unknown, logger: Logger | null): number {
  const known = e instanceof CatalogDnsError;
  const exitCode = known ? (e.code === 'CDNS_ERR_BIND' ? 1 : 2) : 1;
  process.stderr.write(`catalog-dns: ${known ? e.message : (e as Error)?.stack ?? String(e)}\n`);
  // Before the configuration is read the log level is not known: the fatal line is logged anyway.
  const log = logger ?? stdoutLogger('info');
  const code = known ? e.code : (e as { code?: unknown })?.code ?? 'CDNS_ERR_UNEXPECTED';
  log.fatal({ code, exitCode, reason: known ? e.message : String((e as Error)?.message ?? e), ...(known ? {} : { stack: (e as Error)?.stack }) }, 'cannot start');
  return exitCode;
}

void main().then((code) => { if (code !== null) lifecycle.exit(code); });
