#!/usr/bin/env python3
"""Failure detection under full load: three real nodes driven by
kvorum-bench at full speed for 60 s; no node may be marked down by any
other at any point (the phi-accrual detector must not mistake a busy node
for a dead one). Then a node killed with -9 is still seen down in time.
Usage: test_load_fd.py KVORUMD KVORUM_CLI KVORUM_BENCH [SECONDS]
"""
import subprocess
import sys
import time

from kvtest import Checks, Cluster

kvorumd, cli, bench = sys.argv[1], sys.argv[2], sys.argv[3]
secs = float(sys.argv[4]) if len(sys.argv) > 4 else 60.0
t = Checks("load_fd")
c = Cluster(kvorumd, cli, 3, name="kvloadfd")
try:
    c.start_all()
    t.check(c.wait_all_up([1, 2, 3]) is not None, "three nodes up")
    hosts = ",".join(c.listen(i) for i in (1, 2, 3))
    load = subprocess.Popen(
        [bench, "--hosts", hosts, "--workload", "a", "--keys", "20000",
         "--value-size", "100", "--distribution", "uniform",
         "--concurrency", "64", "--connections", "4", "--duration",
         str(secs), "--seed", "1", "--load"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    downs = []
    polls = 0
    deadline = time.monotonic() + secs + 60
    while load.poll() is None and time.monotonic() < deadline:
        for i in (1, 2, 3):
            for node, state in c.states(i).items():
                if state != "up":
                    downs.append((round(time.monotonic(), 1), f"n{i}", node,
                                  state))
        polls += 1
        time.sleep(0.5)
    out, _ = load.communicate(timeout=60)
    run = [line for line in out.splitlines() if line.startswith("run:")]
    t.check(load.returncode == 0 and run,
            f"the load ran: {run[0] if run else out[-200:]}")
    t.check(polls > secs, f"membership polled {polls} times during the load")
    t.check(not downs, f"no node was marked down under full load: {downs[:5]}")
    logged = [line for i in (1, 2, 3) for line in c.log_text(i).splitlines()
              if " is down" in line]
    t.check(not logged, f"no node logged a member down: {logged[:3]}")
    took = c.kill9_seen_down(2, (1, 3))
    t.check(took is not None and took <= 5.0,
            f"a killed node is still seen down within 5 s ({took and round(took, 2)} s)")
finally:
    if t.failed:
        c.dump_logs()
    c.close()
t.finish()
