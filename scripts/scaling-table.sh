#!/bin/sh
# Regenerates the table of docs/scaling.md without make: runs kvsim-scale
# (tests/sim/sim_scale.c) once for each cluster size and prints the
# markdown table, one row per figure, one column per N.
#
#   scripts/scaling-table.sh [-b BIN] [-n "10 30 100 300 1000"] [-- ARGS]
#
#   -b BIN   the kvsim-scale binary (default: build/tests/kvsim-scale, or
#            $KVSIM_SCALE)
#   -n LIST  the cluster sizes (default: 10 30 100 300 1000)
#   ARGS     passed to every run (e.g. -- --seed 2 --loss-minutes 2)
#
# Each run prints one JSON object (--json); the raw objects go to stderr,
# the table to stdout. N=1000 takes about a minute on two cores.
# Depends on: python3 (to read the JSON).
set -e
BIN="${KVSIM_SCALE:-build/tests/kvsim-scale}"
SIZES="10 30 100 300 1000"
while [ $# -gt 0 ]; do
  case "$1" in
  -b) BIN="$2"; shift 2 ;;
  -n) SIZES="$2"; shift 2 ;;
  --) shift; break ;;
  *) echo "usage: $0 [-b BIN] [-n SIZES] [-- kvsim-scale args]" >&2; exit 2 ;;
  esac
done
if [ ! -x "$BIN" ]; then
  echo "$0: $BIN not found (build it: cmake --build build --target kvsim-scale)" >&2
  exit 1
fi
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
for n in $SIZES; do
  "$BIN" --nodes "$n" --json "$@" | tee -a "$OUT" >&2
done
python3 - "$OUT" <<'EOF'
import json, sys

runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
def ms_rounds(r, what):
    return "%d ms (%d)" % (r[what + "_converge_ms"], r[what + "_rounds"])
rows = [
    ("partitions Q", lambda r: "%d" % r["partitions"]),
    ("join: agreed after (rounds)", lambda r: ms_rounds(r, "join")),
    ("join: partitions moved (ideal Q/N)",
     lambda r: "%d (%.2f)" % (r["partitions_moved"], r["partitions_moved_ideal"])),
    ("leave: agreed after (rounds)", lambda r: ms_rounds(r, "leave")),
    ("remove: agreed after (rounds)", lambda r: ms_rounds(r, "remove")),
    ("3 log2 N rounds (the bound)", lambda r: "%d" % r["rounds_max"]),
    ("killed node down everywhere (median)",
     lambda r: "%d ms (%d)" % (r["down_seen_ms"], r["down_seen_median_ms"])),
    ("false downs, %g%% loss for %g min" % (runs[0]["loss_pct"], runs[0]["loss_minutes"]),
     lambda r: "%d" % r["false_down"]),
    ("gossip B/s per node, steady", lambda r: "%d" % r["gossip_bytes_per_node_s"]),
    ("gossip B/s per node, during a change",
     lambda r: "%d" % r["gossip_bytes_per_node_s_change"]),
    ("gossip messages/s per node, steady",
     lambda r: "%.1f" % r["gossip_msgs_per_node_s"]),
    ("largest message, steady (B)",
     lambda r: "%d" % r["gossip_message_max_bytes_steady"]),
    ("largest message, any (B)", lambda r: "%d" % r["gossip_message_max_bytes"]),
    ("CPU per node and round (us)", lambda r: "%.1f" % r["cpu_us_per_round"]),
    ("simulator: wall s, max RSS MB",
     lambda r: "%.1f, %d" % (r["wall_s"], r["max_rss_kb"] // 1024)),
]
print("| figure | " + " | ".join("N=%d" % r["nodes"] for r in runs) + " |")
print("|---|" + "---:|" * len(runs))
for name, f in rows:
    print("| %s | %s |" % (name, " | ".join(f(r) for r in runs)))
EOF
