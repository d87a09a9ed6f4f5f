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
    expect(file.stderr).toContain(`${cfg}: dns_config.soa.min_ttl`);
  });

  it.each([
    ['a flag', ['--node-ttl', '1500ms'], {}, '--node-ttl: "1500ms" is not a whole number of seconds'],
    ['a variable', [], { CATALOG_DNS_NODE_TTL: '500ms' }, 'CATALOG_DNS_NODE_TTL: "500ms" is less than a second'],
    ["Consul's variable", [], { CONSUL_HTTP_ADDR: 'ftp://127.0.0.1:8500' }, 'CONSUL_HTTP_ADDR: "ftp://127.0.0.1:8500": only http and https are supported'],
  ])('an error names where the value came from: %s', async (_what, args, env, msg) => {
    const r = await run(['--catalog-file', demo, ...args], env);
    expect(r.code).toBe(2);
    expect(r.stderr.startsWith(`catalog-dns: ${msg}`)).toBe(true);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('errors found after loading name the source too: a data dir from a file, a second catalog source from a variable', async () => {
    const notDir = join(dir, 'plain-file');
    writeFileSync(notDir, 'x');
    const cfg = join(dir, 'dd.json');
    writeFileSync(cfg, JSON.stringify({ data_dir: notDir }));
    const dd = await run(['--catalog-file', demo, '--config', cfg]);
    expect(dd.code).toBe(2);
    expect(dd.stderr.startsWith(`catalog-dns: ${cfg}: data_dir: `)).toBe(true);
    const two = await run(['--catalog-file', demo], { CATALOG_DNS_CONSUL: 'http://127.0.0.1:8500' });
    expect(two.code).toBe(2);
    expect(two.stderr.trim()).toBe('catalog-dns: CATALOG_DNS_CONSUL: cannot be used with --catalog-file: give one catalog source');
  });

  it('the config path is named by where it came from; an empty CATALOG_DNS_CONFIG counts as unset', async () => {
    const missing = join(dir, 'missing.json');
    const env = await run(['--catalog-file', demo], { CATALOG_DNS_CONFIG: missing });
    expect(env.code).toBe(2);
    expect(env.stderr.startsWith(`catalog-dns: CATALOG_DNS_CONFIG: cannot read ${missing}`)).toBe(true);
    const flag = await run(['--catalog-file', demo, '--config', missing]);
    expect(flag.stderr.startsWith(`catalog-dns: --config: cannot read ${missing}`)).toBe(true);
    const empty = await run(['--catalog-file', demo, '--node-ttl', 'x'], { CATALOG_DNS_CONFIG: '' });
    expect(empty.stderr.trim()).toBe('catalog-dns: --node-ttl: "x" is not a duration (e.g. 30s, 5m, 1h, or seconds)');
  });

  it('a fatal start error is also one JSON log line on stdout, level fatal, with its code', async () => {
    const r = await run(['--catalog-file', demo, '--node-ttl', 'soon']);
    expect(r.code).toBe(2);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toEqual([expect.objectContaining({
      level: 60, code: 'CDNS_ERR_CONFIG', exitCode: 2, msg: 'cannot start',
      reason: '--node-ttl: "soon" is not a duration (e.g. 30s, 5m, 1h, or seconds)',
    })]);
    const cat = await run(['--catalog-file', join(dir, 'no-catalog.json')]);
    expect(cat.code).toBe(2);
    expect(JSON.parse(cat.stdout.trim().split('\n').at(-1)!)).toMatchObject({ level: 60, code: expect.stringMatching(/^CDNS_ERR_CATALOG/), exitCode: 2 });
    expect(cat.stderr.trim().split('\n')).toHaveLength(1);
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
      const fatal = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
      expect(fatal).toMatchObject({ level: 60, code: 'CDNS_ERR_BIND', exitCode: 1, msg: 'cannot start' });
    } finally {
      blocker.close();
    }
  });
});

/** A server process whose stdout lines are kept; `stop` ends it (SIGTERM) and waits for the exit. */
function serve(args: string[], env: Record<string, string> = {}) {
  const p = spawn(process.execPath, [main, ...args], { cwd: root, env: { ...process.env, ...env } });
  let out = '', err = '';
  p.stdout.on('data', (d) => (out += d));
  p.stderr.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((r) => p.on('exit', (c) => r(c)));
  const lines = () => out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  return {
    p, lines,
    async waitFor(pred: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
      for (let i = 0; i < 150; i++) {
        const hit = lines().find(pred);
        if (hit) return hit;
        if (p.exitCode !== null) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`no such log line; stdout:\n${out}\nstderr:\n${err}`);
    },
    async stop(): Promise<number | null> {
      if (p.exitCode === null) p.kill('SIGTERM');
      return exited;
    },
  };
}

