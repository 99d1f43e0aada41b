#!/usr/bin/env python3
"""TLS and users (docs/security.md) through real programs: openssl
s_client, the kvorum CLI, redis-cli, curl and Python's ssl module, against
real kvorumd processes with certificates from scripts/dev-certs.sh and an
auth file made by `kvorum user-add`.

  a. TLS on every port: s_client completes a handshake on the client port
     and (with a client certificate) on the peer port when it trusts the
     cluster CA, and fails with another CA; a client speaking plain TCP
     (the CLI without --tls, redis-cli without --tls, curl http://) is
     refused.
  b. A kvorumd whose certificate another CA signed, and one started as n4
     with n5's certificate, never become members; the logs say why.
  c. Users: no credentials or a wrong password, a read user's write, a
     write user's admin command are refused with the documented messages
     over the native protocol, RESP and HTTP; three failed logins close a
     RESP connection; failures are counted in /metrics and never log the
     password.
  d. SIGHUP: new certificates from the same CA are served to new
     connections while an open one keeps working; peers accept the new
     certificate; a broken certificate file keeps the old one; a user
     added to the auth file can log in after SIGHUP, only there.
  e. A rolling upgrade of a three-node cluster from --peer-tls plain
     through both to tls, one node at a time, with W=3 writes after each
     restart.

Usage: test_security.py KVORUMD KVORUM_CLI [--light]
  --light: looser time bounds (the sanitizer build)
"""
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time

from kvtest import Checks, Cluster, free_ports

kvorumd, cli = sys.argv[1], sys.argv[2]
light = "--light" in sys.argv[3:]
DEV_CERTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                         "..", "scripts", "dev-certs.sh")
SLOW = 2 if light else 1        # time bounds are multiplied by this
ABSENT_S = 3.0 * SLOW           # how long a refused node must stay absent
PW = {"admin": "adm1n-pw", "writer": "wr1ter-pw", "reader": "re4der-pw",
      "latecomer": "l4te-pw"}
WRONG_PW = "not-the-pw-Zq9"     # must never appear in a log
NODES = (1, 2, 3)

t = Checks("security")


def run(argv, env=None, stdin=b"", timeout=30):
    """Runs argv; returns (status, stdout + stderr as text)."""
    try:
        r = subprocess.run([str(a) for a in argv], input=stdin, env=env,
                           capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return 124, "timeout"
    return r.returncode, (r.stdout + r.stderr).decode(errors="replace")


def with_pw(pw):
    """The environment with KVORUM_PASSWORD set to pw (None: unset)."""
    env = dict(os.environ)
    env.pop("KVORUM_PASSWORD", None)
    if pw is not None:
        env["KVORUM_PASSWORD"] = pw
    return env


class SecCluster(Cluster):
    """A kvtest Cluster whose CLI speaks TLS and logs in: cli_flags go
    before every command (e.g. --tls-ca and --user), cli_pw is the
    password. cli() also takes them per call, for the refusal checks."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.cli_flags = []
        self.cli_pw = None

    def cli(self, i, *args, timeout=30, flags=None, pw=None):
        cmd = [self.cli_bin, "--host", self.listen(i)]
        cmd += self.cli_flags if flags is None else flags
        cmd += [str(a) for a in args]
        r = subprocess.run(cmd, capture_output=True, text=True,
                           timeout=timeout, stdin=subprocess.DEVNULL,
                           env=with_pw(self.cli_pw if pw is None else pw))
        return r.returncode, r.stdout, r.stderr


def dev_certs(where, *ids):
    rc, out = run(["sh", DEV_CERTS, where] + list(ids))
    if rc:
        raise RuntimeError(f"dev-certs.sh failed: {out}")


def user_add(path, user, role):
    rc, out = run([cli, "user-add", path, user, role], env=with_pw(PW[user]))
    if rc:
        raise RuntimeError(f"kvorum user-add failed: {out}")


def tls_flags(certs, i):
    return ["--tls-cert", f"{certs}/n{i}.pem", "--tls-key",
            f"{certs}/n{i}.key", "--tls-ca", f"{certs}/ca.pem"]


def s_client(port, ca, cert=None, showcerts=False):
    """openssl s_client to 127.0.0.1:port trusting ca only, with the client
    certificate cert (a path without .pem) if given; returns (status,
    output). Its status is 0 only after a handshake that verified."""
    argv = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
            "-CAfile", ca, "-verify_return_error"]
    if cert:
        argv += ["-cert", f"{cert}.pem", "-key", f"{cert}.key"]
    argv += ["-showcerts"] if showcerts else ["-brief"]
    return run(argv, timeout=15)


def serial_of(pem):
    """The serial number (hex, upper case) of the first certificate in pem
    text, or None."""
    rc, out = run(["openssl", "x509", "-noout", "-serial"], stdin=pem.encode())
    m = re.search(r"serial=([0-9A-Fa-f]+)", out)
    return m.group(1).upper() if rc == 0 and m else None


def file_serial(path):
    with open(path) as f:
        return serial_of(f.read())


def served_serial(port, ca):
    """The serial of the certificate a new connection to port is shown."""
    rc, out = s_client(port, ca, showcerts=True)
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----",
                  out, re.S)
    return serial_of(m.group(0)) if rc == 0 and m else None


def tls_socket(port, ca):
    """A Python ssl connection to 127.0.0.1:port that verified against ca
    (no host name check, as kvorum's clients)."""
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = False
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), 5))
    s.settimeout(10 * SLOW)
    return s


