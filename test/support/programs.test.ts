import { readdirSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { findProgram, requireProgram } from './programs.js';

const MISSING = 'no-such-program-cdns-test';

describe('requireProgram', () => {
  afterEach(() => vi.restoreAllMocks());

  it('returns the absolute path of a program on PATH', () => {
    const sh = requireProgram('sh', 'dash', { PATH: '/usr/bin:/bin' });
    expect(sh.skip).toBe(false);
    expect(isAbsolute(sh.path)).toBe(true);
    expect(sh.path).toMatch(/\/sh$/);
  });

  it('also searches /usr/sbin when PATH lacks it', () => {
    const inSbin = readdirSync('/usr/sbin').find((f) => findProgram(f, { PATH: '/usr/sbin' }) !== undefined);
    expect(inSbin, 'expected at least one executable in /usr/sbin').toBeDefined();
    expect(findProgram(inSbin as string, { PATH: '' })).toMatch(/^\/(usr\/)?sbin\//);
  });

  it('fails (throws) under CI, naming the Debian package', () => {
    expect(() => requireProgram(MISSING, 'some-debian-pkg', { PATH: '/usr/bin', CI: 'true' }))
      .toThrow(/apt-get install -y some-debian-pkg/);
  });

  it('skips outside CI, with a reason naming the package', () => {
    const write = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const p = requireProgram(MISSING, 'some-debian-pkg', { PATH: '/usr/bin' });
    expect(p).toMatchObject({ skip: true, path: MISSING });
    expect(p.reason).toContain("'some-debian-pkg'");
    expect(String(write.mock.calls[0]?.[0])).toContain('some-debian-pkg');
  });

  it('treats CI values other than "true" as not CI', () => {
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    expect(requireProgram(MISSING, 'pkg', { PATH: '', CI: 'false' }).skip).toBe(true);
  });
});
