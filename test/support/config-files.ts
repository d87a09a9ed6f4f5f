/** Helpers for configuration tests: JSON config files in a temp dir, and the ConfigError a load throws. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect } from 'vitest';
import { loadConfig, type Sources } from '../../src/config.js';
import { ConfigError } from '../../src/errors.js';

/**
 * A temp dir removed after the test file, and `file(doc)`, which writes a JSON document (or a
 * string as it is) in it and returns its path.
 */
export function configFiles(prefix: string): { dir: string; file: (doc: unknown) => string } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  let files = 0;
  const file = (doc: unknown): string => {
    const p = join(dir, `c${files++}.json`);
    writeFileSync(p, typeof doc === 'string' ? doc : JSON.stringify(doc));
    return p;
  };
  return { dir, file };
}

/** The ConfigError (code CDNS_ERR_CONFIG) that loading `src` throws; fails the test if none. */
export function configError(src: Sources): ConfigError {
  try {
    loadConfig(src);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).code).toBe('CDNS_ERR_CONFIG');
    return e as ConfigError;
  }
  throw new Error(`expected a ConfigError for ${JSON.stringify(src)}`);
}
