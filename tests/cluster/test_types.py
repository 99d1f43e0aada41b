#!/usr/bin/env python3
"""Data types (docs/data-types.md) through the front ends of a three-node
cluster: redis-cli and the Python redis client on the Redis port (SADD,
SREM, SMEMBERS, SISMEMBER, SCARD, INCRBY, HSET, HGET, HGETALL, HDEL,
HINCRBY, TYPE, WRONGTYPE both ways) and curl on HTTP /types/{key}.
Concurrent SADDs through two nodes must both show through the third.

Usage: test_types.py KVORUMD KVORUM_CLI [--light]
  --light: smaller loads (the sanitizer build)
"""
import json
import shutil
import socket
import subprocess
import sys

import redis

from kvtest import Checks, Cluster, free_ports

kvorumd, cli = sys.argv[1], sys.argv[2]
light = "--light" in sys.argv[3:]
N = 20 if light else 100  # members per concurrent SADD stream
CURL = shutil.which("curl") or "/usr/bin/curl"
t = Checks("types")
ports = free_ports(6)
resp_ports, http_ports = ports[:3], ports[3:]
c = Cluster(kvorumd, cli, 3, name="kvtypes")


def rcli(i, *args):
    r = subprocess.run(["redis-cli", "-p", str(resp_ports[i - 1])] +
                       [str(a) for a in args], capture_output=True,
                       timeout=60)
    return r.stdout.decode(errors="replace").strip()


def curl(i, method, path):
    r = subprocess.run([CURL, "-s", "-i", "-X", method,
                        f"http://127.0.0.1:{http_ports[i - 1]}{path}"],
                       capture_output=True, timeout=30)
    head, _, body = r.stdout.decode(errors="replace").partition("\r\n\r\n")
    status = int(head.split()[1]) if head.startswith("HTTP") else 0
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    return status, head.lower(), doc


