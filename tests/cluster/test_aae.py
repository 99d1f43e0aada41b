#!/usr/bin/env python3
"""Anti-entropy with real processes: a node whose data directory was wiped
gets every key back through Merkle-tree exchanges, without any reads.
Usage: test_aae.py KVORUMD KVORUM_CLI
"""
import shutil
import sys

from kvtest import Checks, Cluster

kvorumd, cli = sys.argv[1], sys.argv[2]
t = Checks("aae")
c = Cluster(kvorumd, cli, 3,
            node_flags=["--n", "3", "--aae-interval-ms", "50"],
            name="kvaae")
try:
    c.start_all()
    t.check(c.wait_all_up([1, 2, 3]) is not None, "three nodes up")
    keys = [f"a{i}" for i in range(150)]
    ok = all(c.put(1 + i % 2, k, f"v-{k}")[0] == 0 for i, k in enumerate(keys))
    t.check(ok, "150 writes")
    t.check(c.stop(3) == 0, "n3 stops cleanly on SIGTERM")
    shutil.rmtree(c.data_dir(3))
    c.start(3)
    t.check(c.wait_all_up([1, 2, 3]) is not None, "n3 is back with no data")
    starts = [l for l in c.log_text(3).splitlines() if "listening" in l]
    t.check(len(starts) == 2 and "(new)" in starts[1],
            "n3 started on an empty data directory")
    took = c.wait_until(
        lambda: all(c.values(3, k, "--local") == [f"v-{k}"] for k in keys),
        90, poll=0.5)
    t.check(took is not None,
            f"anti-entropy restored all {len(keys)} keys on n3 "
            f"({took and round(took, 1)} s)")
    ex = c.stat_sum([1, 2, 3], "aae_exchanges")
    rep = c.stat_sum([1, 2, 3], "aae_keys_repaired")
    t.check(ex > 0 and rep > 0, f"{ex} exchanges, {rep} keys repaired")
    # Trees agree now: further exchanges repair nothing.
    before = c.stat_sum([1, 2, 3], "aae_keys_repaired")
    c.wait_until(lambda: c.stat_sum([1, 2, 3], "aae_exchanges") > ex + 30, 30)
    after = c.stat_sum([1, 2, 3], "aae_keys_repaired")
    t.check(after == before,
            f"once converged, exchanges repair nothing ({before} -> {after})")
finally:
    if t.failed:
        c.dump_logs()
    c.close()
t.finish()
