/**
 * Hot-path counters: plain numbers, read by the metrics exporter at scrape time
 * (a labelled prom-client inc() per query would cost more than answering).
 */
export class DnsCounters {
  queriesUdp = 0;
  queriesTcp = 0;
  /** Responses by rcode (0-23, extended rcodes included), as built (before rate limiting). */
  readonly responses = new Float64Array(24);
  /** Datagrams or frames dropped without a reply (too short, QR set). */
  dropped = 0;
  truncated = 0;
  internalErrors = 0;
  tcpConnections = 0;
  tcpRejected = 0;
  tcpIdleClosed = 0;
  /**
   * UDP replies that could not be sent and were dropped: the source port was 0 (or out of range),
   * `send` threw, or the reply was larger than the UDP size bound. Never fatal.
   */
  sendErrors = 0;
  /** UDP replies withheld by response rate limiting (src/dns/rrl.ts). */
  rrlDropped = 0;
  /** UDP replies replaced by a minimal TC=1 reply by response rate limiting. */
  rrlSlipped = 0;

  response(rcode: number): void {
    this.responses[rcode] = (this.responses[rcode] ?? 0) + 1;
  }
}
