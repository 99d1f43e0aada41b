#!/usr/bin/env python3
"""N=3 R=2 W=2 on three real nodes: quorum reads and writes, a dead node,
strict primaries, read-your-writes, and read repair after a restart.
Usage: test_quorum.py KVORUMD KVORUM_CLI
"""
import sys

from kvtest import Checks, Cluster

kvorumd, cli = sys.argv[1], sys.argv[2]
t = Checks("quorum")
# Read repair alone: no hints (a window of 1 ms) and no catch-up exchanges,
# which would bring a returning node up to date before any read
# (tests/cluster/test_catchup.py tests those).
c = Cluster(kvorumd, cli, 3,
            node_flags=["--n", "3", "--r", "2", "--w", "2",
                        "--hint-window-ms", "1", "--catchup-mb-per-s", "0"],
            name="kvquorum")
try:
    c.start_all()
    t.check(c.wait_all_up([1, 2, 3]) is not None, "three nodes up")
    keys = [f"k{i}" for i in range(30)]
    ok = all(c.put(1 + i % 3, k, f"v-{k}")[0] == 0 for i, k in enumerate(keys))
    t.check(ok, "30 writes through all three coordinators succeed")
    ok = all(c.values(1 + (i + 1) % 3, k) == [f"v-{k}"]
             for i, k in enumerate(keys))
    t.check(ok, "read-your-writes: every key reads back through another "
            "coordinator")
    # Every replica holds every key (N = nodes = 3).
    ok = c.wait_until(lambda: all(c.values(n, k, "--local") == [f"v-{k}"]
                                  for n in (1, 2, 3) for k in keys[:10]), 10)
    t.check(ok is not None, "all three replicas hold the writes")

    t.check(c.kill9_seen_down(3, (1, 2)) is not None,
            "n3 killed with -9 is seen down")
    down_keys = [f"d{i}" for i in range(20)]
    results = [c.put(1 + i % 2, k, f"w-{k}") for i, k in enumerate(down_keys)]
    t.check(all(r[0] == 0 for r in results),
            "writes go on with one node down (W=2 of N=3)")
    t.check(all(c.values(2 - i % 2, k) == [f"w-{k}"]
                for i, k in enumerate(down_keys)),
            "reads go on with one node down (R=2), and see the writes")
    rc, out, err = c.put(1, "strict", "x", "--pw", "3")
    t.check(rc == 1 and "up" in err and "3" in err,
            f"--pw 3 fails with a clear quorum error: {err!r}")
    rc, out, err = c.cli(1, "get", "k1", "--r", "3")
    t.check(rc == 1 and err.strip() != "",
            f"--r 3 fails with one replica down: {err.strip()!r}")

    # Restart n3: it missed down_keys; reading them repairs it.
    c.start(3)
    t.check(c.wait_all_up([1, 2, 3]) is not None, "n3 is back up")
    missing = [k for k in down_keys if c.values(3, k, "--local") != [f"w-{k}"]]
    t.check(len(missing) > 0,
            f"n3 missed writes made while it was down ({len(missing)} keys)")
    for k in down_keys:
        c.values(1, k, "--r", "3")
    took = c.wait_until(lambda: all(c.values(3, k, "--local") == [f"w-{k}"]
                                    for k in down_keys), 10)
    t.check(took is not None,
            "read repair brought n3 up to date on every key that was read")
    t.check(all(c.values(3, k) == [f"v-{k}"] for k in keys),
            "older keys read correctly through the restarted node")
    st = c.cli_json(1, "stats")
    t.check(st is not None and st.get("read_repairs", 0) > 0,
            f"stats count read repairs: {st and st.get('read_repairs')}")
finally:
    if t.failed:
        c.dump_logs()
    c.close()
t.finish()
