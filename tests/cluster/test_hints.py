#!/usr/bin/env python3
"""Sloppy quorum and hinted handoff with real processes: writes made while
a primary is down go to fallbacks as hints and reach the primary after it
returns (checked with get --local); --no-sloppy refuses instead.
Usage: test_hints.py KVORUMD KVORUM_CLI
"""
import sys

from kvtest import Checks, Cluster

kvorumd, cli = sys.argv[1], sys.argv[2]
t = Checks("hints")
c = Cluster(kvorumd, cli, 4,
            node_flags=["--n", "3", "--hint-interval-ms", "200"],
            name="kvhints")
try:
    c.start_all()
    t.check(c.wait_all_up([1, 2, 3, 4]) is not None, "four nodes up")
    t.check(c.kill9_seen_down(4, (1, 2, 3)) is not None, "n4 is seen down")
    keys = [f"h{i}" for i in range(60)]
    owned = c.primaries_include(1, keys, "n4")
    t.check(len(owned) > 5, f"{len(owned)} of the keys have n4 as a primary")
    res = [c.put(1 + i % 3, k, f"v-{k}") for i, k in enumerate(keys)]
    t.check(all(r[0] == 0 for r in res),
            "writes with a primary down succeed (sloppy quorum): "
            f"{[r[2] for r in res if r[0]][:2]}")
    stored = c.stat_sum([1, 2, 3], "hints_stored")
    t.check(stored >= len(owned),
            f"fallbacks keep hints for n4 ({stored} hints)")

    # A strict write needs the primaries themselves. Use keys of their own:
    # a failed write may still have reached one replica (as in Dynamo).
    c.kill9_seen_down(3, (1, 2))
    both = [k for k in (f"strict{i}" for i in range(200))
            if {"n3", "n4"} <= set((c.preflist(1, k) or (0, [], []))[1])]
    t.check(len(both) >= 2, f"keys with n3 and n4 as primaries: {both[:2]}")
    if len(both) >= 2:
        rc, _, err = c.put(1, both[0], "strict", "--no-sloppy")
        t.check(rc == 1 and "replicas" in err,
                f"--no-sloppy with 2 of 3 primaries down fails: {err.strip()!r}")
        rc, _, err = c.put(1, both[1], "sloppy")
        t.check(rc == 0, f"a write with sloppy quorum succeeds {err}")
    c.start(3)
    c.start(4)
    t.check(c.wait_all_up([1, 2, 3, 4]) is not None, "n3 and n4 are back")
    took = c.wait_until(
        lambda: all(c.values(4, k, "--local") == [f"v-{k}"] for k in owned),
        30, poll=0.25)
    t.check(took is not None,
            f"hints reached n4 after it returned ({took and round(took, 1)} s)")
    t.check(c.wait_until(lambda: c.stat_sum([1, 2, 3, 4], "hints_pending")
                         == 0, 20) is not None,
            "delivered hints are deleted")
    t.check(c.stat_sum([1, 2, 3, 4], "hints_delivered") >= len(owned),
            "stats count delivered hints")
finally:
    if t.failed:
        c.dump_logs()
    c.close()
t.finish()
