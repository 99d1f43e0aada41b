#!/usr/bin/env bash
# test_cli.sh KVORUMD KVORUM: the kvorum CLI against one real kvorumd.
#
# Starts a single node (n=1, r=1, w=1) on free 127.0.0.1 ports, waits for it
# by polling `kvorum status` in a bounded loop, then checks: two context-less
# puts give two siblings; a put with the context of the get replaces both;
# after a delete, get --json says "found": false (exit 0); set, counter
# and map commands work, a remove with a context keeps a later add, and
# WRONGTYPE and limits exit 1; 200 acknowledged
# writes survive kill -9 and a restart; bad flags and unknown commands exit
# 2; an unreachable host exits 1. Logs: every line of those runs is logfmt;
# a node started with --log-format json and a seed that never answers
# writes only JSON lines, shows no debug line until `kvorum log-level
# debug` (which answers the new and the previous level), and no info line
# after `kvorum log-level warn`. A trap kills the node and removes the
# temporary directory, whatever happens. Prints "N passed, M failed".
set -u

KVORUMD=${1:?usage: test_cli.sh KVORUMD KVORUM}
CLI=${2:?usage: test_cli.sh KVORUMD KVORUM}
WRITES=200          # acknowledged writes that must survive kill -9
WAIT_TRIES=400      # x 0.05 s: how long a node may take to answer
LOG_TRIES=60        # x 0.05 s: how long until an expected log line shows

