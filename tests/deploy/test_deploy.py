"""test_deploy: checks the deployment files under deploy/ against kvorumd.

Static checks, on every run:
- every Kubernetes manifest parses, and each variant (a folder of
  deploy/kubernetes) hangs together: the StatefulSets' serviceName is a
  headless Service that publishes not-ready pods; the flags the entry
  point computes from a pod's environment (run in its dry-run mode, with a
  stand-in getent that resolves the variant's pod names) bind the
  container ports; probes name real ports and real endpoints
  (docs/http.md), readiness on /ready and liveness on /health; seeds and
  the bootstrap pod name existing pods; PodDisruptionBudgets keep a
  majority of the pods and a quorum of every key's replicas; preStop never
  calls `kvorum leave`; the pods run as the image's non-root user;
- the Dockerfile: multi-stage on Debian 12, the three programs built and
  copied, a non-root USER, EXPOSEd ports equal to the manifests', builder
  packages equal to scripts/deps.sh's libraries, runtime packages that
  hold every library the programs link (when dpkg knows them);
- the systemd unit: `systemd-analyze verify` on a copy whose ExecStart
  points at the built kvorumd (the installed path, /usr/local/bin/kvorumd,
  need not exist here; nothing else is rewritten and any message fails),
  its exposure level, the sysusers snippet, the example configuration's
  keys against `kvorumd --help`;
- with python3-kubernetes installed (it is optional), every manifest field
  against the Kubernetes API's models.

With --kvorumd, also a smoke run of the entry point itself: two nodes on
127.0.0.2 and 127.0.0.3 join through a seed given as a pod name, answer
/ready, pass the `health` check, and exit 0 on SIGTERM; a non-bootstrap
pod whose seed does not answer refuses to start.

Usage: test_deploy.py [--kvorumd PATH] [--cli PATH] [--bench PATH]
Prints "ok"/"FAIL"/"skip" lines and a closing "N passed, M failed".
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

try:
    import yaml
except ImportError:  # scripts/deps.sh installs python3-yaml
    print("test_deploy: python3-yaml is missing (scripts/deps.sh installs "
          "it)", file=sys.stderr)
    sys.exit(1)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "cluster"))
import kvtest  # noqa: E402
DEPLOY = os.path.join(ROOT, "deploy")
K8S = os.path.join(DEPLOY, "kubernetes")
ENTRYPOINT = os.path.join(DEPLOY, "container", "kvorum-entrypoint.sh")
DOCKERFILE = os.path.join(DEPLOY, "container", "Dockerfile")
UNIT = os.path.join(DEPLOY, "systemd", "kvorumd@.service")
SYSUSERS = os.path.join(DEPLOY, "systemd", "kvorum.sysusers")
CONF_EXAMPLE = os.path.join(DEPLOY, "systemd", "kvorum.conf.example")
NAMESPACE = "deploytest"
PORT_NAMES = {"client": "--listen", "peer": "--peer", "resp": "--resp",
              "http": "--http"}
# Libraries every Debian image has: not named in the runtime stage.
BASE_PACKAGES = {"libc6", "libgcc-s1", "libstdc++6", "zlib1g"}
WAIT_S = 30


class Checks(kvtest.Checks):
    """kvtest's counted checks, plus skipped ones."""

    def __init__(self):
        super().__init__("test_deploy")
        self.skipped = 0

    def skip(self, what):
        self.skipped += 1
        print(f"skip {what}", flush=True)

    def finish(self):
        print(f"{self.name}: {self.skipped} skipped", flush=True)
        super().finish()


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def help_flags(kvorumd):
    """The long flags `kvorumd --help` lists, or None without a kvorumd."""
    if not kvorumd:
        return None
    out = subprocess.run([kvorumd, "--help"], capture_output=True,
                         text=True, timeout=30).stdout
    return set(re.findall(r"--([a-z][a-z0-9-]*)", out))


def http_paths():
    """The paths of docs/http.md's endpoint table."""
    paths = set()
    for line in read(os.path.join(ROOT, "docs", "http.md")).splitlines():
        m = re.match(r"\|\s*(`/[^|]*)\|", line)
        if m:
            paths.update(re.findall(r"`(/[^`{]*)", m.group(1)))
    return paths


# ---- Kubernetes ----

