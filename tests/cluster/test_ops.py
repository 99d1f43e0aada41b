#!/usr/bin/env python3
"""Operating kvorum (issue #16) through the real binaries:

 1. --version on kvorumd, kvorum and kvorum-bench.
 2. Config files: each node's file says what its flags say, and
    `kvorumd --print-config` gives the same effective settings for both
    (and its output, saved, is a config file that gives them again); a
    flag wins over the file; a typo'd key and a bad value are refused
    (exit 2) with FILE:LINE and the key.
 3. A cluster started from config files only forms; `kvorum status --json`
    shows each member's version. Node 1 runs under a fake systemd
    (NOTIFY_SOCKET, a Python datagram socket; WATCHDOG_USEC), node 2 with
    an abstract socket name: READY=1 once in the ring, WATCHDOG=1, and
    STOPPING=1 at SIGTERM, in that order.
 4. The same nodes restarted with the same settings as flags, on the same
    data: `kvorum status --json` is the same as with the config files
    (ring, members, partitions, versions), and each node remembered its
    members (saved membership).
 5. Backup and restore: keys a* (acknowledged), a backup of n3 alone (the
    old backup), keys b*, then `kvorum backup --all` while kvorum-bench
    writes; every data directory wiped and restored from the backups; the
    cluster starts, holds every a* and b* key (read at R=all), and takes
    new writes (c*).
 6. n3 restored from the old backup (older than b* and c*): a new
    incarnation, and within a bounded poll its own replica holds every b*
    and c* key (catch-up anti-entropy).
 7. `kvorum repair` (all partitions, and one) queues exchanges that
    `kvorum transfers` shows running to the end; `kvorum compact` runs.

Usage: test_ops.py KVORUMD KVORUM_CLI KVORUM_BENCH KVTEST_KEYS [--light]
  --light: fewer keys and a shorter load (the sanitizer build)
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

from kvtest import Checks, Cluster, _die_with_parent

kvorumd, cli, bench, keys_bin = sys.argv[1:5]
light = "--light" in sys.argv[5:]
A_KEYS = 300 if light else 1000      # acknowledged before any backup
B_KEYS = 150 if light else 500       # after the old backup
C_KEYS = 100                          # after the restore
LOAD_S = 3 if light else 5            # kvorum-bench during backup --all
CATCHUP_S = 60 if light else 30       # bound for the old backup's catch-up

t = Checks("ops")
FLAGS = ["--aae-interval-ms", "1000", "--hint-interval-ms", "100",
         "--handoff-interval-ms", "100", "--gossip-interval-ms", "200",
         "--partitions", "16"]


def run(args, timeout=60, env=None):
    r = subprocess.run([str(a) for a in args], capture_output=True,
                       text=True, timeout=timeout, env=env)
    return r.returncode, r.stdout, r.stderr


last_keys_err = [""]


def keys(c, i, mode, prefix, count, level=None):
    """kvtest-keys against node i; the number it printed, or -1. Its
    errors (counted, with the first one) go to last_keys_err."""
    cmd = [keys_bin, c.listen(i), mode, prefix, "0", str(count)]
    if level:
        cmd.append(level)
    rc, out, err = run(cmd, timeout=120)
    last_keys_err[0] = err.strip()
    try:
        return int(out.strip()) if rc == 0 else -1
    except ValueError:
        return -1


def node_flags(c, i):
    """Node i's settings as flags."""
    return ["--id", f"n{i}", "--listen", c.listen(i), "--peer", c.peer(i),
            "--data", c.data_dir(i), "--seeds", c.seeds()] + FLAGS


def write_conf(c, i):
    """Node i's settings as a config file (keys at the top and under
    [kvorumd], comments); returns its path."""
    f = node_flags(c, i)
    pairs = [(f[k][2:], f[k + 1]) for k in range(0, len(f), 2)]
    path = os.path.join(c.tmp, f"n{i}.conf")
    with open(path, "w") as out:
        out.write(f"# node n{i}\n")
        for n, (k, v) in enumerate(pairs):
            if n == 3:
                out.write("\n[kvorumd]\n")
            out.write(f"{k} = {v}   # from test_ops\n" if n == 1
                      else f"{k} = {v}\n")
    return path


def print_config(args):
    rc, out, err = run([kvorumd] + args + ["--print-config"])
    # The header names where the settings came from: not a setting.
    return rc, "\n".join(x for x in out.splitlines()
                         if not x.startswith("#")), err


