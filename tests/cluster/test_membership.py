#!/usr/bin/env python3
"""Cluster formation and failure detection with real kvorumd processes.

3 and 5 nodes started together from seeds: every node sees every other up
and all agree on one ring. A node killed with kill -9 is seen down by every
other node within the target (5 s with default settings).
Usage: test_membership.py KVORUMD KVORUM_CLI [--light]
"""
import sys
import time

from kvtest import Checks, Cluster

kvorumd, cli = sys.argv[1], sys.argv[2]
light = "--light" in sys.argv[3:]  # the sanitizer build
t = Checks("membership")


def ring_versions(c, nodes):
    out = {}
    for i in nodes:
        r = c.cli_json(i, "ring")
        out[i] = None if r is None else (r["version"], tuple(
            tuple(p["owners"]) for p in r["partitions"]))
    return out


for size in (3, 5):
    c = Cluster(kvorumd, cli, size, name=f"kvmember{size}")
    try:
        c.start_all()
        took = c.wait_all_up(range(1, size + 1), timeout=20)
        t.check(took is not None,
                f"{size} nodes from seeds: every node sees every other up "
                f"({took and round(took, 2)} s)")
        agreed = c.wait_until(
            lambda: len(set(ring_versions(c, range(1, size + 1)).values()))
            == 1, 10)
        rings = ring_versions(c, range(1, size + 1))
        t.check(agreed is not None and None not in rings.values(),
                f"{size} nodes agree on one ring")
        r = c.cli_json(1, "ring")
        members = {n["id"] for n in r["nodes"]} if r else set()
        t.check(members == {f"n{i}" for i in range(1, size + 1)},
                f"the ring of {size} nodes holds them all: {sorted(members)}")
        st = c.status(1)
        parts = [m["partitions"] for m in st["members"]] if st else []
        t.check(sum(parts) == r["q"] and max(parts) - min(parts) <= 1,
                f"partitions are balanced: {parts}")
        if size == 5:
            # kill -9 one node: the others see it down within 5 s (the
            # sanitizer build, whose every CLI poll is slower: 10 s).
            bound = 10.0 if light else 5.0
            c.kill9(3)
            t0 = time.monotonic()
            others = [1, 2, 4, 5]
            took = c.wait_until(
                lambda: all(c.states(i).get("n3") == "down" for i in others),
                15)
            t.check(took is not None and took <= bound,
                    f"a killed node is seen down by every other node within "
                    f"{bound:g} s ({took and round(took, 2)} s)")
            t.check(all(c.states(i).get(f"n{j}") == "up"
                        for i in others for j in others),
                    "no live node is marked down")
    finally:
        if t.failed:
            c.dump_logs()
        c.close()

t.finish()
