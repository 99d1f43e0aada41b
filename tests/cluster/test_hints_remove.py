#!/usr/bin/env python3
"""Hints for a node that is removed while down, with real processes: writes
made while n4 is down leave hints on the fallbacks; a fallback restarted
meanwhile still counts its hints; after `kvorum remove n4` the hints go to
the keys' new primaries, so every key ends up on all N of them (checked
with get --local on each) and no hint is left.
Usage: test_hints_remove.py KVORUMD KVORUM_CLI
"""
import sys

from kvtest import Checks, Cluster

kvorumd, cli = sys.argv[1], sys.argv[2]
t = Checks("hints_remove")
c = Cluster(kvorumd, cli, 4,
            node_flags=["--n", "3", "--hint-interval-ms", "200"],
            name="kvhintrm")
try:
    c.start_all()
    t.check(c.wait_all_up([1, 2, 3, 4]) is not None, "four nodes up")
    t.check(c.kill9_seen_down(4, (1, 2, 3)) is not None, "n4 is seen down")
    keys = [f"r{i}" for i in range(60)]
    owned = c.primaries_include(1, keys, "n4")
    t.check(len(owned) > 5, f"{len(owned)} of the keys have n4 as a primary")
    res = [c.put(1 + i % 3, k, f"v-{k}") for i, k in enumerate(keys)]
    t.check(all(r[0] == 0 for r in res),
            f"writes with n4 down succeed: {[r[2] for r in res if r[0]][:2]}")
    pending = {i: c.stats(i).get("hints_pending", 0) for i in (1, 2, 3)}
    t.check(sum(pending.values()) >= len(owned),
            f"fallbacks keep hints for n4: {pending}")

    # A fallback that restarts still counts the hints it keeps.
    holder = max(pending, key=pending.get)
    t.check(c.stop(holder) == 0, f"n{holder} stops cleanly")
    c.start(holder)
    t.check(c.wait_all_up([1, 2, 3]) is not None, f"n{holder} is back")
    after = c.stats(holder).get("hints_pending", -1)
    t.check(after == pending[holder],
            f"n{holder} counts its {pending[holder]} hints after a restart "
            f"(says {after})")

    # n4 is not coming back: remove it. Its partitions get new owners and
    # the hints follow them.
    rc, _, err = c.cli(1, "remove", "n4")
    t.check(rc == 0, f"kvorum remove n4: {err.strip()}")
    t.check(c.wait_until(lambda: all("n4" not in c.states(i)
                                     or c.states(i).get("n4") == "removed"
                                     for i in (1, 2, 3)), 30) is not None,
            "every node sees n4 removed")
    took = c.wait_until(lambda: c.stat_sum([1, 2, 3], "hints_pending") == 0,
                        60, poll=0.25)
    t.check(took is not None,
            f"no hint is left ({c.stat_sum([1, 2, 3], 'hints_pending')})")

    def on_all_primaries():
        for k in owned:
            pl = c.preflist(1, k)
            if not pl or len(pl[1]) != 3 or "n4" in pl[1]:
                return False
            for p in pl[1]:
                if c.values(int(p[1:]), k, "--local") != [f"v-{k}"]:
                    return False
        return True
    took = c.wait_until(on_all_primaries, 60, poll=0.5)
    t.check(took is not None,
            "every key n4 owned is on all three of its new primaries")
finally:
    if t.failed:
        c.dump_logs()
    c.close()
t.finish()
