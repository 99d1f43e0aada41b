#!/bin/bash
# bench/tls_overhead.sh: what TLS on every port costs, measured side by
# side in one invocation (docs/security.md, bench/README.md).
#
#   bench/tls_overhead.sh [BUILD_DIR] [SECONDS] [ROUNDS]
#
# Two three-node clusters run at once on 127.0.0.1 (N=3 R=2 W=2): A plain,
# B with TLS on every port (client and peer: peers use mutual TLS), with
# throwaway certificates from scripts/dev-certs.sh. kvorum-bench workload A
# (100-byte values, 100k uniform keys, 4 connections x 50 in flight) runs
# ROUNDS times against each, interleaved (A, B, A, ...), so drift on this
# shared machine hits both alike; the idle cluster costs nothing while the
# other runs. Prints throughput and server CPU per operation of each, the
# median of the per-round ratios B/A, and writes
# bench/results/tls_overhead.json.
set -u
BUILD=${1:-build}
SECS=${2:-8}
ROUNDS=${3:-3}
BENCH=$BUILD/bench/kvorum-bench
KVD=$BUILD/node/kvorumd
CLI=$BUILD/client/kvorum
. "$(dirname "$0")/lib.sh"
bench_setup kvtls

scripts/dev-certs.sh "$TMP/certs" b0 b1 b2 >/dev/null
CA=$TMP/certs/ca.pem
plain() { :; }
tls() {
  NODE_EXTRA=(--tls-cert "$TMP/certs/$2.pem" --tls-key "$TMP/certs/$2.key"
              --tls-ca "$CA")
}
start_cluster a plain
A_HOSTS=$HOSTS
start_cluster b tls --tls --tls-ca "$CA"
B_HOSTS=$HOSTS

COMMON=(--workload a --keys 100000 --value-size 100 --distribution uniform
        --concurrency 50 --connections 4 --duration "$SECS" --warmup 2 --seed 1
        --r 2 --w 2)
LOAD=(--workload a --load --keys 100000 --value-size 100 --concurrency 50
      --connections 4 --duration 1)
"$BENCH" --hosts "$A_HOSTS" "${LOAD[@]}" >/dev/null 2>&1
"$BENCH" --hosts "$B_HOSTS" --tls --tls-ca "$CA" "${LOAD[@]}" >/dev/null 2>&1
a=() b=() ac=() bc=()
for r in $(seq 1 "$ROUNDS"); do
  echo "== round $r: A (plain)"
  "$BENCH" --hosts "$A_HOSTS" "${COMMON[@]}" --json "$TMP/a$r.json" >/dev/null 2>&1
  a+=("$(tput_of "$TMP/a$r.json")")
  ac+=("$(cpu_of "$TMP/a$r.json")")
  echo "== round $r: B (TLS on every port)"
  "$BENCH" --hosts "$B_HOSTS" --tls --tls-ca "$CA" "${COMMON[@]}" \
    --json "$TMP/b$r.json" >/dev/null 2>&1
  b+=("$(tput_of "$TMP/b$r.json")")
  bc+=("$(cpu_of "$TMP/b$r.json")")
done
echo "throughput (ops/s):"
ratios "$OUT/tls_overhead.json" plain tls "${a[*]}" "${b[*]}"
echo "server CPU per operation (us):"
ratios "$OUT/tls_overhead_cpu.json" plain tls "${ac[*]}" "${bc[*]}"