def resp(s, *args):
    """Sends one RESP command on s; returns the reply's first line (b""
    when the node closed the connection)."""
    cmd = f"*{len(args)}\r\n" + "".join(f"${len(a)}\r\n{a}\r\n" for a in args)
    try:
        s.sendall(cmd.encode())
        out = b""
        while b"\r\n" not in out:
            b = s.recv(4096)
            if not b:
                break
            out += b
    except (OSError, ssl.SSLError):
        return b""
    return out.split(b"\r\n")[0]


def closed(s):
    """Whether the node closed s (EOF within the timeout)."""
    try:
        return s.recv(1) == b""
    except (OSError, ssl.SSLError):
        return True


def logs_have(c, nodes, text, extra=()):
    """Whether a log of nodes (or one of the extra log files) holds text."""
    for i in nodes:
        if text in c.log_text(i):
            return True
    for path in extra:
        try:
            with open(path, errors="replace") as f:
                if text in f.read():
                    return True
        except OSError:
            pass
    return False


def stays_absent(c, node_id, seconds):
    """Polls every node's status for seconds; True when each status
    listed the three members and never node_id."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for i in NODES:
            st = c.states(i)
            if node_id in st or not all(f"n{j}" in st for j in NODES):
                return False
        time.sleep(0.2)
    return True


def end_cluster(c):
    """Checks that no node of c crashed, prints the logs when any check
    failed, and stops c."""
    t.check(all(c.alive(i) for i in NODES), "no node crashed")
    if t.failed:
        c.dump_logs()
    c.close()


# ===================== one cluster with TLS and users =====================
ports = free_ports(6)
resp_ports, http_ports = ports[:3], ports[3:]
c = SecCluster(kvorumd, cli, 3, name="kvsec")
certs = os.path.join(c.tmp, "certs")
other = os.path.join(c.tmp, "other")
ca = os.path.join(certs, "ca.pem")
users = os.path.join(c.tmp, "users")


def rcli(i, *args, user=None, tls=True):
    """redis-cli against node i's RESP port: (status, output)."""
    argv = ["redis-cli", "-p", resp_ports[i - 1]]
    if tls:
        argv += ["--tls", "--cacert", ca]
    if user:
        argv += ["--user", user, "--pass", PW.get(user, WRONG_PW),
                 "--no-auth-warning"]
    rc, out = run(argv + list(args))
    return rc, out.strip()


def curl(i, path, user=None, pw=None, method="GET", data=None,
         scheme="https"):
    """curl against node i's HTTP port: (curl status, HTTP status, headers
    and body as text)."""
    argv = ["curl", "-sS", "-i", "--max-time", "10", "--cacert", ca, "-X",
            method, f"{scheme}://127.0.0.1:{http_ports[i - 1]}{path}"]
    if user:
        argv += ["-u", f"{user}:{pw if pw is not None else PW[user]}"]
    if data is not None:
        argv += ["--data-binary", data]
    rc, out = run(argv)
    m = re.match(r"HTTP/[\d.]+ (\d+)", out)
    return rc, int(m.group(1)) if m else 0, out


def metric(i, name):
    """A counter from node i's /metrics (read as admin), or None."""
    _, status, out = curl(i, "/metrics", "admin")
    m = re.search(rf"^{name} (\d+)", out, re.M)
    return int(m.group(1)) if status == 200 and m else None



