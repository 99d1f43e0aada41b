#!/bin/sh
# test_bench_resp.sh BENCH [REDIS_SERVER [OPENSSL]]: runs kvorum-bench
# --protocol resp against a throwaway redis-server on 127.0.0.1 for about
# 2 s with --load, and checks the JSON figures, that there were no errors,
# and that the HTML report holds inline SVG; then that a server that
# restarts mid-run gets its load back.
#
# With OPENSSL, the same over TLS with a user: redis-server again, serving
# TLS only with a certificate of a throwaway CA made here by the openssl
# command, and one ACL user. A run with --tls-ca and --user (the password
# from KVORUM_PASSWORD) has no errors and reads the server's CPU over TLS;
# a wrong password, a wrong CA and a password in argv fail with a clear
# message; a restart mid-run is survived (dial, handshake, AUTH again).
# Redis and the bench are killed in a trap, even on failure.
set -u
BENCH=${1:?usage: test_bench_resp.sh BENCH [REDIS_SERVER [OPENSSL]]}
REDIS=${2:-redis-server}
OPENSSL=${3:-}
WAIT_STEPS=100 # redis-server readiness checks, 0.1 s apart at most
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

dir=$(mktemp -d)
rpid=
bpid=
cleanup() {
  [ -n "$bpid" ] && kill "$bpid" 2>/dev/null && wait "$bpid" 2>/dev/null
  [ -n "$rpid" ] && kill "$rpid" 2>/dev/null && wait "$rpid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
nap() { python3 -c 'import select; select.select([], [], [], 0.1)'; }
tls=false # start_redis: plain, or TLS with the ACL user bench
start_redis() {
  if $tls; then
    set -- --port 0 --tls-port "$port" \
      --tls-cert-file "$dir/node.pem" --tls-key-file "$dir/node.key" \
      --tls-ca-cert-file "$dir/ca.pem" --tls-auth-clients no \
      --user default off --user bench on '>s3cret' '~*' '&*' '+@all'
  else
    set -- --port "$port"
  fi
  "$REDIS" "$@" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$dir" >>"$dir/redis.log" 2>&1 &
  rpid=$!
  # Ready when it accepts a connection: poll the port, bounded.
  i=0
  until python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; do
    i=$((i + 1))
    if [ $i -ge $WAIT_STEPS ] || ! kill -0 "$rpid" 2>/dev/null; then
      echo "redis-server did not start" >&2
      cat "$dir/redis.log" >&2
      echo "$pass passed, $((fail + 1)) failed"
      exit 1
    fi
    nap
  done
}
start_redis

# Bad flags exit 2 without touching the server.
"$BENCH" --protocol resp --hosts 127.0.0.1:$port --keys abc 2>/dev/null
[ $? -eq 2 ] && ok || bad "bad flags did not exit 2"

if timeout 60 "$BENCH" --protocol resp --hosts 127.0.0.1:$port --load \
  --keys 5000 --workload a --distribution zipfian --value-size 50-200 \
  --concurrency 32 --connections 4 --duration 2 --seed 1 \
  --json "$dir/out.json" --report "$dir/out.html" >"$dir/stdout" 2>"$dir/stderr"; then
  ok
else
  bad "kvorum-bench failed"; cat "$dir/stderr" >&2
fi
grep -q "^run: " "$dir/stdout" && ok || bad "no run summary on stdout"
grep -q "ops/s" "$dir/stderr" && ok || bad "no progress lines on stderr"

python3 - "$dir/out.json" <<'PY' && ok || bad "JSON checks"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["errors"] == 0, j["errors"]
assert j["throughput_ops_s"] > 0
for op in ("read", "update"):
    o = j["ops"][op]
    assert o["count"] > 0, op
    for k in ("p50_us", "p90_us", "p99_us", "p999_us", "max_us"):
        assert k in o, k
    assert o["p50_us"] <= o["p90_us"] <= o["p99_us"] <= o["p999_us"] <= o["max_us"], o
assert len(j["series"]) >= 2, len(j["series"])
assert j["load"]["ops"]["insert"]["count"] == 5000, j["load"]
assert j["load"]["errors"] == 0
assert j["config"]["protocol"] == "resp" and j["config"]["keys"] == 5000
# The server's CPU over the run, asked of it between phases, and ours.
assert j["server_cpu"] is not None and j["server_cpu"]["s"] > 0, j["server_cpu"]
assert j["server_cpu"]["us_per_op"] > 0, j["server_cpu"]
assert j["bench_cpu"]["us_per_op"] > 0, j["bench_cpu"]
PY
grep -q "<svg" "$dir/out.html" && ok || bad "no <svg in the report"
grep -qi "<script" "$dir/out.html" && bad "the report has a script" || ok

# Every key written by --load is there.
n=$(python3 - "$port" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 5)
s.sendall(b"DBSIZE\r\n")
print(s.recv(64).decode().strip().lstrip(":"))
PY
)
[ "$n" = 5000 ] && ok || bad "redis holds $n keys, expected 5000"

# Open loop with --ops, workload F: all reads found after the load.
if timeout 60 "$BENCH" --protocol resp --hosts 127.0.0.1:$port --keys 5000 \
  --workload f --rate 2000 --ops 1000 --concurrency 8 --connections 2 \
  --json "$dir/f.json" >/dev/null 2>&1; then ok; else bad "workload f run"; fi
python3 - "$dir/f.json" <<'PY' && ok || bad "workload f JSON"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["errors"] == 0 and j["not_found"] == 0, j
assert j["ops"]["rmw"]["count"] > 0
assert j["ops_total"] == 1000, j["ops_total"]
PY

