#!/usr/bin/env python3
"""The HTTP front end (kvorumd --http, docs/http.md) through real programs
against a three-node cluster (N=3, R=2, W=2): curl for /ready, /health,
the key API with its contexts and siblings, /admin/* and the errors;
promtool for /metrics, idle and under load; a real Prometheus server
scraping the three nodes; and raw sockets for bad HTTP (huge headers, a
huge body, a slow client, garbage), after which every node still serves.

Usage: test_http.py KVORUMD KVORUM_CLI [--light]
  --light: smaller loads and looser time bounds (the sanitizer build)
"""
import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

from kvtest import Checks, Cluster, free_ports

kvorumd, cli = sys.argv[1], sys.argv[2]
light = "--light" in sys.argv[3:]
CURL = shutil.which("curl") or "/usr/bin/curl"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
VALUE_MAX = 4096          # --value-max of the nodes: bytes
LOAD_S = 1.5 if light else 3.0     # the load while promtool checks
PROM_LOAD_S = 1.0 if light else 1.5  # the load Prometheus must see
BATCH = 20 if light else 50        # keys per curl process of the load
PROMPT_S = 3.0 if light else 1.5   # "answered promptly"
REQ_TIMEOUT_S = 10        # the server's request timeout (docs/http.md)
SLOW_MAX_S = 15           # how long the slow client keeps trying
NODES = (1, 2, 3)

t = Checks("http")
ports = free_ports(4)
http_ports, prom_port = ports[:3], ports[3]
c = Cluster(kvorumd, cli, 3, node_flags=["--value-max", str(VALUE_MAX)],
            name="kvhttp")


def addr(i):
    return f"127.0.0.1:{http_ports[i - 1]}"


def kv_path(key):
    """The /kv/ path of key (str or bytes), every reserved byte escaped."""
    return "/kv/" + urllib.parse.quote(key, safe="")


def parse_http(raw):
    """(status, {lower-case header: value}, body) of an HTTP/1.1 answer
    (interim 1xx answers skipped); status 0 when raw holds none."""
    while raw.startswith(b"HTTP/"):
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        if 100 <= status < 200:
            raw = rest
            continue
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower().decode()] = \
                value.strip().decode(errors="replace")
        return status, headers, rest
    return 0, {}, raw


def curl_url(url, *opts, data=None, timeout=10):
    """Runs curl on url; returns (status, headers, body), status 0 when no
    HTTP answer came (refused, timed out)."""
    cmd = [CURL, "-s", "-i", "--max-time", str(timeout), "-H", "Expect:"]
    cmd += list(opts)
    if data is not None:
        cmd += ["--data-binary", "@-"]
    r = subprocess.run(cmd + [url], input=data or b"", capture_output=True,
                       timeout=timeout + 10)
    return parse_http(r.stdout)


def curl(i, path, *opts, data=None, timeout=10):
    return curl_url(f"http://{addr(i)}{path}", *opts, data=data,
                    timeout=timeout)


def json_of(body):
    try:
        return json.loads(body)
    except ValueError:
        return None


def is_error(status, headers, body, want_status, want_code):
    """True when the answer is want_status with the JSON error body
    {"error": want_code, "message": ...} of docs/http.md."""
    j = json_of(body)
    return (status == want_status and
            headers.get("content-type") == "application/json" and
            isinstance(j, dict) and j.get("error") == want_code and
            isinstance(j.get("message"), str) and j["message"] != "")


def sibling_values(j):
    return sorted(base64.b64decode(s["value"]) for s in j["siblings"])


