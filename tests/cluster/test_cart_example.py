#!/usr/bin/env python3
"""examples/cart on three real nodes, a cart the nodes merge (a set data
type): adds through different nodes all show; two adds at once lose
nothing; `kvorum set rem --context` with a context read before a
concurrent `kvorum set add` of the same item (through another node) keeps
the item (add wins); a remove of a seen item removes it; show lists exactly
the expected items.
Usage: test_cart_example.py KVORUMD KVORUM_CLI KVORUM_CART
"""
import json
import subprocess
import sys

from kvtest import Checks, Cluster

kvorumd, cli, cart_bin = sys.argv[1], sys.argv[2], sys.argv[3]
t = Checks("cart_example")
c = Cluster(kvorumd, cli, 3, node_flags=["--n", "3", "--r", "2", "--w", "2"],
            name="kvcart")


def cart_cmd(i, *args):
    return [cart_bin, "--hosts", c.listen(i), "--no-route"] + list(args)


def cart(i, *args):
    r = subprocess.run(cart_cmd(i, *args), capture_output=True, text=True,
                       timeout=30)
    return r.returncode, r.stdout, r.stderr


def show(i, name):
    rc, out, err = cart(i, "show", name, "--json")
    if rc != 0:
        print(f"show failed: {err.strip()}")
        return None
    return json.loads(out)


def items(i, name):
    s = show(i, name)
    return None if s is None else s["items"]


try:
    c.start_all()
    t.check(c.wait_all_up([1, 2, 3]) is not None, "three nodes up")

    # Adds through different nodes: the nodes merge them, no client does.
    r1 = cart(1, "add", "alice", "milk")
    r2 = cart(2, "add", "alice", "eggs")
    t.check(r1[0] == 0 and r2[0] == 0,
            f"adds through n1 and n2 succeed: {r1[2]!r} {r2[2]!r}")
    t.check(items(3, "alice") == ["eggs", "milk"],
            f"show through n3 lists both: {items(3, 'alice')}")

    # Two adds at once through different nodes: neither is lost.
    procs = [subprocess.Popen(cart_cmd(1, "add", "alice", "bread"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE),
             subprocess.Popen(cart_cmd(3, "add", "alice", "butter"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)]
    rcs = [p.wait(timeout=30) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    t.check(rcs == [0, 0], f"two concurrent adds succeed: {rcs}")
    t.check(items(2, "alice") == ["bread", "butter", "eggs", "milk"],
            f"both concurrent adds are in the cart: {items(2, 'alice')}")

    # A slow client reads the cart (its context) through n1; meanwhile milk
    # is added again through n2 (the CLI's set add); the slow client's
    # remove of milk, with the context it read, goes through n3: add wins.
    s = show(1, "alice")
    ctx = s["context"] if s else ""
    r = subprocess.run([cli, "--host", c.listen(2), "set", "add",
                        "cart:alice", "milk"], capture_output=True,
                       text=True, timeout=30)
    rc, err = r.returncode, r.stderr
    t.check(rc == 0, f"kvorum set add through n2: {err!r}")
    r = subprocess.run([cli, "--host", c.listen(3), "set", "rem",
                        "cart:alice", "milk", "--context", ctx],
                       capture_output=True, text=True, timeout=30)
    t.check(r.returncode == 0, f"kvorum set rem --context through n3: "
            f"{r.stderr!r}")
    r = subprocess.run([cli, "--host", c.listen(1), "--json", "set",
                        "members", "cart:alice"], capture_output=True,
                       text=True, timeout=30)
    j = json.loads(r.stdout) if r.returncode == 0 else {}
    t.check(list(j) == ["members", "context"] and
            j["members"] == ["bread", "butter", "eggs", "milk"],
            f"add wins: milk stays after a concurrent remove: {r.stdout!r}")

    # A remove of an item the client sees removes it.
    rc, out, err = cart(2, "remove", "alice", "milk")
    t.check(rc == 0, f"remove milk: {err.strip()}")
    rc, out, err = cart(3, "remove", "alice", "eggs")
    t.check(rc == 0, f"remove eggs: {err.strip()}")
    rc, out, err = cart(1, "remove", "alice", "caviar")
    t.check(rc == 1 and "not in" in err,
            f"removing an absent item fails: {rc} {err.strip()!r}")
    t.check(items(1, "alice") == ["bread", "butter"],
            f"show lists exactly bread, butter: {items(1, 'alice')}")
    rc, out, err = cart(2, "show", "alice")
    t.check(rc == 0 and out.splitlines() == ["bread", "butter"],
            f"plain show prints one item a line: {out!r}")
    t.check(items(3, "nobody") == [], "an unknown cart is empty")
    rc, _, _ = cart(1, "frobnicate", "alice")
    t.check(rc == 2, "an unknown command exits with 2")
except Exception as e:  # a crash of the test is a failure, not a hang
    t.check(False, f"exception: {e!r}")
finally:
    if t.failed:
        c.dump_logs()
    c.close()
t.finish()
