/**
 * The UDP path against peers that cannot be answered or must not be answered in full: datagrams
 * from source port 0 (crafted on the wire, and delivered to the bound socket with a made-up
 * sender), sends that throw, and response rate limiting (README "Response rate limiting") over
 * real UDP, with TCP answering throughout. The server runs in-process on 127.0.0.1 port 0.
 */
import type { RemoteInfo, Socket } from 'node:dgram';
import { createSocket } from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.js';
import { buildQuery, decode, tcpExchange, udpQuery } from '../support/dns-client.js';
import { rawUdpAvailable, sendRawUdp } from '../support/raw-udp.js';
import { startServer, type TestServer } from '../support/server.js';

const raw = rawUdpAvailable();

/** The app's bound UDP socket (private: reached here to deliver datagrams with a crafted sender). */
function udpSocketOf(app: App): Socket {
  const sock = (app as unknown as { udp: { socket: Socket | null } | null }).udp?.socket;
  if (!sock) throw new Error('the app has no bound UDP socket');
  return sock;
}

const rinfo = (port: number, address: unknown = '127.0.0.1'): RemoteInfo =>
  ({ address, family: 'IPv4', port, size: 0 }) as unknown as RemoteInfo;

/** Polls `cond` every 10 ms, up to 10 s. */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/**
 * Sends `msgs` at once from one UDP socket and collects the replies. How many to wait for comes
 * from the server's own counters (the server is in this process: once it has counted a query, its
 * reply, if any, has been handed to the kernel), so nothing here depends on timing.
 */
async function udpBurst(s: TestServer, msgs: readonly Buffer[]): Promise<Buffer[]> {
  const c = s.app.counters;
  const q0 = c.queriesUdp, d0 = c.rrlDropped + c.dropped + c.sendErrors;
  const sock = createSocket('udp4');
  const replies: Buffer[] = [];
  sock.on('message', (m) => replies.push(m));
  try {
    await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', () => resolve()));
    for (const m of msgs) sock.send(m, s.port, '127.0.0.1');
    await until(() => c.queriesUdp - q0 >= msgs.length, `${msgs.length} queries counted`);
    const expected = msgs.length - (c.rrlDropped + c.dropped + c.sendErrors - d0);
    await until(() => replies.length >= expected, `${expected} replies`);
    return replies;
  } finally {
    sock.close();
  }
}

const isTc = (r: Buffer) => (r.readUInt16BE(2) & 0x0200) !== 0;
const counts = (r: Buffer) => [4, 6, 8, 10].map((o) => r.readUInt16BE(o));
const rcodeOf = (r: Buffer) => r.readUInt16BE(2) & 0x0f;

describe('a datagram from source port 0 is dropped and counted; the server keeps answering', () => {
  let s: TestServer;
  beforeAll(async () => { s = await startServer(); });
  afterAll(() => s.close());

  it.skipIf(raw.skip)('on the wire: a crafted IPv4/UDP query from port 0', async () => {
    const c = s.app.counters;
    const before = c.sendErrors;
    await sendRawUdp(raw, { srcPort: 0, dstPort: s.port, payload: buildQuery('web.service.consul', 'A', { id: 77 }) });
    await until(() => c.sendErrors === before + 1, 'the port-0 datagram to be counted');
    const r = await udpQuery(s.port, 'web.service.consul', 'A');
    expect(r.rcode).toBe('NOERROR');
    expect(r.answers.length).toBe(3);
  });

  it.each([0, -1, 65536, Number.NaN])('delivered to the bound socket from port %s: nothing thrown, nothing handled', async (port) => {
    const c = s.app.counters;
    const before = { sendErrors: c.sendErrors, queries: c.queriesUdp };
    // emit() runs the listener synchronously: a throw in it would surface right here.
    expect(() => udpSocketOf(s.app).emit('message', buildQuery('web.service.consul', 'A'), rinfo(port))).not.toThrow();
    expect(c.sendErrors).toBe(before.sendErrors + 1);
    expect(c.queriesUdp, 'not worth answering, so not handled').toBe(before.queries);
    const r = await udpQuery(s.port, 'web.service.consul', 'A');
    expect(r.answers.length).toBe(3);
  });

  it('a send that throws (an address that is not a string) is counted, not thrown', async () => {
    const c = s.app.counters;
    const before = c.sendErrors;
    expect(() => udpSocketOf(s.app).emit('message', buildQuery('web.service.consul', 'A'), rinfo(5353, 42))).not.toThrow();
    expect(c.sendErrors).toBe(before + 1);
    expect((await udpQuery(s.port, 'db.service.consul', 'A')).rcode).toBe('NOERROR');
  });
});

