/**
 * Hot-path counters: plain numbers, read by the metrics exporter at scrape time
 * (a labelled prom-client inc() per query would cost more than answering).
 */
export class DnsCounters {
  queriesUdp = 0;
  queriesTcp = 0;
  /** Responses by rcode (0-23, extended rcodes included). */
  readonly responses = new Float64Array(24);
  /** Datagrams or frames dropped without a reply (too short, QR set). */
  dropped = 0;
  truncated = 0;
  internalErrors = 0;
  tcpConnections = 0;
  tcpRejected = 0;
  tcpIdleClosed = 0;

  response(rcode: number): void {
    this.responses[rcode] = (this.responses[rcode] ?? 0) + 1;
  }
}
