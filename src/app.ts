/**
 * The application: wires a catalog source, the zone store, the query handler and the listeners.
 * Everything comes in through options (no module-level state), so several can run in one process.
 */
import { readFileSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { ConsulClient } from './catalog/consul-client.js';
import { ConsulCatalogSource } from './catalog/consul-source.js';
import { readSnapshot, writeSnapshot } from './catalog/snapshot.js';
import type { Catalog, CatalogPreview } from './catalog/catalog.js';
import { FileCatalogSource } from './catalog/file-source.js';
import type { CatalogSource, ChangeHint } from './catalog/source.js';
import { optionSource, type Config } from './config.js';
import { DnsCounters } from './dns/counters.js';
import { QueryHandler } from './dns/handler.js';
import { QueryLog } from './dns/query-log.js';
import { ResponseRateLimiter } from './dns/rrl.js';
import { CatalogDnsError, ConfigError } from './errors.js';
import { ensureWritableDir, notRegularFile } from './files.js';
import { silentLogger, type Logger } from './log.js';
import { TcpServer } from './transport/tcp.js';
import { UdpServer } from './transport/udp.js';
import { ZoneStore } from './zone/store.js';
import type { Metrics } from './http/metrics.js';
import type { HttpServer } from './http/server.js';

/** The catalog persisted in the data dir (live Consul only), and how often it is rewritten at most. */
const SNAPSHOT_FILE = 'catalog.json';
const SNAPSHOT_INTERVAL_MS = 5000;

export interface AppOptions {
  readonly config: Config;
  readonly logger?: Logger;
  /** Overrides the source built from the config (tests, embedding). */
  readonly source?: CatalogSource;
  readonly clock?: () => number;
  /** Reads the configuration again (SIGHUP): the same flags, environment and --config file. */
  readonly reloadConfig?: () => Config;
  /** The version named in the start line. */
  readonly version?: string;
}

/**
 * What a reloaded configuration may change while running, by where it applies; any other change
 * needs a restart (listen addresses, the catalog source, the data dir, TCP and rate-limit settings,
 * the cache size) and is logged as such.
 */
const ZONE_KEYS: ReadonlyArray<keyof Config> = ['domain', 'compat', 'nodeTtl', 'serviceTtl', 'onlyPassing', 'enableAdditionalNodeMetaTxt',
  'translateWanAddrs', 'soa', 'ptrTtl', 'negativeTtl', 'reverseZones'];
const ANSWER_KEYS: ReadonlyArray<keyof Config> = ['udpAnswerLimit', 'aRecordLimit', 'enableTruncate', 'maxUdpSize', 'altDomain'];
const LIVE_KEYS: ReadonlyArray<keyof Config> = ['maxStale', 'queryLog'];

export class App {
  private cfg: Config;
  get config(): Config {
    return this.cfg;
  }
  private readonly reloadConfig: (() => Config) | null;
  readonly counters = new DnsCounters();
  readonly store: ZoneStore;
  readonly source: CatalogSource;
  private readonly log: Logger;
  private udp: UdpServer | null = null;
  private tcp: TcpServer | null = null;
  private port = 0;
  /** Response rate limiting for UDP, null when off (rrl_responses_per_second 0). */
  readonly rrl: ResponseRateLimiter | null;
  /** query_log: handed to the listeners, null when off. */
  private queryLog: QueryLog | null;

  constructor(opts: AppOptions) {
    this.cfg = opts.config;
    this.reloadConfig = opts.reloadConfig ?? null;
    this.log = opts.logger ?? silentLogger();
    this.queryLog = opts.config.queryLog ? new QueryLog(this.log) : null;
    this.version = opts.version ?? null;
    if (opts.config.dataDir) checkDataDir(opts.config.dataDir, optionSource(opts.config, 'data_dir'));
    this.store = new ZoneStore({ config: opts.config, logger: this.log, ...(opts.clock ? { clock: opts.clock } : {}) });
    const c = opts.config;
    if (opts.source) this.source = opts.source;
    else if (c.catalogFile && c.consul.length) throw new ConfigError(optionSource(c, 'consul'), `cannot be used with ${optionSource(c, 'catalog_file')}: give one catalog source`);
    else if (c.catalogFile) this.source = new FileCatalogSource({ path: c.catalogFile, logger: this.log });
    else if (c.consul.length) this.source = this.consulSource();
    else throw new ConfigError('--catalog-file', 'or --consul is required (the catalog to serve: a file, or a live Consul)');
    this.rrl = c.rrlResponsesPerSecond === 0 ? null : new ResponseRateLimiter({
      responsesPerSecond: c.rrlResponsesPerSecond, slip: c.rrlSlip, windowSeconds: c.rrlWindow,
      ipv4Prefix: c.rrlIpv4Prefix, ipv6Prefix: c.rrlIpv6Prefix,
    });
  }

  /** The live Consul source: its client (TLS files read now, so a bad path stops the start) and the snapshot on disk. */
  private consulSource(): ConsulCatalogSource {
    const c = this.config;
    const read = (key: string, path: string | null) => {
      if (!path) return undefined;
      try {
        return readFileSync(path);
      } catch (e) {
        throw new ConfigError(optionSource(c, key), `cannot read ${path}: ${(e as Error).message}`, { cause: e });
      }
    };
    const tls = c.consulTls;
    const ca = read('consul_cacert', tls.ca), cert = read('consul_client_cert', tls.cert), key = read('consul_client_key', tls.key);
    const client = new ConsulClient({
      addresses: c.consul, token: c.consulToken, maxConnections: c.consulMaxConnections, maxResponseBytes: c.consulMaxResponseMb * 1024 * 1024,
      ...(ca || cert || key || tls.serverName ? { tls: { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}), ...(tls.serverName ? { servername: tls.serverName } : {}) } } : {}),
    });
    const snapshot = c.dataDir ? join(c.dataDir, SNAPSHOT_FILE) : null;
    this.snapshotPath = snapshot;
    return new ConsulCatalogSource({
      client, logger: this.log, datacenters: c.datacenters, localDatacenter: c.datacenter,
      maxStaleMs: () => (this.config.maxStale === null ? null : this.config.maxStale * 1000), // reloadable
      guard: c.removalGuard === 0 ? null : { share: c.removalGuard / 100, holdMs: c.removalGuardHold * 1000 },
      initial: async (preview) => {
        if (!snapshot) return null;
        try {
          const cat = await readSnapshot(snapshot, preview);
          if (cat) this.log.info({ path: snapshot }, 'serving the catalog snapshot until Consul answers');
          return cat;
        } catch (e) {
          // Never fatal: moved aside for a look, and Consul gives the catalog again.
          const aside = `${snapshot}.corrupt-${Date.now()}`;
          // Names answered from it meanwhile were answered from valid entries; the rest waits for Consul.
          this.store.dropPreview();
          await rename(snapshot, aside).catch(() => {});
          this.log.error({ path: snapshot, movedTo: aside, err: (e as Error).message }, 'catalog snapshot unreadable; moved aside, waiting for Consul');
          return null;
        }
      },
    });
  }

  /** Keeps the last catalog from Consul on disk (at most one write at a time, the newest catalog wins). */
  private persist(catalog: Catalog): void {
    if (!this.snapshotPath) return;
    this.snapshotNext = catalog;
    this.snapshotWriter ??= (async () => {
      while (this.snapshotNext) {
        const next = this.snapshotNext;
        this.snapshotNext = null;
        try {
          const t0 = performance.now();
          const bytes = await writeSnapshot(this.snapshotPath!, next);
          this.log.debug({ path: this.snapshotPath, bytes, ms: Math.round(performance.now() - t0) }, 'catalog snapshot written');
        } catch (e) {
          this.log.error({ path: this.snapshotPath, err: (e as Error).message }, 'cannot write the catalog snapshot');
        }
        // Bounded rate: a busy catalog is written at most every few seconds (a stop writes at once).
        if (this.snapshotNext && !this.closing) {
          await new Promise<void>((r) => { const t = setTimeout(r, SNAPSHOT_INTERVAL_MS); this.wakeWriter = () => { clearTimeout(t); r(); }; });
          this.wakeWriter = null;
        }
      }
      this.snapshotWriter = null;
    })();
  }

  private snapshotWriter: Promise<void> | null = null;
  private wakeWriter: (() => void) | null = null;
  private closing = false;

  /** /metrics (prom-client), loaded with the HTTP server at the start; null with `http off`. */
  private metrics: Metrics | null = null;
  private handler: QueryHandler | null = null;
  private http: HttpServer | null = null;
  private httpPort = 0;

  /** The address /healthcheck and /metrics are served on (after start), or null when off. */
  get httpAddress(): { host: string; port: number } | null {
    return this.config.http && this.http ? { host: this.config.http.host, port: this.httpPort } : null;
  }

  private snapshotPath: string | null = null;
  private snapshotNext: Catalog | null = null;
  private staleTimer: NodeJS.Timeout | null = null;

  /** max_stale: past it without contact with Consul, the zone is withheld and queries get SERVFAIL. */
  private watchStaleness(): void {
    const src = this.source;
    if (!(src instanceof ConsulCatalogSource)) return;
    this.staleTimer = setInterval(() => {
      const maxStale = this.config.maxStale ?? Infinity; // reloadable
      const since = src.lastContact === null ? null : Date.now() - src.lastContact;
      const tooOld = since !== null && since > maxStale * 1000;
      if (tooOld !== this.store.withheld) {
        this.store.withheld = tooOld;
        if (tooOld) this.log.error({ maxStale, lastContactMsAgo: since }, 'no contact with Consul for longer than max_stale: answering SERVFAIL');
        else this.log.info('contact with Consul is back: answering again');
      }
    }, 1000);
    this.staleTimer.unref();
  }

  /** The address DNS is served on (after start). */
  get dnsAddress(): { host: string; port: number } {
    return { host: this.config.dnsHost, port: this.port };
  }

  /**
   * Serves the first catalog. A source that can (the file) hands it over first as a preview: the
   * listeners open then, and service and node names are answered from a provisional zone while the
   * service entries are validated and the zone is built (zone/provisional.ts); every other query is
   * held until the zone is complete. Resolves once the zone is complete and everything is listening.
   */
  async start(): Promise<void> {
    // Loaded before anything is served (module loading is synchronous work that no query should
    // wait behind); the HTTP server listens once the zone is complete. Not at all with `http off`.
    const httpModules = this.config.http ? await Promise.all([import('./http/metrics.js'), import('./http/server.js')]) : null;
    if (httpModules) this.metrics = new httpModules[0].Metrics({ counters: this.counters, store: this.store, source: this.source, handler: () => this.handler });
    const handler = new QueryHandler({
      store: this.store, config: this.config, logger: this.log, counters: this.counters,
      onSample: (sec) => this.metrics?.answerSeconds.observe(sec),
    });
    this.handler = handler;
    let listening: Promise<void> | null = null;
    let first: Catalog | null = null;
    const onPreview = (p: CatalogPreview) => {
      const preview = this.withLocalDc(p, false);
      if (preview === null || listening) return;
      this.store.preview(preview);
      listening = this.listen(handler);
      listening.catch(() => {}); // reported below, once the first commit is over
      this.log.info('answering service and node names while the zone is built');
    };
    try {
      first = await this.startSource(onPreview);
      await (listening ?? this.listen(handler));
    } catch (e) {
      this.store.dropPreview(); // held queries are let go (SERVFAIL) as the listeners close
      if (listening) {
        await (listening as Promise<void>).catch(() => {});
        await Promise.all([this.udp?.close(), this.tcp?.close()]);
        this.udp = this.tcp = null;
      }
      throw e;
    }
    if (this.config.http && httpModules && this.metrics) {
      const http = new httpModules[1].HttpServer({ store: this.store, source: this.source, metrics: this.metrics, logger: this.log }, this.config.http.host, this.config.http.port);
      try {
        this.httpPort = await http.start();
      } catch (e) {
        await Promise.all([this.udp?.close(), this.tcp?.close()]);
        throw e;
      }
      this.http = http;
    }
    this.watchStaleness();
    const zone = this.store.current()!;
    const c = this.config;
    const counts = first ? catalogCounts(first) : null;
    this.log.info({ version: this.version, dns: `${fmtHost(c.dnsHost)}:${this.port}`, domain: c.domain, source: this.source.name,
      catalog: c.catalogFile, consul: c.consul.length ? c.consul : null, dataDir: c.dataDir, serial: zone.serial, compat: c.compat,
      datacenter: first?.datacenter ?? null, ...counts }, 'serving');
  }

  /** Starts the source; resolves with the first catalog once its zone is committed. */
  private async startSource(onPreview: (p: CatalogPreview) => void): Promise<Catalog | null> {
    let first: Promise<unknown> | null = null;
    // What the first delivery was (assigned in the callback, read after the source's start).
    const at: { catalog: Catalog | null; missingDc: ConfigError | null } = { catalog: null, missingDc: null };
    await this.source.start(
      (delivered: Catalog, hint?: ChangeHint) => {
        const catalog = this.withLocalDc(delivered);
        if (catalog === null && first === null) {
          // The configured local datacenter is not in the first catalog: a configuration error.
          const c = this.config;
          at.missingDc ??= new ConfigError(optionSource(c, 'datacenter'), `${JSON.stringify(c.datacenter)} is not in the catalog (its datacenters: ${[...delivered.datacenters.keys()].join(', ')})`);
          return;
        }
        at.catalog ??= catalog ?? delivered;
        // A failure is logged and recorded by the store; the previous zone keeps serving.
        const c = this.store.commit(catalog ?? delivered, this.source.name, hint).then((r) => {
          this.metrics?.commitSeconds.observe(r.ms / 1000);
          if (hint?.since !== undefined) this.metrics?.propagationSeconds.observe((Date.now() - hint.since) / 1000);
          this.persist(delivered);
        }, () => {});
        first ??= c;
        return c; // the source opens its long polls once the first commit is done
      },
      (reason) => this.store.recordFailure(reason),
      onPreview,
    );
    if (at.missingDc) throw at.missingDc;
    await first;
    if (!this.store.current()) throw new CatalogDnsError('CDNS_ERR_CATALOG_INVALID', 'the first catalog could not be turned into a zone');
    return at.catalog;
  }

  private readonly version: string | null;
  /** The configured datacenter was missing from the last catalog (logged once per absence). */
  private localDcMissing = false;

  /**
   * The catalog with the configured local datacenter (`datacenter`) in place of its own; null when
   * that datacenter is not in it (then the catalog's own is kept, and this is logged once).
   */
  private withLocalDc<C extends Catalog | CatalogPreview>(catalog: C, note = true): C | null {
    const want = this.config.datacenter;
    if (want === null) return catalog;
    const dc = [...catalog.datacenters.keys()].find((d) => d.toLowerCase() === want);
    if (dc === undefined) {
      if (!note) return null;
      if (!this.localDcMissing) this.log.warn({ datacenter: want, datacenters: [...catalog.datacenters.keys()] }, 'the configured datacenter is not in the catalog: names without a datacenter answer from the catalog\'s own');
      this.localDcMissing = true;
      return null;
    }
    this.localDcMissing = false;
    return dc === catalog.datacenter ? catalog : { ...catalog, datacenter: dc };
  }

  /** Binds UDP and TCP on the same port; with port 0, retries until both get the same free port. */
  private async listen(handler: QueryHandler): Promise<void> {
    const { dnsHost: host, dnsPort } = this.config;
    for (let attempt = 0; ; attempt++) {
      const udp = new UdpServer({ host, port: dnsPort, handler, counters: this.counters, logger: this.log,
        maxReplySize: Math.max(512, this.config.maxUdpSize), rrl: this.rrl, queryLog: this.queryLog });
      const port = await udp.start();
      const tcp = new TcpServer({ host, port, handler, counters: this.counters, logger: this.log,
        idleTimeoutMs: this.config.tcpIdleTimeoutMs, maxConnections: this.config.tcpMaxConnections,
        frameTimeoutMs: this.config.tcpFrameTimeoutMs, maxConnectionsPerClient: this.config.tcpMaxConnectionsPerClient, queryLog: this.queryLog });
      try {
        await tcp.start();
      } catch (e) {
        await udp.close();
        if (dnsPort === 0 && attempt < 20) continue;
        throw e;
      }
      this.udp = udp;
      this.tcp = tcp;
      this.port = port;
      return;
    }
  }

  /**
   * SIGHUP: reads the configuration again and applies what can change while running (an invalid
   * one is logged and the running one kept), then re-reads the catalog file.
   */
  async reload(): Promise<void> {
    if (this.reloadConfig) {
      let next: Config | null = null;
      try {
        next = this.reloadConfig();
      } catch (e) {
        this.log.error({ reason: (e as Error).message }, 'configuration reload rejected; keeping the running configuration');
      }
      if (next) await this.applyConfig(next);
    }
    if (this.source instanceof FileCatalogSource) await this.source.reload();
  }

  private async applyConfig(next: Config): Promise<void> {
    const prev = this.cfg;
    const differs = (k: keyof Config) => JSON.stringify(prev[k]) !== JSON.stringify(next[k]);
    const changed = (Object.keys(next) as Array<keyof Config>).filter(differs);
    if (changed.length === 0) { this.log.info('configuration reloaded: unchanged'); return; }
    const later = changed.filter((k) => !ZONE_KEYS.includes(k) && !ANSWER_KEYS.includes(k) && !LIVE_KEYS.includes(k));
    if (later.length) this.log.warn({ keys: later }, 'configuration reloaded: these take effect at the next restart');
    // What applies now: the running configuration with the reloadable keys of the new one.
    const applied = { ...prev } as Record<keyof Config, unknown>;
    for (const k of changed) if (!later.includes(k)) applied[k] = next[k];
    this.cfg = applied as unknown as Config;
    if (changed.some((k) => ANSWER_KEYS.includes(k))) this.handler?.reconfigure(this.cfg);
    if (changed.includes('queryLog')) {
      this.queryLog = this.cfg.queryLog ? new QueryLog(this.log) : null;
      this.udp?.setQueryLog(this.queryLog);
      this.tcp?.setQueryLog(this.queryLog);
    }
    this.log.info({ keys: changed.filter((k) => !later.includes(k)) }, 'configuration reloaded');
    if (changed.some((k) => ZONE_KEYS.includes(k))) await this.store.reconfigure(this.cfg)?.catch(() => {});
  }

  /** A file read the source's close() did not wait for is still out (see FileCatalogSource.close). */
  get ioPending(): boolean {
    return this.source instanceof FileCatalogSource && this.source.ioPending;
  }

  /** Graceful: stop listening, finish open TCP writes, stop the source (without waiting long for a read). */
  async close(): Promise<void> {
    if (this.staleTimer) clearInterval(this.staleTimer);
    // The newest catalog goes to disk before the stop completes.
    this.closing = true;
    this.wakeWriter?.();
    await this.snapshotWriter;
    await Promise.all([this.http?.close(), this.udp?.close(), this.tcp?.close(), this.source.close()]);
    this.udp = this.tcp = null;
  }

  /** Now: drop connections. */
  destroy(): void {
    if (this.staleTimer) clearInterval(this.staleTimer);
    void this.http?.close();
    this.tcp?.destroy();
    void this.udp?.close();
    void this.source.close();
    this.udp = this.tcp = null;
  }
}

function fmtHost(h: string): string {
  return h.includes(':') ? `[${h}]` : h;
}

/**
 * The data directory must be a directory we can write (created if missing), and the state file in it,
 * read and written synchronously, must not be a FIFO or a device (it would block the whole process).
 */
function checkDataDir(dir: string, from: string): void {
  try {
    ensureWritableDir(dir);
  } catch (e) {
    throw new ConfigError(from, (e as Error).message, { cause: e });
  }
  for (const name of ['serial.json', 'serial.json.tmp']) {
    const reason = notRegularFile(join(dir, name));
    if (reason) throw new ConfigError(from, reason);
  }
}

/** Nodes, services and service instances of a catalog, over all its datacenters (for the start line). */
function catalogCounts(c: Catalog): { datacenters: number; nodes: number; services: number; instances: number } {
  let nodes = 0, services = 0, instances = 0;
  for (const dc of c.datacenters.values()) {
    nodes += dc.nodes.size;
    services += dc.services.size;
    for (const list of dc.services.values()) instances += list.length;
  }
  return { datacenters: c.datacenters.size, nodes, services, instances };
}