describe('a datagram arriving as the server closes', () => {
  it('is counted when its reply cannot be sent on the closed socket', async () => {
    const s = await startServer();
    let sock: Socket;
    try {
      sock = udpSocketOf(s.app);
    } finally {
      await s.close();
    }
    const before = s.app.counters.sendErrors;
    expect(() => sock.emit('message', buildQuery('web.service.consul', 'A'), rinfo(5353))).not.toThrow();
    expect(s.app.counters.sendErrors).toBe(before + 1);
  });
});

describe('response rate limiting over real UDP (1 response/s, slip 2)', () => {
  let s: TestServer;
  // A window of 60 s: the debt of a burst outlives the test, so what passes does not depend on speed.
  beforeAll(async () => { s = await startServer({ config: { rrl_responses_per_second: 1, rrl_slip: 2, rrl_window: 60 } }); });
  afterAll(() => s.close());

  it('a burst for one answer: the first is answered, the rest alternately slipped (TC=1, no records) and dropped', async () => {
    const c = s.app.counters;
    const before = { slipped: c.rrlSlipped, dropped: c.rrlDropped };
    const ids = Array.from({ length: 20 }, (_, i) => 1000 + i);
    const replies = await udpBurst(s, ids.map((id) => buildQuery('web.service.consul', 'A', { id })));
    const full = replies.filter((r) => !isTc(r));
    const slips = replies.filter(isTc);
    const slipped = c.rrlSlipped - before.slipped, dropped = c.rrlDropped - before.dropped;

    expect(full.length).toBeGreaterThanOrEqual(1);
    expect(full.length, 'at 1/s, a 20-query burst is mostly limited').toBeLessThanOrEqual(10);
    for (const r of full) expect(decode(r).answers.length).toBe(3);
    expect(slips.length).toBe(slipped);
    expect(full.length + slipped + dropped).toBe(20);
    // The 1st, 3rd, 5th ... limited response slips (BIND's order).
    expect(slipped).toBe(Math.ceil((slipped + dropped) / 2));
    expect(dropped).toBeGreaterThan(0);

    for (const r of slips) {
      expect(ids).toContain(r.readUInt16BE(0));
      expect(counts(r)).toEqual([1, 0, 0, 0]);
      expect(rcodeOf(r)).toBe(0);
      const d = decode(r);
      expect(d.questions).toEqual([{ name: 'web.service.consul', type: 'A', class: 'IN' }]);
      expect(r.length).toBe(12 + 20 + 4); // header and question, nothing else
    }
  });

  it('TCP is never limited: the same client and question, answered in full every time', async () => {
    const c = s.app.counters;
    const before = c.rrlSlipped + c.rrlDropped;
    const replies = await tcpExchange(s.port, Array.from({ length: 10 }, (_, i) => buildQuery('web.service.consul', 'A', { id: i })));
    expect(replies.length).toBe(10);
    for (const r of replies) {
      expect(isTc(r)).toBe(false);
      expect(decode(r).answers.length).toBe(3);
    }
    expect(c.rrlSlipped + c.rrlDropped).toBe(before);
  });

  it('random subdomains share the zone\'s NXDOMAIN account: few NXDOMAINs, the rest slipped or dropped', async () => {
    const c = s.app.counters;
    const before = { slipped: c.rrlSlipped, dropped: c.rrlDropped };
    const replies = await udpBurst(s, Array.from({ length: 20 }, (_, i) => buildQuery(`r${i}-${Date.now() % 1000}.service.consul`, 'A')));
    const full = replies.filter((r) => !isTc(r));
    expect(full.length).toBeGreaterThanOrEqual(1);
    expect(full.length).toBeLessThanOrEqual(10);
    for (const r of full) expect(rcodeOf(r)).toBe(3);
    for (const r of replies.filter(isTc)) {
      expect(rcodeOf(r), 'a slipped NXDOMAIN keeps its rcode').toBe(3);
      expect(counts(r)).toEqual([1, 0, 0, 0]);
    }
    expect(full.length + (c.rrlSlipped - before.slipped) + (c.rrlDropped - before.dropped)).toBe(20);
  });

  it('another question from the same client has its own account', async () => {
    const r = await udpQuery(s.port, 'db.service.consul', 'A');
    expect(r.flag_tc).toBe(false);
    expect(r.answers.length).toBeGreaterThan(0);
  });
});

describe('rate limiting is off by default', () => {
  let s: TestServer;
  beforeAll(async () => { s = await startServer(); });
  afterAll(() => s.close());

  it('a burst of 50 identical queries is answered in full', async () => {
    const replies = await udpBurst(s, Array.from({ length: 50 }, (_, i) => buildQuery('web.service.consul', 'A', { id: i })));
    expect(replies.length).toBe(50);
    expect(replies.every((r) => !isTc(r) && decode(r).answers.length === 3)).toBe(true);
    expect(s.app.rrl).toBeNull();
    expect(s.app.counters.rrlDropped + s.app.counters.rrlSlipped).toBe(0);
  });
});
