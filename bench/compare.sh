#!/bin/bash
# bench/compare.sh: measures kvorum against redis-server with kvorum-bench,
# side by side in one invocation, and prints ratios (this machine is shared
# and noisy: absolute figures mean little, ratios taken minutes apart mean
# more). Everything runs on 127.0.0.1 and is stopped at the end.
#
#   bench/compare.sh [BUILD_DIR] [SECONDS]
#
# Measures, with 100-byte values, 100k keys, uniform keys, 50 in flight:
#   redis-server (no persistence) with --protocol resp, workload A
#   one kvorumd, N=1, workload A
#   three kvorumd, N=3 R=2 W=2, workload A
#   three kvorumd at half their peak rate (open loop): p99
#   three kvorumd, durable writes dw=2 with 64 in flight, against a loop of
#   single fsynced RocksDB writes (bench/ref/fsync_ref)
#   the same three kvorumd through their Redis protocol port
#   (kvorum-bench --protocol resp) against their native port
#   redis-benchmark -t set,get -n 100000 -c 50 (and -P 16) against
#   redis-server, one kvorumd and three kvorumd over the Redis protocol
# and writes bench/results/*.json.
set -u
BUILD=${1:-build}
SECS=${2:-10}
BENCH=$BUILD/bench/kvorum-bench
KVD=$BUILD/node/kvorumd
CLI=$BUILD/client/kvorum
FSYNC_REF=$BUILD/bench/kvorum-fsync-ref
OUT=bench/results
mkdir -p "$OUT"
TMP=$(mktemp -d /tmp/kvcompare.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
tput_of() { /usr/bin/python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["throughput_ops_s"]))' "$1"; }
p99_of() { /usr/bin/python3 -c 'import json,sys; j=json.load(open(sys.argv[1]))["ops"]; print(max(v["p99_us"] for v in j.values() if v.get("count")))' "$1"; }
cpu_of() { /usr/bin/python3 -c 'import json,sys; c=json.load(open(sys.argv[1])).get("server_cpu"); print(round(c["us_per_op"],1) if c else "-")' "$1"; }
bcpu_of() { /usr/bin/python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["bench_cpu"]["us_per_op"],1))' "$1"; }
errs_of() { /usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["errors"])' "$1"; }
ratio() { /usr/bin/python3 -c "import sys; print(f'{float(sys.argv[1])/float(sys.argv[2]):.2f}')" "$1" "$2"; }

COMMON=(--keys 100000 --value-size 100 --distribution uniform --concurrency 50
        --connections 4 --duration "$SECS" --warmup 2 --seed 1)

wait_nodes() { # HOST COUNT
  for _ in $(seq 1 200); do
    n=$("$CLI" --host "$1" status --json 2>/dev/null | grep -o '"state": *"up"' | wc -l)
    [ "$n" -ge "$2" ] && return 0
    sleep 0.1
  done
  echo "compare: nodes did not come up" >&2
  exit 1
}

start_nodes() { # COUNT N -> sets HOSTS, RHOSTS (Redis protocol), RPORT1
  local count=$1 n=$2 seeds="" i
  local cps=() pps=() rps=()
  for i in $(seq 1 "$count"); do cps+=("$(port)"); pps+=("$(port)"); rps+=("$(port)"); done
  for i in $(seq 1 "$count"); do seeds="$seeds${seeds:+,}127.0.0.1:${pps[$((i-1))]}"; done
  HOSTS=""
  RHOSTS=""
  RPORT1=${rps[0]}
  for i in $(seq 1 "$count"); do
    RHOSTS="$RHOSTS${RHOSTS:+,}127.0.0.1:${rps[$((i-1))]}"
    "$KVD" --id "n$i" --listen "127.0.0.1:${cps[$((i-1))]}" --peer "127.0.0.1:${pps[$((i-1))]}" \
      --resp "127.0.0.1:${rps[$((i-1))]}" \
      --data "$TMP/c$count-n$i" --seeds "$seeds" --n "$n" --r $(( n/2 + 1 )) --w $(( n/2 + 1 )) \
      --log-level warn 2>>"$TMP/nodes.log" &
    pids+=($!)
    HOSTS="$HOSTS${HOSTS:+,}127.0.0.1:${cps[$((i-1))]}"
  done
  wait_nodes "127.0.0.1:${cps[0]}" "$count"
}

stop_nodes() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  wait 2>/dev/null
  pids=()
}

# redis-benchmark's SET and GET rates (ops/s) against PORT, with FLAGS.
rb() { # PORT NAME FLAGS...
  local p=$1 name=$2
  shift 2
  redis-benchmark -p "$p" -t set,get -n 100000 -c 50 -q --csv "$@" \
    >"$OUT/rb_$name.csv" 2>/dev/null
  /usr/bin/python3 -c 'import csv,sys
rows={r[0]:r[1] for r in csv.reader(open(sys.argv[1])) if len(r)>1}
print(round(float(rows.get("SET","0"))), round(float(rows.get("GET","0"))))' "$OUT/rb_$name.csv"
}

echo "== redis-server (no persistence), workload A"
RP=$(port)
redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
  --logfile "$TMP/redis.log" &
pids+=($!)
for _ in $(seq 1 100); do redis-cli -p "$RP" ping >/dev/null 2>&1 && break; sleep 0.05; done
"$BENCH" --protocol resp --hosts "127.0.0.1:$RP" --workload a --load "${COMMON[@]}" \
  --json "$OUT/redis_a.json" >/dev/null
echo "== redis-benchmark against redis-server"
RB_R=$(rb "$RP" redis)
RB_RP=$(rb "$RP" redis_p16 -P 16)
stop_nodes
R_A=$(tput_of "$OUT/redis_a.json")

