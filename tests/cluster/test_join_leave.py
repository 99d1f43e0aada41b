#!/usr/bin/env python3
"""Ownership handoff with real processes: a fourth node joins and receives
its partitions while reads and writes go on without errors; a node leaves
without losing a key and exits by itself once its data is safe.
Usage: test_join_leave.py KVORUMD KVORUM_CLI [--light]
"""
import subprocess
import sys
import threading
import time

from kvtest import Checks, Cluster

kvorumd, cli = sys.argv[1], sys.argv[2]
light = "--light" in sys.argv[3:]  # the sanitizer build
t = Checks("join_leave")
c = Cluster(kvorumd, cli, 4,
            node_flags=["--n", "3", "--handoff-interval-ms", "100",
                        "--aae-interval-ms", "1000"],
            name="kvjoin")


class Load(threading.Thread):
    """Writes and reads through nodes 1..3 until stopped; counts errors."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop_flag = False
        self.ops = 0
        self.errors = []
        self.written = {}

    def run(self):
        i = 0
        deadline = time.monotonic() + 120
        while not self.stop_flag and time.monotonic() < deadline:
            k = f"live{i % 200}"
            v = f"x{i}"
            rc, _, err = c.put(1 + i % 3, k, v)
            if rc:
                self.errors.append(err.strip())
            else:
                self.written.setdefault(k, set()).add(v)
            g = c.get(1 + (i + 1) % 3, k)
            if g is None:
                self.errors.append(f"get {k} failed")
            self.ops += 2
            i += 1


try:
    # The first three form the cluster; n4 is not started yet.
    seeds3 = ",".join(c.peer(i) for i in (1, 2, 3))
    for i in (1, 2, 3):
        c.start(i, extra=["--seeds", seeds3], seeds=False)
    t.check(c.wait_all_up([1, 2, 3]) is not None, "three nodes up")
    # Every key costs CLI processes, which the sanitizers make slow: 100
    # keys there (--light), 300 otherwise.
    nkeys = 100 if light else 300
    keys = [f"j{i}" for i in range(nkeys)]
    t.check(all(c.put(1 + i % 3, k, f"v-{k}")[0] == 0
                for i, k in enumerate(keys)), f"{nkeys} writes")

    load = Load()
    load.start()
    c.start(4, extra=["--seeds", seeds3], seeds=False)
    t.check(c.wait_all_up([1, 2, 3, 4]) is not None, "n4 joined and is up")
    st = c.status(1)
    parts = {m["id"]: m["partitions"] for m in st["members"]} if st else {}
    t.check(parts.get("n4", 0) > 0, f"n4 owns partitions: {parts}")

    # The keys n4 owns, asked once (the ring no longer changes), and each
    # checked until it is there: the CLI runs twice per key otherwise, at
    # every poll, which under the sanitizers took most of this test's time.
    mine = c.primaries_include(4, keys, "n4")
    todo = set(mine)

    def n4_has_its_keys():
        for k in sorted(todo):
            if c.values(4, k, "--local") != [f"v-{k}"]:
                return False
            todo.discard(k)
        return True
    took = c.wait_until(n4_has_its_keys, 60, poll=0.5)
    t.check(took is not None,
            f"n4 holds every key it is a primary of ({took and round(took, 1)} s)")
    t.check(c.wait_until(lambda: all(not (c.cli_json(i, "transfers") or
                                          {"transfers": [1]})["transfers"]
                                      for i in (1, 2, 3, 4)), 30) is not None,
            "all transfers finished")
    load.stop_flag = True
    load.join(timeout=30)
    t.check(load.ops > 20 and not load.errors,
            f"{load.ops} reads and writes during the join, errors: "
            f"{load.errors[:3]}")

    # n2 leaves: it hands its data off and exits by itself.
    rc, out, err = c.cli(2, "leave")
    t.check(rc == 0, f"kvorum leave accepted: {out.strip()} {err.strip()}")
    try:
        code = c.procs[2].wait(timeout=90)
    except subprocess.TimeoutExpired:
        code = None
    t.check(code == 0, f"n2 exited by itself after handing off (exit {code})")
    t.check(c.wait_until(lambda: "n2" not in c.states(1), 20) is not None,
            "n2 is no longer a member")
    missing = [k for k in keys if c.values(1, k) != [f"v-{k}"]]
    t.check(not missing, f"no key was lost when n2 left: {missing[:5]}")
    lost_live = [k for k, vs in load.written.items()
                 if not set(c.values(3, k) or []) & vs]
    t.check(not lost_live, f"writes made during the join survive: {lost_live[:5]}")

    # Each (key, primary) pair asked once and checked until it holds: the
    # ring no longer changes, and every CLI call is a process (slow under
    # the sanitizers, where this test neared its timeout).
    pending = {(k, node) for k in keys[:100]
               for node in (c.preflist(1, k) or (0, [], []))[1]}

    def primaries_hold():
        for k, node in sorted(pending):
            if c.values(int(node[1:]), k, "--local") != [f"v-{k}"]:
                return False
            pending.discard((k, node))
        return True
    t.check(c.wait_until(primaries_hold, 60, poll=0.5) is not None,
            "after the leave, every primary holds its keys")
finally:
    if t.failed:
        c.dump_logs()
    c.close()
t.finish()
