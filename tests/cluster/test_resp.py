#!/usr/bin/env python3
"""The Redis protocol front end (kvorumd --resp) through third-party Redis
programs: redis-cli, redis-benchmark and the Python redis client, against
a three-node cluster (issue #13). Also malformed input: the node answers
with an error or closes that connection, and keeps serving the others.

Usage: test_resp.py KVORUMD KVORUM_CLI [--light]
  --light: smaller loads (the sanitizer build)
"""
import socket
import subprocess
import sys

import redis

from kvtest import Checks, Cluster, free_ports

kvorumd, cli = sys.argv[1], sys.argv[2]
light = "--light" in sys.argv[3:]
t = Checks("resp")
resp_ports = free_ports(3)
c = Cluster(kvorumd, cli, 3, name="kvresp")


def rcli(i, *args, stdin=None):
    r = subprocess.run(["redis-cli", "-p", str(resp_ports[i - 1])] +
                       [str(a) for a in args], input=stdin,
                       capture_output=True, timeout=120)
    return r.returncode, r.stdout.decode(errors="replace").strip()


def raw(i, data, read_max=1 << 16):
    """Sends data on a fresh connection; returns what came back before the
    node closed it or 2 s passed."""
    s = socket.create_connection(("127.0.0.1", resp_ports[i - 1]), 5)
    s.settimeout(2)
    out = b""
    try:
        s.sendall(data)
        while len(out) < read_max:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except (socket.timeout, ConnectionError):
        pass
    s.close()
    return out


try:
    for i in (1, 2, 3):
        c.start(i, ["--resp", f"127.0.0.1:{resp_ports[i - 1]}"])
    t.check(c.wait_all_up([1, 2, 3]) is not None, "three nodes up")

    # ---- redis-cli ----
    t.check(rcli(1, "PING") == (0, "PONG"), "redis-cli PING")
    t.check(rcli(1, "SET", "greeting", "hello") == (0, "OK"), "SET")
    t.check(rcli(2, "GET", "greeting") == (0, "hello"),
            "GET through another node reads the SET")
    rcli(1, "MSET", "a", "1", "b", "2")
    t.check(rcli(3, "MGET", "a", "b")[1].split("\n") == ["1", "2"],
            "MGET")
    t.check(redis.Redis(port=resp_ports[2]).mget("a", "nope", "b") ==
            [b"1", None, b"2"], "MGET of a missing key gives nil in its place")
    t.check(rcli(1, "EXISTS", "a", "b", "nope") == (0, "2"), "EXISTS counts")
    t.check(rcli(1, "DEL", "a", "nope") == (0, "1"), "DEL counts what it "
            "deleted")
    t.check(rcli(2, "EXISTS", "a") == (0, "0"), "a deleted key is gone")
    rc, info = rcli(1, "INFO")
    t.check(rc == 0 and "kvorum_version:" in info and "node_id:n1" in info,
            "INFO names kvorum and the node")
    rc, out = rcli(1, "COMMAND", "INFO", "get", "kv.get")
    t.check(rc == 0 and out.split("\n")[:2] == ["get", "2"] and
            "kv.get" in out, f"COMMAND INFO describes commands: {out!r}")
    t.check(rcli(1, "FOO")[1] == "ERR unknown command 'FOO'",
            "an unknown command is a clear error")
    t.check(rcli(1, "SET", "k", "v", "EX", "100")[1] == "OK",
            "SET EX gives the value a time to live")
    ttl = rcli(2, "TTL", "k")[1]
    t.check(ttl.isdigit() and 90 <= int(ttl) <= 100,
            f"TTL through another node shows it: {ttl!r}")
    t.check(rcli(1, "SET", "k", "v", "EXAT", "10")[1].startswith("ERR"),
            "SET EXAT is refused clearly")

    # Sequential SETs through the three nodes replace each other.
    for i in (1, 2, 3):
        rcli(i, "SET", "seq", f"v{i}")
    t.check(rcli(1, "GET", "seq") == (0, "v3"),
            "sequential SETs through three nodes: GET returns the last")
    t.check(rcli(2, "KV.GET", "seq")[1].split("\n")[1:] == ["v3"],
            "... and leave no siblings")

    # KV.PUT without a context through two nodes: siblings, not a loss.
    rcli(1, "KV.PUT", "cart", "milk")
    rcli(2, "KV.PUT", "cart", "eggs")
    rc, out = rcli(3, "KV.GET", "cart")
    lines = out.split("\n")
    t.check(rc == 0 and len(lines) == 3 and
            sorted(lines[1:]) == ["eggs", "milk"],
            f"KV.GET shows the two siblings written through two nodes: {out!r}")

    n = 20000 if light else 100000
    proto = "".join(f"*3\r\n$3\r\nSET\r\n${len(k)}\r\n{k}\r\n$1\r\nv\r\n"
                    for k in (f"mass{i}" for i in range(n)))
    rc, out = rcli(1, "--pipe", stdin=proto.encode())
    t.check(rc == 0 and "errors: 0" in out and f"replies: {n}" in out,
            f"redis-cli --pipe of {n} keys: {out.splitlines()[-1:]}")
    t.check(rcli(2, "GET", f"mass{n - 1}") == (0, "v"),
            "the last key of the mass insert reads back")

    # ---- redis-benchmark ----
    n = "10000" if light else "100000"
    for extra in ([], ["-P", "16"]):
        r = subprocess.run(["redis-benchmark", "-p", str(resp_ports[0]), "-t",
                            "set,get", "-n", n, "-c", "50", "-q"] + extra,
                           capture_output=True, text=True, timeout=300)
        out = r.stdout + r.stderr
        t.check(r.returncode == 0 and out.count("requests per second") == 2
                and "rror" not in out,
                f"redis-benchmark -t set,get -n {n} -c 50 {' '.join(extra)}: "
                f"{[l.split(':')[0] + ':' + l.split(':')[1][:30] for l in out.splitlines() if 'per second' in l]}")

    # ---- the Python redis client ----
    r = redis.Redis(port=resp_ports[1], socket_timeout=10)
    t.check(r.set("py", "one") is True and r.get("py") == b"one",
            "redis-py set/get")
    t.check(r.delete("py") == 1 and r.get("py") is None, "redis-py delete")
    p = r.pipeline(transaction=False)
    for i in range(1000):
        p.set(f"pipe{i}", str(i))
    for i in range(1000):
        p.get(f"pipe{i}")
    res = p.execute()
    t.check(res[:1000] == [True] * 1000 and
            res[1000:] == [str(i).encode() for i in range(1000)],
            "a pipeline of 2000 commands, answered in order")
    r.execute_command("KV.PUT", "pycart", "a")
    redis.Redis(port=resp_ports[2]).execute_command("KV.PUT", "pycart", "b")
    got = r.execute_command("KV.GET", "pycart")
    ctx, sibs = got[0], got[1]
    t.check(sorted(sibs) == [b"a", b"b"], f"KV.GET: two siblings {sibs}")
    r.execute_command("KV.PUT", "pycart", "a,b", "CONTEXT", ctx, "W", "all")
    got = r.execute_command("KV.GET", "pycart", "R", "all")
    t.check(got[1] == [b"a,b"],
            f"KV.PUT with the context read resolves the siblings: {got[1]}")
    r.execute_command("KV.LEVELS", "W", "all", "R", "one")
    t.check(r.set("lv", "x") and r.get("lv") == b"x",
            "KV.LEVELS sets the connection's levels for SET and GET")
    try:
        r.execute_command("KV.LEVELS", "W", "most")
        t.check(False, "a bad level is refused")
    except redis.ResponseError as e:
        t.check("level" in str(e), f"a bad level is refused: {e}")
    r3 = redis.Redis(port=resp_ports[0], protocol=3) \
        if "protocol" in redis.Redis.__init__.__code__.co_varnames else None
    if r3 is not None:
        t.check(r3.get("greeting") == b"hello", "RESP3 client")

    # ---- malformed input ----
    out = raw(1, b"*1\r\n$999999999999\r\n")
    t.check(out.startswith(b"-ERR Protocol error"),
            f"a huge bulk length is refused at once: {out[:60]!r}")
    out = raw(1, b"*2\r\n$3\r\nGET\r\n$3\r\nab")
    t.check(out == b"", "an unterminated command gets no reply (it waits)")
    out = raw(1, bytes(range(256)) * 4)
    t.check(out.startswith(b"-") or out == b"",
            f"binary garbage gets an error or nothing: {out[:40]!r}")
    out = raw(1, b"A" * (1 << 20) + b"\r\n")
    t.check(out.startswith(b"-ERR Protocol error"),
            f"a 1 MiB inline line is refused: {out[:60]!r}")
    out = raw(1, b"PING\r\nECHO \"a b\"\r\n")
    t.check(out == b"+PONG\r\n$3\r\na b\r\n", f"inline commands: {out!r}")
    t.check(rcli(1, "PING") == (0, "PONG"),
            "the node keeps serving other clients")
    t.check(all(c.alive(i) for i in (1, 2, 3)), "no node crashed")