def start_conf(c, i, conf, env=None):
    log = open(os.path.join(c.tmp, f"n{i}.log"), "ab")
    c.logs[i] = log
    c.procs[i] = subprocess.Popen([kvorumd, "--config", conf], stdout=log,
                                  stderr=log, env=env,
                                  preexec_fn=_die_with_parent)


class Notify:
    """A fake systemd: a unix datagram socket that records what it gets."""

    def __init__(self, name, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + name if abstract else name)
        self.env_name = "@" + name if abstract else name
        self.msgs = []
        self.sock.settimeout(0.2)
        self.stop = False
        self.th = threading.Thread(target=self._read, daemon=True)
        self.th.start()

    def _read(self):
        while not self.stop:
            try:
                self.msgs.append(self.sock.recv(4096).decode())
            except socket.timeout:
                continue
            except OSError:
                return

    def close(self):
        self.stop = True
        self.th.join(timeout=2)
        self.sock.close()

    def index(self, key):
        """Index of the first message holding the line key, or None."""
        for n, m in enumerate(list(self.msgs)):
            if key in m.split("\n"):
                return n
        return None


def status_view(st):
    """A status without what may differ from one start to the next."""
    if not st:
        return None
    return {"node": st["node"], "ring_version": st["ring_version"],
            "members": sorted((m["id"], m["listen"], m["peer"], m["region"],
                               m["zone"], m["state"], m["partitions"],
                               m["version"]) for m in st["members"])}


