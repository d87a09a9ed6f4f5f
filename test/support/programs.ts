// Finding the external programs an interop test needs.
//
//   const dig = requireProgram('dig', 'bind9-dnsutils');
//   describe.skipIf(dig.skip)('dig against catalog-dns', () => { ... execFile(dig.path, ...) ... });
//
// Found: `path` is absolute and `skip` is false. Missing: under CI (`CI=true`) it throws while the
// file is collected, so the file FAILS naming the Debian package; elsewhere `skip` is true and the
// reason (with the package to install) is printed once.
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';

export interface RequiredProgram {
  readonly bin: string;
  /** Absolute path when found; the bare name when missing (the tests are skipped then). */
  readonly path: string;
  readonly skip: boolean;
  /** Empty when found. */
  readonly reason: string;
}

/** Directories searched after PATH: daemons live in sbin, which a non-root PATH often lacks. */
const SBIN_DIRS = ['/usr/sbin', '/sbin', '/usr/local/sbin'];

export function findProgram(bin: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const dirs = [...(env.PATH ?? '').split(delimiter), ...SBIN_DIRS].filter((d) => isAbsolute(d));
  for (const dir of dirs) {
    const candidate = join(dir, bin);
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

export function requireProgram(
  bin: string,
  debianPackage: string,
  env: NodeJS.ProcessEnv = process.env,
): RequiredProgram {
  const path = findProgram(bin, env);
  if (path !== undefined) return { bin, path, skip: false, reason: '' };
  const reason = `'${bin}' not found on PATH or in ${SBIN_DIRS.join(', ')}: ` +
    `install the Debian package '${debianPackage}' (apt-get install -y ${debianPackage})`;
  if (env.CI === 'true') throw new Error(`${reason} [CI=true, so this is a failure, not a skip]`);
  process.stderr.write(`skipping tests that need ${bin}: ${reason}\n`);
  return { bin, path: bin, skip: true, reason };
}
