# bench/lib.sh: what the side-by-side bench scripts share (sourced, bash):
# free ports, reading kvorum-bench's JSON, and three-node clusters on
# 127.0.0.1. The caller sets KVD, CLI, TMP and the array pids (and
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
tput_of() { /usr/bin/python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["throughput_ops_s"]))' "$1"; }
cpu_of() { /usr/bin/python3 -c 'import json,sys; c=json.load(open(sys.argv[1])).get("server_cpu"); print(round(c["us_per_op"],1) if c else "-")' "$1"; }

# start_cluster NAME FLAGFN [CLI FLAGS...]: three kvorumd NAME0..NAME2,
# N=3; FLAGFN I ID sets the array NODE_EXTRA to node I's own flags (its
# HTTP port, its certificate). Waits until the first node sees all three
# up (asking with the CLI flags given). Sets HOSTS (native addresses,
# comma-separated) and PORTS (I -> a free port FLAGFN may use).
start_cluster() {
  local name=$1 flagfn=$2 seeds="" i cps=() pps=()
  shift 2
  HOSTS=""
  PORTS=()
  for i in 0 1 2; do cps+=("$(port)"); pps+=("$(port)"); PORTS+=("$(port)"); done
  for i in 0 1 2; do seeds="$seeds${seeds:+,}127.0.0.1:${pps[$i]}"; done
  for i in 0 1 2; do
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
    [ "$n" -ge 3 ] && return 0
    sleep 0.1
  done
  echo "bench: cluster $name did not come up (see $TMP/nodes.log)" >&2
  exit 1
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
