import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { udpQuery } from './dns-client.js';
import { startServer } from './server.js';

describe('startServer', () => {
  it('serves the demo catalog on one port for UDP and TCP, and frees both on close', async () => {
    const s = await startServer();
    expect(s.host).toBe('127.0.0.1');
    expect(s.port).toBeGreaterThan(0);
    expect((await udpQuery(s.port, 'web-1.node.consul', 'A')).answers[0]).toMatchObject({ data: '10.0.1.11' });
    await s.close();
    // Both ports can be bound again after close.
    const tcp = createServer();
    await new Promise<void>((resolve, reject) => { tcp.once('error', reject); tcp.listen(s.port, '127.0.0.1', resolve); });
    tcp.close();
    const udp = createSocket('udp4');
    await new Promise<void>((resolve, reject) => { udp.once('error', reject); udp.bind(s.port, '127.0.0.1', resolve); });
    udp.close();
  });
});
