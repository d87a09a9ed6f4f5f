import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { overrideLine, README, readmeRecipe, recipes, withoutLines, withPlaceholders } from './recipes.js';

const doc = [
  '# title',
  '<!-- recipe: one -->',
  '',
  '```conf',
  'a 127.0.0.1@8600',
  '',
  'b 127.0.0.1@8600',
  '```',
  'text',
  '<!-- recipe: two -->',
  '~~~',
  '```not a fence end```',
  '~~~',
].join('\n');

describe('recipes', () => {
  it('takes the fenced block after each marker, blank lines inside kept', () => {
    const r = recipes(doc);
    expect([...r.keys()]).toEqual(['one', 'two']);
    expect(r.get('one')).toBe('a 127.0.0.1@8600\n\nb 127.0.0.1@8600\n');
    expect(r.get('two')).toBe('```not a fence end```\n');
  });

  it('refuses a marker without a block, an unclosed block, a repeated name', () => {
    expect(() => recipes('<!-- recipe: x -->\ntext\n```\na\n```')).toThrow(/not followed by a fenced code block/);
    expect(() => recipes('<!-- recipe: x -->\n```\na')).toThrow(/not closed/);
    expect(() => recipes('<!-- recipe: x -->\n```\na\n```\n<!-- recipe: x -->\n```\nb\n```')).toThrow(/marked twice/);
  });

  it('substitutes every occurrence, and fails on a placeholder that is not there', () => {
    const one = recipes(doc).get('one')!;
    expect(withPlaceholders(one, { '127.0.0.1@8600': '127.0.0.1@5353' })).toBe('a 127.0.0.1@5353\n\nb 127.0.0.1@5353\n');
    expect(() => withPlaceholders(one, { '127.0.0.1#8600': 'x' })).toThrow(/no '127.0.0.1#8600'/);
  });

  it('overrides exactly one matching line, keeping its indent; removes lines only if present', () => {
    const text = 'x\n    hold valid 10s\n    hold nx 30s\n';
    expect(overrideLine(text, /^\s*hold valid\b/, 'hold valid 1s')).toBe('x\n    hold valid 1s\n    hold nx 30s\n');
    expect(() => overrideLine(text, /^\s*hold\b/, 'hold x')).toThrow(/found 2/);
    expect(() => overrideLine(text, /^\s*hold obsolete\b/, 'hold obsolete 0s')).toThrow(/found 0/);
    expect(withoutLines(text, /hold nx/)).toBe('x\n    hold valid 10s\n');
    expect(() => withoutLines(text, /nothing/)).toThrow(/no line matches/);
  });

  it('reads a named recipe from a README, and names the missing one', () => {
    expect(() => readmeRecipe('no-such-recipe')).toThrow(/no code block marked <!-- recipe: no-such-recipe -->/);
  });
});

describe('README "Resolvers in front"', () => {
  it('has exactly the recipes the interop tests run, plus the documented-only systemd-resolved one', () => {
    expect([...recipes(readFileSync(README, 'utf8')).keys()].sort()).toEqual([
      'bind-forward', 'bind-options', 'bind-static-stub', 'catalog-dns', 'dnsmasq', 'haproxy', 'systemd-resolved', 'unbound',
    ]);
  });

  it('systemd-resolved (no test can run it): a [Resolve] drop-in routing consul and the reverse zone to catalog-dns', () => {
    const lines = readmeRecipe('systemd-resolved').trim().split('\n');
    expect(lines[0]).toBe('[Resolve]');
    expect(lines).toContain('DNS=127.0.0.1:8600');
    expect(lines.find((l) => l.startsWith('Domains='))?.split(/[= ]/).slice(1)).toEqual(['~consul', '~10.in-addr.arpa']);
  });
});
