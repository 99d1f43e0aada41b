#!/usr/bin/env python3
"""A full disk: one real node whose data directory is a small tmpfs made by
the test. Writes fail with a clear error once it is full, the node does not
crash and keeps serving reads, it accepts writes again once there is room,
and every acknowledged write is there, also after a restart.
Needs root (mount); without it the test reports itself skipped (exit 77).
Usage: test_disk_full.py KVORUMD KVORUM_CLI
"""
import os
import subprocess
import sys
import tempfile

from kvtest import Checks, Cluster

if os.geteuid() != 0:
    print("disk_full: skipped: mounting a small tmpfs needs root")
    sys.exit(77)
kvorumd, cli = sys.argv[1], sys.argv[2]
t = Checks("disk_full")
mnt = tempfile.mkdtemp(prefix="kvfull-")
r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", mnt],
                   capture_output=True, text=True)
if r.returncode != 0:
    print(f"disk_full: skipped: cannot mount a tmpfs: {r.stderr.strip()}")
    os.rmdir(mnt)
    sys.exit(77)
c = Cluster(kvorumd, cli, 1, node_flags=["--n", "1", "--r", "1", "--w", "1"],
            name="kvfull")
c.data_dir = lambda i: os.path.join(mnt, f"n{i}")
try:
    c.start(1, seeds=False)
    t.check(c.wait_ready(1) is not None, "the node is up on a 3 MB disk")
    value = "x" * 60000
    acked, err = [], ""
    for i in range(200):
        rc, _, err = c.put(1, f"k{i}", value)
        if rc != 0:
            break
        acked.append(f"k{i}")
    t.check(0 < len(acked) < 200, f"{len(acked)} writes fit, then one failed")
    t.check("no space left" in err,
            f"the failure says the disk is full: {err!r}")
    t.check(c.alive(1), "the node is still running")
    rc, _, err2 = c.put(1, "small", "x")
    t.check(rc == 1 and "no space left" in err2,
            f"later writes fail at once with the same reason: {err2!r}")
    t.check(c.values(1, acked[0]) == [value] and
            c.values(1, acked[-1]) == [value],
            "reads go on while the disk is full")
    subprocess.run(["mount", "-o", "remount,size=64m", mnt], check=True)
    took = c.wait_until(lambda: c.put(1, "after", "room")[0] == 0, 20)
    t.check(took is not None,
            f"writes work again once there is room ({took and round(took, 1)} s)")
    t.check("storage accepts writes again" in c.log_text(1),
            "the log says the storage recovered")
    t.check(c.stop(1) == 0, "the node stops cleanly")
    c.start(1, seeds=False)
    t.check(c.wait_ready(1) is not None, "the node restarts")
    lost = [k for k in acked + ["after"]
            if c.values(1, k) not in ([value], ["room"])]
    t.check(not lost, f"every acknowledged write survived: lost {lost[:5]}")
finally:
    if t.failed:
        c.dump_logs()
    c.close()
    subprocess.run(["umount", "-l", mnt], capture_output=True)
    try:
        os.rmdir(mnt)
    except OSError:
        pass
t.finish()
