import { createSocket, type RemoteInfo } from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawUdpAvailable, sendRawUdp } from './raw-udp.js';

const raw = rawUdpAvailable();

describe.skipIf(raw.skip)('sendRawUdp', () => {
  const sock = createSocket('udp4');
  let port = 0;
  beforeAll(() => new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', () => { port = sock.address().port; resolve(); })));
  afterAll(() => new Promise<void>((resolve) => sock.close(() => resolve())));

  /** The next datagram the socket receives (bounded wait). */
  const next = () => new Promise<{ msg: Buffer; rinfo: RemoteInfo }>((resolve, reject) => {
    const t = setTimeout(() => { sock.off('message', on); reject(new Error('no datagram within 5 s')); }, 5000);
    const on = (msg: Buffer, rinfo: RemoteInfo) => { clearTimeout(t); sock.off('message', on); resolve({ msg, rinfo }); };
    sock.on('message', on);
  });

  it('delivers the payload with the source port written in the header', async () => {
    const got = next();
    await sendRawUdp(raw, { srcPort: 40001, dstPort: port, payload: Buffer.from('hello') });
    const { msg, rinfo } = await got;
    expect(msg.toString()).toBe('hello');
    expect(rinfo).toMatchObject({ address: '127.0.0.1', port: 40001 });
  });

  it('can send from source port 0, which a UDP socket cannot', async () => {
    const got = next();
    await sendRawUdp(raw, { srcPort: 0, dstPort: port, payload: Buffer.from([1, 2, 3]) });
    const { msg, rinfo } = await got;
    expect([...msg]).toEqual([1, 2, 3]);
    expect(rinfo.port).toBe(0);
  });
});
