/** Command line: flags from the option table, --config, --help, --version. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ConfigError } from './errors.js';
import { OPTIONS, envName, flagName, loadConfigReport, type Config, type ConfigWarning } from './config.js';

export type CliResult =
  | { readonly kind: 'run'; readonly config: Config; readonly warnings: readonly ConfigWarning[] }
  | { readonly kind: 'print'; readonly text: string };

/**
 * The demo catalog shipped with the package, found next to the code (src/ or dist/), never relative
 * to the working directory: `catalog-dns --demo` works from anywhere after a global install and in
 * the Docker image alike.
 */
export const DEMO_CATALOG = fileURLToPath(new URL('../fixtures/demo-catalog.json', import.meta.url));

export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export function helpText(): string {
  const rows = OPTIONS.map((s) => {
    const def = s.def === null ? (s.key === 'enable_truncate' ? 'true (rfc) / false (consul)' : 'unset')
      : Array.isArray(s.def) ? (s.def.length ? s.def.join(',') : 'none') : typeof s.def === 'object' ? '{}' : String(s.def);
    const env = [envName(s), ...(s.envAliases ?? [])].join(' or ');
    return [`  ${s.noFlag ? '(no flag)' : flagName(s)}`, s.kind === 'bool' ? '[=BOOL]' : s.noFlag ? '' : 'VALUE', def, s.help, env, s.key];
  });
  const w0 = Math.max(...rows.map((r) => r[0]!.length + r[1]!.length + 1));
  const lines = rows.map((r) => `${`${r[0]} ${r[1]}`.padEnd(w0)}  ${r[3]}\n${' '.repeat(w0 + 2)}default: ${r[2]}; env ${r[4]}; file key "${r[5]}"`);
  return `catalog-dns ${version()}: an authoritative DNS server for the Consul catalog

Usage: catalog-dns --catalog-file PATH [options]
       catalog-dns --consul URL [options]
       catalog-dns --demo [options]

Examples:
  catalog-dns --demo                                 the demo catalog on 127.0.0.1:8600
  catalog-dns --demo --dns 127.0.0.1:5353 --http off
  catalog-dns --catalog-file catalog.json --dns 0.0.0.0:53
  catalog-dns --consul http://127.0.0.1:8500 --data-dir /var/lib/catalog-dns

Options (precedence: flag > environment > --config file > default):
${lines.join('\n')}
  --config PATH                   JSON file with the keys above (Consul's dns_config names; a nested
                                  "dns_config" or "soa" object is accepted); a Consul agent's JSON
                                  configuration is read as it is: its domain, alt_domain, datacenter,
                                  data_dir, dns_config, ports.dns and addresses.dns are used, its other
                                  settings ignored with a warning; env CATALOG_DNS_CONFIG
  --demo                          serve the demo catalog shipped with catalog-dns, the same as
                                  --catalog-file ${DEMO_CATALOG}
  --help                          this text
  --version                       print the version

Durations take Go syntax (10s, 5m, 1h30m) or plain seconds, and count whole seconds. An empty
environment variable counts as unset.
Signals: SIGHUP reads the configuration and the catalog file again; SIGTERM/SIGINT stop gracefully (a second one, or a stop
taking over 5 s, ends the process at once); SIGUSR1 is ignored (it never opens the inspector).
`;
}

/** Parses argv (without node and script). Throws ConfigError for unknown or malformed options. */
export function parseArgs(argv: readonly string[], env: Readonly<Record<string, string | undefined>>, opts: { regularConfigOnly?: boolean } = {}): CliResult {
  const byFlag = new Map(OPTIONS.filter((s) => !s.noFlag).map((s) => [flagName(s), s]));
  const flags: Record<string, unknown> = {};
  // An empty variable counts as unset, as for every option.
  let configFile: string | null = env.CATALOG_DNS_CONFIG || null;
  let configFileFrom = 'CATALOG_DNS_CONFIG';
  let demo = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') return { kind: 'print', text: helpText() };
    if (arg === '--version' || arg === '-v') return { kind: 'print', text: `${version()}\n` };
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const inline = eq > 0 ? arg.slice(eq + 1) : undefined;
    if (name === '--config') {
      configFile = inline ?? argv[++i] ?? null;
      configFileFrom = '--config';
      if (!configFile) throw new ConfigError('--config', 'needs a path');
      continue;
    }
    if (arg === '--demo') {
      demo = true;
      continue;
    }
    const spec = byFlag.get(name);
    if (!spec) throw new ConfigError(name, 'unknown option (see --help)');
    if (spec.kind === 'bool' && inline === undefined) {
      const next = argv[i + 1];
      if (next === 'true' || next === 'false') { flags[spec.key] = next; i++; } else flags[spec.key] = true;
      continue;
    }
    const value = inline ?? argv[++i];
    if (value === undefined) throw new ConfigError(name, 'needs a value');
    // Lists (--consul) may be given several times.
    flags[spec.key] = spec.kind === 'urls' && flags[spec.key] !== undefined ? [...(flags[spec.key] as string[]), value] : value;
  }
  if (demo) {
    if (flags.catalog_file !== undefined || flags.consul !== undefined) throw new ConfigError('--demo', 'serves the demo catalog: leave out --catalog-file and --consul');
    flags.catalog_file = DEMO_CATALOG;
  }
  const { config, warnings } = loadConfigReport({ flags, env, configFile, configFileFrom, ...(opts.regularConfigOnly ? { regularConfigOnly: true } : {}) });
  return { kind: 'run', config, warnings };
}
