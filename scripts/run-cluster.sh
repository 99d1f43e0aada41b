#!/bin/bash
# make run: starts a three-node kvorum cluster on 127.0.0.1 in the
# foreground, data under ./var, shows it working, and stops every node
# cleanly on Ctrl-C (SIGTERM to each kvorumd, which commits and closes).
set -u
BUILD=${1:-build}
NODES=${KV_NODES:-3}
BIN=$BUILD/node/kvorumd
CLI=$BUILD/client/kvorum
[ -x "$BIN" ] || { echo "run-cluster: $BIN is missing; run 'make build'" >&2; exit 1; }
mkdir -p var
seeds=""
for i in $(seq 1 "$NODES"); do
  seeds="$seeds${seeds:+,}127.0.0.1:$((7200 + i))"
done
pids=()
stop() {
  trap - INT TERM
  echo
  echo "stopping the cluster..."
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  wait
  echo "stopped; data stays in ./var (rm -rf var to start afresh)"
  exit 0
}
trap stop INT TERM
for i in $(seq 1 "$NODES"); do
  "$BIN" --id "n$i" --listen "127.0.0.1:$((7100 + i))" \
    --peer "127.0.0.1:$((7200 + i))" --resp "127.0.0.1:$((7300 + i))" \
    --http "127.0.0.1:$((7400 + i))" \
    --data "var/n$i" --seeds "$seeds" \
    2>>"var/n$i.log" &
  pids+=($!)
done
echo "kvorum: $NODES nodes starting (logs in var/n*.log)..."
# Wait (bounded) until the first node sees every member up.
up=0
for _ in $(seq 1 150); do
  for p in "${pids[@]}"; do
    kill -0 "$p" 2>/dev/null || { echo "a node exited; see var/n*.log" >&2; tail -n 5 var/n*.log >&2; stop; }
  done
  up=$("$CLI" --host 127.0.0.1:7101 status --json 2>/dev/null | grep -o '"state": *"up"' | wc -l)
  [ "$up" -ge "$NODES" ] && break
  sleep 0.2
done
"$CLI" --host 127.0.0.1:7101 status
if [ "$up" -ge "$NODES" ]; then
  echo
  echo "A write through n1 and a read through n3:"
  echo "  \$ kvorum put greeting hello"
  "$CLI" --host 127.0.0.1:7101 put greeting hello
  echo "  \$ kvorum --host 127.0.0.1:7103 get greeting"
  "$CLI" --host 127.0.0.1:7103 get greeting
fi
cat <<MSG

The cluster is running. Try, in another terminal:
  $CLI put cart:alice milk
  $CLI get cart:alice
  $CLI --host 127.0.0.1:7102 status
  $CLI ring
Clients connect to 127.0.0.1:7101..$((7100 + NODES)); nodes talk on 7201..$((7200 + NODES)).
Redis clients and tools connect to 127.0.0.1:7301..$((7300 + NODES)) (the Redis protocol):
  redis-cli -p 7301 set greeting hello
  redis-cli -p 7302 get greeting
HTTP (metrics, health, a JSON key API) on 127.0.0.1:7401..$((7400 + NODES)):
  curl -X PUT --data-binary hello http://127.0.0.1:7401/kv/greeting
  curl http://127.0.0.1:7402/kv/greeting
  curl http://127.0.0.1:7401/metrics
Press Ctrl-C to stop every node cleanly.
MSG
wait
