#!/usr/bin/env python3
"""Two regions of three nodes (us-east n1-n3, eu-west n4-n6), created with
--replicas us-east=3,eu-west=3: every key has six primaries, three per
region. With eu-west paused (SIGSTOP), local_quorum and local_one reads and
writes through us-east go on, each_quorum and quorum (4 of 6) fail with a
clear error; after SIGCONT each_quorum works again and eu-west catches up
on the writes it missed. Also: `kvorum status` groups members by region,
and the CLI's --region makes local levels count that region.
Usage: test_regions.py KVORUMD KVORUM_CLI
"""
import sys

from kvtest import Checks, Cluster

kvorumd, cli = sys.argv[1], sys.argv[2]
t = Checks("regions")
US, EU = [1, 2, 3], [4, 5, 6]
ZONES = {1: "a", 2: "b", 3: "c", 4: "a", 5: "b", 6: "c"}
c = Cluster(kvorumd, cli, 6,
            node_flags=["--replicas", "us-east=3,eu-west=3",
                        "--timeout-ms", "3000",
                        "--aae-interval-ms", "50", "--hint-interval-ms", "100"],
            name="kvregions")


def region_of(i):
    return "us-east" if i in US else "eu-west"


def status_sections(text):
    """{region: [member ids]} from the human status output."""
    out, cur = {}, None
    for line in text.splitlines():
        if line.startswith("Region: "):
            cur = line.split()[1]
            out[cur] = []
        elif cur and line.split() and line.split()[1].startswith("n"):
            out[cur].append(line.split()[1])
    return out


try:
    for i in US + EU:
        c.start(i, ["--region", region_of(i), "--zone", ZONES[i]])
    t.check(c.wait_all_up(US + EU, timeout=40) is not None, "six nodes up")

    rc, out, err = c.cli(1, "status")
    secs = status_sections(out)
    t.check(rc == 0 and secs.get("us-east") == ["n1", "n2", "n3"] and
            secs.get("eu-west") == ["n4", "n5", "n6"],
            f"status groups members by region: {secs}")
    st = c.status(1)
    t.check(st is not None and all(
        {"id", "peer", "listen", "region", "state", "partitions"} <= set(m)
        for m in st["members"]), "status --json keeps its member fields")

    pl = c.preflist(1, "some-key")
    t.check(pl is not None and sorted(pl[1]) ==
            ["n1", "n2", "n3", "n4", "n5", "n6"],
            f"a key has six primaries, three per region: {pl}")

    rc, _, err = c.put(1, "before", "b0", "--w", "each_quorum")
    t.check(rc == 0, f"each_quorum write with both regions up: {err!r}")

    for i in EU:
        c.pause(i)
    seen = c.wait_until(lambda: all(c.states(i).get(f"n{j}") == "down"
                                    for i in US for j in EU), 20)
    t.check(seen is not None, "us-east sees eu-west (SIGSTOP) down")

    keys = [f"p{i}" for i in range(10)]
    res = [c.put(US[i % 3], k, f"v-{k}", "--w", "local_quorum")
           for i, k in enumerate(keys)]
    t.check(all(r[0] == 0 for r in res),
            f"local_quorum writes go on without eu-west: "
            f"{[r[2] for r in res if r[0]]}")
    t.check(all(c.values(1, k, "--r", "local_quorum") == [f"v-{k}"]
                for k in keys),
            "local_quorum reads go on and see the writes")
    rc, _, err = c.put(1, "lone", "x", "--w", "local_one")
    t.check(rc == 0, f"local_one write goes on: {err!r}")

    rc, _, err = c.put(1, "each", "x", "--w", "each_quorum")
    t.check(rc == 1 and "each_quorum" in err and "eu-west" in err,
            f"each_quorum write fails naming the region: {err!r}")
    rc, _, err = c.cli(1, "get", "p1", "--r", "each_quorum")
    t.check(rc == 1 and "each_quorum" in err and "eu-west" in err,
            f"each_quorum read fails naming the region: {err.strip()!r}")
    rc, _, err = c.put(1, "q", "x", "--w", "quorum")
    t.check(rc == 1 and "4" in err,
            f"quorum write (4 of 6) fails with 3 up: {err!r}")
    rc, _, err = c.cli(1, "--region", "eu-west", "get", "p1",
                       "--r", "local_quorum")
    t.check(rc == 1 and "eu-west" in err,
            f"--region eu-west makes local_quorum count eu-west: "
            f"{err.strip()!r}")
    rc, _, err = c.cli(1, "--region", "us-east", "put", "routed", "r",
                       "--w", "local_quorum")
    t.check(rc == 0, f"--region us-east local_quorum write: {err!r}")
    held = [k for k in keys if c.values(1, k, "--local") == [f"v-{k}"]]
    t.check(len(held) == len(keys), "n1 holds the writes made meanwhile")

    for i in EU:
        c.resume(i)
    t.check(c.wait_all_up(US + EU, timeout=30) is not None,
            "eu-west is back up after SIGCONT")
    took = c.wait_until(lambda: c.put(1, "after", "a1",
                                      "--w", "each_quorum")[0] == 0, 15)
    t.check(took is not None, "each_quorum writes work again")
    took = c.wait_until(lambda: all(c.values(j, k, "--local") == [f"v-{k}"]
                                    for j in EU for k in keys), 30)
    t.check(took is not None,
            f"eu-west holds the writes made while it was paused "
            f"({took and round(took, 1)} s)")
    took = c.wait_until(lambda: all(c.values(j, "routed", "--local") == ["r"]
                                    for j in EU), 30)
    t.check(took is not None, "eu-west holds the routed write too")
finally:
    if t.failed:
        c.dump_logs()
    c.close()
t.finish()
