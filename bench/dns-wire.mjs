// Minimal DNS wire helpers for the benchmarks (RFC 1035 §4.1, EDNS0 OPT from RFC 6891 §6.1.2):
// encode a query once, patch its ID per send, read the ID, rcode and counts of a response.
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import net from 'node:net';

const TYPES = { A: 1, NS: 2, SOA: 6, PTR: 12, TXT: 16, AAAA: 28, SRV: 33, ANY: 255 };

/** A query for `name` / `type` (RD=0), with an EDNS0 OPT record advertising 4096 bytes unless `edns` is false. */
export function encodeQuery(name, type, { id = 0, edns = true } = {}) {
  const qtype = TYPES[type.toUpperCase()];
  if (!qtype) throw new Error(`unknown query type ${type}`);
  const labels = name.replace(/\.$/, '').split('.').filter((l) => l.length > 0);
  const qname = Buffer.concat([...labels.flatMap((l) => { const b = Buffer.from(l); return [Buffer.from([b.length]), b]; }), Buffer.from([0])]);
  const buf = Buffer.alloc(12 + qname.length + 4 + (edns ? 11 : 0));
  buf.writeUInt16BE(id, 0);
  buf.writeUInt16BE(1, 4); // QDCOUNT
  buf.writeUInt16BE(edns ? 1 : 0, 10); // ARCOUNT
  qname.copy(buf, 12);
  let o = 12 + qname.length;
  buf.writeUInt16BE(qtype, o);
  buf.writeUInt16BE(1, o + 2); // IN
  if (edns) {
    o += 4;
    buf[o] = 0; // root owner
    buf.writeUInt16BE(41, o + 1); // OPT
    buf.writeUInt16BE(4096, o + 3); // UDP payload size
    // TTL (extended rcode, version, flags) and RDLENGTH stay 0.
  }
  return buf;
}

/** The header fields a load generator needs, or null when `msg` is not a response. */
export function responseHeader(msg) {
  if (msg.length < 12 || (msg[2] & 0x80) === 0) return null;
  return { id: msg.readUInt16BE(0), rcode: msg[3] & 0x0f, aa: (msg[2] & 0x04) !== 0, tc: (msg[2] & 0x02) !== 0, ancount: msg.readUInt16BE(6) };
}

export const RCODES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];

/** A port free for both UDP and TCP on `host`, random in 20000-32767 (below Linux's ephemeral range). */
export async function freePort(host = '127.0.0.1') {
  for (let tries = 0; tries < 50; tries++) {
    const port = 20000 + Math.floor(Math.random() * 12768);
    const ok = await new Promise((resolve) => {
      const u = dgram.createSocket('udp4');
      u.once('error', () => { u.close(); resolve(false); });
      u.bind(port, host, () => {
        const t = net.createServer();
        t.once('error', () => { u.close(); resolve(false); });
        t.listen(port, host, () => { t.close(() => { u.close(); resolve(true); }); });
      });
    });
    if (ok) return port;
  }
  throw new Error('no free port found in 50 tries');
}

/**
 * Sends `name SOA` to host:port every `everyMs` until an authoritative NOERROR answer with at
 * least one record comes back, and returns performance.now() at its arrival. Rejects after
 * `timeoutMs`, or as soon as `alive()` says the server process is gone.
 */
export function firstAnswer({ host = '127.0.0.1', port, name = 'consul', type = 'SOA', everyMs = 20, timeoutMs = 120_000, alive = () => true }) {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket('udp4');
    const t0 = performance.now();
    let id = 0;
    let timer = null;
    const done = (err, at) => {
      clearTimeout(timer);
      sock.close();
      if (err) reject(err); else resolve(at);
    };
    sock.on('error', () => {}); // ICMP port unreachable while the server is not up yet
    sock.on('message', (msg) => {
      const at = performance.now();
      const h = responseHeader(msg);
      if (h && h.rcode === 0 && h.aa && h.ancount > 0) done(null, at);
    });
    const probe = () => {
      if (!alive()) return done(new Error('server exited before answering'));
      if (performance.now() - t0 > timeoutMs) return done(new Error(`no answer within ${timeoutMs} ms`));
      id = (id + 1) & 0xffff;
      sock.send(encodeQuery(name, type, { id }), port, host);
      timer = setTimeout(probe, everyMs);
    };
    sock.bind(0, host, probe);
  });
}

/** Datagrams the kernel dropped on the IPv4 UDP sockets bound to these local ports (Linux /proc/net/udp). */
export function udpDrops(ports) {
  const want = new Set([...ports].map((p) => p.toString(16).toUpperCase().padStart(4, '0')));
  let drops = 0;
  try {
    for (const line of readFileSync('/proc/net/udp', 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length >= 13 && want.has(f[1].split(':')[1])) drops += Number(f[f.length - 1]);
    }
  } catch { return null; }
  return drops;
}
