#!/bin/bash
# bench/compare.sh: measures kvorum against redis-server side by side in
# one invocation and prints ratios (this machine is shared and noisy:
# absolute figures mean little, ratios taken minutes apart mean more).
# Everything runs on 127.0.0.1 and is stopped at the end.
#
#   bench/compare.sh [BUILD_DIR] [SECONDS]
#
# The rows of issue #19 (performance round 3), 100-byte values, 100k
# zipfian keys, workload A (50% read, 50% update), --load first, 2 s
# warm-up, seed 1:
#   redis-server (no persistence), one kvorumd (N=1) and three kvorumd
#   (N=3 R=2 W=2), each with
#     kvorum-bench, 50 connections x 1 in flight and 4 connections x 50
#     (native for kvorum, --protocol resp for redis; three nodes also
#     through their Redis port, so libkvorum's CPU per request can be set
#     against the bench's RESP driver's on the same servers)
#     redis-benchmark -t set,get -c 50 -d 100 -r 100000
#   three kvorumd at half their 50x1 peak, open loop: p99
# Every run reports server CPU per operation (kvorum's stats or Redis's
# INFO, all threads) and the bench's own; each server process's CPU over
# each run (warm-up included) is read from /proc and printed as the cores
# it used, so a gain is not a shift of CPU from one process to another.
# Writes bench/results/*.json and bench/results/compare.md.
set -u
BUILD=${1:-build}
SECS=${2:-10}
BENCH=$BUILD/bench/kvorum-bench
KVD=$BUILD/node/kvorumd
CLI=$BUILD/client/kvorum
. "$(dirname "$0")/lib.sh"
bench_setup kvcompare

p99_of() { jq_ "$1" 'max(v["p99_us"] for v in j["ops"].values() if v.get("count"))'; }
bcpu_of() { jq_ "$1" 'round(j["bench_cpu"]["us_per_op"],1)'; }
errs_of() { jq_ "$1" 'j["errors"]'; }
ratio() { /usr/bin/python3 -c "import sys; print(f'{float(sys.argv[1])/float(sys.argv[2]):.2f}')" "$1" "$2"; }

# CPU clock ticks (user + system, all threads) of every server process.
ticks() { for p in "${pids[@]}"; do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0; done | paste -sd' '; }
HZ=$(getconf CLK_TCK)
# The cores each server process used between two ticks snapshots.
cores() { # BEFORE AFTER START END (seconds)
  /usr/bin/python3 -c 'import sys
b=[int(x) for x in sys.argv[1].split()]; a=[int(x) for x in sys.argv[2].split()]
s=float(sys.argv[4])-float(sys.argv[3])
print(" ".join("%.2f" % ((y-x)/s/float(sys.argv[5])) for x,y in zip(b,a)))' \
    "$1" "$2" "$3" "$4" "$HZ"
}

COMMON=(--keys 100000 --value-size 100 --distribution zipfian --workload a
        --duration "$SECS" --warmup 2 --seed 1)
C50=(--connections 50 --concurrency 50)
C4=(--connections 4 --concurrency 50)
declare -A CORES

# Runs kvorum-bench with ARGS, writing $OUT/NAME.json; records the cores
# every server process used in CORES[NAME].
run() { # NAME ARGS...
  local name=$1 t0 t1 s0 s1
  shift
  echo "== $name" >&2
  t0=$(ticks)
  s0=$EPOCHREALTIME
  "$BENCH" "$@" --json "$OUT/$name.json" >/dev/null
  s1=$EPOCHREALTIME
  t1=$(ticks)
  CORES[$name]=$(cores "$t0" "$t1" "$s0" "$s1")
}

# redis-benchmark's SET and GET rates (ops/s) against PORT.
rb() { # PORT NAME
  echo "== redis-benchmark $2" >&2
  redis-benchmark -p "$1" -t set,get -n 200000 -c 50 -d 100 -r 100000 -q --csv \
    >"$OUT/rb_$2.csv" 2>/dev/null
  /usr/bin/python3 -c 'import csv,sys
rows={r[0]:r[1] for r in csv.reader(open(sys.argv[1])) if len(r)>1}
print(round(float(rows.get("SET","0"))), round(float(rows.get("GET","0"))))' "$OUT/rb_$2.csv"
}

start_nodes() { # COUNT N -> sets HOSTS, RHOSTS (Redis protocol), RPORT1
  CLUSTER_SIZE=$1 NREP=$2 start_cluster "c$1-n" with_resp
  RHOSTS=$(resp_hosts)
  RPORT1=${PORTS[0]}
}

stop_nodes() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  wait 2>/dev/null
  pids=()
}

RP=$(port)
redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
  --logfile "$TMP/redis.log" &
