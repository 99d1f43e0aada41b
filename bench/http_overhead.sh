#!/bin/bash
# bench/http_overhead.sh: what the HTTP port (--http, docs/http.md) costs
# under load, measured side by side in one invocation.
#
#   bench/http_overhead.sh [BUILD_DIR] [SECONDS] [ROUNDS]
#
# Two three-node clusters run at once on 127.0.0.1 (N=3 R=2 W=2): A without
# --http, B with it. kvorum-bench workload A (100-byte values, 100k uniform
# keys, 4 connections x 50 in flight) then runs ROUNDS times against each of
#   A            no HTTP port
#   B            an HTTP port nobody scrapes
#   B + scrape   every node's /metrics fetched once a second over kept-alive
#                connections, as Prometheus with scrape_interval 1s does
# interleaved (A, B, B+scrape, A, ...), so drift on this shared machine
# hits all three alike; the idle cluster costs nothing while the other runs.
# Prints the median throughput of each, the ratios B/A and (B+scrape)/B,
# and the node's CPU time per scrape (read from /proc over 1000 scrapes:
# the figure the noise of a shared machine does not blur), and writes
# bench/results/http_overhead.json.
set -u
BUILD=${1:-build}
SECS=${2:-8}
ROUNDS=${3:-3}
BENCH=$BUILD/bench/kvorum-bench
KVD=$BUILD/node/kvorumd
CLI=$BUILD/client/kvorum
OUT=bench/results
mkdir -p "$OUT"
TMP=$(mktemp -d /tmp/kvhttp.XXXXXX)
pids=()
scraper=""
cleanup() {
  [ -n "$scraper" ] && kill "$scraper" 2>/dev/null
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

. "$(dirname "$0")/lib.sh"

no_http() { :; }
with_http() { NODE_EXTRA=(--http "127.0.0.1:${PORTS[$1]}"); }

start_cluster a no_http
A_HOSTS=$HOSTS
start_cluster b with_http
B_HOSTS=$HOSTS
B_HTTP="127.0.0.1:${PORTS[0]} 127.0.0.1:${PORTS[1]} 127.0.0.1:${PORTS[2]}"

# A scraper like Prometheus: one kept-alive connection per node, every
# node's /metrics once a second, until killed. With "cpu N" instead: N
# scrapes of the first node back to back, and the node's CPU per scrape.
SCRAPER='
import http.client, os, sys, time
hosts = sys.argv[2].split()
conns = [http.client.HTTPConnection(*h.split(":")) for h in hosts]
def scrape(c):
    c.request("GET", "/metrics")
    r = c.getresponse()
    r.read()
    return r.status
if sys.argv[1] == "loop":
    while True:
        t = time.monotonic()
        for c in conns:
            scrape(c)
        time.sleep(max(0, 1 - (time.monotonic() - t)))
pid, n = int(sys.argv[3]), int(sys.argv[4])
def cpu():
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
c0 = cpu()
for _ in range(n):
    assert scrape(conns[0]) == 200
print(f"{(cpu() - c0) / n * 1e6:.0f}")
'

COMMON=(--workload a --keys 100000 --value-size 100 --distribution uniform
        --concurrency 50 --connections 4 --duration "$SECS" --warmup 2 --seed 1
        --r 2 --w 2)
for h in "$A_HOSTS" "$B_HOSTS"; do # every key written once
  "$BENCH" --hosts "$h" --workload a --load --keys 100000 --value-size 100 \
    --concurrency 50 --connections 4 --duration 1 >/dev/null 2>&1
done
a=() b=() s=()
for r in $(seq 1 "$ROUNDS"); do
  echo "== round $r: A (no HTTP port)"
  "$BENCH" --hosts "$A_HOSTS" "${COMMON[@]}" --json "$TMP/a$r.json" >/dev/null 2>&1
  a+=("$(tput_of "$TMP/a$r.json")")
  echo "== round $r: B (HTTP port, nobody scrapes)"
  "$BENCH" --hosts "$B_HOSTS" "${COMMON[@]}" --json "$TMP/b$r.json" >/dev/null 2>&1
  b+=("$(tput_of "$TMP/b$r.json")")
  echo "== round $r: B with a 1 s scrape of every node"
  /usr/bin/python3 -c "$SCRAPER" loop "$B_HTTP" &
  scraper=$!
  "$BENCH" --hosts "$B_HOSTS" "${COMMON[@]}" --json "$TMP/s$r.json" >/dev/null 2>&1
  kill "$scraper" 2>/dev/null
  wait "$scraper" 2>/dev/null
  scraper=""
  s+=("$(tput_of "$TMP/s$r.json")")
done
echo "== CPU of one /metrics scrape (1000 back to back, node b0)"
B0_PID=${pids[3]} # A started first: pids 0-2 are a0..a2
SCRAPE_US=$(/usr/bin/python3 -c "$SCRAPER" cpu "$B_HTTP" "$B0_PID" 1000)
/usr/bin/python3 - "$OUT/http_overhead.json" "$SCRAPE_US" "${a[*]}" "${b[*]}" "${s[*]}" <<'PY'
import json, statistics, sys
out, scrape_us = sys.argv[1], int(sys.argv[2])
a, b, s = [list(map(int, x.split())) for x in sys.argv[3:]]
ma, mb, ms = (statistics.median(x) for x in (a, b, s))
# Ratios within a round (runs seconds apart) drift less than medians of
# runs minutes apart: their median is the figure.
rb = statistics.median(y / x for x, y in zip(a, b))
rs = statistics.median(y / x for x, y in zip(b, s))
res = {"a_no_http": a, "b_http_idle": b, "b_http_scraped_1s": s,
       "median_ops_s": {"a": ma, "b": mb, "b_scraped": ms},
       "ratio_b_over_a": round(rb, 3), "ratio_scraped_over_b": round(rs, 3),
       "server_cpu_us_per_scrape": scrape_us}
json.dump(res, open(out, "w"), indent=1)
print(f"A  no HTTP port         {a} median {ma:.0f} ops/s")
print(f"B  HTTP port, idle      {b} median {mb:.0f} ops/s")
print(f"B  scraped every 1 s    {s} median {ms:.0f} ops/s")
print(f"median of per-round ratios: B/A {rb:.3f}, scraped/B {rs:.3f}")
print(f"one scrape costs the node {scrape_us} us of CPU: {scrape_us / 1e4:.3f}% of a core at a 1 s interval")
PY
