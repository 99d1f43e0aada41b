#!/usr/bin/env python3
"""A replica that comes back is caught up in seconds, in every cluster
shape (issue #12), through the real binaries:

 1. Three nodes, N=3, --aae-interval-ms 600000 (so hints alone must do it):
    kill -9 n3, 300 writes through n1 (W=2), restart n3: n3 holds all 300
    on its own replica (get --local) within 10 s of answering again.
 2. The same with n3 SIGSTOPped until seen down, then SIGCONT.
 3. 10 000 hints for n3 drain within 30 s after it returns.
 4. Two regions of three (--replicas r1=3,r2=3): r2 paused, 50 local_quorum
    writes through r1, r2 resumed: every r2 node holds the 50 within 15 s.
 5. A wiped node (2000 keys, same id, empty disk) holds every key within
    60 s at the default --aae-interval-ms (catch-up anti-entropy).

Prints each time it measured. Keys are written and counted with
kvtest-keys (libkvorum, many requests in flight).
Usage: test_catchup.py KVORUMD KVORUM_CLI KVTEST_KEYS
"""
import shutil
import subprocess
import sys
import time

from kvtest import Checks, Cluster

kvorumd, cli, keys_bin = sys.argv[1], sys.argv[2], sys.argv[3]
t = Checks("catchup")


def keys(c, i, mode, prefix, count, level=None, first=0):
    """Runs kvtest-keys against node i; returns the number it printed, or
    -1 when it failed."""
    cmd = [keys_bin, c.listen(i), mode, prefix, str(first), str(count)]
    if level:
        cmd.append(level)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    try:
        return int(r.stdout.strip()) if r.returncode == 0 else -1
    except ValueError:
        return -1


def held(c, i, prefix, count):
    return keys(c, i, "count", prefix, count) == count


def timed(c, pred, timeout):
    t0 = time.monotonic()
    took = c.wait_until(pred, timeout, poll=0.2)
    return None if took is None else round(time.monotonic() - t0, 1)


# ---- 1-3: three nodes, N=3, anti-entropy off ----
c = Cluster(kvorumd, cli, 3, node_flags=["--aae-interval-ms", "600000"],
            name="kvcatchup")
try:
    c.start_all()
    t.check(c.wait_all_up([1, 2, 3]) is not None, "three nodes up")

    t.check(c.kill9_seen_down(3, (1, 2)) is not None, "n3 killed, seen down")
    acked = keys(c, 1, "put", "a", 300)
    t.check(acked == 300, f"300 writes (W=2) through n1 with n3 down: {acked}")
    c.start(3)
    t.check(c.wait_ready(3) is not None, "n3 answers again")
    took = timed(c, lambda: held(c, 3, "a", 300), 10)
    t.check(took is not None,
            f"n3 holds all 300 on its own replica {took} s after answering "
            "(hints alone)")
    print(f"measured: kill -9 and restart, 300 writes: {took} s")

    c.pause(3)
    seen = c.wait_until(lambda: all(c.states(j).get("n3") == "down"
                                    for j in (1, 2)), 20)
    t.check(seen is not None, "n3 paused (SIGSTOP), seen down")
    acked = keys(c, 1, "put", "b", 300)
    t.check(acked == 300, f"300 writes through n1 with n3 paused: {acked}")
    c.resume(3)
    took = timed(c, lambda: held(c, 3, "b", 300), 10)
    t.check(took is not None,
            f"n3 holds all 300 {took} s after SIGCONT (hints alone)")
    print(f"measured: SIGSTOP and SIGCONT, 300 writes: {took} s")

    # After a pause the detector expects longer gaps (phi accrual learns
    # the inter-arrival times): give it longer to see n3 down this time.
    t.check(c.kill9_seen_down(3, (1, 2), timeout=60) is not None,
            "n3 killed again, seen down")
    acked = keys(c, 1, "put", "c", 10000)
    t.check(acked == 10000, f"10000 writes with n3 down: {acked}")
    pending = c.stat_sum([1, 2], "hints_pending")
    t.check(pending >= 10000, f"the coordinators keep {pending} hints for n3")
    c.start(3)
    t.check(c.wait_ready(3) is not None, "n3 answers again")
    took = timed(c, lambda: c.stat_sum([1, 2], "hints_pending") == 0, 30)
    t.check(took is not None, f"10000 hints drained in {took} s")
    print(f"measured: 10000 hints drained: {took} s")
    t.check(held(c, 3, "c", 10000), "n3 holds the 10000 writes")
    kept = c.stat_sum([1, 2], "hints_kept")
    t.check(kept >= 10600, f"stats count the coordinator hints ({kept})")
finally:
    if t.failed:
        c.dump_logs()
    c.close()

# ---- 4: two regions, r2 paused ----
R1, R2 = [1, 2, 3], [4, 5, 6]
c = Cluster(kvorumd, cli, 6,
            node_flags=["--replicas", "r1=3,r2=3", "--aae-interval-ms",
                        "600000"], name="kvcatchup2")
try:
    for i in R1 + R2:
        c.start(i, ["--region", "r1" if i in R1 else "r2"])
    t.check(c.wait_all_up(R1 + R2, timeout=40) is not None, "six nodes up")
    for i in R2:
        c.pause(i)
    seen = c.wait_until(lambda: all(c.states(i).get(f"n{j}") == "down"
                                    for i in R1 for j in R2), 20)
    t.check(seen is not None, "r1 sees r2 (SIGSTOP) down")
    acked = keys(c, 1, "put", "r", 50, "local_quorum")
    t.check(acked == 50, f"50 local_quorum writes through r1: {acked}")
    for i in R2:
        c.resume(i)
    took = timed(c, lambda: all(held(c, i, "r", 50) for i in R2), 15)
    t.check(took is not None,
            f"every r2 node holds the 50 writes {took} s after SIGCONT")
    print(f"measured: region r2 paused, 50 local_quorum writes: {took} s")
finally:
    if t.failed:
        c.dump_logs()
    c.close()

# ---- 5: a wiped node, default anti-entropy interval ----
c = Cluster(kvorumd, cli, 3, name="kvcatchup3")
try:
    c.start_all()
    t.check(c.wait_all_up([1, 2, 3]) is not None, "three nodes up")
    acked = keys(c, 1, "put", "w", 2000, "all")
    t.check(acked == 2000, f"2000 writes (W=all): {acked}")
    c.kill9(3)
    shutil.rmtree(c.data_dir(3), ignore_errors=True)
    c.start(3)
    t.check(c.wait_ready(3) is not None, "n3 answers again on an empty disk")
    took = timed(c, lambda: held(c, 3, "w", 2000), 60)
    t.check(took is not None,
            f"the wiped n3 holds all 2000 keys {took} s after answering "
            "(catch-up anti-entropy, default interval)")
    print(f"measured: wiped node, 2000 keys: {took} s")
    ex = c.stat_sum([1, 2, 3], "catchup_exchanges")
    t.check(ex > 0, f"stats count catch-up exchanges ({ex})")
    tr = c.cli_json(1, "transfers") or {}
    t.check({"catchup_partitions_left", "catchup_exchanges",
             "catchup_keys_sent", "catchup_keys_repaired"} <= set(tr),
            f"kvorum transfers shows the catch-up: {sorted(tr)}")
finally:
    if t.failed:
        c.dump_logs()
    c.close()
t.finish()
