#!/bin/bash
# bench/profile.sh: a perf profile of three kvorumd (N=3 R=2 W=2) under
# kvorum-bench workload A, 50 connections x 1 in flight, zipfian keys,
# 100-byte values: the load of issue #19's three-node row. All three
# node processes are sampled at 999 Hz for SECONDS (PROFILE_NODES=1: one
# node, N=1; trailing BENCH ARGS such as --connections 4 override the
# load's shape); the report groups
# samples by shared object and lists the hottest symbols.
#
#   bench/profile.sh [BUILD_DIR] [SECONDS] [BENCH ARGS...]
#
# With PROFILE_BENCH=1 the bench process is sampled instead of the nodes
# (libkvorum's cost per request); PROFILE_CALLS=1 records call graphs
# (frame pointers) and adds the inclusive cost of kvorumd's functions; with PROFILE_PROTO=resp the bench
# drives the nodes' Redis ports (--protocol resp) instead of libkvorum.
#
# Writes bench/results/profile.txt (perf report) and leaves perf.data in
# a temporary directory that is removed at the end.
set -u
BUILD=${1:-build}
SECS=${2:-8}
shift 2 2>/dev/null || shift $#
KVD=$BUILD/node/kvorumd
CLI=$BUILD/client/kvorum
BENCH=$BUILD/bench/kvorum-bench
. "$(dirname "$0")/lib.sh"
bench_setup kvprofile

NODES=${PROFILE_NODES:-3}
NREP=$(( NODES < 3 ? NODES : 3 ))
Q=$(( NREP / 2 + 1 ))  # with_resp's R and W
CLUSTER_SIZE=$NODES start_cluster n with_resp
RHOSTS=$(resp_hosts)
ARGS=(--keys 100000 --value-size 100 --distribution zipfian --workload a
      --connections 50 --concurrency 50 --seed 1)
"$BENCH" --hosts "$HOSTS" --load "${ARGS[@]}" --duration 2 >/dev/null
RUN=(--hosts "$HOSTS" --r "$Q" --w "$Q")
[ "${PROFILE_PROTO:-native}" = resp ] && RUN=(--protocol resp --hosts "$RHOSTS")
"$BENCH" "${RUN[@]}" "${ARGS[@]}" --duration $((SECS + 4)) "$@" \
  --json "$OUT/profile_bench.json" >/dev/null &
bpid=$!
sleep 2
targets=$(IFS=,; echo "${pids[*]}")
[ "${PROFILE_BENCH:-0}" = 1 ] && targets=$bpid
perf stat -e raw_syscalls:sys_enter,syscalls:sys_enter_write,syscalls:sys_enter_read,syscalls:sys_enter_epoll_wait,context-switches -x, -o "$TMP/stat.csv" \
  -p "$targets" -- sleep 2 2>/dev/null
if [ -n "${PROFILE_SYSCALLS:-}" ]; then
  # Which system calls, over 2 s, in every node (strace slows the nodes:
  # the mix counts, not the rate).
  for p in "${pids[@]}"; do
    timeout -s INT 2 strace -c -f -p "$p" -o "$TMP/strace.$p" 2>/dev/null
  done
  for p in "${pids[@]}"; do head -n 14 "$TMP/strace.$p"; done | tee "$OUT/syscalls.txt"
fi
perf record -F 999 ${PROFILE_CALLS:+-g} -o "$TMP/perf.data" -p "$targets" \
  -- sleep "$SECS" 2>/dev/null
wait "$bpid"
{
  echo "# shared objects"
  perf report -i "$TMP/perf.data" --sort dso --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -15
  echo "# symbols"
  perf report -i "$TMP/perf.data" --sort dso,sym --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -70
  if [ -n "${PROFILE_CALLS:-}" ]; then
    echo "# inclusive (children), kvorumd's own functions"
    perf report -i "$TMP/perf.data" --children --sort sym --stdio -g none \
      --dsos kvorumd 2>/dev/null | grep -v '^#' | grep -v '^$' | head -60
  fi
} | tee "$OUT/profile.txt"
/usr/bin/python3 -c 'import json,sys
j=json.load(open(sys.argv[1]))
ops=j["throughput_ops_s"]
st={l.split(",")[2]:float(l.split(",")[0]) for l in open(sys.argv[2]) if l.count(",")>2 and l[0].isdigit()}
print("throughput", round(ops), "server us/op", round(j["server_cpu"]["us_per_op"],1), "bench us/op", round(j["bench_cpu"]["us_per_op"],1))
print("per op in 2 s of the run:", " ".join("%s %.2f" % (k, v/2/ops) for k,v in st.items()))' "$OUT/profile_bench.json" "$TMP/stat.csv" | tee -a "$OUT/profile.txt"