def load_variants(c):
    """{variant folder: [manifest documents]}; checks each parses."""
    variants = {}
    for dirpath, _, files in sorted(os.walk(K8S)):
        for fn in sorted(files):
            if not fn.endswith((".yaml", ".yml")):
                continue
            path = os.path.join(dirpath, fn)
            rel = os.path.relpath(path, ROOT)
            try:
                docs = [d for d in yaml.safe_load_all(read(path)) if d]
            except yaml.YAMLError as e:
                c.check(False, f"{rel} parses ({e})")
                continue
            ok = all(isinstance(d, dict) and d.get("apiVersion")
                     and d.get("kind") and d.get("metadata", {}).get("name")
                     for d in docs)
            c.check(docs and ok, f"{rel}: {len(docs)} documents with "
                    "apiVersion, kind and metadata.name")
            c.check(not any("namespace" in d.get("metadata", {})
                            for d in docs),
                    f"{rel} names no namespace (kubectl -n chooses)")
            errs = [e for d in docs for e in (schema_errors(d) or [])]
            if schema_errors(docs[0] if docs else {}) is None:
                c.skip(f"{rel}: field names against the Kubernetes API: "
                       "no python3-kubernetes")
            else:
                c.check(not errs, f"{rel}: every field is in the Kubernetes "
                        f"API {errs or ''}")
            variants.setdefault(os.path.relpath(dirpath, K8S), []).extend(docs)
    return variants


def schema_errors(doc):
    """Keys and scalar types of doc not in the Kubernetes API's models (the
    Python client's, python3-kubernetes), or None without it."""
    try:
        from kubernetes.client import models
    except ImportError:
        return None
    top = {("v1", "Service"): "V1Service",
           ("apps/v1", "StatefulSet"): "V1StatefulSet",
           ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget"}
    errs = []
    scalars = {"str": str, "int": int, "bool": bool}

    def walk(obj, cls, path):
        m = re.match(r"list\[(.+)\]$", cls)
        if m:
            for i, x in enumerate(obj if isinstance(obj, list) else []):
                walk(x, m.group(1), f"{path}[{i}]")
            if not isinstance(obj, list):
                errs.append(f"{path}: not a list")
            return
        m = re.match(r"dict\(\w+, (.+)\)$", cls)
        if m:
            for k, v in (obj.items() if isinstance(obj, dict) else ()):
                walk(v, m.group(1), f"{path}.{k}")
            return
        if cls in scalars:
            if not isinstance(obj, scalars[cls]):
                errs.append(f"{path}: {obj!r} is not a {cls}")
            return
        model = getattr(models, cls, None)
        if model is None:
            return  # object, datetime, IntOrString: anything goes
        if not isinstance(obj, dict):
            errs.append(f"{path}: not an object")
            return
        keys = {v: k for k, v in model.attribute_map.items()}
        for k, v in obj.items():
            if k not in keys:
                errs.append(f"{path}: unknown field {k}")
            else:
                walk(v, model.openapi_types[keys[k]], f"{path}.{k}")

    cls = top.get((doc.get("apiVersion"), doc.get("kind")))
    if cls is None:
        return [f"{doc.get('apiVersion')} {doc.get('kind')}: not checked"]
    walk(doc, cls, f"{doc['kind']}/{doc['metadata']['name']}")
    return errs


def of_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v
                                  for k, v in selector.items())


def main_container(sts):
    cs = sts["spec"]["template"]["spec"]["containers"]
    return next((x for x in cs if x["name"] == "kvorumd"), cs[0])


def env_of(container):
    """The container's plain env values; fieldRefs as their paths."""
    env = {}
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = str(e["value"])
        elif "fieldRef" in e.get("valueFrom", {}):
            env[e["name"]] = "fieldRef:" + e["valueFrom"]["fieldRef"][
                "fieldPath"]
    return env


def pod_ips(stss):
    """{pod name: fake IP} for every pod of the StatefulSets."""
    ips = {}
    for sts in stss:
        for i in range(sts["spec"].get("replicas", 1)):
            n = len(ips)
            pod = f"{sts['metadata']['name']}-{i}"
            ips[pod] = f"10.9.{n // 250}.{n % 250 + 1}"
    return ips


def fake_getent(tmp, table, name="bin"):
    """A folder (tmp/name) holding a getent that answers `getent
    ahosts[v4] NAME` from table, for the front of PATH."""
    d = os.path.join(tmp, name)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "getent")
    lines = "".join(f"  {name}) echo '{ip}  STREAM {name}' ;;\n"
                    for name, ip in table.items())
    with open(path, "w", encoding="utf-8") as f:
        f.write("#!/bin/sh\ncase $2 in\n" + lines + "  *) exit 2 ;;\nesac\n")
    os.chmod(path, 0o755)
    return d