echo "== one kvorumd, N=1, workload A"
start_nodes 1 1
"$BENCH" --hosts "$HOSTS" --workload a --load "${COMMON[@]}" --json "$OUT/kv1_a.json" >/dev/null
echo "== redis-benchmark against one kvorumd (Redis protocol)"
RB_1=$(rb "$RPORT1" kv1)
RB_1P=$(rb "$RPORT1" kv1_p16 -P 16)
stop_nodes
K1=$(tput_of "$OUT/kv1_a.json")

echo "== three kvorumd, N=3 R=2 W=2, workload A"
start_nodes 3 3
"$BENCH" --hosts "$HOSTS" --workload a --load "${COMMON[@]}" --r 2 --w 2 \
  --json "$OUT/kv3_a.json" >/dev/null
K3=$(tput_of "$OUT/kv3_a.json")
echo "== the same three kvorumd through the Redis protocol, workload A"
"$BENCH" --protocol resp --hosts "$RHOSTS" --workload a "${COMMON[@]}" \
  --json "$OUT/kv3_a_resp.json" >/dev/null
K3R=$(tput_of "$OUT/kv3_a_resp.json")
echo "== redis-benchmark against three kvorumd (Redis protocol)"
RB_3=$(rb "$RPORT1" kv3)
RB_3P=$(rb "$RPORT1" kv3_p16 -P 16)
HALF=$(( K3 / 2 ))
echo "== three kvorumd at half the peak rate ($HALF ops/s), open loop"
"$BENCH" --hosts "$HOSTS" --workload a "${COMMON[@]}" --r 2 --w 2 --rate "$HALF" \
  --concurrency 256 --json "$OUT/kv3_a_half.json" >/dev/null
P99H=$(p99_of "$OUT/kv3_a_half.json")
echo "== three kvorumd, durable writes dw=2, 64 in flight"
"$BENCH" --hosts "$HOSTS" --workload write-only "${COMMON[@]}" --w 2 --dw 2 \
  --concurrency 64 --json "$OUT/kv3_dw.json" >/dev/null
KDW=$(tput_of "$OUT/kv3_dw.json")
stop_nodes
FS=0
if [ -x "$FSYNC_REF" ]; then
  FS=$("$FSYNC_REF" "$TMP/fsyncref" "$SECS" 100)
fi

cat <<EOF

| measurement | ops/s | reference | ops/s | ratio | target |
|---|---|---|---|---|---|
| 1 node N=1, workload A | $K1 | redis-server | $R_A | $(ratio "$K1" "$R_A") | >= 0.9 |
| 3 nodes N=3 R=2 W=2, workload A | $K3 | redis-server | $R_A | $(ratio "$K3" "$R_A") | >= 0.75 |
| 3 nodes, dw=2, 64 in flight | $KDW | fsynced RocksDB writes, one at a time | $FS | $( [ "$FS" -gt 0 ] && ratio "$KDW" "$FS" || echo -) | >= 10 |
| 3 nodes, Redis protocol (kvorum-bench --protocol resp), workload A | $K3R | the same nodes, native protocol | $K3 | $(ratio "$K3R" "$K3") | >= 0.9 |

p99 of 3 nodes at half peak ($HALF ops/s): ${P99H} us (target < 2000 us)

redis-benchmark -t set,get -n 100000 -c 50 (SET and GET ops/s), the same
flags against each server in this run:

| server | SET | GET | SET -P 16 | GET -P 16 |
|---|---|---|---|---|
| redis-server | ${RB_R% *} | ${RB_R#* } | ${RB_RP% *} | ${RB_RP#* } |
| one kvorumd, Redis protocol | ${RB_1% *} | ${RB_1#* } | ${RB_1P% *} | ${RB_1P#* } |
| three kvorumd N=3, Redis protocol | ${RB_3% *} | ${RB_3#* } | ${RB_3P% *} | ${RB_3P#* } |

CPU per operation in the measured run (server: every server process, all
threads; bench: the load generator), steadier than throughput here:

| run | server us/op | bench us/op | server us/op vs redis |
|---|---|---|---|
| redis-server, workload A | $(cpu_of "$OUT/redis_a.json") | $(bcpu_of "$OUT/redis_a.json") | 1.00 |
| 1 node N=1, workload A | $(cpu_of "$OUT/kv1_a.json") | $(bcpu_of "$OUT/kv1_a.json") | $(ratio "$(cpu_of "$OUT/kv1_a.json")" "$(cpu_of "$OUT/redis_a.json")") |
| 3 nodes N=3 R=2 W=2, workload A | $(cpu_of "$OUT/kv3_a.json") | $(bcpu_of "$OUT/kv3_a.json") | $(ratio "$(cpu_of "$OUT/kv3_a.json")" "$(cpu_of "$OUT/redis_a.json")") |
| 3 nodes at half peak, open loop | $(cpu_of "$OUT/kv3_a_half.json") | $(bcpu_of "$OUT/kv3_a_half.json") | $(ratio "$(cpu_of "$OUT/kv3_a_half.json")" "$(cpu_of "$OUT/redis_a.json")") |
| 3 nodes, dw=2 write-only | $(cpu_of "$OUT/kv3_dw.json") | $(bcpu_of "$OUT/kv3_dw.json") | $(ratio "$(cpu_of "$OUT/kv3_dw.json")" "$(cpu_of "$OUT/redis_a.json")") |
errors: redis $(errs_of "$OUT/redis_a.json"), kv1 $(errs_of "$OUT/kv1_a.json"), kv3 $(errs_of "$OUT/kv3_a.json"), half $(errs_of "$OUT/kv3_a_half.json"), dw $(errs_of "$OUT/kv3_dw.json")
EOF
