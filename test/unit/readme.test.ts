import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { OPTIONS, envName, flagName } from '../../src/config.js';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

describe('README configuration table', () => {
  it.each(OPTIONS.map((s) => [s.key, s] as const))('documents %s with its flag, environment variable and default', (_k, s) => {
    const row = readme.split('\n').find((l) => l.startsWith(`| \`${s.key}\` |`));
    expect(row, `no README row for ${s.key}`).toBeDefined();
    if (!s.noFlag) expect(row).toContain(`\`${flagName(s)}\``);
    for (const env of [envName(s), ...(s.envAliases ?? [])]) expect(row).toContain(`\`${env}\``);
    const def = s.def === null ? null : Array.isArray(s.def) ? (s.def.length ? s.def.join(',') : 'none') : typeof s.def === 'object' ? '{}' : String(s.def);
    if (def !== null) expect(row!.split('|')[4]!.trim().startsWith(def)).toBe(true);
  });
});
