#!/usr/bin/env python3
"""examples/cart on three real nodes: adds through different nodes become
siblings and merge; two read-modify-write adds at once lose nothing; a
remove made by a client that read before a concurrent add of the same item
keeps the item (add wins); a remove of a seen item removes it; show lists
exactly the expected items.
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

    # Two clients that have not seen the cart add through two nodes.
    r1 = cart(1, "add", "alice", "milk", "--blind")
    r2 = cart(2, "add", "alice", "eggs", "--blind")
    t.check(r1[0] == 0 and r2[0] == 0,
            f"blind adds through n1 and n2 succeed: {r1[2]!r} {r2[2]!r}")
    g = c.get(3, "cart:alice")
    t.check(g is not None and len(g["siblings"]) == 2,
            f"the two adds are siblings: {g}")
    s = show(3, "alice")
    t.check(s is not None and s["items"] == ["eggs", "milk"] and
            s["siblings"] == 2,
            f"show merges the siblings into both items: {s}")

    # Two read-modify-write adds started at once through different nodes:
    # whichever way they interleave, neither add is lost.
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

    # A slow client reads the cart (one sibling after a merging write) and
    # prepares the removal of milk, the way kvorum-cart does: drop the add
    # lines of milk, record their tags as removed.
    t.check(cart(1, "add", "alice", "jam")[0] == 0, "an add merges siblings")
    g = c.get(1, "cart:alice")
    t.check(g is not None and len(g["siblings"]) == 1,
            f"a read-modify-write leaves one sibling: {g}")
    value, ctx = g["siblings"][0]["value"], g["context"]
    lines = value.splitlines(keepends=True)
    milk_tags = [ln.split(" ")[1] for ln in lines
                 if ln.startswith("+ ") and ln.rstrip("\n").endswith(" milk")]
    t.check(len(milk_tags) == 1, f"the slow client sees one add of milk: "
            f"{value!r}")
    stale = "".join(ln for ln in lines
                    if not (ln.startswith("+ ") and
                            ln.split(" ")[1] in milk_tags))
    stale += "".join(f"- {tag}\n" for tag in milk_tags)
    # Meanwhile another client adds milk again (it read the cart after the
    # slow client did, so its add has a new tag the remove never saw).
    t.check(cart(2, "add", "alice", "milk")[0] == 0, "milk added again")
    # The slow client writes its remove with the context it read.
    rc, out, err = c.put(3, "cart:alice", stale, "--context", ctx)
    t.check(rc == 0, f"the stale remove is written: {err}")
    g = c.get(1, "cart:alice")
    t.check(g is not None and len(g["siblings"]) == 2,
            f"the remove and the concurrent add are siblings: {g}")
    t.check(items(1, "alice") ==
            ["bread", "butter", "eggs", "jam", "milk"],
            f"add wins: milk stays after a concurrent remove: "
            f"{items(1, 'alice')}")

    # A remove of an item the client sees removes it (every add of it).
    rc, out, err = cart(2, "remove", "alice", "milk")
    t.check(rc == 0, f"remove milk: {err.strip()}")
    rc, out, err = cart(3, "remove", "alice", "eggs")
    t.check(rc == 0, f"remove eggs: {err.strip()}")
    rc, out, err = cart(1, "remove", "alice", "caviar")
    t.check(rc == 1 and "not in" in err,
            f"removing an absent item fails: {rc} {err.strip()!r}")
    s = show(1, "alice")
    t.check(s is not None and s["items"] == ["bread", "butter", "jam"] and
            s["siblings"] == 1,
            f"show lists exactly bread, butter, jam: {s}")
    rc, out, err = cart(2, "show", "alice")
    t.check(rc == 0 and out.splitlines() == ["bread", "butter", "jam"],
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