pids+=($!)
for _ in $(seq 1 100); do redis-cli -p "$RP" ping >/dev/null 2>&1 && break; sleep 0.05; done
run redis_50x1 --protocol resp --hosts "127.0.0.1:$RP" --load "${COMMON[@]}" "${C50[@]}"
run redis_4x50 --protocol resp --hosts "127.0.0.1:$RP" "${COMMON[@]}" "${C4[@]}"
RB_R=$(rb "$RP" redis)
stop_nodes

start_nodes 1 1
run kv1_50x1 --hosts "$HOSTS" --load "${COMMON[@]}" "${C50[@]}"
run kv1_4x50 --hosts "$HOSTS" "${COMMON[@]}" "${C4[@]}"
RB_1=$(rb "$RPORT1" kv1)
stop_nodes

start_nodes 3 3
run kv3_50x1 --hosts "$HOSTS" --load "${COMMON[@]}" "${C50[@]}" --r 2 --w 2
run kv3_4x50 --hosts "$HOSTS" "${COMMON[@]}" "${C4[@]}" --r 2 --w 2
run kv3_50x1_resp --protocol resp --hosts "$RHOSTS" "${COMMON[@]}" "${C50[@]}"
RB_3=$(rb "$RPORT1" kv3)
K3=$(tput_of "$OUT/kv3_50x1.json")
HALF=$(( K3 / 2 ))
run kv3_half --hosts "$HOSTS" "${COMMON[@]}" --connections 50 --concurrency 256 \
  --r 2 --w 2 --rate "$HALF"
stop_nodes

R50=$(tput_of "$OUT/redis_50x1.json")
R4=$(tput_of "$OUT/redis_4x50.json")
row() { # LABEL NAME REF TARGET
  echo "| $1 | $(tput_of "$OUT/$2.json") | $3 | $(ratio "$(tput_of "$OUT/$2.json")" "$3") | $4 | $(cpu_of "$OUT/$2.json") | $(bcpu_of "$OUT/$2.json") | ${CORES[$2]} |"
}
rbrow() { # LABEL SET-GET REF-SET-GET TARGET
  local s=${2% *} g=${2#* } rs=${3% *} rg=${3#* }
  echo "| $1 | $s | $g | $(ratio "$s" "$rs") | $(ratio "$g" "$rg") | $4 |"
}
{
cat <<EOF
kvorum-bench, workload A, zipfian over 100k keys, 100-byte values, ${SECS} s
(ratio: against redis-server with the same shape in this run; CPU in us
per operation; cores: each server process over the run, warm-up included)

| run | ops/s | redis ops/s | ratio | target | server CPU/op | bench CPU/op | cores per process |
|---|---|---|---|---|---|---|---|
| redis-server, 50 conns x 1 | $R50 | $R50 | 1.00 | | $(cpu_of "$OUT/redis_50x1.json") | $(bcpu_of "$OUT/redis_50x1.json") | ${CORES[redis_50x1]} |
| redis-server, 4 conns x 50 | $R4 | $R4 | 1.00 | | $(cpu_of "$OUT/redis_4x50.json") | $(bcpu_of "$OUT/redis_4x50.json") | ${CORES[redis_4x50]} |
$(row "1 node N=1, 50 x 1" kv1_50x1 "$R50" ">= 0.8")
$(row "1 node N=1, 4 x 50" kv1_4x50 "$R4" ">= 0.5")
$(row "3 nodes N=3 R=2 W=2, 50 x 1" kv3_50x1 "$R50" ">= 0.5; CPU <= 30")
$(row "3 nodes, 4 x 50" kv3_4x50 "$R4" "")
$(row "3 nodes, Redis port, 50 x 1" kv3_50x1_resp "$R50" "")
$(row "3 nodes at half peak ($HALF ops/s), open loop" kv3_half "$HALF" "p99 < 5 ms")

p99 at half peak: $(p99_of "$OUT/kv3_half.json") us (target < 5000 us)
libkvorum vs the RESP driver, bench CPU per request on the same three
nodes: $(bcpu_of "$OUT/kv3_50x1.json") / $(bcpu_of "$OUT/kv3_50x1_resp.json") = $(ratio "$(bcpu_of "$OUT/kv3_50x1.json")" "$(bcpu_of "$OUT/kv3_50x1_resp.json")") (target <= 1.5)

redis-benchmark -t set,get -n 200000 -c 50 -d 100 -r 100000 (ops/s):

| server | SET | GET | SET ratio | GET ratio | target |
|---|---|---|---|---|---|
| redis-server | ${RB_R% *} | ${RB_R#* } | 1.00 | 1.00 | |
$(rbrow "one kvorumd N=1, Redis port" "$RB_1" "$RB_R" ">= 0.8")
$(rbrow "three kvorumd N=3, Redis port" "$RB_3" "$RB_R" ">= 0.5")

errors: $(for f in redis_50x1 redis_4x50 kv1_50x1 kv1_4x50 kv3_50x1 kv3_4x50 kv3_50x1_resp kv3_half; do printf '%s %s, ' "$f" "$(errs_of "$OUT/$f.json")"; done)
EOF
} | tee "$OUT/compare.md"
