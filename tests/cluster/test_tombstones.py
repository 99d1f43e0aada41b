#!/usr/bin/env python3
"""Deletes with real processes: a deleted key stays deleted when the
replica that missed the delete returns, and tombstones are reaped only once
every replica has them and the grace period passed.
Usage: test_tombstones.py KVORUMD KVORUM_CLI
"""
import sys

from kvtest import Checks, Cluster

kvorumd, cli = sys.argv[1], sys.argv[2]
t = Checks("tombstones")
c = Cluster(kvorumd, cli, 3,
            node_flags=["--n", "3", "--aae-interval-ms", "50",
                        "--tombstone-grace-ms", "1500"],
            name="kvtomb")
try:
    c.start_all()
    t.check(c.wait_all_up([1, 2, 3]) is not None, "three nodes up")
    keys = [f"t{i}" for i in range(20)]
    for k in keys:
        c.put(1, k, f"v-{k}")
    t.check(c.wait_until(lambda: all(c.values(3, k, "--local") == [f"v-{k}"]
                                     for k in keys), 10) is not None,
            "n3 holds the keys")
    c.kill9_seen_down(3, (1,))
    ok = True
    for k in keys:
        g = c.get(1, k)
        rc, _, _ = c.cli(1, "del", k, "--context", g["context"])
        ok = ok and rc == 0
    t.check(ok, "deletes succeed with n3 down")
    t.check(all(c.get(2, k)["found"] is False for k in keys),
            "deleted keys read as not found")
    c.start(3)
    t.check(c.wait_all_up([1, 2, 3]) is not None, "n3 is back, with the "
            "old values")
    # Reads never bring the value back, through any coordinator.
    back = [k for k in keys for n in (1, 2, 3)
            if (c.get(n, k) or {}).get("found")]
    t.check(not back, f"no deleted key comes back through a read: {back[:5]}")
    took = c.wait_until(
        lambda: all(not (c.get(3, k, "--local") or {"found": True})["found"]
                    for k in keys), 60, poll=0.5)
    t.check(took is not None,
            "the tombstones reached n3 (read repair / anti-entropy)")
    # Everyone has the tombstones and the grace period passes: reads reap.
    def reaped():
        for k in keys:
            c.get(1, k, "--r", "3")
        return c.stat_sum([1, 2, 3], "tombstones_reaped") >= 3 * len(keys)
    took = c.wait_until(reaped, 30, poll=0.5)
    t.check(took is not None,
            f"tombstones are reaped on every replica "
            f"({c.stat_sum([1, 2, 3], 'tombstones_reaped')})")
    # And the keys stay gone, also after more anti-entropy rounds.
    ex = c.stat_sum([1, 2, 3], "aae_exchanges")
    c.wait_until(lambda: c.stat_sum([1, 2, 3], "aae_exchanges") > ex + 30, 30)
    back = [k for k in keys for n in (1, 2, 3)
            if (c.get(n, k, "--local") or {}).get("found")]
    t.check(not back, f"reaped keys stay deleted: {back[:5]}")
    # A delete seen by every replica is reaped after the grace period.
    c.put(2, "gone", "soon")
    g = c.get(2, "gone", "--r", "3")
    c.cli(2, "del", "gone", "--context", g["context"], "--w", "3")
    before = c.stat_sum([1, 2, 3], "tombstones_reaped")
    took = c.wait_until(lambda: c.stat_sum([1, 2, 3], "tombstones_reaped")
                        >= before + 3, 20)
    t.check(took is not None, "a delete acknowledged by all is reaped after "
            "the grace period without any read")
finally:
    if t.failed:
        c.dump_logs()
    c.close()
t.finish()