TMP=$(mktemp -d "${TMPDIR:-/tmp}/kvorum-cli.XXXXXX") || exit 1
PID=""
NODE_LOG=$TMP/node.log # the stderr of the node start_node starts
cleanup() {
  if [ -n "$PID" ]; then
    kill -9 "$PID" 2>/dev/null
    wait "$PID" 2>/dev/null
  fi
  if [ "${KV_KEEP:-0}" = 1 ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

passed=0
failed=0
check() { # check DESCRIPTION COMMAND...
  local what=$1
  shift
  if "$@"; then
    passed=$((passed + 1))
    echo "ok   $what"
  else
    failed=$((failed + 1))
    echo "FAIL $what"
    return 1
  fi
}
finish() {
  echo "test_cli: $passed passed, $failed failed"
  if [ "$failed" -ne 0 ] && [ -f "$NODE_LOG" ]; then
    echo "---- node log (last 30 lines) ----"
    tail -n 30 "$NODE_LOG"
  fi
  [ "$failed" -eq 0 ]
  exit $?
}

read -r PORT PEER_PORT DEAD_PORT < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(3)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
HOST=127.0.0.1:$PORT
kv() { "$CLI" --host "$HOST" "$@"; }

start_node() { # start_node [FLAGS...]: later flags override these
  "$KVORUMD" --id n1 --listen "$HOST" --peer "127.0.0.1:$PEER_PORT" \
    --data "$TMP/data" --n 1 --r 1 --w 1 "$@" >>"$NODE_LOG" 2>&1 &
  PID=$!
}
wait_up() {
  local i
  for ((i = 0; i < WAIT_TRIES; i++)); do
    kv status >/dev/null 2>&1 && return 0
    kill -0 "$PID" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}
# json_get JSON EXPR: evaluates a Python expression over the parsed JSON j.
json_get() {
  python3 -c 'import json, sys; j = json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2" 2>/dev/null
}

# ---- usage errors need no server ----
status_of() { "$@" >/dev/null 2>&1; echo $?; }
check "unknown command exits 2" test "$(status_of "$CLI" --host "$HOST" frobnicate)" = 2
check "unknown flag exits 2" test "$(status_of "$CLI" --host "$HOST" put k v --bogus)" = 2
check "flag of another command exits 2" test "$(status_of "$CLI" --host "$HOST" get k --context abc)" = 2
check "missing argument exits 2" test "$(status_of "$CLI" --host "$HOST" get)" = 2
check "bad level exits 2" test "$(status_of "$CLI" --host "$HOST" get k --r most)" = 2
check "bad timeout exits 2" test "$(status_of "$CLI" --host "$HOST" get k --timeout soon)" = 2
check "bad context exits 2" test "$(status_of "$CLI" --host "$HOST" put k v --context '!!')" = 2
check "--help exits 0" test "$(status_of "$CLI" --help)" = 0
check "put --help documents --context" sh -c "'$CLI' put --help | grep -q -- --context"
check "usage goes to stderr" sh -c "'$CLI' frobnicate 2>&1 >/dev/null | grep -q usage"
check "unreachable host exits 1" test "$(status_of "$CLI" --host "127.0.0.1:$DEAD_PORT" status)" = 1

# ---- a real node ----
start_node
check "node answers status" wait_up || finish

check "status lists n1" sh -c "'$CLI' --host '$HOST' status | grep -q n1"
st=$(kv --json status)
check "status --json has members" test "$(json_get "$st" 'j["members"][0]["id"]')" = n1

# Data types through the CLI (docs/data-types.md).
check "set add prints the new members" test "$(kv set add ts a b c)" = 3
check "set add of a member again adds none" test "$(kv set add ts a)" = 0
check "set rem prints the members removed" test "$(kv set rem ts b)" = 1
check "set members lists them and the context" \
  test "$(kv set members ts | head -n 2)" = "$(printf 'a\nc')"
sm=$(kv --json set members ts)
check "set members --json is exactly {members, context}" \
  python3 -c 'import json,sys; j=json.loads(sys.argv[1]); assert list(j) == ["members", "context"] and j["members"] == ["a", "c"] and j["context"], j' "$sm"
sctx=$(json_get "$sm" 'j["context"]')
check "set add after the read" kv set add ts a
check "set rem --context keeps an add it did not see (add-wins)" \
  test "$(kv set rem ts a c --context "$sctx")" = 1
check "the concurrent add of a survives" \
  test "$(kv set members ts | head -n 1)" = a
check "set rem with a bad context exits 2" \
  test "$(status_of kv set rem ts a --context AAAA)" = 2
check "set members takes no --context" \
  test "$(status_of kv set members ts --context "$sctx")" = 2
check "counter incr prints the new value" test "$(kv counter incr tc 5)" = 5
check "counter incr takes a negative N" test "$(kv counter incr tc -7)" = -2
check "counter get" test "$(kv counter get tc)" = -2
check "counter get --json" test "$(kv --json counter get tc)" = '{"value": -2}'
check "counter get of a missing key is 0" test "$(kv counter get tc-none)" = 0
check "counter incr N must be a number" test "$(status_of kv counter incr tc x)" = 2
check "map set prints 1 for a new field" test "$(kv map set tm color red)" = 1
check "map incr prints the field's value" test "$(kv map incr tm n 3)" = 3
check "map get FIELD" test "$(kv map get tm color)" = red
check "map get lists the fields" \
  test "$(kv map get tm)" = "$(printf 'color: red\nn: 3')"
check "map get --json is the map's JSON" \
  sh -c "'$CLI' --host '$HOST' --json map get tm | grep -q '\"type\":\"map_mv\"'"
check "map del prints the fields removed" test "$(kv map del tm color)" = 1
check "map get after del" test "$(kv map get tm)" = "n: 3"
check "set add on a counter exits 1" test "$(status_of kv set add tc x)" = 1
check "WRONGTYPE says so" sh -c "'$CLI' --host '$HOST' set add tc x 2>&1 | grep -q WRONGTYPE"
kv put tplain v >/dev/null
check "counter incr on a plain key is WRONGTYPE, exit 1" \
  sh -c "'$CLI' --host '$HOST' counter incr tplain 1 2>&1; test \$? = 1" 
check "counter get of a set is WRONGTYPE, exit 1" test "$(status_of kv counter get ts)" = 1
check "an unknown set command exits 2" test "$(status_of kv set frob ts)" = 2
long=$(python3 -c 'print("x" * 2000)')
check "an element over the size limit exits 1" test "$(status_of kv set add ts "$long")" = 1

check "first put" kv put cart apple
check "second put" kv put cart pear
g=$(kv get cart --json)
check "two context-less puts give two siblings" \
  test "$(json_get "$g" 'sorted(s["value"] for s in j["siblings"])')" = "['apple', 'pear']"
check "get --json found is true" test "$(json_get "$g" 'j["found"]')" = True
ctx=$(json_get "$g" 'j["context"]')
check "put with the context of the get" kv put cart plum --context "$ctx"
g=$(kv --json get cart)
check "the put replaced both siblings" \
  test "$(json_get "$g" '[s["value"] for s in j["siblings"]]')" = "['plum']"
ctx=$(json_get "$g" 'j["context"]')
check "del with context" kv del cart --context "$ctx" --w one
g=$(kv get cart --json)
check "after the delete found is false" test "$(json_get "$g" 'j["found"]')" = False
check "get of a missing key exits 0" kv get never-written
g=$(kv --json get never-written)
check "missing key: found false, no siblings" \
  test "$(json_get "$g" '(j["found"], j["siblings"], j["key"])')" = "(False, [], 'never-written')"
check "stats --json is JSON" sh -c "'$CLI' --host '$HOST' --json stats | python3 -c 'import json,sys; json.load(sys.stdin)'"
check "ring --json has partitions" sh -c "'$CLI' --host '$HOST' ring --json | python3 -c 'import json,sys; assert json.load(sys.stdin)[\"partitions\"]'"

# ---- 200 acknowledged writes survive kill -9 ----
acked=0
for ((i = 0; i < WRITES; i++)); do
  kv put "w$i" "v$i" --w 1 >/dev/null 2>>"$TMP/put.err" && acked=$((acked + 1))
done
check "$WRITES writes acknowledged" test "$acked" -eq "$WRITES"
kill -9 "$PID"
wait "$PID" 2>/dev/null
PID=""
start_node
check "node answers after kill -9 and restart" wait_up || finish
found=0
# The plain output of one sibling is two lines, its value and the context:
# no Python per key (200 interpreter starts took most of this test's time).
for ((i = 0; i < WRITES; i++)); do
  v=$(kv get "w$i" 2>/dev/null)
  [ "$(printf '%s\n' "$v" | head -n 1)" = "v$i" ] &&
    [ "$(printf '%s\n' "$v" | wc -l)" -eq 2 ] && found=$((found + 1))
done
check "all $WRITES acknowledged writes found after restart ($found)" test "$found" -eq "$WRITES"

# ---- logs ----
stop_node() {
  kill -TERM "$PID" 2>/dev/null
  wait "$PID" 2>/dev/null
  PID=""
}
# wait_log PATTERN: waits until a line of the node's log holds PATTERN.
wait_log() {
  local i
  for ((i = 0; i < LOG_TRIES; i++)); do
    grep -qF -- "$1" "$NODE_LOG" && return 0
    sleep 0.05
  done
  return 1
}
stop_node
check "every line of the runs so far is logfmt (ts, level, node, msg)" python3 - "$NODE_LOG" <<'EOF'
import re, sys
line = re.compile(r'ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=(error|warn|info|debug) '
                  r'node=n1 msg=("([^"\\\x00-\x1f]|\\.)*"|[^ "=\\\x00-\x20]+)\n')
lines = open(sys.argv[1], encoding="utf-8").read().splitlines(keepends=True)
assert lines and all(line.fullmatch(l) for l in lines), lines
assert any("stopped cleanly" in l for l in lines)
EOF
check "kvorumd --log-format xml exits 2" \
  test "$(status_of "$KVORUMD" --log-format xml)" = 2
check "kvorum log-level without a level exits 2" \
  test "$(status_of "$CLI" --host "$HOST" log-level)" = 2

# A seed that never answers: the shell logs each refused connect (every
# 250 ms) at debug level.
NODE_LOG=$TMP/json.log
start_node --data "$TMP/data-json" --log-format json \
  --seeds "127.0.0.1:$DEAD_PORT" --gossip-interval-ms 50
check "node answers status (--log-format json)" wait_up || finish
sleep 0.4
check "no debug line at the default level" sh -c "! grep -q '\"level\":\"debug\"' '$NODE_LOG'"
check "log-level debug answers the new and the previous level" \
  test "$(kv log-level debug)" = "$(printf 'level: debug\nprevious: info')"
check "the change is logged" wait_log 'log level is now debug (was info)'
check "debug lines follow" wait_log '"level":"debug"'
out=$(kv --json log-level debug)
check "log-level --json is {level, previous}" \
  python3 -c 'import json,sys; assert json.loads(sys.argv[1]) == {"level": "debug", "previous": "debug"}' "$out"
check "a level the node refuses exits 1" test "$(status_of kv log-level loud)" = 1
check "log-level warn" sh -c "'$CLI' --host '$HOST' log-level warn >/dev/null"
stop_node
check "JSON lines; debug only after log-level debug; nothing below warn after log-level warn" \
  python3 - "$NODE_LOG" <<'EOF'
import json, sys
data = open(sys.argv[1], "rb").read()
assert data.endswith(b"\n"), "the last line is not ended"
recs = [json.loads(raw.decode("utf-8")) for raw in data.split(b"\n")[:-1]]
for j in recs:
    assert list(j) == ["ts", "level", "node", "msg"], j
    assert all(isinstance(v, str) for v in j.values()) and j["node"] == "n1", j
msgs = [j["msg"] for j in recs]
debug = msgs.index("log level is now debug (was info)")
warn = msgs.index("log level is now warn (was debug)")
assert not any(j["level"] == "debug" for j in recs[:debug])
assert any(j["level"] == "debug" for j in recs[debug:warn])
assert all(j["level"] in ("error", "warn") for j in recs[warn + 1:]), recs[warn + 1:]
EOF

finish