finally:
    if t.failed:
        c.dump_logs()
    c.close()

# ---- a SET on each side of a split: siblings, and GET shows the later ----
# Hints and catch-up are off, so neither side learns the other's write
# until a read repairs them: the two SETs are concurrent.
resp_ports = free_ports(3)
c = Cluster(kvorumd, cli, 3,
            node_flags=["--hint-window-ms", "1", "--catchup-mb-per-s", "0",
                        "--aae-interval-ms", "600000"], name="kvresp2")
try:
    for i in (1, 2, 3):
        c.start(i, ["--resp", f"127.0.0.1:{resp_ports[i - 1]}"])
    t.check(c.wait_all_up([1, 2, 3]) is not None, "a second cluster up")
    for i in (2, 3):
        c.pause(i)
    t.check(c.wait_until(lambda: all(c.states(1).get(f"n{j}") == "down"
                                     for j in (2, 3)), 20) is not None,
            "n1 is cut off from n2 and n3 (SIGSTOP)")
    left = redis.Redis(port=resp_ports[0], socket_timeout=10)
    left.execute_command("KV.LEVELS", "W", "1")
    t.check(left.set("split", "left") is True, "SET on n1's side (W=1)")
    for i in (2, 3):
        c.resume(i)
    c.pause(1)
    t.check(c.wait_until(lambda: c.states(3).get("n1") == "down", 30)
            is not None, "now n1 is cut off from n2 and n3")
    right = redis.Redis(port=resp_ports[2], socket_timeout=10)
    t.check(right.set("split", "right") is True, "SET on the other side")
    c.resume(1)
    t.check(c.wait_all_up([1, 2, 3], timeout=40) is not None, "healed")
    got = right.execute_command("KV.GET", "split", "R", "all")
    t.check(sorted(got[1]) == [b"left", b"right"],
            f"the two SETs are siblings, visible with KV.GET: {got[1]}")
    t.check(right.get("split") == b"right" and left.get("split") == b"right",
            "GET returns the later SET through either side")
finally:
    if t.failed:
        c.dump_logs()
    c.close()
t.finish()