describe("a Consul agent's configuration file (fixtures/consul-agent.json)", () => {
  const agent = join(root, 'fixtures/consul-agent.json');

  it('is accepted as it is: one warning line per key that cannot apply, one listing the agent settings ignored, and the start line', async () => {
    const port = await freePort();
    const data = join(dir, 'agent-data');
    // The file's own data_dir (/opt/consul) and DNS address are overridden by flags, as an operator would.
    const s = serve(['--config', agent, '--catalog-file', demo, '--dns', `127.0.0.1:${port}`, '--data-dir', data, '--http', 'off']);
    try {
      const serving = await s.waitFor((l) => l.msg === 'serving');
      const warnings = s.lines().filter((l) => l.msg === 'configuration warning');
      expect(warnings.every((w) => w.level === 40)).toBe(true);
      expect(warnings.map((w) => w.where)).toEqual([
        ...['allow_stale', 'recursor_strategy', 'recursor_timeout', 'disable_compression', 'use_cache', 'cache_max_age', 'prefer_namespace'].map((k) => `${agent}: dns_config.${k}`),
        `${agent}: recursors`, agent,
      ]);
      expect(serving).toMatchObject({
        version: JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version,
        dns: `127.0.0.1:${port}`, domain: 'consul', source: 'file', catalog: demo, consul: null, dataDir: data,
        datacenter: 'dc1', datacenters: 2, nodes: expect.any(Number), services: 8, instances: expect.any(Number),
      });
      expect(serving.nodes as number).toBeGreaterThan(0);
      // The file's dns_config applies: only_passing drops the web instance whose check warns (3 without).
      const r = await udpQuery(port, 'web.service.consul', 'A');
      expect(r.answers.length).toBe(2);
      expect(r.answers[0]!.ttl).toBe(30); // dns_config.service_ttl web=30s
    } finally {
      expect(await s.stop()).toBe(0);
    }
  });

  it('logs the warnings again when SIGHUP reads the configuration again', async () => {
    const port = await freePort();
    const cfg = join(dir, 'reload.json');
    writeFileSync(cfg, JSON.stringify({ dns_config: { node_ttl: '5s' } }));
    const s = serve(['--config', cfg, '--catalog-file', demo, '--dns', `127.0.0.1:${port}`, '--http', 'off']);
    try {
      await s.waitFor((l) => l.msg === 'serving');
      expect(s.lines().filter((l) => l.msg === 'configuration warning')).toEqual([]);
      writeFileSync(cfg, JSON.stringify({ dns_config: { node_ttl: '5s', use_cache: true } }));
      s.p.kill('SIGHUP');
      const w = await s.waitFor((l) => l.msg === 'configuration warning');
      expect(w).toMatchObject({ level: 40, where: `${cfg}: dns_config.use_cache` });
    } finally {
      expect(await s.stop()).toBe(0);
    }
  });
});

describe('--datacenter', () => {
  it('makes names without a datacenter label answer from that datacenter', async () => {
    const port = await freePort();
    const s = serve(['--catalog-file', demo, '--dns', `127.0.0.1:${port}`, '--http', 'off', '--datacenter', 'DC2']);
    try {
      expect(await s.waitFor((l) => l.msg === 'serving')).toMatchObject({ datacenter: 'dc2' });
      const local = await udpQuery(port, 'web.service.consul', 'A');
      const dc2 = await udpQuery(port, 'web.service.dc2.consul', 'A');
      const addrs = (r: typeof local) => r.answers.map((a) => a.data).sort();
      expect(addrs(local)).toEqual(addrs(dc2));
      expect(local.answers.length).toBeGreaterThan(0);
    } finally {
      expect(await s.stop()).toBe(0);
    }
  });

  it('that is not in the catalog stops the start with exit 2, naming where it was set', async () => {
    const r = await run(['--catalog-file', demo, '--http', 'off', '--dns', '127.0.0.1:0'], { CATALOG_DNS_DATACENTER: 'dc9' });
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe('catalog-dns: CATALOG_DNS_DATACENTER: "dc9" is not in the catalog (its datacenters: dc1, dc2)');
  });
});