try:
    for i in (1, 2, 3):
        c.start(i, ["--resp", f"127.0.0.1:{resp_ports[i - 1]}",
                    "--http", f"127.0.0.1:{http_ports[i - 1]}"])
    t.check(c.wait_all_up([1, 2, 3]) is not None, "three nodes up")
    r = [redis.Redis(port=p, decode_responses=True, socket_timeout=20)
         for p in resp_ports]

    # ---- sets: concurrent adds through two nodes, read through a third ----
    procs = []
    for node, tag in ((1, "a"), (2, "b")):
        script = "".join(f"SADD s {tag}{k}\n" for k in range(N))
        procs.append(subprocess.Popen(
            ["redis-cli", "-p", str(resp_ports[node - 1])],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE))
        procs[-1].stdin.write(script.encode())
        procs[-1].stdin.close()
    outs = [p.stdout.read().decode().split() for p in procs]
    for p in procs:
        p.wait(timeout=60)
    t.check(all(o == ["1"] * N for o in outs),
            "each concurrent SADD of a new member answers 1")
    want = {f"{tag}{k}" for tag in "ab" for k in range(N)}
    got = set(r[2].smembers("s"))
    t.check(got == want, f"SMEMBERS through the third node shows all "
            f"{2 * N} members (missing {sorted(want - got)[:5]}, extra "
            f"{sorted(got - want)[:5]})")
    t.check(r[2].scard("s") == 2 * N, "SCARD")
    t.check(r[0].sismember("s", "a0") is True or r[0].sismember("s", "a0") == 1,
            "SISMEMBER of a member")
    t.check(not r[0].sismember("s", "zz"), "SISMEMBER of a stranger")
    t.check(r[1].sadd("s", "a0", "new") == 1, "SADD counts only new members")
    t.check(r[1].srem("s", "a0", "a1", "nope") == 2,
            "SREM counts the members it removed")
    t.check(not r[2].sismember("s", "a0") and r[2].scard("s") == 2 * N - 1,
            "SREM is seen through another node")
    t.check(rcli(3, "TYPE", "s") == "set", "TYPE of a set")
    t.check(r[0].smembers("nosuch") == set() and r[0].scard("nosuch") == 0,
            "SMEMBERS and SCARD of a missing key")

    # ---- WRONGTYPE both ways ----
    r[0].set("plain", "v")
    try:
        r[1].sadd("plain", "x")
        t.check(False, "SADD on a SET key fails")
    except redis.ResponseError as e:
        t.check(str(e).startswith("WRONGTYPE"), f"SADD on a SET key: {e}")
    try:
        r[1].get("s")
        t.check(False, "GET on a set fails")
    except redis.ResponseError as e:
        t.check(str(e) == "WRONGTYPE Operation against a key holding the "
                "wrong kind of value", f"GET on a set: {e}")
    t.check(rcli(2, "SMEMBERS", "plain").startswith("WRONGTYPE"),
            "SMEMBERS of a plain key: WRONGTYPE (redis-cli)")
    t.check(rcli(2, "TYPE", "plain") == "string" and
            rcli(2, "TYPE", "nosuch") == "none", "TYPE string and none")

    # ---- counters ----
    t.check(r[0].incrby("cnt", 5) == 5, "INCRBY on a new key")
    t.check(r[1].incrby("cnt", 7) == 12, "INCRBY through another node")
    t.check(r[2].decrby("cnt", 2) == 10, "DECRBY")
    t.check(r[0].incr("cnt") == 11 and r[1].decr("cnt") == 10, "INCR, DECR")
    t.check(r[2].get("cnt") == "10", "GET of a counter: its value")
    t.check(rcli(1, "TYPE", "cnt") == "string", "TYPE of a counter")
    procs = [subprocess.Popen(["redis-cli", "-p", str(resp_ports[n - 1])],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
             for n in (1, 2)]
    for p in procs:
        p.stdin.write(b"INCRBY cc 3\n" * N)
        p.stdin.close()
    for p in procs:
        p.stdout.read()
        p.wait(timeout=60)
    t.check(r[2].get("cc") == str(6 * N),
            "concurrent INCRBY through two nodes: GET returns the sum")
    t.check(rcli(1, "INCRBY", "cnt", "x").startswith("ERR"),
            "INCRBY of a non-integer")

    # ---- maps ----
    t.check(r[0].hset("h", mapping={"f1": "v1", "f2": "v2"}) == 2,
            "HSET counts new fields")
    t.check(r[1].hset("h", "f1", "v1b") == 0, "HSET of an existing field")
    t.check(r[2].hget("h", "f1") == "v1b", "HGET through a third node")
    t.check(r[2].hget("h", "none") is None, "HGET of a missing field")
    t.check(r[0].hincrby("h", "n", 4) == 4 and r[1].hincrby("h", "n", 3) == 7,
            "HINCRBY")
    t.check(r[2].hgetall("h") == {"f1": "v1b", "f2": "v2", "n": "7"},
            f"HGETALL: {r[2].hgetall('h')}")
    t.check(r[0].hdel("h", "f2", "zz") == 1, "HDEL counts removed fields")
    t.check(r[1].hgetall("h") == {"f1": "v1b", "n": "7"}, "HDEL is seen")
    t.check(rcli(3, "TYPE", "h") == "hash", "TYPE of a map")
    s3 = socket.create_connection(("127.0.0.1", resp_ports[0]), 10)
    s3.sendall(b"HELLO 3\r\nHGETALL h\r\n")
    out3 = b""
    s3.settimeout(5)
    while not out3.endswith(b"$1\r\n7\r\n"):
        chunk = s3.recv(65536)
        if not chunk:
            break
        out3 += chunk
    s3.close()
    t.check(out3.endswith(b"%2\r\n$2\r\nf1\r\n$3\r\nv1b\r\n$1\r\nn\r\n"
                          b"$1\r\n7\r\n"),
            f"HGETALL in RESP3 is a map: {out3[-60:]!r}")
    t.check(rcli(1, "HGET", "s", "x").startswith("WRONGTYPE"),
            "HGET of a set: WRONGTYPE")
    t.check(rcli(1, "SADD", "h", "x").startswith("WRONGTYPE"),
            "SADD on a map: WRONGTYPE")

    # ---- HTTP /types ----
    st, head, doc = curl(1, "POST", "/types/hs?type=set&add=a&add=b%20c")
    t.check(st == 200 and doc and doc.get("type") == "set" and
            sorted(doc.get("members", [])) == ["a", "b c"],
            f"POST /types add: {st} {doc}")
    st, head, doc = curl(2, "GET", "/types/hs")
    t.check(st == 200 and doc and sorted(doc["members"]) == ["a", "b c"] and
            "x-kvorum-context" in head, f"GET /types: {st} {doc}")
    st, _, doc = curl(3, "POST", "/types/hs?type=set&remove=a")
    t.check(st == 200 and doc and doc["members"] == ["b c"],
            f"POST /types remove: {st} {doc}")
    t.check(r[0].smembers("hs") == {"b c"}, "the HTTP set read by SMEMBERS")
    st, _, doc = curl(1, "POST", "/types/hc?type=counter&incr=5")
    st2, _, doc2 = curl(2, "POST", "/types/hc?type=counter&incr=-2")
    t.check(st == 200 and doc2 and doc2.get("value") == 3,
            f"POST /types counter: {doc} {doc2}")
    t.check(r[2].get("hc") == "3", "the HTTP counter read by GET")
    st, _, doc = curl(1, "POST", "/types/hm?type=map&field=name&set=ann")
    st, _, doc = curl(2, "POST", "/types/hm?type=map&field=n&incr=2")
    t.check(st == 200 and doc and doc.get("type") == "map_mv" and
            len(doc.get("fields", [])) == 2, f"POST /types map: {st} {doc}")
    t.check(r[0].hgetall("hm") == {"name": "ann", "n": "2"},
            "the HTTP map read by HGETALL")
    st, _, doc = curl(3, "POST", "/types/hm?type=map&delete=name")
    t.check(st == 200 and doc and len(doc["fields"]) == 1,
            f"POST /types map delete: {st} {doc}")
    st, _, doc = curl(1, "GET", "/types/nosuch")
    t.check(st == 404, f"GET /types of a missing key: {st}")
    st, _, doc = curl(1, "GET", "/types/plain")
    t.check(st == 409 and doc and "WRONGTYPE" in doc.get("message", ""),
            f"GET /types of a plain key: {st} {doc}")
    st, _, doc = curl(1, "POST", "/types/plain?type=set&add=x")
    t.check(st == 409, f"POST /types on a plain key: {st} {doc}")
    st, _, doc = curl(1, "POST", "/types/hs?type=counter&incr=1")
    t.check(st == 409, f"POST /types of another type: {st} {doc}")
    st, _, doc = curl(1, "POST", "/types/hs?type=set")
    t.check(st == 400, f"POST /types without an operation: {st} {doc}")
except Exception as e:  # noqa: BLE001
    t.check(False, f"exception: {e!r}")
    c.dump_logs()
finally:
    c.close()
t.finish()
