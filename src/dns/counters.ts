/**
 * Hot-path counters: plain numbers, read by the metrics exporter at scrape time
 * (a labelled prom-client inc() per query would cost more than answering).
 */
export class DnsCounters {
  queriesUdp = 0;
  queriesTcp = 0;
  /** Queries by qtype (index 256: any qtype above 255), per transport; queries too broken to have one are not here. */
  readonly qtypesUdp = new Float64Array(257);
  readonly qtypesTcp = new Float64Array(257);
  /** Responses by rcode (0-23, extended rcodes included), as built (before rate limiting). */
  readonly responses = new Float64Array(24);
  /** Datagrams or frames dropped without a reply (too short, QR set). */
  dropped = 0;
  /** Queries held at a start until the zone was complete (QueryHandler HELD); each counted once. */
  held = 0;
  truncated = 0;
  internalErrors = 0;
  /** TCP connections admitted. */
  tcpConnections = 0;
  /** New TCP connections refused: every slot taken and none idle or stalled long enough to evict. */
  tcpRejected = 0;
  /** New TCP connections refused: their address already holds tcp_max_connections_per_client. */
  tcpRejectedPerClient = 0;
  /** Connections closed after tcp_idle_timeout with no query pending (RFC 7766 6.2.3). */
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
  /** Connections closed because a query frame was not whole tcp_frame_timeout after its first byte. */
  tcpFrameTimeouts = 0;
  /** Connections closed because the peer read no reply for tcp_idle_timeout while one was pending. */
  tcpWriteTimeouts = 0;
  /** Idle connections closed (the longest idle first) to admit a new one at tcp_max_connections. */
  tcpEvictedIdle = 0;
  /** Connections stalled mid-frame or mid-reply (the longest first) closed to admit a new one when none was idle. */
  tcpEvictedStalled = 0;
  /** Busy connections of the address holding the most closed so that an address holding fewer gets in (nothing idle or stalled to evict). */
  tcpEvictedFairShare = 0;
  /** Connections closed because the query handler threw (internalErrors counts it too). */
  tcpHandlerErrors = 0;

  response(rcode: number): void {
    this.responses[rcode] = (this.responses[rcode] ?? 0) + 1;
  }
}
