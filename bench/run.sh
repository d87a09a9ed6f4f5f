#!/usr/bin/env bash
# Benchmark: catalog-dns vs NSD vs BIND answering the same data (see bench/README.md).
# Usage: npm run bench            (builds dist/ first)
#        BENCH_SECONDS=5 bash bench/run.sh
# Talks to 127.0.0.1 only. Every daemon it starts is stopped by PID on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECS=${BENCH_SECONDS:-10}
SERVER_CPU=0
CLIENT_CPU=1
PROBE_SVC=svc-0001            # the service used for readiness and answer checks

[[ $SECS =~ ^[1-9][0-9]*$ ]] || { echo "bench: BENCH_SECONDS must be a positive integer, got '$SECS'" >&2; exit 2; }
for tool in node dig dnsperf nsd named taskset timeout; do
  command -v "$tool" >/dev/null || {
    echo "bench: '$tool' not found (apt-get install -y dnsperf nsd bind9 bind9-dnsutils util-linux)" >&2; exit 2; }
done

D=$(mktemp -d "${TMPDIR:-/tmp}/catalog-dns-bench.XXXXXX")
PIDS=()

cleanup() {
  local rc=$? pid i
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$D"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log() { printf 'bench: %s\n' "$*" >&2; }
# Warnings go to stderr at once and are repeated under the result table.
warn() { { printf 'WARNING: %s\n' "$1"; shift; [[ $# -eq 0 ]] || printf '%s\n' "$@"; } | tee -a "$D/warnings" >&2; }
pct() { awk -v x="$1" -v n="$2" 'BEGIN { printf "%.2f%%", n ? 100 * x / n : 0 }'; }

# A port that is free for both UDP and TCP on 127.0.0.1, random in 20000-32767
# (below Linux's ephemeral range, so no client socket grabs it after we pick it).
free_port() {
  timeout 10 node -e '
    const dgram = require("node:dgram"), net = require("node:net");
    let tries = 0;
    function attempt() {
      if (++tries > 50) { console.error("no free port"); process.exit(1); }
      const port = 20000 + Math.floor(Math.random() * 12768);
      const u = dgram.createSocket("udp4");
      u.once("error", () => { u.close(); attempt(); });
      u.bind(port, "127.0.0.1", () => {
        const t = net.createServer();
        t.once("error", () => { u.close(); attempt(); });
        t.listen(port, "127.0.0.1", () => { t.close(); u.close(); console.log(port); });
      });
    }
    attempt();'
}

# ---- servers: start_<name> PORT DIR -> sets SERVER_PID ------------------------------------

# catalog-dns from a dist/ directory.
start_dist() {
  local dist=$1 port=$2 dir=$3
  taskset -c "$SERVER_CPU" node "$dist/main.js" --catalog-file "$D/catalog.json" \
    --dns "127.0.0.1:$port" --log-level warn >"$dir/server.log" 2>&1 &
  SERVER_PID=$!
}

start_catalog_dns() { start_dist "$ROOT/dist" "$@"; }

# BENCH_BASELINE=DIR: a previous build's dist/ (e.g. from a git worktree of the last release), run
# with the same arguments, so a change's effect on throughput is measured in the same run.
start_baseline() { start_dist "$BENCH_BASELINE" "$@"; }

start_nsd() {
  local port=$1 dir=$2
  cp "$D/consul.zone" "$dir/consul.zone"
  cat >"$dir/nsd.conf" <<EOF
server:
    ip-address: 127.0.0.1@$port
    do-ip6: no
    server-count: 1
    username: ""
    chroot: ""
    zonesdir: "$dir"
    database: ""
    zonelistfile: "$dir/zone.list"
    xfrdfile: "$dir/xfrd.state"
    xfrdir: "$dir"
    pidfile: "$dir/nsd.pid"
    logfile: "$dir/server.log"
    verbosity: 1
    # Debian's NSD has response rate limiting on by default (200 qps per /24): off for a benchmark.
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
remote-control:
    control-enable: yes
    control-interface: "$dir/nsd.ctl"
zone:
    name: "consul"
    zonefile: "consul.zone"
EOF
  taskset -c "$SERVER_CPU" nsd -d -c "$dir/nsd.conf" >>"$dir/server.log" 2>&1 &
  SERVER_PID=$!
}

start_bind() {
  local port=$1 dir=$2
  cp "$D/consul.zone" "$dir/consul.zone"
  cat >"$dir/named.conf" <<EOF
options {
    directory "$dir";
    pid-file "$dir/named.pid";
    session-keyfile "$dir/session.key";
    managed-keys-directory "$dir";
    listen-on port $port { 127.0.0.1; };
    listen-on-v6 { none; };
    recursion no;
    dnssec-validation no;
    notify no;
    allow-transfer { none; };
};
controls { };
zone "consul" {
    type primary;
    file "consul.zone";
};
EOF
  # -n 1: one worker thread (under taskset BIND 9.18 finds 1 CPU and uses 1 worker anyway).
  taskset -c "$SERVER_CPU" named -g -4 -n 1 -c "$dir/named.conf" >"$dir/server.log" 2>&1 &
  SERVER_PID=$!
}

stop_server() {
  local pid=$1 i keep=() p
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then log "pid $pid did not stop in 10 s, killing"; kill -KILL "$pid" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
  for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

# Bounded wait until PROBE_SVC's A query gets an address back.
wait_ready() {
  local name=$1 port=$2 pid=$3 dir=$4 i out
  for ((i = 0; i < 100; i++)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "$name exited before answering; its log:"; tail -n 30 "$dir/server.log" >&2; return 1
    fi
    out=$(dig @127.0.0.1 -p "$port" "$PROBE_SVC.service.consul" A +short +time=1 +tries=1 2>/dev/null) || out=
    if [[ $out =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+ ]]; then return 0; fi
    sleep 0.2
  done
  log "$name did not answer on 127.0.0.1:$port within the retry budget; its log:"
  tail -n 30 "$dir/server.log" >&2
  return 1
}

# ---- answer checks ---------------------------------------------------------------------

dig_short() { # port name type -> sorted records
  dig @127.0.0.1 -p "$1" "$2" "$3" +short +time=2 +tries=2 | sort
}

# Records the zone file holds for PROBE_SVC, in dig +short form.
expected() { # A|SRV
  if [[ $1 == A ]]; then
    awk -v o="$PROBE_SVC.service.consul." '$1 == o && $4 == "A" { print $5 }' "$D/consul.zone" | sort
  else
    awk -v o="_$PROBE_SVC._tcp.service.consul." '$1 == o && $4 == "SRV" { print $5, $6, $7, $8 }' "$D/consul.zone" | sort
  fi
}

# Saves the server's answers for PROBE_SVC and warns where they differ from the zone file.
check_answers() {
  local name=$1 port=$2 out=$D/answers.$1 t status hdr
  dig_short "$port" "$PROBE_SVC.service.consul" A >"$out.A"
  dig_short "$port" "_$PROBE_SVC._tcp.service.consul" SRV >"$out.SRV"
  for t in A SRV; do
    if ! diff <(expected "$t") "$out.$t" >"$out.$t.diff"; then
      warn "$name: $t answer for $PROBE_SVC differs from the zone file (< zone file, > $name):" \
        "$(sed 's/^/    /' "$out.$t.diff")"
    fi
  done
  hdr=$(dig @127.0.0.1 -p "$port" "nosuch-0001.service.consul" A +time=2 +tries=2 +noall +comments)
  status=$(sed -n 's/.*status: \([A-Z]*\),.*/\1/p' <<<"$hdr")
  [[ $status == NXDOMAIN ]] || warn "$name: nosuch-0001.service.consul A answered '$status', expected NXDOMAIN"
  grep -q 'flags:.* aa[ ;]' <<<"$hdr" || warn "$name: the answer for nosuch-0001.service.consul A lacks the AA flag"
  # Response shape for the SRV query (what dnsperf mostly asks): sections and size.
  dig @127.0.0.1 -p "$port" "_$PROBE_SVC._tcp.service.consul" SRV +nocookie +time=2 +tries=2 |
    awk -v n="$name" '/^;; flags:/ { sub(/^;; flags: [^;]*; /, ""); shape = $0 }
                      /MSG SIZE/ { size = $NF }
                      END { printf "  %-12s %s, %s bytes\n", n, shape, size }' | tee -a "$D/shapes" >&2
}

compare_with_nsd() {
  local name=$1 t
  [[ -f $D/answers.$name.A && -f $D/answers.nsd.A ]] || return 0
  for t in A SRV; do
    if diff "$D/answers.nsd.$t" "$D/answers.$name.$t" >"$D/cmp.$t.diff"; then
      log "$name and nsd give the same $t records for $PROBE_SVC"
    else
      warn "$name and nsd differ in the $t records for $PROBE_SVC (< nsd, > $name):" \
        "$(sed 's/^/    /' "$D/cmp.$t.diff")"
    fi
  done
}

# ---- one benchmark run -----------------------------------------------------------------

declare -A QPS SENT DONE LOST NOERR NXD OTHER

bench_one() {
  local name=$1 run=$2 port dir
  port=$(free_port)
  dir="$D/$name-$run"
  mkdir -p "$dir"
  "start_${name//-/_}" "$port" "$dir"
  PIDS+=("$SERVER_PID")
  wait_ready "$name" "$port" "$SERVER_PID" "$dir"
  if [[ $run == 1 ]]; then check_answers "$name" "$port"; fi
  # Warm-up, the same for every server: the query file once (20,000 queries), not counted. It
  # measures the steady state a server reaches after its first minutes of serving (catalog-dns
  # prepares an answer's wire bytes the first time it is asked for; NSD and BIND have caches too).
  timeout 60 taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$port" -d "$D/queries.txt" \
    -n 1 -c 8 -q 200 -t 2 -e >"$dir/warmup.out" 2>&1 || log "$name: warm-up pass failed (see $dir/warmup.out)"
  log "$name run $run: pid $SERVER_PID on 127.0.0.1:$port, dnsperf ${SECS}s"
  # -e: EDNS0; -c 8 sockets; -q 200 outstanding (enough to keep one core busy); -l loops the
  # query file for SECS seconds; -t 2: a query unanswered after 2 s counts as lost.
  timeout $((SECS + 30)) taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$port" -d "$D/queries.txt" \
    -l "$SECS" -c 8 -q 200 -t 2 -e >"$dir/dnsperf.out" 2>&1 || {
    log "dnsperf failed against $name:"; cat "$dir/dnsperf.out" >&2; return 1; }
  stop_server "$SERVER_PID"
  local k="$name/$run"
  SENT[$k]=$(awk '/Queries sent:/ { print $3 }' "$dir/dnsperf.out")
  DONE[$k]=$(awk '/Queries completed:/ { print $3 }' "$dir/dnsperf.out")
  LOST[$k]=$(awk '/Queries lost:/ { print $3 }' "$dir/dnsperf.out")
  QPS[$k]=$(awk '/Queries per second:/ { print $4 }' "$dir/dnsperf.out")
  # "Response codes:       NOERROR 123 (50.00%), NXDOMAIN 45 (5.00%)"
  read -r NOERR[$k] NXD[$k] OTHER[$k] < <(awk '/Response codes:/ {
      sub(/.*Response codes: */, "")
      n = split($0, f, /, */); noerr = 0; nxd = 0; other = 0
      for (i = 1; i <= n; i++) { split(f[i], w, " ")
        if (w[1] == "NOERROR") noerr += w[2]; else if (w[1] == "NXDOMAIN") nxd += w[2]; else other += w[2] }
      print noerr, nxd, other }' "$dir/dnsperf.out")
  if [[ -z ${QPS[$k]} || -z ${SENT[$k]} ]]; then log "could not parse dnsperf output for $k:"; cat "$dir/dnsperf.out" >&2; return 1; fi
  log "$name run $run: ${QPS[$k]} qps, ${DONE[$k]}/${SENT[$k]} answered, lost ${LOST[$k]:-0}"
}

# ---- main ------------------------------------------------------------------------------

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
node "$ROOT/bench/gen-catalog.mjs" "$D" >&2
SERVERS=()
if [[ -f $ROOT/dist/main.js ]]; then
  SERVERS+=(catalog-dns)
else
  echo "catalog-dns: not built, skipped"
fi
if [[ -n ${BENCH_BASELINE:-} ]]; then
  [[ -f $BENCH_BASELINE/main.js ]] || { echo "bench: BENCH_BASELINE=$BENCH_BASELINE has no main.js" >&2; exit 2; }
  SERVERS+=(baseline)
fi
SERVERS+=(nsd bind)

for run in 1 2; do
  for s in "${SERVERS[@]}"; do bench_one "$s" "$run"; done
  if [[ $run == 1 && -f $ROOT/dist/main.js ]]; then compare_with_nsd catalog-dns; fi
done

report() {
  local s a b sent done noerr nxd other r k
  echo "dnsperf ${SECS}s per run, UDP+EDNS0, 8 clients, 200 outstanding; server on CPU $SERVER_CPU, dnsperf on CPU $CLIENT_CPU"
  printf '%-12s %10s %10s %10s %9s %9s %9s %7s\n' server 'run1 qps' 'run2 qps' 'mean qps' answered NOERROR NXDOMAIN other
  for s in "${SERVERS[@]}"; do
    a=${QPS[$s/1]} b=${QPS[$s/2]}
    MEAN[$s]=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.0f", (a + b) / 2 }')
    sent=$((SENT[$s/1] + SENT[$s/2])) done=$((DONE[$s/1] + DONE[$s/2]))
    noerr=$((NOERR[$s/1] + NOERR[$s/2])) nxd=$((NXD[$s/1] + NXD[$s/2])) other=$((OTHER[$s/1] + OTHER[$s/2]))
    printf '%-12s %10.0f %10.0f %10s %9s %9s %9s %7s\n' "$s" "$a" "$b" "${MEAN[$s]}" \
      "$(pct "$done" "$sent")" "$(pct "$noerr" "$done")" "$(pct "$nxd" "$done")" "$(pct "$other" "$done")"
    if awk -v a="$a" -v b="$b" 'BEGIN { d = a > b ? a - b : b - a; exit !(d > 0.2 * (a + b) / 2) }'; then
      echo "WARNING: $s: run 1 and run 2 differ by more than 20%; the machine was busy or noisy (load average at start: $LOAD0)" >>"$D/warnings"
    fi
    for r in 1 2; do
      k=$s/$r
      if awk -v d="${DONE[$k]}" -v n="${SENT[$k]}" 'BEGIN { exit !(d < 0.99 * n) }'; then
        echo "FAIL: $s run $r answered ${DONE[$k]} of ${SENT[$k]} queries (< 99%)" >>"$D/failures"
      fi
      if awk -v o="${OTHER[$k]}" -v d="${DONE[$k]}" 'BEGIN { exit !(o > 0.01 * d) }'; then
        echo "FAIL: $s run $r: ${OTHER[$k]} of ${DONE[$k]} answers had rcodes other than NOERROR/NXDOMAIN (> 1%)" >>"$D/failures"
      fi
    done
  done
  if [[ -n ${MEAN[catalog-dns]:-} ]]; then
    awk -v c="${MEAN[catalog-dns]}" -v n="${MEAN[nsd]}" -v b="${MEAN[bind]}" \
      'BEGIN { printf "catalog-dns/NSD  = %.2f\ncatalog-dns/BIND = %.2f\n", c / n, c / b }'
    if [[ -n ${MEAN[baseline]:-} ]]; then
      awk -v c="${MEAN[catalog-dns]}" -v b="${MEAN[baseline]}" -v dir="$BENCH_BASELINE" \
        'BEGIN { printf "catalog-dns/baseline = %.2f (baseline: %s)\n", c / b, dir }'
    fi
  else
    echo "catalog-dns: not built, skipped (no ratios)"
  fi
  echo
  echo "SRV response to dnsperf-like queries (RD=1, EDNS0, no cookie):"
  cat "$D/shapes"
  [[ ! -s $D/warnings ]] || { echo; cat "$D/warnings"; }
  [[ ! -s $D/failures ]] || { echo; cat "$D/failures"; }
}

declare -A MEAN
echo
report | tee "$D/results.txt"
# Keep the last run's results and raw dnsperf output (bench/out/ is git-ignored).
OUT=$ROOT/bench/out
mkdir -p "$OUT"
rm -f "$OUT"/*.dnsperf.txt "$OUT"/*.server.log
cp "$D/results.txt" "$OUT/results.txt"
for s in "${SERVERS[@]}"; do
  for r in 1 2; do
    cp "$D/$s-$r/dnsperf.out" "$OUT/$s-$r.dnsperf.txt"
    cp "$D/$s-$r/server.log" "$OUT/$s-$r.server.log" 2>/dev/null || true
  done
done
[[ ! -s $D/failures ]]
