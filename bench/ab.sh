#!/bin/bash
# bench/ab.sh: an A/B comparison of two kvorumd builds (or of one build
# with two sets of flags) under the same load, side by side in one
# invocation, for a change whose effect is smaller than this shared
# machine's drift.
#
#   bench/ab.sh BUILD_A BUILD_B [SECONDS] [ROUNDS] [BENCH ARGS...]
#
# Two three-node clusters (N=3 R=2 W=2) run at once on 127.0.0.1: A with
# BUILD_A/node/kvorumd and the flags in $AB_FLAGS_A (and the environment
# $AB_ENV_A, e.g. "LD_PRELOAD=..."), B with BUILD_B's, $AB_FLAGS_B and
# $AB_ENV_B. kvorum-bench (BUILD_A's) runs ROUNDS times against each,
# interleaved (A, B, A, B, ...): workload A, 100-byte values, 100k zipfian
# keys, 50 connections x 1 in flight, unless BENCH ARGS say otherwise.
# Prints each round's throughput, server CPU per operation and p99, and the
# medians of the per-round ratios B/A, and writes bench/results/ab.json.
set -u
BUILD_A=${1:?usage: bench/ab.sh BUILD_A BUILD_B [SECONDS] [ROUNDS] [BENCH ARGS...]}
BUILD_B=${2:?usage: bench/ab.sh BUILD_A BUILD_B [SECONDS] [ROUNDS] [BENCH ARGS...]}
SECS=${3:-8}
ROUNDS=${4:-5}
shift $(( $# < 4 ? $# : 4 ))
BENCH=$BUILD_A/bench/kvorum-bench
CLI=$BUILD_A/client/kvorum
. "$(dirname "$0")/lib.sh"
bench_setup kvab

read -r -a FLAGS_A <<<"${AB_FLAGS_A:-}"
read -r -a FLAGS_B <<<"${AB_FLAGS_B:-}"
flags_a() { NODE_EXTRA=(--n 3 --r 2 --w 2 "${FLAGS_A[@]}"); }
flags_b() { NODE_EXTRA=(--n 3 --r 2 --w 2 "${FLAGS_B[@]}"); }

KVD=$BUILD_A/node/kvorumd KVD_ENV=${AB_ENV_A:-}
start_cluster a flags_a
A_HOSTS=$HOSTS
KVD=$BUILD_B/node/kvorumd KVD_ENV=${AB_ENV_B:-}
start_cluster b flags_b
B_HOSTS=$HOSTS

ARGS=(--keys 100000 --value-size 100 --distribution zipfian --workload a
      --connections 50 --concurrency 50 --r 2 --w 2 --warmup 1 "$@")
"$BENCH" --hosts "$A_HOSTS" --load "${ARGS[@]}" --duration 1 >/dev/null 2>&1
"$BENCH" --hosts "$B_HOSTS" --load "${ARGS[@]}" --duration 1 >/dev/null 2>&1
TA="" TB="" CA="" CB="" PA="" PB=""
for r in $(seq 1 "$ROUNDS"); do
  for side in a b; do
    hosts=$A_HOSTS
    [ "$side" = b ] && hosts=$B_HOSTS
    "$BENCH" --hosts "$hosts" "${ARGS[@]}" --duration "$SECS" --seed "$r" \
      --json "$TMP/$side$r.json" >/dev/null 2>&1
    t=$(tput_of "$TMP/$side$r.json")
    c=$(cpu_of "$TMP/$side$r.json")
    p=$(jq_ "$TMP/$side$r.json" 'j["all"]["p99_us"]')
    echo "round $r $side: $t ops/s, server $c us/op, p99 $p us" >&2
    if [ "$side" = a ]; then TA="$TA $t"; CA="$CA $c"; PA="$PA $p"
    else TB="$TB $t"; CB="$CB $c"; PB="$PB $p"; fi
  done
done
echo "throughput (ops/s):"
ratios "$OUT/ab.json" A B "$TA" "$TB"
echo "server CPU per operation (us):"
ratios "$OUT/ab_cpu.json" A B "$CA" "$CB"
echo "p99 latency, all operations (us):"
ratios "$OUT/ab_p99.json" A B "$PA" "$PB"