c = Cluster(kvorumd, cli, 3, node_flags=FLAGS, name="kvops")
notifiers = []
try:
    # ---- 1. versions ----
    for prog, name in ((kvorumd, "kvorumd"), (cli, "kvorum"),
                       (bench, "kvorum-bench")):
        rc, out, _ = run([prog, "--version"])
        t.check(rc == 0 and out.strip() == f"{name} 0.1.0",
                f"{name} --version: {out.strip()!r} (exit {rc})")

    # ---- 2. config files ----
    confs = {i: write_conf(c, i) for i in (1, 2, 3)}
    for i in (1, 2, 3):
        a = print_config(node_flags(c, i))
        b = print_config(["--config", confs[i]])
        t.check(a[0] == 0 and a == b,
                f"n{i}: --print-config of the flags = of the config file"
                f"{'' if a == b else f': {a} vs {b}'}")
    saved = os.path.join(c.tmp, "printed.conf")
    rc, out, _ = run([kvorumd, "--config", confs[1], "--print-config"])
    with open(saved, "w") as f:
        f.write(out)
    t.check(print_config(["--config", saved]) ==
            print_config(["--config", confs[1]]),
            "--print-config's output, saved, is a config file giving the "
            "same settings")
    rc, out, _ = print_config(["--config", confs[1], "--log-level", "debug"])
    t.check(rc == 0 and "log-level = debug" in out.splitlines(),
            "a flag wins over the config file")
    for name, text, expect, what in (
            ("typo", "# a typo on line 3\nid = n1\nlistne = 127.0.0.1:7101\n",
             ":3: unknown key 'listne'", "a typo'd key"),
            ("bad", "id = n1\npartitions = 48\n",
             ":2: partitions must be a power of two", "a bad value")):
        path = os.path.join(c.tmp, f"{name}.conf")
        with open(path, "w") as f:
            f.write(text)
        rc, _, err = run([kvorumd, "--config", path])
        t.check(rc == 2 and f"{path}{expect}" in err,
                f"{what} is refused with file:line and key: exit {rc}, "
                f"{err.strip().splitlines()[:1]}")

    # ---- 3. a cluster from config files only, under a fake systemd ----
    n1 = Notify(os.path.join(c.tmp, "notify.sock"))
    n2 = Notify(f"kvops-{os.getpid()}-n2", abstract=True)
    notifiers += [n1, n2]
    for i in (1, 2, 3):
        env = dict(os.environ)
        if i in (1, 2):
            env["NOTIFY_SOCKET"] = (n1 if i == 1 else n2).env_name
            env["WATCHDOG_USEC"] = "200000"
        start_conf(c, i, confs[i], env)
    up = c.wait_all_up([1, 2, 3], timeout=30)
    t.check(up is not None, "a cluster started from config files only forms")
    st = c.status(1)
    vers = {m["id"]: m.get("version") for m in (st or {}).get("members", [])}
    t.check(vers == {"n1": "0.1.0", "n2": "0.1.0", "n3": "0.1.0"},
            f"kvorum status --json shows each member's version: {vers}")
    rc, out, _ = c.cli(1, "status")
    t.check(rc == 0 and "Version" in out and "0.1.0" in out,
            "kvorum status shows a Version column")
    t.check("version 0.1.0" in c.log_text(1) and confs[1] in c.log_text(1),
            "the log says the version and the config file at start")
    for name, n in (("path", n1), ("abstract", n2)):
        ok = c.wait_until(lambda n=n: n.index("READY=1") is not None and
                          n.index("WATCHDOG=1") is not None, 10)
        t.check(ok is not None,
                f"NOTIFY_SOCKET ({name}): READY=1 and WATCHDOG=1 sent")
    ready = n1.msgs[n1.index("READY=1")] if n1.index("READY=1") is not None \
        else ""
    t.check("STATUS=serving clients on" in ready,
            f"READY=1 comes with a STATUS: {ready!r}")
    status_cfg = status_view(c.status(1))

    # ---- 4. the same nodes with flags, on the same data ----
    codes = [c.stop(i) for i in (3, 2, 1)]
    t.check(codes == [0, 0, 0], f"SIGTERM: every node exits 0 ({codes})")
    for name, n in (("path", n1), ("abstract", n2)):
        r, s = n.index("READY=1"), c.wait_until(
            lambda n=n: n.index("STOPPING=1") is not None, 5) and \
            n.index("STOPPING=1")
        t.check(r is not None and s is not None and r < s,
                f"NOTIFY_SOCKET ({name}): READY=1, then STOPPING=1 at "
                f"SIGTERM ({r}, {s} of {len(n.msgs)} messages)")
    c.start_all()
    t.check(c.wait_all_up([1, 2, 3], timeout=30) is not None,
            "restarted with flags")
    status_flags = status_view(c.status(1))
    t.check(status_cfg is not None and status_cfg == status_flags,
            "kvorum status --json is the same from config files and from "
            f"flags{'' if status_cfg == status_flags else f': {status_cfg} vs {status_flags}'}")
    t.check(all("members remembered from the last run" in c.log_text(i)
                for i in (1, 2, 3)),
            "every node remembered its members across the restart")

    # ---- 5. backup of every node while kvorum-bench writes; restore ----
    got = keys(c, 1, "put", "a", A_KEYS)
    t.check(got == A_KEYS, f"{A_KEYS} writes acknowledged: {got}")
    old = os.path.join(c.tmp, "backup-old")
    rc, out, err = c.cli(3, "--json", "backup", old)
    b = json.loads(out) if rc == 0 else {}
    t.check(rc == 0 and b.get("node") == "n3" and b.get("bytes", 0) > 0 and
            b.get("sequence", 0) > 0 and os.path.isdir(os.path.join(old, "n3")),
            f"kvorum backup of n3: {out.strip() or err.strip()}")
    rc, out, err = c.cli(3, "backup", old)
    t.check(rc == 1 and "exists already" in err,
            f"a backup never overwrites one: {err.strip()}")
    rc, out, err = c.cli(3, "backup", "relative/dir")
    t.check(rc == 1 and "absolute" in err, f"a relative DIR is refused: "
            f"{err.strip()}")
    inc_old = c.stats(3).get("incarnation", 0)
    got = keys(c, 2, "put", "b", B_KEYS)
    t.check(got == B_KEYS, f"{B_KEYS} more writes acknowledged: {got}")

    hosts = ",".join(c.listen(i) for i in (1, 2, 3))
    load = c.spawn("bench", [bench, "--hosts", hosts, "--workload",
                             "write-only", "--keys", "5000", "--value-size",
                             "200", "--concurrency", "16", "--duration",
                             str(LOAD_S), "--seed", "7", "--quiet"])
    time.sleep(1)
    every = os.path.join(c.tmp, "backup-all")
    rc, out, err = c.cli(1, "--json", "backup", "--all", every, timeout=120)
    res = json.loads(out) if out.strip() else {}
    done = sorted(x["node"] for x in res.get("backups", []))
    t.check(rc == 0 and done == ["n1", "n2", "n3"] and not res.get("failed")
            and load.poll() is None,
            f"kvorum backup --all while kvorum-bench writes: {done}, "
            f"failed {res.get('failed')}, {err.strip()}")
    for x in res.get("backups", []):
        print(f"measured: backup of {x['node']}: {x['bytes']} bytes, "
              f"sequence {x['sequence']}, {x['ms']} ms")
    rc, out, _ = c.cli(1, "backup", "--all", every)
    t.check(rc == 1, "backup --all into the same DIR fails for each node")
    load.wait(timeout=LOAD_S + 60)
    t.check(load.returncode == 0, f"kvorum-bench ran (exit {load.returncode})")

    codes = [c.stop(i) for i in (1, 2, 3)]
    for i in (1, 2, 3):
        shutil.rmtree(c.data_dir(i))
        shutil.copytree(os.path.join(every, f"n{i}"), c.data_dir(i))
    c.start_all()
    t.check(c.wait_all_up([1, 2, 3], timeout=30) is not None,
            "every node restored from its backup and started")
    # Every node's data came from its backup alone, so whatever a read
    # finds was in the backups; reads that fail (a replica still starting)
    # are tried again, for a few seconds.
    first = []

    def all_there():
        got = (keys(c, 1, "get", "a", A_KEYS, "all"),
               keys(c, 2, "get", "b", B_KEYS, "all"))
        first.append((got, last_keys_err[0]))
        return got == (A_KEYS, B_KEYS)
    there = c.wait_until(all_there, 15, poll=0.5)
    t.check(there is not None,
            f"every write acknowledged before the backup is there: "
            f"{first[-1]} (first read: {first[0]})")
    got = keys(c, 3, "put", "c", C_KEYS)
    t.check(got == C_KEYS, f"the restored cluster takes new writes: {got}")

    # ---- 6. one node restored from an old backup catches up ----
    c.stop(3)
    shutil.rmtree(c.data_dir(3))
    shutil.copytree(os.path.join(old, "n3"), c.data_dir(3))
    c.start(3)
    t.check(c.wait_ready(3) is not None, "n3 restarted on the old backup")
    inc_new = c.stats(3).get("incarnation", 0)
    t.check(inc_new > inc_old,
            f"n3 took a new incarnation ({inc_old} -> {inc_new})")
    t0 = time.monotonic()
    caught = c.wait_until(
        lambda: keys(c, 3, "count", "b", B_KEYS) == B_KEYS and
        keys(c, 3, "count", "c", C_KEYS) == C_KEYS, CATCHUP_S, poll=0.5)
    t.check(caught is not None,
            f"n3's own replica holds every b* and c* write within "
            f"{CATCHUP_S} s: {keys(c, 3, 'count', 'b', B_KEYS)}/{B_KEYS}, "
            f"{keys(c, 3, 'count', 'c', C_KEYS)}/{C_KEYS}")
    print(f"measured: old backup caught up in "
          f"{round(time.monotonic() - t0, 1)} s")

    # ---- 7. repair and compact ----
    t.check(c.wait_all_up([1, 2, 3], timeout=20) is not None, "all up")
    rep = c.cli_json(1, "repair")
    t.check(rep is not None and rep.get("exchanges", 0) > 0 and
            rep.get("partitions", 0) > 0,
            f"kvorum repair queues exchanges: {rep}")
    drained = c.wait_until(
        lambda: c.cli_json(1, "transfers").get("repair_exchanges_left") == 0,
        30, poll=0.2)
    tr = c.cli_json(1, "transfers") or {}
    t.check(drained is not None and rep and
            tr.get("repair_exchanges", 0) >= rep.get("exchanges", 0),
            f"kvorum transfers shows the repair run to the end: "
            f"{ {k: v for k, v in tr.items() if k.startswith('repair')} }")
    one = c.cli_json(1, "repair", "--partition", "5")
    t.check(one is not None and one.get("partitions") == 1 and
            one.get("exchanges") == 2,
            f"kvorum repair --partition 5: {one}")
    rc, _, err = c.cli(1, "repair", "--partition", "99")
    t.check(rc == 1 and "partition" in err,
            f"repair of a partition that does not exist: {err.strip()}")
    comp = c.cli_json(1, "compact")
    t.check(comp is not None and "sst_bytes_after" in comp and
            comp.get("node") == "n1", f"kvorum compact runs: {comp}")
    got = keys(c, 1, "get", "a", A_KEYS, "all")
    t.check(got == A_KEYS, f"the data is all there after compact: {got}")
finally:
    for n in notifiers:
        n.close()
    if t.failed:
        c.dump_logs()
    c.close()
t.finish()