# ---- metrics ----

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """{(name, frozenset of (label, value)): float} of an exposition."""
    out = {}
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if line.startswith("#") or not m:
            continue
        labels = frozenset(LABEL.findall(m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def metric(ms, name, **labels):
    return ms.get((name, frozenset(labels.items())))


def promtool_check(body):
    """(accepted, what promtool said) for a /metrics body."""
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=body,
                       capture_output=True, timeout=30)
    return r.returncode == 0, (r.stdout + r.stderr).decode(errors="replace")


def histogram_consistent(ms, op):
    """Whether kvorum_request_duration_seconds{op} is a sound histogram
    that counts exactly the requests kvorum_requests_total{op} counts;
    returns (ok, why)."""
    name = "kvorum_request_duration_seconds"
    buckets = sorted((float(dict(lb)["le"]), v) for (n, lb), v in ms.items()
                     if n == name + "_bucket" and dict(lb).get("op") == op)
    count = metric(ms, name + "_count", op=op)
    total = metric(ms, name + "_sum", op=op)
    answered = sum(v for (n, lb), v in ms.items()
                   if n == "kvorum_requests_total" and
                   dict(lb).get("op") == op)
    counts = [v for _, v in buckets]
    if not buckets or buckets[-1][0] != float("inf"):
        return False, "no +Inf bucket"
    if counts != sorted(counts):
        return False, f"buckets decrease: {counts}"
    if count != counts[-1] or count != answered:
        return False, (f"_count {count}, +Inf bucket {counts[-1]}, "
                       f"requests_total {answered}")
    if total is None or total < 0 or (count > 0) != (total > 0):
        return False, f"_sum {total} with _count {count}"
    return True, f"_count {count:.0f}"


# ---- load ----

def curl_batch(i, keys, put):
    """PUTs (or GETs) keys through node i in one keep-alive curl process;
    returns the HTTP statuses."""
    cfg = "".join(f'url = "http://{addr(i)}{kv_path(k)}"\n'
                  'output = "/dev/null"\n' for k in keys)
    cmd = [CURL, "-s", "-K", "-", "-w", "%{http_code}\\n", "--max-time", "30",
           "-H", "Expect:"]
    if put:
        cmd += ["-X", "PUT", "--data-binary", "load-value"]
    r = subprocess.run(cmd, input=cfg.encode(), capture_output=True,
                       timeout=120)
    return r.stdout.decode().split()


class Load(threading.Thread):
    """For about seconds: batches of PUTs through node i, each batch read
    back through the next node."""

    def __init__(self, i, seconds, tag):
        super().__init__(daemon=True)
        self.i, self.seconds, self.tag = i, seconds, tag
        self.puts, self.gets = [], []

    def run(self):
        deadline = time.monotonic() + self.seconds
        n = 0
        while time.monotonic() < deadline:
            keys = [f"{self.tag}-n{self.i}-{n}-{k}" for k in range(BATCH)]
            self.puts += curl_batch(self.i, keys, True)
            self.gets += curl_batch(self.i % 3 + 1, keys, False)
            n += 1


def run_load(seconds, tag, during=None):
    """Runs a Load through every node, calling during() meanwhile until
    they finish (at least once); returns (PUTs, GETs, answers not 204 or
    200)."""
    loads = [Load(i, seconds, tag) for i in NODES]
    for ld in loads:
        ld.start()
    while during:
        during()
        if not any(ld.is_alive() for ld in loads):
            break
    for ld in loads:
        ld.join(timeout=120)
    puts = sum(len(ld.puts) for ld in loads)
    gets = sum(len(ld.gets) for ld in loads)
    bad = [s for ld in loads for s in ld.puts if s != "204"] + \
          [s for ld in loads for s in ld.gets if s != "200"]
    return puts, gets, bad


# ---- raw sockets ----

def raw_exchange(i, data, chunk=1 << 16, read_s=5):
    """Sends data on a fresh connection to node i (stopping when the node
    stops taking it), then reads until the node closes the connection or
    read_s pass. Returns (what came back, whether the node closed)."""
    s = socket.create_connection(("127.0.0.1", http_ports[i - 1]), 5)
    s.settimeout(read_s)
    out, closed = b"", False
    try:
        for off in range(0, len(data), chunk):
            s.sendall(data[off:off + chunk])
    except OSError:
        pass  # the node refused the rest: read what it said
    try:
        while True:
            b = s.recv(65536)
            if not b:
                closed = True
                break
            out += b
    except socket.timeout:
        pass
    except OSError:
        closed = True  # reset
    s.close()
    return out, closed


class SlowClient(threading.Thread):
    """Sends a PUT to node i one byte a second for at most SLOW_MAX_S;
    records when the node closed the connection and what it answered."""

    def __init__(self, i):
        super().__init__(daemon=True)
        self.i = i
        self.connected = threading.Event()
        self.closed_after = None
        self.answer = b""
        self.sent = 0

    def run(self):
        req = (b"PUT /kv/slow HTTP/1.1\r\nHost: kvorum\r\n"
               b"Content-Length: 100\r\n\r\n" + b"s" * 100)
        s = socket.create_connection(("127.0.0.1", http_ports[self.i - 1]),
                                     5)
        s.settimeout(1.0)  # also the pace: one byte, then a second's read
        t0 = time.monotonic()
        self.connected.set()
        closed = False
        while not closed and time.monotonic() - t0 < SLOW_MAX_S:
            try:
                s.sendall(req[self.sent:self.sent + 1])
                self.sent += 1
                b = s.recv(4096)
                self.answer += b
                closed = b == b""
            except socket.timeout:
                pass
            except OSError:
                closed = True
        if closed:
            self.closed_after = time.monotonic() - t0
        s.close()


def timed(fn):
    t0 = time.monotonic()
    r = fn()
    return r, time.monotonic() - t0


prom = None
try:
    # ---- 1. /ready before and after the ring forms; /health ----
    # A node with seeds waits two gossip rounds for them before anyone
    # creates the first ring (gossip.h), and /ready answers 503 until the
    # node is in a ring (uv_http.c uvh__not_ready): poll every node from
    # the moment it starts and keep its first answer.
    for i in NODES:
        c.start(i, ["--http", addr(i)])
    first, ready = {}, {}

    def all_ready():
        for i in NODES:
            if i in ready:
                continue
            st, _, body = curl(i, "/ready", timeout=2)
            if st:
                first.setdefault(i, (st, json_of(body)))
            if st == 200:
                ready[i] = json_of(body)
        return len(ready) == len(NODES)
    took = c.wait_until(all_ready, 30, poll=0.02)
    for i in NODES:
        st, j = first.get(i, (0, None))
        t.check(st == 503 and j == {"ready": False,
                                    "reason": "not in the ring yet",
                                    "node": f"n{i}"},
                f"n{i}: /ready is first 503 with a reason: {st} {j}")
        t.check(ready.get(i) == {"ready": True, "node": f"n{i}"},
                f"n{i}: then /ready is 200 (in {took and round(took, 2)} s): "
                f"{ready.get(i)}")
        st, h, body = curl(i, "/health")
        t.check(st == 200 and json_of(body) == {"status": "ok",
                                                "node": f"n{i}"},
                f"n{i}: /health is 200: {st} {body[:60]!r}")
    t.check(c.wait_all_up(list(NODES)) is not None, "three nodes up")

    # ---- 2. the key API ----
    st, h, body = curl(1, "/kv/greeting", "-X", "PUT", data=b"hello")
    t.check(st == 204 and h.get("x-kvorum-context"),
            f"PUT: 204 with X-Kvorum-Context: {st} {h}")
    st, h, body = curl(2, "/kv/greeting")
    t.check(st == 200 and body == b"hello" and h.get("x-kvorum-context") and
            h.get("content-type") == "application/octet-stream",
            f"GET through another node: 200, the value, a context: {st} "
            f"{body[:40]!r}")
    st, h, body = curl(3, "/kv/greeting", "-H", "Accept: application/json")
    j = json_of(body) or {}
    sib = (j.get("siblings") or [{}])[0]
    t.check(st == 200 and h.get("content-type") == "application/json" and
            len(j.get("siblings", [])) == 1 and
            sib.get("value") == base64.b64encode(b"hello").decode() and
            sib.get("deleted") is False and
            isinstance(sib.get("last_modified_ms"), int) and
            j.get("context") == h.get("x-kvorum-context"),
            f"GET with Accept: application/json: 200 and the JSON form: "
            f"{st} {body[:160]!r}")

    # Two writes without a context through two nodes are siblings.
    st1, _, _ = curl(1, "/kv/cart", "-X", "PUT", data=b"milk")
    st2, _, _ = curl(2, "/kv/cart", "-X", "PUT", data=b"eggs")
    t.check(st1 == 204 and st2 == 204, "two PUTs without a context through "
            "n1 and n2")
    st, h, body = curl(3, "/kv/cart")
    j = json_of(body) or {}
    t.check(st == 300 and h.get("content-type") == "application/json" and
            sibling_values(j) == [b"eggs", b"milk"] and
            j.get("context") == h.get("x-kvorum-context"),
            f"GET: 300 with both siblings in JSON: {st} {body[:200]!r}")
    st, h, _ = curl(1, "/kv/cart", "-X", "PUT", "-H",
                    f"X-Kvorum-Context: {j.get('context', '')}",
                    data=b"eggs,milk")
    t.check(st == 204, f"PUT with the context of the 300: {st}")
    st, h, body = curl(2, "/kv/cart")
    t.check(st == 200 and body == b"eggs,milk",
            f"... resolves them: GET is 200 with the new value: {st} "
            f"{body[:60]!r}")
    st, _, _ = curl(3, "/kv/cart", "-X", "DELETE", "-H",
                    f"X-Kvorum-Context: {h.get('x-kvorum-context', '')}")
    t.check(st == 204, f"DELETE with the context: {st}")
    st, h, body = curl(1, "/kv/cart")
    t.check(is_error(st, h, body, 404, "ENOTFOUND") and
            "x-kvorum-context" in h,
            f"GET after the DELETE: 404, ENOTFOUND, a context: {st} "
            f"{body[:80]!r}")
    st, h, body = curl(2, "/kv/never-written")
    t.check(is_error(st, h, body, 404, "ENOTFOUND") and
            h.get("x-kvorum-context") == "",
            f"GET of a key never written: 404 with an empty context: {st} "
            f"{h.get('x-kvorum-context')!r}")

    # Keys are bytes, percent-encoded in the path; "+" stays "+".
    odd = "a/b c%+?&=#\u00e9"
    st, _, _ = curl(1, kv_path(odd), "-X", "PUT", data=b"odd")
    st2, _, body = curl(2, kv_path(odd))
    t.check(st == 204 and st2 == 200 and body == b"odd",
            f"a key with escaped bytes round-trips: {kv_path(odd)} {st} "
            f"{st2} {body[:40]!r}")
    g = c.get(3, odd)
    t.check(g is not None and g.get("key") == odd and
            [s.get("value") for s in g["siblings"]] == ["odd"],
            f"... and is that key for the native CLI: {g}")
    st, _, _ = curl(1, "/kv/x+y", "-X", "PUT", data=b"plus")
    g = c.get(2, "x+y")
    t.check(st == 204 and g is not None and
            [s.get("value") for s in g["siblings"]] == ["plus"],
            f"'+' in a path stays '+': {st} {g}")
    c.put(3, "from-cli", "native")
    st, _, body = curl(1, kv_path("from-cli"))
    t.check(st == 200 and body == b"native",
            f"a value the native CLI wrote reads over HTTP: {st} {body!r}")

    st, h, body = curl(1, "/admin/status")
    j = json_of(body) or {}
    t.check(st == 200 and h.get("content-type") == "application/json" and
            sorted(m.get("id") for m in j.get("members", [])) ==
            ["n1", "n2", "n3"] and
            all(m.get("state") == "up" for m in j["members"]),
            f"/admin/status lists the three members up: {st} "
            f"{body[:120]!r}")
    for cmd in ("ring", "stats", "transfers"):
        st, h, body = curl(2, f"/admin/{cmd}")
        t.check(st == 200 and json_of(body) is not None,
                f"/admin/{cmd} is 200 with JSON: {st} {body[:60]!r}")

    # ---- 3. errors ----
    cases = [
        ("an unknown query parameter", ("/kv/x?colour=red",), 400, "EINVAL"),
        ("a bad level", ("/kv/x?r=banana",), 400, "EINVAL"),
        ("a bad timeout", ("/kv/x?timeout=soon",), 400, "EINVAL"),
        ("a bad escape in the key", ("/kv/a%zz",), 400, "EINVAL"),
        ("a context that is not base64",
         ("/kv/x", "-X", "PUT", "-H", "X-Kvorum-Context: !!not-base64!!"),
         400, "EINVAL"),
        ("a context this store never gave out",
         ("/kv/x", "-X", "PUT", "-H", "X-Kvorum-Context: aGVsbG8="),
         400, "EINVAL"),
        ("an unknown path", ("/nope",), 404, "ENOTFOUND"),
        ("an unknown admin command", ("/admin/shutdown",), 404, "ENOTFOUND"),
    ]
    for what, args, want, code in cases:
        st, h, body = curl(1, *args, data=b"v" if "PUT" in args else None)
        t.check(is_error(st, h, body, want, code),
                f"{what}: {want} {code}: {st} {body[:100]!r}")
    st, h, body = curl(2, "/kv/x", "-X", "POST", data=b"v")
    t.check(st == 405 and "PUT" in h.get("allow", "") and
            json_of(body) is not None,
            f"POST /kv/x: 405 with Allow and JSON: {st} {h.get('allow')}")
    st, h, body = curl(2, "/metrics", "-X", "PUT", data=b"v")
    t.check(st == 405 and h.get("allow") == "GET, HEAD",
            f"PUT /metrics: 405, Allow: GET, HEAD: {st} {h.get('allow')}")
    st, h, body = curl(3, "/kv/big", "-X", "PUT", data=b"b" * (VALUE_MAX + 1))
    t.check(is_error(st, h, body, 413, "ETOOBIG"),
            f"a value one byte over --value-max {VALUE_MAX}: 413 ETOOBIG: "
            f"{st} {body[:100]!r}")
    st, _, _ = curl(3, "/kv/big", "-X", "PUT", data=b"b" * VALUE_MAX)
    st2, _, body = curl(1, "/kv/big")
    t.check(st == 204 and st2 == 200 and len(body) == VALUE_MAX,
            f"a value of exactly --value-max is taken: {st} {st2}")

    # ---- 4. /metrics through promtool, idle and under load ----
    for i in NODES:
        st, h, body = curl(i, "/metrics")
        ok, said = promtool_check(body)
        t.check(st == 200 and h.get("content-type", "").startswith(
                    "text/plain; version=0.0.4") and ok,
                f"n{i} idle: promtool check metrics accepts /metrics "
                f"({len(body)} bytes) {said.strip()[:200]}")
    scrapes, rejected = [], []

    def scrape_all():
        for i in NODES:
            st, _, body = curl(i, "/metrics")
            ok, said = promtool_check(body)
            scrapes.append(i)
            if st != 200 or not ok:
                rejected.append((i, st, said.strip()[:200]))
    puts, gets, bad = run_load(LOAD_S, "load", during=scrape_all)
    t.check(puts > 0 and gets == puts and not bad,
            f"the load: {puts} PUTs, {gets} GETs over HTTP, every one 204 "
            f"or 200 (other answers: {bad[:5]})")
    # At least one round of every node while the load runs (a slow
    # sanitizer build may fit only one).
    t.check(len(scrapes) >= len(NODES) and not rejected,
            f"promtool accepts all {len(scrapes)} scrapes taken during the "
            f"load: {rejected[:2]}")
    put_ok = {}
    for i in NODES:
        ms = parse_metrics(curl(i, "/metrics")[2].decode())
        put_ok[i] = metric(ms, "kvorum_requests_total", op="put",
                           result="ok") or 0
        for op in ("get", "put", "del"):
            ok, why = histogram_consistent(ms, op)
            t.check(ok, f"n{i}: the {op} duration histogram is consistent "
                        f"with kvorum_requests_total: {why}")
    t.check(max(put_ok.values()) > 0 and sum(put_ok.values()) >= puts,
            f"kvorum_requests_total{{op=\"put\",result=\"ok\"}} counts the "
            f"load's {puts} PUTs: {put_ok}")

    # ---- 5. a real Prometheus server ----
    targets = [addr(i) for i in NODES]
    cfg = os.path.join(c.tmp, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                "  evaluation_interval: 1s\n"
                "scrape_configs:\n  - job_name: kvorum\n"
                "    static_configs:\n"
                f"      - targets: {json.dumps(targets)}\n")
    prom = c.spawn("prometheus", [
        PROMETHEUS, f"--config.file={cfg}",
        f"--storage.tsdb.path={os.path.join(c.tmp, 'prometheus-data')}",
        f"--web.listen-address=127.0.0.1:{prom_port}"])

    def prom_query(q):
        """The result vector of an instant query, or None."""
        st, _, body = curl_url(f"http://127.0.0.1:{prom_port}/api/v1/query",
                               "-G", "--data-urlencode", f"query={q}",
                               timeout=5)
        j = json_of(body) if st == 200 else None
        if not j or j.get("status") != "success":
            return None
        return j["data"]["result"]

    def prom_scalar(q):
        r = prom_query(q)
        return float(r[0]["value"][1]) if r else None
    up = {}

    def all_up():
        r = prom_query("up") or []
        up.clear()
        up.update({s["metric"].get("instance"): s["value"][1] for s in r})
        return up == {a: "1" for a in targets}
    took = c.wait_until(all_up, 40, poll=0.25)
    t.check(took is not None, f"Prometheus scrapes the three nodes: up == 1 "
            f"for each (in {took and round(took, 1)} s): {up}")
    t.check(prom_scalar("count(kvorum_node_info)") == 3,
            "Prometheus has kvorum_node_info of three nodes")
    before = prom_scalar("sum(kvorum_requests_total)") or 0
    puts, gets, bad = run_load(PROM_LOAD_S, "prom")
    want = before + puts + gets
    seen = [before]

    def prom_saw_load():
        seen.append(prom_scalar("sum(kvorum_requests_total)") or 0)
        return seen[-1] >= want
    took = c.wait_until(prom_saw_load, 30, poll=0.5)
    t.check(took is not None and not bad,
            f"Prometheus sees the load: sum(kvorum_requests_total) went from "
            f"{before:.0f} to {seen[-1]:.0f} (>= {want:.0f}, "
            f"in {took and round(took, 1)} s)")
    prom.kill()
    t.check(prom.wait(timeout=10) is not None, "Prometheus stopped")

    # ---- 6. bad HTTP ----
    slow = SlowClient(1)
    slow.start()
    slow.connected.wait(10)
    # Each is answered with one of its statuses, or the connection closed
    # without an answer; never left hanging.
    head = b"GET /health HTTP/1.1\r\nHost: kvorum\r\n"
    bad_requests = [
        # (a) headers far past h2o's limit (about 400 KiB, 100 headers).
        ("1 MB of headers", head + b"".join(
            b"X-Filler-%d: %s\r\n" % (k, b"f" * 1000) for k in range(1000)) +
         b"\r\n", range(400, 500), "a 4xx"),
        ("150 headers", head + b"".join(
            b"X-H%d: v\r\n" % k for k in range(150)) + b"\r\n",
         range(400, 500), "a 4xx"),
        # (b) a body announced as 100 MB, of which 8 MB are sent.
        ("a PUT with Content-Length 100 MB",
         b"PUT /kv/huge HTTP/1.1\r\nHost: kvorum\r\n"
         b"Content-Length: 104857600\r\n\r\n" + b"h" * (8 << 20), (413,),
         "413"),
        # (d) garbage.
        ("garbage", b"\x00\xffGARBAGE\r\n\r\n", (400,), "400"),
    ]
    for what, data, statuses, expect in bad_requests:
        out, closed = raw_exchange(1, data)
        st = parse_http(out)[0]
        t.check(st in statuses or (out == b"" and closed),
                f"{what}: {expect} or a closed connection: {out[:40]!r} "
                f"closed={closed}")
    # Pipelining: two requests in one write, two answers in order.
    out, closed = raw_exchange(
        2, b"GET /health HTTP/1.1\r\nHost: kvorum\r\n\r\n"
        b"GET /kv/greeting HTTP/1.1\r\nHost: kvorum\r\nConnection: close\r\n"
        b"\r\n")
    first_st, _, rest = parse_http(out)
    second_st, _, body = parse_http(rest[rest.index(b"HTTP/"):]
                                    if b"HTTP/" in rest else b"")
    t.check(first_st == 200 and second_st == 200 and body == b"hello" and
            closed, f"two pipelined requests, two answers in order, then "
                    f"Connection: close: {out[-60:]!r}")
    # (c) the slow client is still connected; others are served at once.
    c.wait_until(lambda: slow.sent >= 3 or not slow.is_alive(), 10)
    (st, _, _), dt = timed(lambda: curl(1, "/health", timeout=5))
    t.check(st == 200 and dt < PROMPT_S and slow.is_alive(),
            f"while a client sends a byte a second, /health of its node "
            f"answers in {dt:.2f} s")
    (st, _, body), dt = timed(lambda: curl(1, "/kv/greeting", timeout=5))
    t.check(st == 200 and body == b"hello" and dt < PROMPT_S and
            slow.is_alive(),
            f"... and a key GET in {dt:.2f} s ({slow.sent} bytes sent so far)")
    slow.join(SLOW_MAX_S + 5)
    t.check(slow.closed_after is not None and
            REQ_TIMEOUT_S - 1 <= slow.closed_after <= REQ_TIMEOUT_S + 4 and
            not re.match(rb"HTTP/1\.1 2", slow.answer),
            f"the slow client is cut off after about {REQ_TIMEOUT_S} s: "
            f"after {slow.closed_after and round(slow.closed_after, 1)} s, "
            f"{slow.sent} bytes sent, answer {slow.answer[:40]!r}")
    for i in NODES:
        st, _, _ = curl(i, "/health")
        t.check(c.alive(i) and st == 200,
                f"n{i} is alive and /health is 200 after the bad requests")
    open_now = []

    def http_conns_closed():
        ms = parse_metrics(curl(1, "/metrics")[2].decode())
        open_now.append(metric(ms, "kvorum_connections_open", port="http"))
        return open_now[-1] == 1  # the scrape's own
    t.check(c.wait_until(http_conns_closed, 10, poll=0.2) is not None,
            f"n1 closed every bad connection: kvorum_connections_open"
            f"{{port=\"http\"}} is {open_now[-1:]} with only the scrape open")
finally:
    if t.failed:
        c.dump_logs()
        if prom is not None:
            print("---- prometheus log (last 20 lines) ----")
            with open(os.path.join(c.tmp, "prometheus.log"), "r",
                      errors="replace") as f:
                print("".join(f.readlines()[-20:]))
    c.close()
t.finish()
