/**
 * A small DNS client over real UDP and TCP sockets for tests, decoding with dns-packet.
 * Every call has a timeout; sockets are closed on every path.
 */
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import packet from 'dns-packet';

export interface QueryOptions {
  readonly id?: number;
  readonly rd?: boolean;
  /** EDNS UDP size; undefined = no OPT record. */
  readonly edns?: number;
  readonly dnssecOk?: boolean;
  readonly ednsOptions?: Array<{ code: number; data: Buffer }>;
  readonly timeoutMs?: number;
}

export function buildQuery(name: string, type: string, o: QueryOptions = {}): Buffer {
  const additionals = o.edns === undefined ? [] : [{
    type: 'OPT', name: '.', udpPayloadSize: o.edns, extendedRcode: 0, ednsVersion: 0,
    flags: o.dnssecOk ? packet.DNSSEC_OK : 0, options: o.ednsOptions ?? [],
  }];
  return packet.encode({
    type: 'query', id: o.id ?? Math.floor(Math.random() * 65535),
    flags: o.rd === false ? 0 : packet.RECURSION_DESIRED,
    questions: [{ type, name, class: 'IN' } as packet.Question],
    additionals,
  } as unknown as packet.Packet);
}

export type Decoded = packet.DecodedPacket & { rcode: string; raw: Buffer };

export function decode(buf: Buffer): Decoded {
  const d = packet.decode(buf) as Decoded;
  d.raw = buf;
  return d;
}

/** Sends raw bytes over UDP and resolves with the raw reply, or null on timeout. */
export function udpRaw(port: number, msg: Buffer, timeoutMs = 2000, host = '127.0.0.1'): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const s = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    const t = setTimeout(() => { s.close(); resolve(null); }, timeoutMs);
    s.on('message', (m) => { clearTimeout(t); s.close(); resolve(m); });
    s.on('error', (e) => { clearTimeout(t); s.close(); reject(e); });
    s.send(msg, port, host);
  });
}

export async function udpQuery(port: number, name: string, type: string, o: QueryOptions = {}): Promise<Decoded> {
  const r = await udpRaw(port, buildQuery(name, type, o), o.timeoutMs ?? 2000);
  if (!r) throw new Error(`no UDP reply for ${name} ${type}`);
  return decode(r);
}

/** Sends length-prefixed messages on one TCP connection and collects `expect` replies. */
export function tcpExchange(port: number, msgs: Buffer[], expect = msgs.length, timeoutMs = 3000): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    const out: Buffer[] = [];
    let buf = Buffer.alloc(0);
    const t = setTimeout(() => { sock.destroy(); reject(new Error(`TCP: got ${out.length}/${expect} replies before timeout`)); }, timeoutMs);
    sock.on('connect', () => {
      sock.write(Buffer.concat(msgs.map((m) => { const l = Buffer.alloc(2); l.writeUInt16BE(m.length); return Buffer.concat([l, m]); })));
    });
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const len = buf.readUInt16BE(0);
        out.push(buf.subarray(2, 2 + len));
        buf = buf.subarray(2 + len);
      }
      if (out.length >= expect) { clearTimeout(t); sock.destroy(); resolve(out); }
    });
    sock.on('error', (e) => { clearTimeout(t); reject(e); });
    sock.on('close', () => { clearTimeout(t); if (out.length < expect) reject(new Error(`TCP closed after ${out.length}/${expect} replies`)); });
  });
}

export async function tcpQuery(port: number, name: string, type: string, o: QueryOptions = {}): Promise<Decoded> {
  const [r] = await tcpExchange(port, [buildQuery(name, type, o)], 1, o.timeoutMs ?? 3000);
  return decode(r!);
}
