#!/usr/bin/env node
/** The catalog-dns command. Exit codes: 0 stopped cleanly, 1 runtime failure (cannot bind), 2 bad configuration or catalog. */
import { App } from './app.js';
import { parseArgs } from './cli.js';
import { CatalogDnsError } from './errors.js';
import { createLogger } from './log.js';

async function main(): Promise<number> {
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
  const logger = createLogger(config.logLevel);
  let app: App;
  try {
    app = new App({ config, logger });
    await app.start();
  } catch (e) {
    return fail(e);
  }
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) { app.destroy(); resolve(1); return; }
      stopping = true;
      logger.info({ signal }, 'stopping');
      app.close().then(() => resolve(0), () => resolve(1));
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => { logger.info('reloading the catalog (SIGHUP)'); void app.reload(); });
  });
}

function fail(e: unknown): number {
  if (e instanceof CatalogDnsError) {
    process.stderr.write(`catalog-dns: ${e.message}\n`);
    return e.code === 'CDNS_ERR_BIND' ? 1 : 2;
  }
  process.stderr.write(`catalog-dns: ${(e as Error)?.stack ?? String(e)}\n`);
  return 1;
}

main().then((code) => process.exit(code));
