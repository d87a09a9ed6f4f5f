/**
 * The compiled command (dist/main.js) as a user runs it: exit codes, messages, --help, serving.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPTIONS, flagName } from '../../src/config.js';
import { udpQuery } from '../support/dns-client.js';

const root = new URL('../..', import.meta.url).pathname;
const main = join(root, 'dist/main.js');
const demo = join(root, 'fixtures/demo-catalog.json');

interface Run { code: number | null; stdout: string; stderr: string }

function run(args: string[], env: Record<string, string> = {}, timeoutMs = 10_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [main, ...args], { env: { ...process.env, ...env }, cwd: root });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const t = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`timeout: ${args.join(' ')}\n${stderr}`)); }, timeoutMs);
    p.on('exit', (code) => { clearTimeout(t); resolve({ code, stdout, stderr }); });
  });
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

let dir: string;
beforeAll(() => {
  execFileSync(process.execPath, [join(root, 'scripts/build-if-needed.mjs')], { cwd: root, stdio: 'inherit' });
  dir = mkdtempSync(join(tmpdir(), 'cdns-cli-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('catalog-dns command', () => {
  it('--help lists every option with its default', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    for (const s of OPTIONS) expect(r.stdout).toContain(flagName(s));
    expect(r.stdout).toMatch(/--dns VALUE\s+UDP and TCP listen address.*\n\s+default: 127\.0\.0\.1:8600/);
    expect(r.stdout).toContain('--version');
  });

  it('--version prints the package version', async () => {
    const r = await run(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version);
  });

  it.each([
    [['--catalog-file', demo, '--node-ttl', 'soon'], '--node-ttl: "soon" is not a duration'],
    [['--catalog-file', demo, '--dns', '127.0.0.1'], '--dns: expected HOST:PORT'],
    [['--catalog-file', demo, '--udp-answer-limit', '0'], '--udp-answer-limit: expected an integer 1-65535'],
    [['--catalog-file', demo, '--bogus'], '--bogus: unknown option'],
    [['--catalog-file', demo, '--reverse-zones', '10.0.0.0/12'], '--reverse-zones: "10.0.0.0/12": IPv4 reverse zones are on octet boundaries'],
    [[], '--catalog-file: or --consul is required'],
  ])('rejects bad options with exit 2 and one message: %j', async (args, msg) => {
    const r = await run(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(msg);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('names the environment variable or config file key in the message', async () => {
    const env = await run(['--catalog-file', demo], { CATALOG_DNS_ONLY_PASSING: 'maybe' });
    expect(env.code).toBe(2);
    expect(env.stderr).toContain('CATALOG_DNS_ONLY_PASSING: expected true or false');
    const cfg = join(dir, 'cfg.json');
    writeFileSync(cfg, JSON.stringify({ dns_config: { soa: { min_ttl: -5 } } }));
    const file = await run(['--catalog-file', demo, '--config', cfg]);
    expect(file.code).toBe(2);
    expect(file.stderr).toContain(`${cfg}: soa.min_ttl`);
  });

  it('rejects an invalid catalog at start with exit 2 naming the JSON path', async () => {
    const doc = JSON.parse(readFileSync(demo, 'utf8'));
    doc.datacenters.dc1.services.web[2].Service.Port = 70000;
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify(doc));
    const r = await run(['--catalog-file', bad]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(`catalog-dns: datacenters.dc1.services.web[2].Service.Port: expected an integer 0-65535`);
  });

  it('serves, logs one start line saying what is served where, and stops on SIGTERM with exit 0', async () => {
    const port = await freePort();
    const p = spawn(process.execPath, [main, '--catalog-file', demo, '--dns', `127.0.0.1:${port}`], { cwd: root });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((r) => p.on('exit', (c) => r(c)));
    try {
      for (let i = 0; i < 50 && !out.includes('"serving"'); i++) await new Promise((r) => setTimeout(r, 100));
      const line = JSON.parse(out.split('\n').find((l) => l.includes('"serving"'))!);
      expect(line).toMatchObject({ msg: 'serving', dns: `127.0.0.1:${port}`, domain: 'consul' });
      const r = await udpQuery(port, 'web.service.consul', 'A');
      expect(r.answers.length).toBe(3);
    } finally {
      p.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });

  it('exits 1 with a clear message when the port is taken', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as { port: number }).port;
    try {
      const r = await run(['--catalog-file', demo, '--dns', `127.0.0.1:${port}`]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`cannot bind TCP 127.0.0.1:${port}`);
    } finally {
      blocker.close();
    }
  });
});
