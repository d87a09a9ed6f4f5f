/**
 * Starts catalog-dns in-process on 127.0.0.1 port 0 (UDP and TCP share the port) for tests.
 * Teardown: call close() (registered by the caller next to creation, e.g. in afterAll).
 */
import { App } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { createLogger, silentLogger } from '../../src/log.js';

export const DEMO_CATALOG = new URL('../../fixtures/demo-catalog.json', import.meta.url).pathname;

export interface TestServer {
  readonly host: string;
  readonly port: number;
  readonly app: App;
  close(): Promise<void>;
}

export async function startServer(opts: { catalogFile?: string; config?: Record<string, unknown>; verbose?: boolean } = {}): Promise<TestServer> {
  const config = loadConfig({
    object: { dns: '127.0.0.1:0', http: 'off', catalog_file: opts.catalogFile ?? DEMO_CATALOG, ...opts.config },
  });
  const app = new App({ config, logger: opts.verbose ? createLogger('debug', process.stderr) : silentLogger() });
  await app.start();
  return { host: '127.0.0.1', port: app.dnsAddress.port, app, close: () => app.close() };
}