def node_flags(i):
    """Node i's flags: TLS everywhere, users, its Redis and HTTP ports."""
    return tls_flags(certs, i) + [
        "--auth-file", users, "--resp", f"127.0.0.1:{resp_ports[i - 1]}",
        "--http", f"127.0.0.1:{http_ports[i - 1]}"]

try:
    dev_certs(certs, "n1", "n2", "n3", "n5")
    dev_certs(other, "n4")
    for u, role in (("admin", "admin"), ("writer", "write"),
                    ("reader", "read")):
        user_add(users, u, role)
    c.cli_flags = ["--tls-ca", ca, "--user", "admin"]
    c.cli_pw = PW["admin"]
    for i in NODES:
        c.start(i, node_flags(i))
    t.check(c.wait_all_up(NODES, timeout=30 * SLOW) is not None,
            "three nodes up with TLS on every port and --auth-file "
            "(status through the CLI over TLS as admin)")

    # ---- a. handshakes, and plain clients refused ----
    cport = int(c.listen(1).split(":")[1])
    pport = int(c.peer(1).split(":")[1])
    rc, out = s_client(cport, ca)
    t.check(rc == 0 and "Verification: OK" in out,
            f"s_client -verify_return_error with the cluster CA: a "
            f"handshake on the client port (status {rc})")
    rc, out = s_client(pport, ca, cert=os.path.join(certs, "client"))
    t.check(rc == 0 and "Verification: OK" in out,
            f"... and on the peer port with a client certificate "
            f"(status {rc})")
    rc, out = s_client(cport, os.path.join(other, "ca.pem"))
    t.check(rc != 0 and "verify" in out,
            f"with another dev CA: the handshake fails on the client port "
            f"(status {rc})")
    rc, out = s_client(pport, os.path.join(other, "ca.pem"),
                       cert=os.path.join(certs, "client"))
    t.check(rc != 0 and "verify" in out,
            f"... and on the peer port (status {rc})")
    # No client certificate: refused. Refusals are logged at most once a
    # second, so try until one is.
    t.check(c.wait_until(lambda: s_client(pport, ca) and logs_have(
        c, [1], "peer did not return a certificate"), 10 * SLOW, poll=0.3)
            is not None,
            "the peer port refuses a TLS client without a certificate "
            "(logged)")
    rc, _, err = c.cli(1, "status", flags=[])
    t.check(rc == 1 and "TLS" in err,
            f"the CLI without --tls is refused: {err.strip()[:90]}")
    rc, out = rcli(1, "PING", tls=False)
    t.check(rc != 0 and "PONG" not in out,
            f"redis-cli without --tls is refused: {out[:60]}")
    rc, status, out = curl(1, "/health", scheme="http")
    t.check(rc != 0 and status == 0,
            f"curl http:// to the HTTPS port fails (curl status {rc})")
    before = metric(1, "kvorum_tls_refused_total") or 0
    rc, _ = run(["curl", "-sS", "--max-time", "10", "--cacert",
                 os.path.join(other, "ca.pem"),
                 f"https://127.0.0.1:{http_ports[0]}/health"])
    after = metric(1, "kvorum_tls_refused_total") or 0
    t.check(rc != 0 and after == before + 1,
            f"curl trusting another CA fails its HTTPS handshake (curl "
            f"status {rc}) and kvorum_tls_refused_total counts it once "
            f"({before} -> {after})")

    # ---- b. nodes the cluster must not take ----
    def rogue(name, node_id, cert):
        """Starts a kvorumd that tries to join the cluster."""
        lp, pp = free_ports(2)
        return c.spawn(name, [
            kvorumd, "--id", node_id, "--listen", f"127.0.0.1:{lp}",
            "--peer", f"127.0.0.1:{pp}", "--data",
            os.path.join(c.tmp, name), "--seeds", c.seeds(), "--tls-cert",
            f"{cert}.pem", "--tls-key", f"{cert}.key", "--tls-ca", ca])

    bad_ca = rogue("rogue-ca", "n4", os.path.join(other, "n4"))
    why = "refusing a peer connection from 127.0.0.1: the peer certificate " \
          "did not verify"
    t.check(c.wait_until(lambda: logs_have(c, NODES, why), 20 * SLOW)
            is not None,
            "a node with a certificate from another CA: the cluster logs "
            f"'{why}'")
    t.check(stays_absent(c, "n4", ABSENT_S) and bad_ca.poll() is None,
            f"... and it is no member of the cluster {ABSENT_S:.0f} s later")
    bad_ca.kill()
    bad_ca.wait(timeout=10)

    impostor = rogue("rogue-id", "n4", os.path.join(certs, "n5"))
    why = "it says it is node n4 but its certificate names n5"
    t.check(c.wait_until(lambda: logs_have(c, NODES, why), 20 * SLOW)
            is not None,
            f"n4 with n5's certificate (same CA): the cluster logs '{why}'")
    t.check(stays_absent(c, "n4", ABSENT_S) and impostor.poll() is None,
            f"... and it is no member {ABSENT_S:.0f} s later")
    impostor.kill()
    impostor.wait(timeout=10)
    refused = metric(1, "kvorum_tls_refused_total") or 0
    refused += sum(metric(i, "kvorum_tls_refused_total") or 0 for i in (2, 3))
    t.check(refused > 0, f"kvorum_tls_refused_total counts them: {refused}")

    # A member's address answered by another node's certificate (same CA):
    # n3 stops and a kvorumd with n5's certificate takes its peer port.
    # The others dial n3's address (gossip, probes) and refuse to talk.
    c.stop(3)
    squatter = c.spawn("squatter", [
        kvorumd, "--id", "n5", "--listen", f"127.0.0.1:{free_ports(1)[0]}",
        "--peer", c.peer(3), "--data", os.path.join(c.tmp, "squatter"),
        "--tls-cert", f"{certs}/n5.pem", "--tls-key", f"{certs}/n5.key",
        "--tls-ca", ca])
    why = f"{c.peer(3)} is node n3's address, but the certificate there names"
    t.check(c.wait_until(lambda: logs_have(c, (1, 2), why), 20 * SLOW)
            is not None,
            f"n3's address answered with n5's certificate: its peers log "
            f"'{why} ...' and do not talk to it")
    squatter.kill()
    squatter.wait(timeout=10)
    c.start(3, node_flags(3))
    t.check(c.wait_all_up(NODES, timeout=30 * SLOW) is not None,
            "n3 back at its address: its peers take its certificate")

    # ---- c. users and roles ----
    fails0 = metric(1, "kvorum_auth_failures_total")
    rc, _, err = c.cli(1, "get", "k", flags=["--tls-ca", ca])
    t.check(rc == 1 and "requires a user and password" in err,
            f"no credentials: exit 1, {err.strip()[:70]}...")
    wr = ["--tls-ca", ca, "--user", "writer"]
    rd = ["--tls-ca", ca, "--user", "reader"]
    rc, _, err = c.cli(1, "put", "k", "v", flags=wr, pw=WRONG_PW)
    t.check(rc == 1 and "authentication failed" in err,
            f"a wrong password: exit 1, {err.strip()}")
    rc, _, err = c.cli(1, "put", "k", "v", flags=wr, pw=PW["writer"])
    t.check(rc == 0, f"the write user puts: {err.strip()}")
    rc, _, err = c.cli(1, "put", "k", "w", flags=rd, pw=PW["reader"])
    t.check(rc == 1 and "permission denied" in err,
            f"the read user's put: exit 1, {err.strip()}")
    rc, out, err = c.cli(2, "get", "k", flags=rd, pw=PW["reader"])
    t.check(rc == 0 and out.startswith("v"), "the read user gets")
    rc, out, err = c.cli(2, "status", flags=rd, pw=PW["reader"])
    t.check(rc == 0 and "n3" in out, "the read user may see the status")
    for who, flags in (("write", wr), ("read", rd)):
        pw = PW["writer" if who == "write" else "reader"]
        for cmd in (["remove", "n99"], ["stats"], ["join", c.peer(2)],
                    ["leave"], ["log-level", "debug"]):
            rc, _, err = c.cli(1, *cmd, flags=flags, pw=pw)
            t.check(rc == 1 and "permission denied" in err,
                    f"{cmd[0]} as the {who} user: {err.strip()}")
    rc, _, err = c.cli(1, "remove", "n99")
    t.check(rc == 1 and "permission denied" not in err and "n99" in err,
            f"remove as admin gets the normal error: {err.strip()}")
    rc, out, err = c.cli(1, "stats")
    t.check(rc == 0 and "node: n1" in out, "stats as admin")
    t.check(c.alive(1) and "n1" in c.states(2),
            "no refused admin command changed the cluster")

    # redis-cli and the Redis protocol
    t.check(rcli(1, "SET", "rk", "rv", user="writer") == (0, "OK"),
            "redis-cli --tls --user writer: SET")
    rc, out = rcli(2, "SET", "rk", "x", user="reader")
    t.check(out.startswith("NOPERM"), f"SET as the read user: {out}")
    t.check(rcli(3, "GET", "rk", user="reader") == (0, "rv"),
            "GET as the read user")
    rc, out = rcli(1, "GET", "rk")
    t.check(out.startswith("NOAUTH"), f"no AUTH: {out}")
    rc, out = rcli(1, "GET", "rk", user="nobody")
    t.check("WRONGPASS" in out and "NOAUTH" in out,
            "a wrong password: WRONGPASS, and the GET gets NOAUTH")
    s = tls_socket(resp_ports[0], ca)
    hello = resp(s, "HELLO", "3", "AUTH", "writer", PW["writer"])
    t.check(hello.startswith(b"%"), f"HELLO 3 AUTH logs in: {hello[:20]}")
    s.close()
    s = tls_socket(resp_ports[0], ca)
    answers = [resp(s, "AUTH", "reader", WRONG_PW) for _ in range(3)]
    t.check(all(a.startswith(b"-WRONGPASS") for a in answers) and closed(s),
            "three failed AUTHs close the connection")
    s.close()

    # HTTP
    rc, status, out = curl(1, "/kv/hk", "writer", method="PUT", data="hv")
    t.check(status == 204, f"HTTPS PUT as the write user: {status}")
    rc, status, out = curl(2, "/kv/hk", "reader", method="PUT", data="x")
    t.check(status == 403 and "EPERM" in out,
            f"PUT as the read user: {status}")
    rc, status, out = curl(2, "/kv/hk", "reader")
    t.check(status == 200 and out.rstrip().endswith("hv"),
            f"GET as the read user: {status}")
    rc, status, out = curl(3, "/kv/hk", method="PUT", data="x")
    t.check(status == 401 and re.search(r"(?im)^www-authenticate: Basic", out),
            f"PUT without credentials: {status} with WWW-Authenticate")
    rc, status, out = curl(3, "/kv/hk", "reader", pw=WRONG_PW)
    t.check(status == 401, f"a wrong password: {status}")
    t.check(curl(3, "/health")[1] == 200 and curl(3, "/ready")[1] == 200,
            "/health and /ready answer without credentials")
    t.check(curl(3, "/metrics")[1] == 401, "/metrics needs a user")
    rc, status, _ = curl(3, "/admin/status", "reader")
    rc2, status2, _ = curl(3, "/admin/stats", "reader")
    t.check(status == 200 and status2 == 403,
            f"/admin/status as the read user {status}, /admin/stats {status2}")

    fails1 = metric(1, "kvorum_auth_failures_total")
    t.check(fails0 is not None and fails1 is not None and fails1 >= fails0 + 5,
            f"kvorum_auth_failures_total went up: {fails0} -> {fails1}")
    t.check(logs_have(c, [1], "failed login over"),
            "failed logins are logged")
    t.check(not logs_have(c, NODES, WRONG_PW),
            "no log holds the wrong password")

    # ---- d. SIGHUP ----
    old = file_serial(f"{certs}/n1.pem")
    kept = tls_socket(resp_ports[0], ca)
    kept_serial = kept.getpeercert().get("serialNumber", "").upper()
    t.check(resp(kept, "AUTH", "writer", PW["writer"]) == b"+OK" and
            kept_serial == old,
            "a RESP connection is open on n1, with its first certificate")
    for ext in ("pem", "key"):
        os.unlink(f"{certs}/n1.{ext}")
    dev_certs(certs, "n1")
    new = file_serial(f"{certs}/n1.pem")
    t.check(new and new != old, f"n1 has a new certificate: {old} -> {new}")
    reloads = c.log_text(1).count("certificates reloaded")
    c.procs[1].send_signal(signal.SIGHUP)
    t.check(c.wait_until(lambda: c.log_text(1).count("certificates reloaded")
                         > reloads, 10 * SLOW) is not None,
            "SIGHUP: n1 logs 'certificates reloaded'")
    t.check(served_serial(cport, ca) == new,
            "a new connection to the client port sees the new certificate")
    fresh = tls_socket(resp_ports[0], ca)
    t.check(fresh.getpeercert().get("serialNumber", "").upper() == new,
            "... and one to the RESP port")
    fresh.close()
    t.check(resp(kept, "SET", "kept", "1") == b"+OK" and
            resp(kept, "GET", "kept") == b"$1",
            "the connection opened before SIGHUP still works")
    kept.close()
    # New peer connections to and from n1 carry the new certificate.
    c.stop(2)
    c.start(2, node_flags(2))
    t.check(c.wait_all_up(NODES, timeout=30 * SLOW) is not None,
            "n2 restarted: peers take n1's new certificate")
    rc, _, err = c.cli(1, "put", "after-reload", "v", "--w", "all",
                       "--no-sloppy")
    t.check(rc == 0, f"a W=all write through n1 after the reload: {err}")
    # A broken certificate file: the old certificates stay.
    with open(f"{certs}/n3.pem") as f:
        n3_pem = f.read()
    n3_serial = serial_of(n3_pem)
    with open(f"{certs}/n3.pem", "w") as f:
        f.write("not a certificate\n")
    c.procs[3].send_signal(signal.SIGHUP)
    t.check(c.wait_until(lambda: "keeping the old certificates" in
                         c.log_text(3), 10 * SLOW) is not None,
            "SIGHUP with a broken certificate file: n3 keeps the old one")
    with open(f"{certs}/n3.pem", "w") as f:
        f.write(n3_pem)
    n3_port = int(c.listen(3).split(":")[1])
    t.check(served_serial(n3_port, ca) == n3_serial,
            "... and serves it")
    # A user added to the auth file logs in after SIGHUP, where it was sent.
    user_add(users, "latecomer", "write")
    late = ["--tls-ca", ca, "--user", "latecomer"]
    rc, _, err = c.cli(1, "put", "late", "1", flags=late,
                       pw=PW["latecomer"])
    t.check(rc == 1 and "authentication failed" in err,
            "a user added to the file is unknown before SIGHUP")
    reloads = c.log_text(1).count("users reloaded")
    c.procs[1].send_signal(signal.SIGHUP)
    t.check(c.wait_until(lambda: c.log_text(1).count("users reloaded") >
                         reloads, 10 * SLOW) is not None,
            "SIGHUP: n1 logs 'users reloaded'")
    rc, _, err = c.cli(1, "put", "late", "1", flags=late,
                       pw=PW["latecomer"])
    t.check(rc == 0, f"the new user writes through n1: {err.strip()}")
    rc, _, err = c.cli(3, "put", "late", "2", flags=late,
                       pw=PW["latecomer"])
    t.check(rc == 1 and "authentication failed" in err,
            "n3, not sent SIGHUP, does not know the new user yet")
