import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { buildQuery, decode, tcpExchange, udpRaw } from './dns-client.js';

describe('dns-client', () => {
  it('builds a query that decodes back to the same question and EDNS size', () => {
    const d = decode(buildQuery('web.service.consul', 'SRV', { id: 7, edns: 1232 }));
    expect(d.id).toBe(7);
    expect(d.questions[0]).toMatchObject({ name: 'web.service.consul', type: 'SRV' });
    expect(d.additionals[0]).toMatchObject({ type: 'OPT', udpPayloadSize: 1232 });
  });

  const udpPeer = createSocket('udp4');
  const tcpPeer = createServer((s) => s.on('data', (d) => s.write(Buffer.concat([d, d])))); // echoes every frame twice
  afterAll(() => { udpPeer.close(); tcpPeer.close(); });

  it('udpRaw returns the reply, and null on silence', async () => {
    await new Promise<void>((r) => udpPeer.bind(0, '127.0.0.1', r));
    let replies = 0;
    udpPeer.on('message', (m, ri) => { if (replies++ === 0) udpPeer.send(m, ri.port, ri.address); });
    const port = udpPeer.address().port;
    expect(await udpRaw(port, Buffer.from('hello'))).toEqual(Buffer.from('hello'));
    expect(await udpRaw(port, Buffer.from('again'), 200)).toBeNull();
  });

  it('tcpExchange splits length-prefixed frames', async () => {
    await new Promise<void>((r) => tcpPeer.listen(0, '127.0.0.1', r));
    const port = (tcpPeer.address() as { port: number }).port;
    const got = await tcpExchange(port, [Buffer.from('abc')], 2);
    expect(got.map((b) => b.toString())).toEqual(['abc', 'abc']);
  });
});
