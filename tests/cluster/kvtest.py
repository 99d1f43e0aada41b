"""kvtest: a small harness for tests that run real kvorumd processes.

A Cluster starts nodes on free 127.0.0.1 ports with data in a temporary
directory, talks to them through the real `kvorum` CLI, and can kill -9,
pause (SIGSTOP), resume and restart them. Every node gets PR_SET_PDEATHSIG,
so it dies with the test even when the test itself is killed by a timeout;
close() (also run at exit) kills what is left and removes the directory
(kept when KV_KEEP=1, for debugging).

Checks are counted; finish() prints the closing line "N passed, M failed"
and exits non-zero when anything failed. Waiting is always a bounded poll
for a condition, never a fixed sleep.
"""
import atexit
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

_libc = ctypes.CDLL("libc.so.6", use_errno=True)
PR_SET_PDEATHSIG = 1


def _die_with_parent():
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def free_ports(count):
    """Returns count distinct free TCP ports on 127.0.0.1."""
    socks, ports = [], []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


class Checks:
    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0

    def check(self, cond, what):
        if cond:
            self.passed += 1
            print(f"ok   {what}", flush=True)
        else:
            self.failed += 1
            print(f"FAIL {what}", flush=True)
        return cond

    def finish(self):
        print(f"{self.name}: {self.passed} passed, {self.failed} failed",
              flush=True)
        sys.exit(1 if self.failed else 0)