finally:
    end_cluster(c)

# ===================== e. a rolling upgrade =====================
c = SecCluster(kvorumd, cli, 3, name="kvsecup")
certs = os.path.join(c.tmp, "certs")
key_n = [0]


def writes_all(i):
    """A W=all write (no fallbacks) through node i, retried until it
    succeeds or the bound passes; returns the seconds it took or None."""
    def ok():
        key_n[0] += 1
        rc, _, _ = c.cli(i, "put", f"up{key_n[0]}", "v", "--w", "all",
                         "--no-sloppy", "--timeout", "2000", timeout=10)
        return rc == 0
    return c.wait_until(ok, 20 * SLOW, poll=0.2)


try:
    dev_certs(certs, "n1", "n2", "n3")
    for i in NODES:
        c.start(i, ["--peer-tls", "plain"])
    t.check(c.wait_all_up(NODES, timeout=30 * SLOW) is not None,
            "upgrade: three nodes up with --peer-tls plain")
    took = writes_all(1)
    t.check(took is not None, "a W=3 write through n1")
    for mode in ("both", "tls"):
        for i in NODES:
            c.stop(i)
            c.start(i, tls_flags(certs, i) +
                    ["--peer-tls", mode, "--client-tls", "plain"])
            up = c.wait_all_up(NODES, timeout=30 * SLOW)
            took = writes_all(i) if up is not None else None
            took2 = writes_all(1 + i % 3) if took is not None else None
            t.check(took is not None and took2 is not None,
                    f"n{i} restarted with --peer-tls {mode}: every node up "
                    f"and W=3 writes through n{i} and n{1 + i % 3} succeed "
                    f"({(up or 0) + (took or 0):.1f} s)")
    why = "refusing a peer connection from 127.0.0.1: TLS failed"
    seen = c.log_text(1).count(why)
    rc, out = run([cli, "--host", c.peer(1), "status"])
    t.check(rc != 0 and c.wait_until(lambda: c.log_text(1).count(why) > seen,
                                     10 * SLOW) is not None,
            "after the upgrade the peer port refuses plain TCP (logged)")
    rc, out, _ = c.cli(3, "get", "up1", "--r", "all")
    t.check(rc == 0 and out.startswith("v"),
            "the first write reads back with R=all")
finally:
    end_cluster(c)
t.finish()
