import { existsSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type Daemon, dnsProbe, freePort, haproxyCommand, haproxySocket, rootTrustAnchor, startDaemon, startDnsmasq,
  startDnsmasqWithConfig, startHaproxy, startNamed, startUnbound, startUnboundWithConfig,
} from './daemons.js';
import { requireProgram } from './programs.js';

const unbound = requireProgram('unbound', 'unbound');
const dnsmasq = requireProgram('dnsmasq', 'dnsmasq');
const named = requireProgram('named', 'bind9');
const haproxy = requireProgram('haproxy', 'haproxy');

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/** Starts, checks it runs and answers, stops, checks the PID and the temp dir are gone. */
async function startStopCycle(start: () => Promise<Daemon>, logLine: RegExp, answers: (d: Daemon) => Promise<boolean> = (d) => dnsProbe(d.port)): Promise<void> {
  const d = await start();
  try {
    expect(d.host).toBe('127.0.0.1');
    expect(d.port).toBeGreaterThan(1024);
    expect(pidAlive(d.pid)).toBe(true);
    expect(existsSync(d.dir)).toBe(true);
    expect(await answers(d)).toBe(true);
    expect(d.log()).toMatch(logLine);
  } finally {
    await d.stop();
  }
  expect(pidAlive(d.pid)).toBe(false);
  expect(existsSync(d.dir)).toBe(false);
  expect(d.log()).toMatch(logLine); // still readable after stop, for failure reports
  await d.stop(); // idempotent
}

describe('freePort', () => {
  it('returns distinct ports that are free for UDP and TCP', async () => {
    const ports = await Promise.all([freePort(), freePort(), freePort()]);
    for (const p of ports) expect(p).toBeGreaterThan(1024);
    expect(new Set(ports).size).toBe(3);
  });
});

describe('startDaemon', () => {
  const started: Daemon[] = [];
  afterAll(() => Promise.all(started.map((d) => d.stop())));

  it('rejects with the log of a daemon that exits at once', async () => {
    await expect(startDaemon({
      name: 'early-exit',
      bin: '/bin/sh',
      setup: () => ({ args: ['-c', 'echo boom-from-daemon >&2; exit 3'] }),
    })).rejects.toThrow(/boom-from-daemon[\s\S]*exited: code 3/);
  });

  it('kills with SIGKILL when SIGTERM is ignored', async () => {
    const d = await startDaemon({
      name: 'stubborn',
      bin: process.execPath,
      setup: () => ({ args: ['-e', "process.on('SIGTERM', () => console.log('ignoring TERM')); setInterval(() => {}, 1000); console.log('up')"] }),
      ready: async (_port, log) => /^up$/m.test(log()),
      termTimeoutMs: 300,
    });
    started.push(d);
    const t0 = Date.now();
    await d.stop();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(pidAlive(d.pid)).toBe(false);
    expect(d.log()).toMatch(/signal SIGKILL/);
  });
});

describe.skipIf(unbound.skip)('startUnbound', () => {
  it('starts, answers, and stops by PID', async () => {
    const stubPort = await freePort(); // nothing listens there: fine for start/stop
    await startStopCycle(() => startUnbound({ stubPort, bin: unbound.path }), /start of service/);
  });
});

describe.skipIf(dnsmasq.skip)('startDnsmasq', () => {
  it('starts, answers, and stops by PID', async () => {
    const upstreamPort = await freePort();
    await startStopCycle(() => startDnsmasq({ upstreamPort, bin: dnsmasq.path }), /started, version/);
  });
});

describe.skipIf(unbound.skip)('startUnboundWithConfig', () => {
  it('starts with the given configuration and a trust anchor, answers, and stops by PID', async () => {
    const stubPort = await freePort();
    const config = `stub-zone:\n    name: "consul"\n    stub-addr: 127.0.0.1@${stubPort}\n`;
    await startStopCycle(() => startUnboundWithConfig({ config, trustAnchor: rootTrustAnchor(), bin: unbound.path }), /start of service/);
  });

  it('rootTrustAnchor: the root KSK, from dns-root-data or built in', () => {
    expect(rootTrustAnchor()).toMatch(/^\.\s.*\b(DS|DNSKEY)\b/m);
    expect(rootTrustAnchor('/nonexistent/root.key')).toMatch(/^\. IN DS 20326 8 2 /m);
  });
});

describe.skipIf(dnsmasq.skip)('startDnsmasqWithConfig', () => {
  it('starts with the given configuration file and options, answers, and stops by PID', async () => {
    const upstreamPort = await freePort();
    await startStopCycle(
      () => startDnsmasqWithConfig({ config: `server=/consul/127.0.0.1#${upstreamPort}\n`, args: ['--stop-dns-rebind'], bin: dnsmasq.path }),
      /using nameserver 127\.0\.0\.1#\d+ for domain consul/,
    );
  });
});

describe.skipIf(named.skip)('startNamed', () => {
  it('starts, answers from its automatic empty zones, and stops by PID', async () => {
    const upstreamPort = await freePort();
    const config = `zone "consul" { type forward; forward only; forwarders { 127.0.0.1 port ${upstreamPort}; }; };`;
    await startStopCycle(() => startNamed({ config, bin: named.path }), /running/, (d) => dnsProbe(d.port, '127.in-addr.arpa.', 1000));
  });
});

describe.skipIf(haproxy.skip)('startHaproxy', () => {
  it('starts, answers on its runtime API socket, and stops by PID', async () => {
    const config = 'backend web\n    server s1 127.0.0.1:1 disabled\n';
    await startStopCycle(
      () => startHaproxy({ config, bin: haproxy.path }),
      /-db -f \S+\/haproxy\.cfg/, // HAProxy logs nothing at a quiet start: the command line in log()
      async (d) => /^# be_id/m.test(await haproxyCommand(haproxySocket(d), 'show servers state web')),
    );
  });
});
