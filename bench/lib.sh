# bench/lib.sh: what the side-by-side bench scripts share (sourced, bash):
# free ports, reading kvorum-bench's JSON, and clusters on 127.0.0.1. The caller sets KVD, CLI, TMP and the array pids (and
# KVD_ENV, assignments for env(1) to run kvorumd with).

# bench_setup NAME: OUT (bench/results, created), TMP (a new directory
# /tmp/NAME.XXXXXX), an empty array pids, and a trap that kills every
# process in pids and removes TMP when the script ends.
bench_setup() {
  OUT=bench/results
  mkdir -p "$OUT"
  TMP=$(mktemp -d "/tmp/$1.XXXXXX")
  pids=()
  trap bench_cleanup EXIT INT TERM
}
bench_cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$TMP"
}

port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# jq_ FILE EXPR: EXPR (Python, the JSON as j) over kvorum-bench's --json FILE.
jq_() { /usr/bin/python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1"; }
tput_of() { jq_ "$1" 'round(j["throughput_ops_s"])'; }
cpu_of() { jq_ "$1" 'round(j["server_cpu"]["us_per_op"],1) if j.get("server_cpu") else "-"'; }

# start_cluster NAME FLAGFN [CLI FLAGS...]: CLUSTER_SIZE (default three)
# kvorumd NAME0, NAME1, ...; FLAGFN I ID sets the array NODE_EXTRA to node
# I's own flags (its HTTP port, its certificate, N). Waits until the first
# node sees them all up (asking with the CLI flags given). Sets HOSTS
# (native addresses, comma-separated) and PORTS (I -> a free port FLAGFN
# may use).
start_cluster() {
  local name=$1 flagfn=$2 size=${CLUSTER_SIZE:-3} seeds="" i cps=() pps=()
  shift 2
  HOSTS=""
  PORTS=()
  for i in $(seq 0 $((size - 1))); do
    cps+=("$(port)"); pps+=("$(port)"); PORTS+=("$(port)")
    seeds="$seeds${seeds:+,}127.0.0.1:${pps[$i]}"
  done
  for i in $(seq 0 $((size - 1))); do
    NODE_EXTRA=()
    "$flagfn" "$i" "$name$i"
    env ${KVD_ENV:-} "$KVD" --id "$name$i" --listen "127.0.0.1:${cps[$i]}" --peer "127.0.0.1:${pps[$i]}" \
      "${NODE_EXTRA[@]}" --data "$TMP/$name$i" --seeds "$seeds" --log-level warn \
      >/dev/null 2>>"$TMP/nodes.log" &
    pids+=($!)
    HOSTS="$HOSTS${HOSTS:+,}127.0.0.1:${cps[$i]}"
  done
  for _ in $(seq 1 200); do
    n=$("$CLI" "$@" --host "127.0.0.1:${cps[0]}" status --json 2>/dev/null | grep -o '"state": *"up"' | wc -l)
    [ "$n" -ge "$size" ] && return 0
    sleep 0.1
  done
  echo "bench: cluster $name did not come up (see $TMP/nodes.log)" >&2
  exit 1
}

# with_resp I ID, a FLAGFN for start_cluster: node I serves the Redis
# protocol on PORTS[I] and keeps NREP replicas (a majority for R and W).
with_resp() {
  NODE_EXTRA=(--resp "127.0.0.1:${PORTS[$1]}" --n "$NREP"
              --r $(( NREP / 2 + 1 )) --w $(( NREP / 2 + 1 )))
}
# resp_hosts: the Redis addresses of the cluster with_resp started.
resp_hosts() {
  local p out=""
  for p in "${PORTS[@]}"; do out="$out${out:+,}127.0.0.1:$p"; done
  echo "$out"
}

# ratios OUT NAME_A NAME_B "A figures" "B figures": the medians and the
# median of per-round B/A ratios (runs seconds apart drift less than runs
# minutes apart), printed and written to OUT as JSON.
ratios() {
  /usr/bin/python3 - "$@" <<'PY'
import json, statistics, sys
out, na, nb = sys.argv[1:4]
a, b = (list(map(float, x.split())) for x in sys.argv[4:6])
r = statistics.median(y / x for x, y in zip(a, b))
res = {na: a, nb: b, "median_" + na: statistics.median(a),
       "median_" + nb: statistics.median(b), "ratio": round(r, 3)}
json.dump(res, open(out, "w"), indent=1)
print(f"{na:>10} {a} median {statistics.median(a):.0f}")
print(f"{nb:>10} {b} median {statistics.median(b):.0f}")
print(f"median of per-round ratios {nb}/{na}: {r:.3f}")
PY
}