def entrypoint_args(env, args, extra_path):
    """kvorumd's argv as the entry point computes it (its dry run)."""
    full = {"PATH": extra_path + ":" + os.environ.get("PATH", "/usr/bin:/bin"),
            "KVORUM_DRY_RUN": "1", **env}
    p = subprocess.run(["bash", ENTRYPOINT, *args], env=full,
                       capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise RuntimeError(f"entry point exited {p.returncode}: {p.stderr}")
    return p.stdout.splitlines()


def flags_of(argv):
    """{--flag: value} (the last of a repeated flag wins, as in kvorumd)."""
    out = {}
    for i in range(0, len(argv) - 1, 2):
        out[argv[i]] = argv[i + 1]
    return out


def port_of(addr):
    return int(addr.rsplit(":", 1)[1])


def host_of(addr):
    return addr.rsplit(":", 1)[0].strip("[]")


def probe_port(container, probe):
    """The container port number a probe's httpGet names, or None."""
    port = probe.get("httpGet", {}).get("port")
    for p in container.get("ports", []):
        if port in (p.get("name"), p["containerPort"]):
            return p["containerPort"]
    return None


def replicas_per_key(flags):
    """{region: replicas of every key} from --replicas or --n."""
    if "--replicas" in flags:
        pairs = (x.split("=") for x in flags["--replicas"].split(","))
        return {r: int(n) for r, n in pairs}
    return {flags.get("--region", "default"): int(flags.get("--n", "3"))}


def check_statefulset(c, where, sts, headless, pods, tmp, helpf, docs_paths,
                      variant):
    """Checks one StatefulSet; returns the flags of its pod 0."""
    name = sts["metadata"]["name"]
    spec = sts["spec"]
    tpl = spec["template"]
    labels = tpl["metadata"].get("labels", {})
    pod = tpl["spec"]
    ct = main_container(sts)
    c.check(spec.get("serviceName") in headless,
            f"{where}: serviceName {spec.get('serviceName')} is a headless "
            "Service")
    hs = headless.get(spec.get("serviceName"), {})
    c.check(selects(hs.get("spec", {}).get("selector"), labels),
            f"{where}: the headless Service selects its pods")
    c.check(selects(spec["selector"]["matchLabels"], labels),
            f"{where}: its selector matches its pod template")
    c.check(spec.get("podManagementPolicy", "OrderedReady") == "OrderedReady",
            f"{where}: pods start one at a time (OrderedReady): each joins "
            "through the ones before")

    ports = {p.get("name"): p["containerPort"] for p in ct.get("ports", [])}
    c.check(set(PORT_NAMES) <= set(ports),
            f"{where}: container ports {sorted(ports)} include "
            f"{sorted(PORT_NAMES)}")

    env = env_of(ct)
    c.check(env.get("POD_NAME") == "fieldRef:metadata.name",
            f"{where}: POD_NAME comes from metadata.name (the node id)")
    c.check(env.get("POD_IP") == "fieldRef:status.podIP",
            f"{where}: POD_IP comes from status.podIP (the bound and "
            "advertised address)")
    service = env.get("KVORUM_SERVICE", name)
    c.check(service == spec.get("serviceName"),
            f"{where}: KVORUM_SERVICE is the headless Service")
    for entry in filter(None, env.get("KVORUM_SEEDS", "").split(",")):
        if ":" not in entry:
            c.check(entry in pods, f"{where}: seed {entry} is a pod of "
                    f"{variant}")
    bootstrap = env.get("KVORUM_BOOTSTRAP", f"{name}-0")
    c.check(bootstrap in pods, f"{where}: bootstrap pod {bootstrap} exists")

    # The flags kvorumd gets, computed for every pod of the set.
    table = {f"{p}.{service}.{NAMESPACE}.svc.cluster.local": ip
             for p, ip in pods.items()}
    path = fake_getent(tmp, table)
    by_ip = {ip: p for p, ip in pods.items()}
    first = None
    for i in range(spec.get("replicas", 1)):
        pname = f"{name}-{i}"
        penv = {k: v for k, v in env.items() if not v.startswith("fieldRef:")}
        penv.update(POD_NAME=pname, POD_IP=pods[pname],
                    POD_NAMESPACE=NAMESPACE)
        try:
            argv = entrypoint_args(penv, ct.get("args", []), path)
        except RuntimeError as e:
            c.check(False, f"{where}: entry point for {pname}: {e}")
            continue
        flags = flags_of(argv)
        first = first or flags
        if i:
            continue  # the others differ only in --id and addresses
        c.check(flags.get("--id") == pname, f"{where}: --id is the pod name")
        for pn, flag in PORT_NAMES.items():
            c.check(flag in flags and port_of(flags[flag]) == ports.get(pn),
                    f"{where}: {flag} {flags.get(flag)} binds container "
                    f"port {pn} ({ports.get(pn)})")
        for flag in ("--listen", "--peer"):
            c.check(host_of(flags.get(flag, ":")) == pods[pname],
                    f"{where}: {flag} is the pod IP (kvorumd advertises it)")
        seeds = [s for s in flags.get("--seeds", "").split(",") if s]
        c.check(seeds and all(by_ip.get(host_of(s)) in pods
                              and port_of(s) == ports["peer"] for s in seeds),
                f"{where}: --seeds {flags.get('--seeds')} are peer ports "
                "of pods")
        mounts = {m["name"]: m["mountPath"]
                  for m in ct.get("volumeMounts", [])}
        claims = [v["metadata"]["name"]
                  for v in spec.get("volumeClaimTemplates", [])]
        c.check(any(flags.get("--data", "").startswith(mounts.get(v, "//"))
                    for v in claims),
                f"{where}: --data {flags.get('--data')} is on a "
                "PersistentVolumeClaim")
        if helpf is not None:
            unknown = [a for a in argv if a.startswith("--")
                       and a[2:] not in helpf]
            c.check(not unknown, f"{where}: kvorumd knows every flag "
                    f"it gets {unknown or ''}")

    # Probes: real ports, real endpoints, the right one for each.
    want = {"readinessProbe": "/ready", "livenessProbe": "/health",
            "startupProbe": "/health"}
    c.check("readinessProbe" in ct and "livenessProbe" in ct,
            f"{where}: has readiness and liveness probes")
    for kind, path_want in want.items():
        probe = ct.get(kind)
        if not probe:
            continue
        got = probe.get("httpGet", {}).get("path")
        c.check(got == path_want and got in docs_paths,
                f"{where}: {kind} GETs {got} (want {path_want}, an endpoint "
                "of docs/http.md)")
        c.check(probe_port(ct, probe) == ports.get("http")
                and first and port_of(first["--http"]) == ports.get("http"),
                f"{where}: {kind} port is the one --http binds")

    # Stopping: SIGTERM after preStop, never `kvorum leave`.
    pre = ct.get("lifecycle", {}).get("preStop", {})
    cmd = pre.get("exec", {}).get("command", [])
    c.check("leave" not in " ".join(map(str, cmd)) and "httpGet" not in pre,
            f"{where}: preStop {cmd} does not leave the cluster")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    sleep = int(cmd[1]) if len(cmd) == 2 and cmd[0] == "sleep" else 0
    c.check(grace >= sleep + 30, f"{where}: terminationGracePeriodSeconds "
            f"{grace} leaves kvorumd 30 s after preStop's {sleep} s")

    sc = pod.get("securityContext", {})
    csc = ct.get("securityContext", {})
    c.check(sc.get("runAsNonRoot") and sc.get("runAsUser", 0) != 0
            and sc.get("fsGroup") is not None,
            f"{where}: runs as non-root uid {sc.get('runAsUser')} with an "
            "fsGroup for its volume")
    c.check(csc.get("allowPrivilegeEscalation") is False,
            f"{where}: no privilege escalation")
    return first


def check_pdbs(c, variant, docs, stss, flags_by_sts):
    """Every StatefulSet is under a PDB that keeps a majority of its pods
    and a quorum of every key's replicas in each region."""
    covered = set()
    for pdb in of_kind(docs, "PodDisruptionBudget"):
        where = f"{variant}: PDB {pdb['metadata']['name']}"
        sel = pdb["spec"].get("selector", {}).get("matchLabels", {})
        matched = [s for s in stss if selects(
            sel, s["spec"]["template"]["metadata"].get("labels", {}))]
        c.check(matched, f"{where} selects kvorum pods")
        total = sum(s["spec"].get("replicas", 1) for s in matched)
        if "maxUnavailable" in pdb["spec"]:
            mu = pdb["spec"]["maxUnavailable"]
            down = (total * int(mu[:-1]) + 99) // 100 if isinstance(mu, str) \
                else int(mu)
        else:
            mn = pdb["spec"].get("minAvailable", 0)
            up = (total * int(mn[:-1]) + 99) // 100 if isinstance(mn, str) \
                else int(mn)
            down = total - up
        c.check(1 <= down and total - down > total // 2,
                f"{where}: {down} of {total} pods may be down; a majority "
                "stays")
        for s in matched:
            covered.add(s["metadata"]["name"])
            flags = flags_by_sts.get(s["metadata"]["name"]) or {}
            region = flags.get("--region", "default")
            n = replicas_per_key(flags).get(region, 0)
            if n:
                c.check(n - down >= n // 2 + 1,
                        f"{where}: every key keeps a quorum of its {n} "
                        f"replicas in {region} with {down} pod(s) down")
    for s in stss:
        c.check(s["metadata"]["name"] in covered,
                f"{variant}: StatefulSet {s['metadata']['name']} is under a "
                "PodDisruptionBudget")


def check_kubernetes(c, tmp, helpf, docs_paths):
    """Checks every variant; returns (ports, uids) for the Dockerfile."""
    variants = load_variants(c)
    c.check({"three-node", "two-region"} <= set(variants),
            f"variants {sorted(variants)} include three-node and two-region")
    all_ports, uids = set(), set()
    for variant, docs in sorted(variants.items()):
        services = of_kind(docs, "Service")
        headless = {s["metadata"]["name"]: s for s in services
                    if s["spec"].get("clusterIP") == "None"}
        for s in headless.values():
            c.check(s["spec"].get("publishNotReadyAddresses") is True,
                    f"{variant}: headless Service {s['metadata']['name']} "
                    "publishes not-ready pods (they join through it)")
        stss = of_kind(docs, "StatefulSet")
        c.check(stss, f"{variant}: has StatefulSets")
        pods = pod_ips(stss)
        flags_by_sts = {}
        for sts in stss:
            where = f"{variant}: StatefulSet {sts['metadata']['name']}"
            flags_by_sts[sts["metadata"]["name"]] = check_statefulset(
                c, where, sts, headless, pods, tmp, helpf, docs_paths, variant)
            ct = main_container(sts)
            all_ports |= {p["containerPort"] for p in ct.get("ports", [])}
            uids.add(sts["spec"]["template"]["spec"].get(
                "securityContext", {}).get("runAsUser"))
        # Services reach real container ports.
        for s in services:
            sel = s["spec"].get("selector", {})
            targets = [main_container(x) for x in stss if selects(
                sel, x["spec"]["template"]["metadata"].get("labels", {}))]
            c.check(targets, f"{variant}: Service {s['metadata']['name']} "
                    "selects kvorum pods")
            for p in s["spec"]["ports"]:
                tp = p.get("targetPort", p["port"])
                ok = all(any(tp in (q.get("name"), q["containerPort"])
                             and p["port"] == q["containerPort"]
                             for q in t.get("ports", [])) for t in targets)
                c.check(ok, f"{variant}: Service {s['metadata']['name']} "
                        f"port {p['port']} -> container port {tp}, "
                        "same number")
        # One cluster: the same settings and one bootstrap pod.
        settings = {json.dumps({k: f.get(k) for k in
                                ("--n", "--replicas", "--partitions")})
                    for f in flags_by_sts.values() if f}
        c.check(len(settings) == 1, f"{variant}: every StatefulSet gives the "
                f"same cluster settings {sorted(settings)}")
        boots = {env_of(main_container(s)).get(
            "KVORUM_BOOTSTRAP", f"{s['metadata']['name']}-0") for s in stss}
        c.check(len(boots) == 1, f"{variant}: one bootstrap pod {boots}")
        for name, f in flags_by_sts.items():
            if not f:
                continue
            per_key = replicas_per_key(f)
            region = f.get("--region", "default")
            in_region = sum(s["spec"].get("replicas", 1) for s in stss
                            if (flags_by_sts.get(s["metadata"]["name"]) or {})
                            .get("--region", "default") == region)
            c.check(region in per_key and in_region >= per_key[region],
                    f"{variant}: {name}: region {region} has {in_region} "
                    f"pods for {per_key.get(region)} replicas of every key")
        check_pdbs(c, variant, docs, stss, flags_by_sts)
    return all_ports, uids


# ---- Dockerfile ----

def dockerfile_stages():
    """[(base image, stage name, [(INSTRUCTION, text)])]."""
    text = re.sub(r"\\\n", " ", read(DOCKERFILE))
    stages = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        op, _, rest = line.partition(" ")
        op = op.upper()
        if op == "FROM":
            m = re.match(r"(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
            stages.append((m.group(1), m.group(2), []))
        elif stages:
            stages[-1][2].append((op, rest.strip()))
    return stages


def apt_packages(instrs):
    pkgs = set()
    for op, rest in instrs:
        if op == "RUN":
            for m in re.finditer(r"apt-get install ((?:[-\w.+]+\s*)+)", rest):
                pkgs |= {p for p in m.group(1).split()
                         if not p.startswith("-")}
    return pkgs


def deps_sh_packages():
    m = re.search(r'PKGS="([^"]*)"', read(os.path.join(ROOT, "scripts",
                                                        "deps.sh")))
    return set(m.group(1).split()) if m else set()


def linked_packages(binaries):
    """Debian packages holding the libraries the binaries link directly,
    or None when readelf, ldd or dpkg is missing."""
    if not all(shutil.which(t) for t in ("readelf", "ldd", "dpkg")):
        return None
    pkgs = set()
    for b in binaries:
        needed = re.findall(r"\(NEEDED\).*\[(.+)\]", subprocess.run(
            ["readelf", "-d", b], capture_output=True, text=True).stdout)
        ldd = subprocess.run(["ldd", b], capture_output=True, text=True).stdout
        for lib in needed:
            m = re.search(re.escape(lib) + r" => (\S+)", ldd)
            if not m:
                continue
            path = os.path.realpath(m.group(1))
            for cand in (path, m.group(1), "/usr" + path):
                out = subprocess.run(["dpkg", "-S", cand], capture_output=True,
                                     text=True)
                if out.returncode == 0:
                    pkgs.add(out.stdout.split(":")[0].strip())
                    break
    return pkgs


def check_dockerfile(c, manifest_ports, uids, binaries):
    stages = dockerfile_stages()
    c.check(len(stages) >= 2, f"Dockerfile has {len(stages)} stages "
            "(multi-stage)")
    c.check(all(re.match(r"debian:(12|bookworm)", s[0]) for s in stages),
            f"Dockerfile stages are Debian 12: {[s[0] for s in stages]}")
    build = [s for s in stages[:-1] if s[1]]
    final = stages[-1][2]
    body = " ".join(rest for _, _, ins in stages[:-1] for _, rest in ins)
    for target, out in (("kvorumd", "node/kvorumd"),
                        ("kvorum_cli", "client/kvorum"),
                        ("kvorum-bench", "bench/kvorum-bench")):
        c.check(re.search(rf"--target [^&]*\b{re.escape(target)}\b", body)
                and out in body,
                f"Dockerfile builds {target} and installs {out}")
    names = {n for _, n, _ in build}
    froms = [re.search(r"--from=(\S+)", rest) for op, rest in final
             if op == "COPY"]
    c.check(any(m and m.group(1) in names for m in froms),
            "Dockerfile's last stage copies the programs from the build stage")
    users = [rest for op, rest in final if op == "USER"]
    uid = users[-1].split(":")[0] if users else "root"
    c.check(users and uid not in ("root", "0"),
            f"Dockerfile's last stage has a non-root USER ({uid})")
    c.check(uids == {int(uid)} if uid.isdigit() else False,
            f"the pods' runAsUser {uids} is the image's uid {uid}")
    exposed = {int(p.split("/")[0]) for op, rest in final if op == "EXPOSE"
               for p in rest.split()}
    c.check(exposed == manifest_ports,
            f"EXPOSE {sorted(exposed)} = the manifests' container ports "
            f"{sorted(manifest_ports)}")
    ep = [rest for op, rest in final if op == "ENTRYPOINT"]
    c.check(ep and "kvorum-entrypoint.sh" in ep[-1]
            and os.access(ENTRYPOINT, os.X_OK)
            and "kvorum-entrypoint.sh" in body,
            "ENTRYPOINT is kvorum-entrypoint.sh, installed and executable")
    hc = [rest for op, rest in final if op == "HEALTHCHECK"]
    c.check(hc and "health" in hc[-1]
            and "GET /health " in read(ENTRYPOINT),
            "HEALTHCHECK GETs /health through the entry point")
    # Builder packages: the libraries scripts/deps.sh installs to build.
    build_pkgs = set().union(*(apt_packages(ins) for _, _, ins in stages[:-1]))
    deps = deps_sh_packages()
    dev = {p for p in deps if p.endswith("-dev") and not p.startswith(
        "libclang")}
    build_dev = {p for p in build_pkgs if p.endswith("-dev")}
    c.check(dev == build_dev, f"build stage's -dev packages "
            f"{sorted(build_dev)} = scripts/deps.sh's {sorted(dev)}")
    run_pkgs = apt_packages(final)
    c.check(run_pkgs and not any(p.endswith("-dev") for p in run_pkgs)
            and not run_pkgs & {"build-essential", "cmake", "gcc"},
            f"runtime stage installs no build tools: {sorted(run_pkgs)}")
    if binaries:
        linked = linked_packages(binaries)
        if linked is None:
            c.skip("runtime packages vs linked libraries: no readelf, ldd or "
                   "dpkg")
        else:
            missing = linked - run_pkgs - BASE_PACKAGES
            c.check(not missing, "runtime stage installs every linked "
                    f"library's package {sorted(linked - BASE_PACKAGES)}, "
                    f"missing {sorted(missing)}")
    else:
        c.skip("runtime packages vs linked libraries: no binaries given")


# ---- systemd ----

def unit_settings(text):
    out = {}
    for line in text.splitlines():
        m = re.match(r"([A-Za-z]+)=(.*)", line)
        if m:
            out.setdefault(m.group(1), []).append(m.group(2).strip())
    return out


def check_systemd(c, tmp, kvorumd, helpf):
    text = read(UNIT)
    s = unit_settings(text)
    one = {k: v[-1] for k, v in s.items()}
    c.check(one.get("Type") == "notify" and one.get("NotifyAccess") == "main",
            "unit: Type=notify, NotifyAccess=main")
    exec_start = one.get("ExecStart", "")
    c.check("--config /etc/kvorum/%i.conf" in exec_start
            and "--data /var/lib/kvorum/%i" in exec_start
            and one.get("StateDirectory") == "kvorum/%i",
            "unit: ExecStart reads /etc/kvorum/%i.conf, data in its "
            "StateDirectory /var/lib/kvorum/%i")
    stops = one.get("ExecStop", "") + one.get("ExecStopPost", "")
    c.check("leave" not in stops,
            "unit: stopping is SIGTERM, never `kvorum leave`")
    c.check(one.get("User") not in (None, "root", "0")
            and one.get("NoNewPrivileges") == "yes"
            and one.get("ProtectSystem") == "strict"
            and "LimitNOFILE" in one,
            f"unit: User={one.get('User')}, NoNewPrivileges, "
            "ProtectSystem=strict, LimitNOFILE")
    users = re.findall(r"^u\s+(\S+)", read(SYSUSERS), re.M)
    c.check(users == [one.get("User")],
            f"sysusers creates the unit's user {users}")

    analyze = shutil.which("systemd-analyze")
    if not analyze:
        c.skip("systemd-analyze verify: systemd-analyze is not installed")
    else:
        # The installed path need not exist here: point ExecStart at the
        # built kvorumd, or at a stand-in; nothing else changes.
        binary = kvorumd
        if not binary:
            binary = os.path.join(tmp, "kvorumd")
            with open(binary, "w", encoding="utf-8") as f:
                f.write("#!/bin/sh\nexit 0\n")
            os.chmod(binary, 0o755)
        installed = exec_start.split()[0]
        copy = os.path.join(tmp, "kvorumd@.service")
        with open(copy, "w", encoding="utf-8") as f:
            f.write(text.replace(f"ExecStart={installed} ",
                                 f"ExecStart={os.path.abspath(binary)} "))
        p = subprocess.run([analyze, "verify", copy], capture_output=True,
                           text=True, timeout=60)
        msg = (p.stdout + p.stderr).strip()
        c.check(p.returncode == 0 and not msg,
                f"systemd-analyze verify: exit {p.returncode}, "
                f"{msg or 'no messages'} (ExecStart={installed} pointed at "
                f"{binary})")
        p = subprocess.run([analyze, "security", "--offline=yes", copy],
                           capture_output=True, text=True, timeout=60)
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", p.stdout)
        if m:
            c.check(float(m.group(1)) <= 2.0,
                    f"systemd-analyze security: exposure {m.group(1)} "
                    "(at most 2.0)")
        else:
            c.skip("systemd-analyze security --offline: not supported here")
    sysusers = shutil.which("systemd-sysusers")
    if sysusers:
        p = subprocess.run([sysusers, "--dry-run", SYSUSERS],
                           capture_output=True, text=True, timeout=60)
        c.check(p.returncode == 0 and SYSUSERS not in p.stderr,
                "systemd-sysusers --dry-run accepts kvorum.sysusers: "
                + (p.stderr.strip().splitlines() or [""])[0])
    else:
        c.skip("systemd-sysusers is not installed")

    keys = []
    for line in read(CONF_EXAMPLE).splitlines():
        m = re.match(r"#?\s*([a-z][a-z0-9-]*) = ", line)
        if m:
            keys.append(m.group(1))
    c.check("data" not in keys and "id" in keys,
            "example configuration: sets id, leaves data to the unit")
    if helpf is None:
        c.skip("example configuration keys vs kvorumd --help: no kvorumd")
    else:
        unknown = [k for k in keys if k not in helpf]
        c.check(not unknown, f"example configuration: every key "
                f"{keys} is a kvorumd flag {unknown or ''}")


# ---- the entry point, for real ----

def free_port(hosts):
    """A TCP port free on every host in hosts."""
    for _ in range(200):
        s = socket.socket()
        s.bind((hosts[0], 0))
        port = s.getsockname()[1]
        s.close()
        try:
            for h in hosts:
                t = socket.socket()
                t.bind((h, port))
                t.close()
            return port
        except OSError:
            continue
    raise RuntimeError("no free port")


def http_get(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return None, ""


def wait_for(pred, timeout=WAIT_S):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.1)
    return False


def check_entrypoint_live(c, tmp, kvorumd):
    ips = {"kvorum-0": "127.0.0.2", "kvorum-1": "127.0.0.3"}
    ports = {}
    for name in ("CLIENT", "PEER", "RESP", "HTTP"):
        ports[name] = free_port(list(ips.values()) + ["127.0.0.1"])
    dns = {p: f"{p}.kvorum.{NAMESPACE}.svc.cluster.local" for p in ips}
    # Before kvorum-1 exists only kvorum-0 resolves, then both.
    path_0 = fake_getent(tmp, {dns["kvorum-0"]: ips["kvorum-0"]}, "dns0")
    path_01 = fake_getent(tmp, {dns[p]: ip for p, ip in ips.items()}, "dns01")
    procs = {}

    def env(pod, path=path_01, **extra):
        e = {"PATH": path + ":" + os.environ.get("PATH", "/usr/bin:/bin"),
             "POD_NAME": pod, "POD_IP": ips[pod], "POD_NAMESPACE": NAMESPACE,
             "KVORUM_SERVICE": "kvorum", "KVORUM_SEEDS": "kvorum-0,kvorum-1",
             "KVORUM_DATA": os.path.join(tmp, pod), "KVORUMD": kvorumd,
             "KVORUM_SERVE_HOST": ips[pod], "KVORUM_SEED_WAIT_S": "2"}
        e.update({f"KVORUM_{k}_PORT": str(v) for k, v in ports.items()})
        e.update(extra)
        return e

    def start(pod, path):
        with open(os.path.join(tmp, pod + ".log"), "ab") as log:
            procs[pod] = subprocess.Popen(
                ["bash", ENTRYPOINT, "--aae-interval-ms", "600000"],
                env=env(pod, path), stdout=log, stderr=log,
                start_new_session=True,
                preexec_fn=kvtest._die_with_parent)  # kept across exec
        return procs[pod]

    def url(pod, path_):
        return f"http://{ips[pod]}:{ports['HTTP']}{path_}"

    try:
        # A non-bootstrap pod whose seed resolves but does not answer.
        p = start("kvorum-1", path_01)
        rc = p.wait(timeout=WAIT_S)
        c.check(rc == 1 and "not starting a cluster of its own" in read(
            os.path.join(tmp, "kvorum-1.log")) and not os.path.exists(
                os.path.join(tmp, "kvorum-1")),
                f"entry point: kvorum-1 refuses to start while no seed "
                f"answers (exit {rc}, no data directory)")
        start("kvorum-0", path_0)
        c.check(wait_for(lambda: http_get(url("kvorum-0", "/ready"))[0]
                         == 200),
                "entry point: bootstrap pod kvorum-0 starts a cluster and is "
                "ready")
        start("kvorum-1", path_01)

        def both_up():
            st, body = http_get(url("kvorum-0", "/admin/status"))
            if st != 200:
                return False
            members = json.loads(body).get("members", [])
            return sum(m.get("state") == "up" for m in members) == 2
        c.check(wait_for(lambda: http_get(url("kvorum-1", "/ready"))[0] == 200
                         and both_up()),
                "entry point: kvorum-1 joins through the seed kvorum-0 and "
                "is ready")
        st, body = http_get(url("kvorum-0", "/admin/status"))
        peers = sorted(m.get("peer", "") for m in json.loads(body or "{}").get(
            "members", []))
        c.check(peers == sorted(f"{ip}:{ports['PEER']}" for ip in
                                ips.values()),
                f"entry point: members advertise pod IPs {peers}")
        h = subprocess.run(["bash", ENTRYPOINT, "health"], env=env("kvorum-1"),
                           capture_output=True, timeout=30)
        c.check(h.returncode == 0, "entry point: `health` passes on a "
                "serving node")
        for pod, proc in procs.items():
            proc.send_signal(signal.SIGTERM)  # the entry point exec'd kvorumd
            try:
                rc = proc.wait(timeout=WAIT_S)
            except subprocess.TimeoutExpired:
                rc = None
            c.check(rc == 0, f"entry point: {pod} exits {rc} on SIGTERM "
                    "(kvorumd is the process; it stops cleanly)")
        h = subprocess.run(["bash", ENTRYPOINT, "health"], env=env("kvorum-1"),
                           capture_output=True, timeout=30)
        c.check(h.returncode != 0, "entry point: `health` fails when "
                "nothing serves")
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if c.failed:
            for pod in ips:
                log = os.path.join(tmp, pod + ".log")
                if os.path.exists(log):
                    print(f"--- {pod}.log (last lines)")
                    print("\n".join(read(log).splitlines()[-15:]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kvorumd")
    ap.add_argument("--cli")
    ap.add_argument("--bench")
    a = ap.parse_args()
    c = Checks()
    helpf = help_flags(a.kvorumd)
    binaries = [b for b in (a.kvorumd, a.cli, a.bench) if b]
    tmp = tempfile.mkdtemp(prefix="kvdeploy-")
    try:
        docs_paths = http_paths()
        c.check({"/ready", "/health"} <= docs_paths,
                f"docs/http.md lists /ready and /health "
                f"({sorted(docs_paths)})")
        ports, uids = check_kubernetes(c, tmp, helpf, docs_paths)
        check_dockerfile(c, ports, uids, binaries)
        check_systemd(c, tmp, a.kvorumd, helpf)
        if a.kvorumd:
            check_entrypoint_live(c, tmp, os.path.abspath(a.kvorumd))
        else:
            c.skip("entry point smoke run: no kvorumd given")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    c.finish()


if __name__ == "__main__":
    main()
