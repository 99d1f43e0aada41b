#!/bin/sh
# test_bench_native.sh BENCH KVORUMD: runs kvorum-bench --protocol native
# (libkvorum's async API) against one throwaway kvorumd (N=1, R=1, W=1) on
# 127.0.0.1 for about 2 s with --load, then workload F, and checks the JSON
# figures, zero errors and the SVG report. kvorumd is stopped in a trap,
# even on failure.
set -u
BENCH=${1:?usage: test_bench_native.sh BENCH KVORUMD}
KVORUMD=${2:?usage: test_bench_native.sh BENCH KVORUMD}
WAIT_STEPS=200 # readiness checks, 0.1 s apart at most
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

dir=$(mktemp -d)
npid=
cleanup() {
  if [ -n "$npid" ]; then
    kill "$npid" 2>/dev/null
    wait "$npid" 2>/dev/null
  fi
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port=$(free_port)
pport=$(free_port)
"$KVORUMD" --id n1 --listen 127.0.0.1:$port --peer 127.0.0.1:$pport \
  --data "$dir/data" --n 1 --r 1 --w 1 >"$dir/node.log" 2>&1 &
npid=$!
i=0
until python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; do
  i=$((i + 1))
  if [ $i -ge $WAIT_STEPS ] || ! kill -0 "$npid" 2>/dev/null; then
    echo "kvorumd did not start" >&2
    cat "$dir/node.log" >&2
    echo "0 passed, 1 failed"
    exit 1
  fi
  python3 -c 'import select; select.select([], [], [], 0.1)'
done

if timeout 60 "$BENCH" --protocol native --hosts 127.0.0.1:$port --load \
  --keys 2000 --workload a --distribution zipfian --value-size 100 \
  --concurrency 32 --connections 2 --duration 2 --r 1 --w 1 --seed 1 \
  --json "$dir/out.json" --report "$dir/out.html" >"$dir/stdout" 2>"$dir/stderr"; then
  ok
else
  bad "kvorum-bench failed"; cat "$dir/stderr" >&2
fi
python3 - "$dir/out.json" <<'PY' && ok || bad "JSON checks"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["errors"] == 0, j["errors_by_kind"]
assert j["not_found"] == 0, j["not_found"]
assert j["throughput_ops_s"] > 0
for op in ("read", "update"):
    o = j["ops"][op]
    assert o["count"] > 0, op
    assert o["p50_us"] <= o["p99_us"] <= o["max_us"], o
assert j["load"]["ops"]["insert"]["count"] == 2000, j["load"]
assert j["load"]["errors"] == 0, j["load"]["errors_by_kind"]
assert j["config"]["protocol"] == "native" and j["config"]["r"] == "1"
# The server's CPU over the run, asked of it between phases, and ours.
assert j["server_cpu"] is not None and j["server_cpu"]["s"] > 0, j["server_cpu"]
assert j["server_cpu"]["us_per_op"] > 0, j["server_cpu"]
assert j["bench_cpu"]["us_per_op"] > 0, j["bench_cpu"]
PY
grep -q "<svg" "$dir/out.html" && ok || bad "no <svg in the report"

# Workload F: writes carry the read's context, so no siblings pile up and
# nothing fails.
if timeout 60 "$BENCH" --protocol native --hosts 127.0.0.1:$port \
  --keys 2000 --workload f --ops 2000 --concurrency 16 --connections 2 \
  --distribution uniform --json "$dir/f.json" >/dev/null 2>"$dir/f.err"; then
  ok
else
  bad "workload f run"; cat "$dir/f.err" >&2
fi
python3 - "$dir/f.json" <<'PY' && ok || bad "workload f JSON"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["errors"] == 0, j["errors_by_kind"]
assert j["ops"]["rmw"]["count"] > 0
assert j["ops_total"] == 2000, j["ops_total"]
PY

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
