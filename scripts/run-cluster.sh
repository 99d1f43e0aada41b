#!/bin/bash
# make run: starts a three-node kvorum cluster on 127.0.0.1 in the
# foreground, data under ./var, shows it working, and stops every node
# cleanly on Ctrl-C (SIGTERM to each kvorumd, which commits and closes).
#
# KV_TLS=1 (KV_TLS=1 make run): TLS on every port, with a throwaway CA and
# node certificates that scripts/dev-certs.sh makes in var/certs the first
# time (later runs keep them); the commands shown speak TLS
# (docs/security.md).
set -u
BUILD=${1:-build}
NODES=${KV_NODES:-3}
BIN=$BUILD/node/kvorumd
CLI=$BUILD/client/kvorum
[ -x "$BIN" ] || { echo "run-cluster: $BIN is missing; run 'make build'" >&2; exit 1; }
mkdir -p var
# TLS: what the nodes and the clients are given; all empty without it.
node_tls=()   # per node, with @ID@ for the node id
cli_tls=()    # kvorum's flags
redis_tls=""  # redis-cli's flags, as shown
curl_tls=""   # curl's flags, as shown
scheme=http
if [ "${KV_TLS:-0}" = 1 ]; then
  CERTS=var/certs
  ids=()
  for i in $(seq 1 "$NODES"); do ids+=("n$i"); done
  "$(dirname "$0")/dev-certs.sh" "$CERTS" "${ids[@]}" >/dev/null ||
    { echo "run-cluster: scripts/dev-certs.sh failed" >&2; exit 1; }
  echo "kvorum: TLS on every port, certificates in $CERTS (CA: $CERTS/ca.pem)"
  node_tls=(--tls-cert "$CERTS/@ID@.pem" --tls-key "$CERTS/@ID@.key"
            --tls-ca "$CERTS/ca.pem")
  cli_tls=(--tls --tls-ca "$CERTS/ca.pem")
  redis_tls=" --tls --cacert $CERTS/ca.pem"
  curl_tls=" --cacert $CERTS/ca.pem"
  scheme=https
fi
# The CLI as the commands below show it.
CLI_SHOWN="$CLI${cli_tls[*]:+ ${cli_tls[*]}}"
KV_SHOWN="kvorum${cli_tls[*]:+ ${cli_tls[*]}}"
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
    --data "var/n$i" --seeds "$seeds" "${node_tls[@]//@ID@/n$i}" \
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
  up=$("$CLI" "${cli_tls[@]}" --host 127.0.0.1:7101 status --json 2>/dev/null | grep -o '"state": *"up"' | wc -l)
  [ "$up" -ge "$NODES" ] && break
  sleep 0.2
done
"$CLI" "${cli_tls[@]}" --host 127.0.0.1:7101 status
if [ "$up" -ge "$NODES" ]; then
  echo
  echo "A write through n1 and a read through n3:"
  echo "  \$ $KV_SHOWN put greeting hello"
  "$CLI" "${cli_tls[@]}" --host 127.0.0.1:7101 put greeting hello
  echo "  \$ $KV_SHOWN --host 127.0.0.1:7103 get greeting"
  "$CLI" "${cli_tls[@]}" --host 127.0.0.1:7103 get greeting
fi
cat <<MSG

The cluster is running. Try, in another terminal:
  $CLI_SHOWN put cart:alice milk
  $CLI_SHOWN get cart:alice
  $CLI_SHOWN --host 127.0.0.1:7102 status
  $CLI_SHOWN ring
Clients connect to 127.0.0.1:7101..$((7100 + NODES)); nodes talk on 7201..$((7200 + NODES)).
Redis clients and tools connect to 127.0.0.1:7301..$((7300 + NODES)) (the Redis protocol):
  redis-cli$redis_tls -p 7301 set greeting hello
  redis-cli$redis_tls -p 7302 get greeting
HTTP (metrics, health, a JSON key API) on 127.0.0.1:7401..$((7400 + NODES)):
  curl$curl_tls -X PUT --data-binary hello $scheme://127.0.0.1:7401/kv/greeting
  curl$curl_tls $scheme://127.0.0.1:7402/kv/greeting
  curl$curl_tls $scheme://127.0.0.1:7401/metrics
Press Ctrl-C to stop every node cleanly.
MSG
wait