# The server dies and comes back in the middle of a run: the bench counts
# the requests it lost as errors, dials again, and ends the run on the new
# server. Each step waits for what the previous one must have caused.
# Arguments: the run's length in seconds, then flags for the bench.
check_restart() {
  secs=$1
  shift
  "$BENCH" --protocol resp --hosts 127.0.0.1:$port --keys 1000 --workload a \
    --concurrency 16 --connections 2 --duration "$secs" --seed 3 "$@" \
    --json "$dir/re.json" >/dev/null 2>"$dir/re.err" &
  bpid=$!
  i=0
  until grep -q "run  *1s" "$dir/re.err" 2>/dev/null || [ $i -ge 100 ]; do i=$((i + 1)); nap; done
  kill -9 "$rpid"; wait "$rpid" 2>/dev/null; rpid=
  i=0
  until grep -Eq "errors [1-9]" "$dir/re.err" || [ $i -ge 50 ]; do i=$((i + 1)); nap; done
  grep -Eq "errors [1-9]" "$dir/re.err" && ok || bad "the bench did not count the dead server's requests as errors"
  start_redis
  if wait "$bpid"; then ok; else bad "kvorum-bench failed when its server restarted"; cat "$dir/re.err" >&2; fi
  bpid=
  python3 - "$dir/re.json" <<'PY' && ok || bad "no recovery after the server came back ($*)"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["errors"] > 0, j["errors_by_kind"]
last = j["series"][-1]
assert last["ops"] > 0 and last["errors"] == 0, j["series"]
PY
}
check_restart 10

# ---- TLS and a user ----

# The throwaway PKI: a CA, the server's certificate, and a CA that signed
# nothing here.
pki() {
  for ca in ca other; do
    timeout 30 "$OPENSSL" req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
      -nodes -keyout "$dir/$ca.key" -out "$dir/$ca.pem" -days 2 \
      -subj "/CN=kvorum test $ca" || return 1
  done
  timeout 30 "$OPENSSL" req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$dir/node.key" -out "$dir/node.csr" -subj /CN=node1 || return 1
  timeout 30 "$OPENSSL" x509 -req -in "$dir/node.csr" -CA "$dir/ca.pem" \
    -CAkey "$dir/ca.key" -CAcreateserial -out "$dir/node.pem" -days 2
}
if [ -n "$OPENSSL" ]; then
  pki >"$dir/openssl.log" 2>&1 && ok || { bad "openssl could not make the certificates"; cat "$dir/openssl.log" >&2; }
  kill "$rpid"; wait "$rpid" 2>/dev/null; rpid=
  tls=true
  start_redis

  # A password never comes from the command line.
  KVORUM_PASSWORD= "$BENCH" --protocol resp --hosts 127.0.0.1:$port --password s3cret 2>"$dir/e1"
  [ $? -eq 2 ] && grep -q KVORUM_PASSWORD "$dir/e1" && ok || bad "--password was not refused"
  env -u KVORUM_PASSWORD "$BENCH" --protocol resp --hosts 127.0.0.1:$port --user bench 2>"$dir/e2"
  [ $? -eq 2 ] && grep -q KVORUM_PASSWORD "$dir/e2" && ok || bad "--user without KVORUM_PASSWORD was not refused"

  # The right CA and password: no errors; the server's CPU asked over TLS.
  if KVORUM_PASSWORD=s3cret timeout 60 "$BENCH" --protocol resp \
    --hosts 127.0.0.1:$port --tls-ca "$dir/ca.pem" --user bench --load \
    --keys 2000 --workload a --concurrency 16 --connections 2 --duration 1 \
    --seed 1 --quiet --json "$dir/tls.json" >/dev/null 2>"$dir/tls.err"; then
    ok
  else
    bad "kvorum-bench over TLS failed"; cat "$dir/tls.err" >&2
  fi
  python3 - "$dir/tls.json" <<'PY' && ok || bad "TLS JSON checks"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["errors"] == 0, j["errors_by_kind"]
assert j["throughput_ops_s"] > 0
assert j["load"]["errors"] == 0 and j["load"]["ops"]["insert"]["count"] == 2000
assert j["server_cpu"] is not None and j["server_cpu"]["s"] > 0, j["server_cpu"]
PY

  # A wrong password: AUTH's answer, exit 1.
  KVORUM_PASSWORD=wrong timeout 30 "$BENCH" --protocol resp --hosts 127.0.0.1:$port \
    --tls-ca "$dir/ca.pem" --user bench --duration 1 --quiet >/dev/null 2>"$dir/e3"
  [ $? -eq 1 ] && grep -q "AUTH as bench on 127.0.0.1:$port failed: WRONGPASS" "$dir/e3" \
    && ok || { bad "wrong password"; cat "$dir/e3" >&2; }

  # A CA that did not sign the server: OpenSSL's reason, exit 1.
  KVORUM_PASSWORD=s3cret timeout 30 "$BENCH" --protocol resp --hosts 127.0.0.1:$port \
    --tls-ca "$dir/other.pem" --user bench --duration 1 --quiet >/dev/null 2>"$dir/e4"
  [ $? -eq 1 ] && grep -q "TLS handshake with 127.0.0.1:$port failed: certificate verify failed" "$dir/e4" \
    && ok || { bad "wrong CA"; cat "$dir/e4" >&2; }

  # A restart: dial, handshake and AUTH again (a longer run: a loaded
  # machine may take a while to restart the server).
  KVORUM_PASSWORD=s3cret check_restart 12 --tls-ca "$dir/ca.pem" --user bench
fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