class Cluster:
    def __init__(self, kvorumd, cli, size, node_flags=(), name="kvtest"):
        self.kvorumd = kvorumd
        self.cli_bin = cli
        self.size = size
        self.node_flags = list(node_flags)
        self.tmp = tempfile.mkdtemp(prefix=f"{name}-")
        ports = free_ports(2 * size)
        self.client_ports = ports[:size]
        self.peer_ports = ports[size:]
        self.procs = {}
        self.logs = {}
        self.helpers = []
        atexit.register(self.close)

    # ---- addresses ----
    def listen(self, i):
        return f"127.0.0.1:{self.client_ports[i - 1]}"

    def peer(self, i):
        return f"127.0.0.1:{self.peer_ports[i - 1]}"

    def seeds(self):
        return ",".join(self.peer(i) for i in range(1, self.size + 1))

    def data_dir(self, i):
        return os.path.join(self.tmp, f"n{i}")

    # ---- processes ----
    def start(self, i, extra=(), seeds=True):
        args = [self.kvorumd, "--id", f"n{i}", "--listen", self.listen(i),
                "--peer", self.peer(i), "--data", self.data_dir(i)]
        if seeds:
            args += ["--seeds", self.seeds()]
        args += self.node_flags + list(extra)
        log = open(os.path.join(self.tmp, f"n{i}.log"), "ab")
        self.logs[i] = log
        self.procs[i] = subprocess.Popen(args, stdout=log, stderr=log,
                                         preexec_fn=_die_with_parent)
        return self.procs[i]

    def start_all(self, extra=()):
        for i in range(1, self.size + 1):
            self.start(i, extra)

    def spawn(self, name, args):
        """Starts a helper program (not a node: a load generator, a
        Prometheus server) with its output in NAME.log in the temporary
        directory. Like the nodes it dies with the test, and close() kills
        it if it still runs. Returns the Popen."""
        log = open(os.path.join(self.tmp, f"{name}.log"), "ab")
        p = subprocess.Popen(list(args), stdout=log, stderr=log,
                             preexec_fn=_die_with_parent)
        self.helpers.append((p, log))
        return p

    def alive(self, i):
        p = self.procs.get(i)
        return p is not None and p.poll() is None

    def kill9(self, i):
        p = self.procs.get(i)
        if p and p.poll() is None:
            p.kill()
            p.wait(timeout=10)

    def stop(self, i, timeout=15):
        """SIGTERM and wait; returns the exit status."""
        p = self.procs.get(i)
        if not p:
            return None
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        try:
            return p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            return None

    def pause(self, i):
        self.procs[i].send_signal(signal.SIGSTOP)

    def resume(self, i):
        self.procs[i].send_signal(signal.SIGCONT)

    def log_text(self, i):
        try:
            with open(os.path.join(self.tmp, f"n{i}.log"), "r",
                      errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def close(self):
        for i, p in list(self.procs.items()):
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGCONT)
                    p.kill()
                    p.wait(timeout=10)
                except Exception:
                    pass
        self.procs.clear()
        for p, log in self.helpers:
            if p.poll() is None:
                try:
                    p.kill()
                    p.wait(timeout=10)
                except Exception:
                    pass
            log.close()
        self.helpers.clear()
        for log in self.logs.values():
            log.close()
        self.logs.clear()
        if os.environ.get("KV_KEEP") == "1":
            print(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def dump_logs(self, last=30):
        for i in sorted(self.logs):
            lines = self.log_text(i).splitlines()[-last:]
            print(f"---- n{i} log (last {len(lines)} lines) ----")
            for line in lines:
                print(line)

    # ---- the CLI ----
    def cli(self, i, *args, timeout=30):
        """Runs kvorum against node i; returns (status, stdout, stderr)."""
        cmd = [self.cli_bin, "--host", self.listen(i)] + [str(a) for a in args]
        r = subprocess.run(cmd, capture_output=True, text=True,
                           timeout=timeout)
        return r.returncode, r.stdout, r.stderr

    def cli_json(self, i, *args, timeout=30):
        """Runs kvorum --json; returns the parsed output or None."""
        rc, out, _ = self.cli(i, "--json", *args, timeout=timeout)
        if rc != 0:
            return None
        try:
            return json.loads(out)
        except ValueError:
            return None

    def put(self, i, key, value, *opts):
        rc, out, err = self.cli(i, "put", key, value, *opts)
        return rc, out.strip(), err.strip()

    def get(self, i, key, *opts):
        return self.cli_json(i, "get", key, *opts)

    def values(self, i, key, *opts):
        """The sorted sibling values of key read through node i, or None."""
        g = self.get(i, key, *opts)
        if g is None:
            return None
        return sorted(s.get("value", "<deleted>") for s in g["siblings"])

    def preflist(self, i, key):
        """(partition, primaries, fallbacks) of key as node i sees it."""
        p = self.cli_json(i, "preflist", key)
        if p is None:
            return None
        return p["partition"], p["primaries"], p["fallbacks"]

    def primaries_include(self, i, keys, node_id):
        """The keys among keys whose primaries, as node i sees them,
        include node_id."""
        return [k for k in keys
                if node_id in ((self.preflist(i, k) or (0, [], []))[1])]

    def stats(self, i):
        return self.cli_json(i, "stats") or {}

    def stat_sum(self, nodes, name):
        return sum(self.stats(i).get(name, 0) for i in nodes)

    def status(self, i):
        return self.cli_json(i, "status")

    def states(self, i):
        """{member id: state} as node i sees it, or {} when it cannot."""
        st = self.status(i)
        if not st:
            return {}
        return {m["id"]: m["state"] for m in st.get("members", [])}

    # ---- waiting ----
    def wait_until(self, pred, timeout, poll=0.05):
        """Polls pred until it is true or timeout seconds pass; returns the
        seconds it took, or None on timeout."""
        t0 = time.monotonic()
        while True:
            if pred():
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                return None
            time.sleep(poll)

    def wait_all_up(self, nodes, timeout=20):
        """Waits until each node in nodes sees every node in nodes up."""
        ids = {f"n{i}" for i in nodes}

        def ok():
            for i in nodes:
                st = self.states(i)
                if any(st.get(x) != "up" for x in ids):
                    return False
            return True
        return self.wait_until(ok, timeout)

    def kill9_seen_down(self, i, by, timeout=15):
        """kill -9 node i and wait until every node in by sees it down;
        returns the seconds it took, or None."""
        self.kill9(i)
        return self.wait_until(lambda: all(self.states(j).get(f"n{i}") ==
                                           "down" for j in by), timeout)

    def wait_ready(self, i, timeout=20):
        return self.wait_until(lambda: self.status(i) is not None, timeout)
