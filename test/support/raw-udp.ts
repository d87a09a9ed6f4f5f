// Sends one IPv4/UDP datagram with a header we write ourselves, for peers the kernel's UDP
// sockets cannot play: a source port of 0 (legal on the wire, RFC 768; bind() would pick a port).
//
//   const raw = rawUdpAvailable();
//   it.skipIf(raw.skip)('...', async () => { await sendRawUdp({ srcPort: 0, dstPort, payload }); });
//
// A raw socket (SOCK_RAW, IPPROTO_RAW: IP_HDRINCL) needs root or CAP_NET_RAW, which Node does
// not offer, so a few lines of python3 send it. Loopback only: 127.0.0.1 to 127.0.0.1.
import { execFile } from 'node:child_process';
import { requireProgram } from './programs.js';

const SCRIPT = `
import socket, struct, sys
src, dst, payload = int(sys.argv[1]), int(sys.argv[2]), bytes.fromhex(sys.argv[3])
udp = struct.pack('!HHHH', src, dst, 8 + len(payload), 0) + payload  # checksum 0: none (IPv4)
lo = socket.inet_aton('127.0.0.1')
# version/IHL, TOS, total length, id, fragment, TTL, protocol 17, checksum (the kernel fills it), addresses
ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, lo, lo)
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.sendto(ip + udp, ('127.0.0.1', 0))
s.close()
`;

export interface RawUdp {
  readonly skip: boolean;
  readonly reason: string;
  readonly python: string;
}

/**
 * Whether raw datagrams can be sent here: python3 is required like any other program (missing
 * under CI=true fails); not being root is a skip with the reason printed once.
 */
export function rawUdpAvailable(): RawUdp {
  const py = requireProgram('python3', 'python3');
  if (py.skip) return { skip: true, reason: py.reason, python: py.path };
  if (process.getuid?.() !== 0) {
    const reason = 'raw IPv4 sockets need root (CAP_NET_RAW)';
    process.stderr.write(`skipping tests that send crafted IPv4/UDP headers: ${reason}\n`);
    return { skip: true, reason, python: py.path };
  }
  return { skip: false, reason: '', python: py.path };
}

/** Sends `payload` from 127.0.0.1:srcPort to 127.0.0.1:dstPort; resolves once it is sent. */
export function sendRawUdp(raw: RawUdp, o: { srcPort: number; dstPort: number; payload: Buffer }): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(raw.python, ['-c', SCRIPT, String(o.srcPort), String(o.dstPort), o.payload.toString('hex')], { timeout: 10_000 }, (err, _out, stderr) => {
      if (err) reject(new Error(`python3 raw send failed: ${err.message}\n${stderr}`));
      else resolve();
    });
  });
}
