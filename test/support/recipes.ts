// The README is the single source of the resolver configurations it documents: a fenced code
// block preceded by `<!-- recipe: NAME -->` (only blank lines in between) is a recipe, and the
// interop tests run exactly that text, with the documented placeholders replaced by their ports.
//
//   const text = withPlaceholders(readmeRecipe('unbound'), { '127.0.0.1@8600': `127.0.0.1@${port}` });
//
// A missing or repeated marker, a marker without a block, and a placeholder that does not occur in
// the block all throw, so a README edit that breaks a recipe fails its test instead of testing
// something else.
import { readFileSync } from 'node:fs';

export const README = new URL('../../README.md', import.meta.url).pathname;

const MARKER = /^<!-- recipe: ([a-z0-9-]+) -->[ \t]*$/;
const FENCE_OPEN = /^(`{3,}|~{3,})[^`]*$/;

/** Every recipe in `markdown`, by name. Throws on a repeated name or a marker without a block. */
export function recipes(markdown: string): Map<string, string> {
  const lines = markdown.split('\n');
  const out = new Map<string, string>();
  for (let i = 0; i < lines.length; i++) {
    const m = MARKER.exec(lines[i]!);
    if (m === null) continue;
    const name = m[1]!;
    if (out.has(name)) throw new Error(`README: recipe '${name}' is marked twice (line ${i + 1})`);
    let j = i + 1;
    while (j < lines.length && lines[j]!.trim() === '') j++;
    const open = FENCE_OPEN.exec(lines[j] ?? '');
    if (open === null) throw new Error(`README: <!-- recipe: ${name} --> (line ${i + 1}) is not followed by a fenced code block`);
    const fence = open[1]!;
    const body: string[] = [];
    let k = j + 1;
    for (; k < lines.length && lines[k]!.trim() !== fence; k++) body.push(lines[k]!);
    if (k >= lines.length) throw new Error(`README: the code block of recipe '${name}' (line ${j + 1}) is not closed`);
    out.set(name, `${body.join('\n')}\n`);
    i = k;
  }
  return out;
}

/** The recipe `name` from README.md (read on each call: tests see the file as it is). */
export function readmeRecipe(name: string, path = README): string {
  const text = recipes(readFileSync(path, 'utf8')).get(name);
  if (text === undefined) throw new Error(`README: no code block marked <!-- recipe: ${name} --> in ${path}`);
  return text;
}

/** Replaces every occurrence of each placeholder; throws if one does not occur at all. */
export function withPlaceholders(text: string, values: Readonly<Record<string, string>>): string {
  let out = text;
  for (const [placeholder, value] of Object.entries(values)) {
    if (!out.includes(placeholder)) throw new Error(`recipe has no '${placeholder}' to replace:\n${text}`);
    out = out.split(placeholder).join(value);
  }
  return out;
}

/**
 * Replaces the one line matching `line` (a documented knob) with `replacement`; throws unless it
 * matches exactly one line, so a test overrides only what the README says may be tuned.
 */
export function overrideLine(text: string, line: RegExp, replacement: string): string {
  const lines = text.split('\n');
  const hits = lines.flatMap((l, i) => (line.test(l) ? [i] : []));
  if (hits.length !== 1) throw new Error(`recipe: expected exactly one line matching ${line}, found ${hits.length}:\n${text}`);
  const at = hits[0]!;
  const indent = /^\s*/.exec(lines[at]!)![0];
  lines[at] = `${indent}${replacement}`;
  return lines.join('\n');
}

/** Removes every line matching `line`; throws if none does (a control test proving a line matters). */
export function withoutLines(text: string, line: RegExp): string {
  const lines = text.split('\n');
  const kept = lines.filter((l) => !line.test(l));
  if (kept.length === lines.length) throw new Error(`recipe: no line matches ${line}:\n${text}`);
  return kept.join('\n');
}
