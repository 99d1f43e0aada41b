#!/usr/bin/env python3
"""Concurrent writes through two coordinators become siblings, never lost
writes; a write with the context that saw both resolves them.
Usage: test_siblings.py KVORUMD KVORUM_CLI
"""
import sys

from kvtest import Checks, Cluster

kvorumd, cli = sys.argv[1], sys.argv[2]
t = Checks("siblings")
c = Cluster(kvorumd, cli, 3, name="kvsiblings")
try:
    c.start_all()
    t.check(c.wait_all_up([1, 2, 3]) is not None, "three nodes up")
    rc, ctx0, _ = c.put(1, "cart", "milk")
    t.check(rc == 0 and ctx0, "first write")
    # Two clients read the same version and write concurrently through
    # two different coordinators.
    g = c.get(1, "cart")
    ctx = g["context"]
    rc1, _, e1 = c.put(1, "cart", "milk,eggs", "--context", ctx)
    rc2, _, e2 = c.put(2, "cart", "milk,bread", "--context", ctx)
    t.check(rc1 == 0 and rc2 == 0, f"both concurrent writes succeed {e1}{e2}")
    for n in (1, 2, 3):
        vals = c.values(n, "cart")
        t.check(vals == ["milk,bread", "milk,eggs"],
                f"read through n{n} shows both siblings: {vals}")
    # Writes without a context never destroy data.
    rc, _, _ = c.put(3, "cart", "milk,jam")
    vals = c.values(1, "cart")
    t.check(vals == ["milk,bread", "milk,eggs", "milk,jam"],
            f"a write without context adds a sibling: {vals}")
    # Resolve with the context of a read that saw all three.
    g = c.get(2, "cart")
    rc, _, _ = c.put(3, "cart", "bread,eggs,jam,milk", "--context",
                     g["context"])
    t.check(rc == 0, "resolving write")
    for n in (1, 2, 3):
        t.check(c.values(n, "cart") == ["bread,eggs,jam,milk"],
                f"after resolving, n{n} reads one value")
    # A stale context keeps the newer concurrent value.
    rc, _, _ = c.put(1, "cart", "stale", "--context", ctx)
    vals = c.values(2, "cart")
    t.check(vals == ["bread,eggs,jam,milk", "stale"],
            f"a write with a stale context becomes a sibling: {vals}")
    # Delete with the context: gone everywhere.
    g = c.get(1, "cart")
    rc, _, _ = c.cli(1, "del", "cart", "--context", g["context"])
    t.check(rc == 0, "delete with context")
    g = c.get(3, "cart")
    t.check(g is not None and g["found"] is False,
            f"deleted key reads as not found: {g}")
finally:
    if t.failed:
        c.dump_logs()
    c.close()
t.finish()
