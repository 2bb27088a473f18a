"""Simulated GPU Kubernetes cluster on 127.0.0.1, built from real components.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler are the real binaries built by build.sh;
KWOK fakes the GPU nodes and the pod lifecycles (including failure stages, see fault-stages.yaml); the real
LeaderWorkerSet manager runs as a local process and the API server reaches its webhooks through an egress
selector (a CONNECT proxy on a unix socket that only forwards the LWS webhook Service and the fake nodes' kubelet
address, which is KWOK's kubelet server); a local Helm repository with basic auth serves the test chart in
tests/fixtures. See README.md beside this file.

Commands: up [--nodes N] [--no-lws-install], down [--keep-data], status [--json], lws-manager stop|start.
Internal commands (started detached by `up`): _egress-proxy, _helm-repo, _pod-logs, _lws-supervisor.
All state lives in $NIMOPS_SIM_DIR (default $NIMOPS_CACHE/simcluster, NIMOPS_CACHE default ~/.cache/nimops).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import http.client
import http.server
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CACHE = Path(os.environ.get("NIMOPS_CACHE") or Path.home() / ".cache" / "nimops")
BIN = CACHE / "bin"
STATE = Path(os.environ.get("NIMOPS_SIM_DIR") or CACHE / "simcluster")
CHART_DIR = REPO / "tests" / "fixtures" / "nim-llm-testchart"
LWS_MANIFESTS_GLOB = "roles/lws_install/files/lws-v*-manifests.yaml"
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"

HOST = "127.0.0.1"
NODE_IP = "192.0.2.1"  # TEST-NET-1: never routed; the API server reaches the KWOK kubelet server via egress-proxy
BASE_PORTS = {
    "etcd": 2379,
    "etcd-peer": 2380,
    "kube-apiserver": 6443,
    "kube-controller-manager": 10257,
    "kube-scheduler": 10259,
    "lws-webhook": 9443,
    "lws-health": 8081,
    "helm-repo": 8879,
    "kubelet": 10250,
}


def _port_offset() -> int:
    """NIMOPS_SIM_PORT_OFFSET shifts every port (a second sim beside the first); remembered in the state dir."""
    env = os.environ.get("NIMOPS_SIM_PORT_OFFSET")
    if env is not None:
        return int(env)
    try:
        return int(json.loads((STATE / "ports.json").read_text())["offset"])
    except (OSError, ValueError, KeyError):
        return 0


PORT_OFFSET = _port_offset()
PORTS = {k: v + PORT_OFFSET for k, v in BASE_PORTS.items()}
REPO_USER = "$oauthtoken"
REPO_PASSWORD = "nvapi-FAKE-sim-repo-0000000000000000"
LWS_NS = "lws-system"
LWS_WEBHOOK_SERVICE = "lws-webhook-service"
LWS_CRDS = ("leaderworkersets.leaderworkerset.x-k8s.io", "disaggregatedsets.disaggregatedset.x-k8s.io")
LWS_SA = "lws-controller-manager"
NODE_LABEL = "sim.nimops.test/node"
MAX_NODES = 64

# Start order; `down` stops in reverse (the supervisor before the manager it would restart).
# lws-manager is started by lws-supervisor, not by `up`.
ORDER = [
    "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok",
    "egress-proxy", "helm-repo", "pod-logs", "lws-manager", "lws-supervisor",
]
HELPERS = ("egress-proxy", "helm-repo", "pod-logs", "lws-supervisor")


class SimError(Exception):
    """A failure with a message meant for the user."""


# ---------------------------------------------------------------- versions, paths


def versions() -> dict[str, str]:
    out = {}
    for line in (HERE / "versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
    return out


def binary(name: str) -> Path:
    v = versions()
    key = {
        "etcd": "ETCD_VERSION", "kube-apiserver": "KUBERNETES_VERSION",
        "kube-controller-manager": "KUBERNETES_VERSION", "kube-scheduler": "KUBERNETES_VERSION",
        "kwok": "KWOK_VERSION", "lws-manager": "LWS_VERSION", "helm": "HELM_VERSION",
    }[name]
    return BIN / f"{name}-{v[key]}"


def p(*parts: str) -> Path:
    return STATE.joinpath(*parts)


KUBECONFIG = p("kubeconfig")
PKI = p("pki")


def log(msg: str) -> None:
    try:
        print(f"[sim] {msg}", flush=True)
    except BrokenPipeError:
        # the reader went away (e.g. `| head`): finish the work rather than leave a half-started sim
        sys.stdout = open(os.devnull, "w")


# ---------------------------------------------------------------- process records


def pidfile(name: str) -> Path:
    return p("pids", f"{name}.pid")


def _exe_of(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def _cmdline_of(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def read_record(name: str) -> dict | None:
    try:
        return json.loads(pidfile(name).read_text())
    except (OSError, ValueError):
        return None


def record_alive(rec: dict | None) -> bool:
    """True when the recorded PID still runs the recorded executable (and, for Python helpers, our script)."""
    if not rec:
        return False
    pid = rec["pid"]
    exe = _exe_of(pid)
    if exe is None or _is_zombie(pid):
        return False
    if os.path.realpath(exe) != os.path.realpath(rec["exe"]):
        return False
    marker = rec.get("marker")
    return not marker or marker in _cmdline_of(pid)


def alive(name: str) -> bool:
    return record_alive(read_record(name))


def start_process(name: str, argv: list[str], env: dict | None = None, marker: str | None = None,
                  code: str | None = None) -> int:
    """Start argv detached (own session), log to logs/<name>.log, record the PID."""
    p("logs").mkdir(parents=True, exist_ok=True)
    p("pids").mkdir(parents=True, exist_ok=True)
    logf = open(p("logs", f"{name}.log"), "ab")
    logf.write(f"\n==== {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} start {name}\n".encode())
    logf.flush()
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
        cwd=str(STATE), env=full_env, start_new_session=True, close_fds=True,
    )
    logf.close()
    rec = {"pid": proc.pid, "exe": os.path.realpath(argv[0]), "marker": marker, "started": time.time(),
           "code": code, "argv": argv}
    tmp = pidfile(name).with_suffix(".tmp")
    tmp.write_text(json.dumps(rec))
    tmp.replace(pidfile(name))
    # between fork and exec the child still looks like us: wait for the exec so liveness checks are meaningful
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not record_alive(rec) and proc.poll() is None:
        time.sleep(0.02)
    return proc.pid


def stop_process(name: str, timeout: float = 15.0) -> bool:
    """Stop a recorded process by PID (after checking the PID is still ours). Returns True if one was stopped."""
    rec = read_record(name)
    stopped = False
    if record_alive(rec):
        pid = rec["pid"]
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and record_alive(rec):
            _reap(pid)
            time.sleep(0.1)
        if record_alive(rec):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and record_alive(rec):
                _reap(pid)
                time.sleep(0.1)
        stopped = True
    pidfile(name).unlink(missing_ok=True)
    return stopped


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


# ---------------------------------------------------------------- PKI, kubeconfig, configs


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, cwd=PKI, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def ensure_pki() -> None:
    PKI.mkdir(parents=True, exist_ok=True)
    os.chmod(PKI, 0o700)
    if (PKI / "done").exists():
        return
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-keyout", "ca.key",
             "-out", "ca.crt", "-subj", "/CN=nimops-sim-ca")
    sans = ",".join([
        "IP:127.0.0.1", "IP:10.96.0.1", "DNS:localhost", "DNS:kubernetes", "DNS:kubernetes.default",
        "DNS:kubernetes.default.svc", "DNS:kubernetes.default.svc.cluster.local",
    ])
    (PKI / "server.ext").write_text(f"subjectAltName={sans}\nextendedKeyUsage=serverAuth\n")
    (PKI / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "apiserver.key", "-out", "apiserver.csr",
             "-subj", "/CN=kube-apiserver")
    _openssl("x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "3650", "-extfile", "server.ext", "-out", "apiserver.crt")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "admin.key", "-out", "admin.csr",
             "-subj", "/O=system:masters/CN=nimops-sim-admin")
    _openssl("x509", "-req", "-in", "admin.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "3650", "-extfile", "client.ext", "-out", "admin.crt")
    _openssl("genrsa", "-out", "sa.key", "2048")
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub")
    (PKI / "done").write_text("")


def ensure_kubelet_cert() -> None:
    """Serving certificate of the KWOK kubelet server, for the address the fake nodes report."""
    if (PKI / "kubelet.crt").exists():
        return
    (PKI / "kubelet.ext").write_text(f"subjectAltName=IP:{NODE_IP},IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "kubelet.key", "-out", "kubelet.csr",
             "-subj", "/CN=nimops-sim-kubelet")
    _openssl("x509", "-req", "-in", "kubelet.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "3650", "-extfile", "kubelet.ext", "-out", "kubelet.crt")


def write_kubeconfig() -> None:
    kc = {
        "apiVersion": "v1", "kind": "Config", "current-context": "nimops-sim",
        "clusters": [{"name": "nimops-sim", "cluster": {
            "server": f"https://{HOST}:{PORTS['kube-apiserver']}", "certificate-authority": str(PKI / "ca.crt")}}],
        "users": [{"name": "nimops-sim-admin", "user": {
            "client-certificate": str(PKI / "admin.crt"), "client-key": str(PKI / "admin.key")}}],
        "contexts": [{"name": "nimops-sim", "context": {"cluster": "nimops-sim", "user": "nimops-sim-admin"}}],
    }
    _write_if_changed(KUBECONFIG, yaml.safe_dump(kc, sort_keys=False), 0o600)


def _write_if_changed(path: Path, text: str, mode: int = 0o644) -> bool:
    changed = not path.exists() or path.read_text() != text
    if changed:
        path.write_text(text)
    os.chmod(path, mode)
    return changed


def write_configs() -> list[str]:
    """Write the components' config files; returns the names of the processes whose config changed."""
    changed = []
    egress = {
        "apiVersion": "apiserver.k8s.io/v1beta1", "kind": "EgressSelectorConfiguration",
        "egressSelections": [{"name": "cluster", "connection": {
            "proxyProtocol": "HTTPConnect", "transport": {"uds": {"udsName": str(p("egress.sock"))}}}}],
    }
    if _write_if_changed(p("egress-selector.yaml"), yaml.safe_dump(egress, sort_keys=False)):
        changed.append("kube-apiserver")
    lws_cfg = {
        "apiVersion": "config.lws.x-k8s.io/v1alpha1", "kind": "Configuration",
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": True, "webhookServiceName": LWS_WEBHOOK_SERVICE,
                                   "webhookSecretName": "lws-webhook-server-cert"},
        "webhook": {"host": HOST, "port": PORTS["lws-webhook"], "certDir": str(p("lws-certs"))},
        "metrics": {"bindAddress": "0"},
        "health": {"healthProbeBindAddress": f"{HOST}:{PORTS['lws-health']}"},
    }
    if _write_if_changed(p("lws-config.yaml"), yaml.safe_dump(lws_cfg, sort_keys=False)):
        changed.append("lws-manager")
    if _write_if_changed(p("kwok.yaml"), kwok_config()):
        changed.append("kwok")
    creds = {"username": REPO_USER, "password": REPO_PASSWORD}
    if _write_if_changed(p("helm-repo-credentials.json"), json.dumps(creds) + "\n", 0o600):
        changed.append("helm-repo")
    return changed


def kwok_stage_dir() -> Path:
    gomodcache = os.environ.get("GOMODCACHE")
    if not gomodcache:
        go = shutil.which("go") or "/usr/local/go/bin/go"
        try:
            gomodcache = subprocess.run([go, "env", "GOMODCACHE"], check=True, capture_output=True,
                                        text=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            gomodcache = str(Path.home() / "go" / "pkg" / "mod")
    d = Path(gomodcache) / f"sigs.k8s.io/kwok@{versions()['KWOK_VERSION']}" / "kustomize" / "stage"
    if not d.is_dir():
        raise SimError(f"KWOK stage files not found in {d}: run `make sim-build` (it fills the Go module cache)")
    return d


def kwok_config() -> str:
    """KWOK's upstream fast stages (module cache) plus our fault stages; pod-ready skips faulted pods."""
    d = kwok_stage_dir()
    files = [
        "node/fast/node-initialize.yaml", "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
        "pod/fast/pod-ready.yaml", "pod/fast/pod-complete.yaml", "pod/fast/pod-delete.yaml",
        "volume/fast/pv-bind.yaml", "volume/fast/pv-delete.yaml", "volume/fast/pvc-provision.yaml",
        "volume/fast/pvc-delete.yaml",
    ]
    docs = []
    for f in files:
        doc = yaml.safe_load((d / f).read_text())
        if doc["metadata"]["name"] == "pod-ready":
            doc["spec"]["selector"]["matchExpressions"].append({
                "key": '.metadata.labels["sim.nimops.test/fault"]', "operator": "NotIn",
                "values": ["imagepull", "neverready"]})
        docs.append(doc)
    docs.extend(yaml.safe_load_all((HERE / "fault-stages.yaml").read_text()))
    # container logs of pods without a Logs object of their own (see run_pod_logs)
    docs.append({"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "ClusterLogs",
                 "metadata": {"name": "sim-default-logs"},
                 "spec": {"logs": [{"containers": [], "logsFile": str(p("pod-logs", "default.log"))}]}})
    return yaml.safe_dump_all(docs, sort_keys=False)


def storage_class_manifest() -> str:
    return (kwok_stage_dir() / "volume/fast/storage-class.yaml").read_text()


def node_manifests(n: int) -> str:
    docs = []
    for i in range(n):
        name = f"sim-gpu-{i}"
        res = {"cpu": "96", "memory": "1Ti", "pods": "110", "ephemeral-storage": "1Ti", "nvidia.com/gpu": "8"}
        docs.append({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {"node.alpha.kubernetes.io/ttl": "0", "kwok.x-k8s.io/node": "fake"},
                "labels": {
                    "type": "kwok", NODE_LABEL: "true", "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                    "nvidia.com/gpu.present": "true", "nvidia.com/gpu.count": "8",
                    "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
                },
            },
            "status": {"allocatable": res, "capacity": res},
        })
    return yaml.safe_dump_all(docs, sort_keys=False)


# ---------------------------------------------------------------- API access (stdlib only)


def api_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(PKI / "ca.crt"))
    ctx.load_cert_chain(str(PKI / "admin.crt"), str(PKI / "admin.key"))
    return ctx


# One kept-alive connection per thread: a new TLS handshake per request made the helpers' 2 s polls most of an idle
# API server's CPU (about 6 % of a core of the sim's 8 % at rest).
_API_CONN = threading.local()


def _api_request(method: str, path: str, data: bytes | None, timeout: float) -> tuple[int, dict | str]:
    conn = getattr(_API_CONN, "conn", None)
    if conn is None:
        conn = _API_CONN.conn = http.client.HTTPSConnection(HOST, PORTS["kube-apiserver"], context=api_context())
    conn.timeout = timeout
    if conn.sock is not None:
        conn.sock.settimeout(timeout)
    try:
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
        resp = conn.getresponse()
        raw = resp.read().decode()
    except BaseException:
        _API_CONN.conn = None
        conn.close()
        raise
    try:
        return resp.status, json.loads(raw)
    except ValueError:
        return resp.status, raw


def api(method: str, path: str, body: dict | None = None, timeout: float = 10.0) -> tuple[int, dict | str]:
    data = json.dumps(body).encode() if body is not None else None
    reused = getattr(_API_CONN, "conn", None) is not None
    try:
        return _api_request(method, path, data, timeout)
    except (OSError, http.client.HTTPException) as e:
        if not reused or isinstance(e, TimeoutError):
            raise
    # the server closed the kept-alive connection while it was idle: once more, on a new one
    return _api_request(method, path, data, timeout)


def api_ok(path: str) -> bool:
    try:
        return api("GET", path, timeout=3)[0] == 200
    except OSError:
        return False


def kubectl(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([KUBECTL, f"--kubeconfig={KUBECONFIG}", *args], input=stdin, capture_output=True, text=True,
                       check=False)
    if check and r.returncode != 0:
        raise SimError(f"kubectl {' '.join(args)} failed: {r.stderr.strip()}")
    return r


def wait_for(what: str, check, timeout: float, interval: float = 0.5, proc: str | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc and not alive(proc):
            raise SimError(f"{proc} exited while waiting for {what}; see {p('logs', proc + '.log')}")
        time.sleep(interval)
    hint = f"; see {p('logs', proc + '.log')}" if proc else ""
    raise SimError(f"timed out after {timeout:.0f}s waiting for {what}{hint}")


def http_ok(url: str, timeout: float = 2.0) -> bool:
    import urllib.request
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (loopback only)
            return r.status == 200
    except OSError:
        return False


def port_listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((HOST, port)) == 0


# ---------------------------------------------------------------- components


def argv_etcd() -> list[str]:
    c, pe = PORTS["etcd"], PORTS["etcd-peer"]
    return [
        str(binary("etcd")), "--name=sim", f"--data-dir={p('etcd-data')}",
        f"--listen-client-urls=http://{HOST}:{c}", f"--advertise-client-urls=http://{HOST}:{c}",
        f"--listen-peer-urls=http://{HOST}:{pe}", f"--initial-advertise-peer-urls=http://{HOST}:{pe}",
        f"--initial-cluster=sim=http://{HOST}:{pe}", "--listen-metrics-urls=",
        # a throwaway test cluster on a shared 2-core machine: durability is not wanted, speed is
        "--unsafe-no-fsync", "--quota-backend-bytes=4294967296", "--log-level=warn",
    ]


def argv_apiserver() -> list[str]:
    k = PKI
    return [
        str(binary("kube-apiserver")), f"--etcd-servers=http://{HOST}:{PORTS['etcd']}",
        f"--bind-address={HOST}", f"--advertise-address={HOST}", f"--secure-port={PORTS['kube-apiserver']}",
        f"--tls-cert-file={k / 'apiserver.crt'}", f"--tls-private-key-file={k / 'apiserver.key'}",
        f"--client-ca-file={k / 'ca.crt'}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={k / 'sa.pub'}", f"--service-account-signing-key-file={k / 'sa.key'}",
        "--service-cluster-ip-range=10.96.0.0/16", "--authorization-mode=Node,RBAC", "--allow-privileged=true",
        "--endpoint-reconciler-type=none",
        # webhook Services and kubelets are dialled through this egress (see egress-proxy)
        f"--egress-selector-config-file={p('egress-selector.yaml')}",
        # the KWOK kubelet server's certificate is verified like a real kubelet's
        f"--kubelet-certificate-authority={k / 'ca.crt'}",
        f"--kubelet-client-certificate={k / 'admin.crt'}", f"--kubelet-client-key={k / 'admin.key'}",
        f"--cert-dir={p('apiserver-certs')}",
    ]


def argv_kcm() -> list[str]:
    return [
        str(binary("kube-controller-manager")), f"--kubeconfig={KUBECONFIG}",
        f"--authentication-kubeconfig={KUBECONFIG}", f"--authorization-kubeconfig={KUBECONFIG}",
        "--leader-elect=false", f"--bind-address={HOST}", f"--secure-port={PORTS['kube-controller-manager']}",
        f"--root-ca-file={PKI / 'ca.crt'}", f"--service-account-private-key-file={PKI / 'sa.key'}",
        "--controllers=*", "--use-service-account-credentials=false",
        f"--cert-dir={p('kcm-certs')}",
    ]


def argv_scheduler() -> list[str]:
    return [
        str(binary("kube-scheduler")), f"--kubeconfig={KUBECONFIG}",
        f"--authentication-kubeconfig={KUBECONFIG}", f"--authorization-kubeconfig={KUBECONFIG}",
        "--leader-elect=false", f"--bind-address={HOST}", f"--secure-port={PORTS['kube-scheduler']}",
        f"--cert-dir={p('scheduler-certs')}",
    ]


def argv_kwok() -> list[str]:
    return [
        str(binary("kwok")), f"--kubeconfig={KUBECONFIG}", f"--config={p('kwok.yaml')}",
        "--manage-all-nodes=true", "--cidr=10.244.0.0/16", f"--node-ip={NODE_IP}",
        "--node-lease-duration-seconds=40",
        # kubelet API (container logs) for all fake nodes; per-pod logs come from Logs objects (pod-logs helper)
        f"--server-address={HOST}:{PORTS['kubelet']}", f"--node-port={PORTS['kubelet']}",
        f"--tls-cert-file={PKI / 'kubelet.crt'}", f"--tls-private-key-file={PKI / 'kubelet.key'}",
        "--enable-crds=Logs",
    ]


COMPONENTS = {  # name: (argv builder, readiness check, timeout)
    "etcd": (argv_etcd, lambda: http_ok(f"http://{HOST}:{PORTS['etcd']}/health"), 30),
    "kube-apiserver": (argv_apiserver, lambda: api_ok("/readyz"), 120),
    "kube-controller-manager": (argv_kcm, None, 0),
    "kube-scheduler": (argv_scheduler, None, 0),
    "kwok": (argv_kwok, lambda: port_listening(PORTS["kubelet"]), 60),
}


def start_component(name: str) -> None:
    argv_fn, ready, timeout = COMPONENTS[name]
    if name == "etcd":
        p("etcd-data").mkdir(parents=True, exist_ok=True)
        os.chmod(p("etcd-data"), 0o700)
    if name == "kwok":
        ensure_kwok_crds()
    start_process(name, argv_fn())
    if ready:
        wait_for(f"{name} ready", ready, timeout, interval=0.5, proc=name)


def ensure_kwok_crds() -> None:
    """KWOK's Logs CRD (per-pod container logs, written by the pod-logs helper)."""
    if api_ok("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/logs.kwok.x-k8s.io"):
        return
    crd = kwok_stage_dir().parent / "crd" / "bases" / "kwok.x-k8s.io_logs.yaml"
    kubectl("apply", "--server-side", "--field-manager=nimops-sim", "-f", str(crd))
    wait_for("KWOK Logs CRD established", lambda: api_ok("/apis/kwok.x-k8s.io/v1alpha1/logs"), 30)


def script_digest() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


def start_helper(name: str) -> None:
    script = str(Path(__file__).resolve())
    start_process(name, [sys.executable, script, f"_{name}"], marker=f"_{name}", code=script_digest())


def ensure_helm_repo_content() -> None:
    """Package the test chart and index it, only when the chart source changed (so `up` stays a no-op)."""
    repo = p("helm-repo")
    repo.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256(repo_url().encode())
    for f in sorted(CHART_DIR.rglob("*")):
        if f.is_file():
            h.update(str(f.relative_to(CHART_DIR)).encode())
            h.update(f.read_bytes())
    digest = h.hexdigest()
    stamp = repo / ".chart-sha256"
    if stamp.exists() and stamp.read_text() == digest and (repo / "index.yaml").exists():
        return
    for old in repo.glob("*.tgz"):
        old.unlink()
    helm = str(binary("helm"))
    env = dict(os.environ, HELM_CACHE_HOME=str(p("helm-home", "cache")),
               HELM_CONFIG_HOME=str(p("helm-home", "config")), HELM_DATA_HOME=str(p("helm-home", "data")))
    for args in (["lint", str(CHART_DIR), "--set", "multiNode.tensorParallelSize=8"],
                 ["package", str(CHART_DIR), "-d", str(repo)],
                 ["repo", "index", str(repo), "--url", repo_url()]):
        r = subprocess.run([helm, *args], capture_output=True, text=True, env=env, check=False)
        if r.returncode != 0:
            raise SimError(f"helm {args[0]} of the test chart failed: {r.stdout}{r.stderr}")
    stamp.write_text(digest)


def repo_url() -> str:
    return f"http://{HOST}:{PORTS['helm-repo']}"


def ensure_nodes(n: int) -> list[str]:
    """Create the missing sim GPU nodes and delete sim nodes beyond n. Returns what changed."""
    r = kubectl("get", "nodes", "-l", f"{NODE_LABEL}=true", "-o", "jsonpath={.items[*].metadata.name}")
    have = set(r.stdout.split())
    want = {f"sim-gpu-{i}" for i in range(n)}
    changes = []
    missing = sorted(want - have, key=lambda s: int(s.rsplit("-", 1)[1]))
    if missing:
        docs = [d for d in yaml.safe_load_all(node_manifests(n)) if d["metadata"]["name"] in missing]
        kubectl("create", "-f", "-", stdin=yaml.safe_dump_all(docs, sort_keys=False))
        changes.append(f"created {len(missing)} node(s)")
    extra = sorted(have - want)
    if extra:
        kubectl("delete", "node", *extra, "--wait=false")
        changes.append(f"deleted {len(extra)} node(s)")
    return changes


def nodes_ready(n: int) -> bool:
    r = kubectl("get", "nodes", "-l", f"{NODE_LABEL}=true", "-o",
                'jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status} {end}',
                check=False)
    if r.returncode != 0:
        return False
    states = dict(kv.split("=", 1) for kv in r.stdout.split() if "=" in kv)
    return len(states) == n and all(v == "True" for v in states.values())


def lws_manifests() -> Path:
    found = sorted(REPO.glob(LWS_MANIFESTS_GLOB))
    want = [f for f in found if versions()["LWS_VERSION"] in f.name]
    if not want:
        raise SimError(f"no LWS release manifests matching {LWS_MANIFESTS_GLOB} for {versions()['LWS_VERSION']}")
    return want[0]


def lws_crds_established() -> bool:
    """Every LWS CRD is served: read from discovery, which lists a CRD's resource only once it is Established.
    (Each CRD object is ~640 KB of schema; reading them on every supervisor round was most of the idle sim's CPU.)"""
    for crd in LWS_CRDS:
        plural, group = crd.split(".", 1)
        try:
            status, obj = api("GET", f"/apis/{group}", timeout=5)
            if status != 200 or not isinstance(obj, dict):
                return False
            status, obj = api("GET", f"/apis/{obj['preferredVersion']['groupVersion']}", timeout=5)
        except OSError:
            return False
        if status != 200 or not isinstance(obj, dict):
            return False
        if plural not in {r.get("name") for r in obj.get("resources") or []}:
            return False
    return True


def lws_webhooks_have_ca() -> bool:
    for kind, name in (("mutatingwebhookconfigurations", "lws-mutating-webhook-configuration"),
                       ("validatingwebhookconfigurations", "lws-validating-webhook-configuration")):
        try:
            status, obj = api("GET", f"/apis/admissionregistration.k8s.io/v1/{kind}/{name}", timeout=5)
        except OSError:
            return False
        if status != 200 or not all(w.get("clientConfig", {}).get("caBundle") for w in obj.get("webhooks", [])):
            return False
    return True


def lws_manager_ready() -> bool:
    return (alive("lws-manager") and http_ok(f"http://{HOST}:{PORTS['lws-health']}/readyz")
            and port_listening(PORTS["lws-webhook"]) and lws_webhooks_have_ca())


# ---------------------------------------------------------------- commands


def cmd_up(args) -> int:
    t0 = time.monotonic()
    if not 1 <= args.nodes <= MAX_NODES:
        raise SimError(f"--nodes must be between 1 and {MAX_NODES} (got {args.nodes})")
    missing = [str(binary(b)) for b in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
                                        "kwok", "lws-manager", "helm") if not binary(b).exists()]
    if missing:
        raise SimError("missing binaries: " + ", ".join(missing) + "; build them with `make sim-build`")
    STATE.mkdir(parents=True, exist_ok=True)
    ensure_pki()
    ensure_kubelet_cert()
    write_kubeconfig()
    reconfigured = [n for n in write_configs() if alive(n)]
    # helpers running an older version of this script
    reconfigured += [n for n in HELPERS
                     if alive(n) and (read_record(n) or {}).get("code") != script_digest()]
    for name in reconfigured:
        log(f"configuration or code of {name} changed: restarting it")
        stop_process(name)  # started again below (lws-manager: by the supervisor)
    ensure_helm_repo_content()
    _write_if_changed(p("ports.json"), json.dumps({"offset": PORT_OFFSET, "ports": PORTS}) + "\n")
    settings = {"nodes": args.nodes, "lws_install": not args.no_lws_install}
    _write_if_changed(p("settings.json"), json.dumps(settings) + "\n")

    # components started with other flags than this version of the script gives them
    for name, (argv_fn, _ready, _timeout) in COMPONENTS.items():
        rec = read_record(name)
        if record_alive(rec) and rec.get("argv") != argv_fn():
            log(f"flags of {name} changed: restarting it")
            stop_process(name)
            reconfigured.append(name)
    started = []
    for name in COMPONENTS:
        if not alive(name):
            log(f"starting {name}")
            start_component(name)
            started.append(name)
    for name in HELPERS:
        if not alive(name):
            log(f"starting {name}")
            start_helper(name)
            started.append(name)
    wait_for("egress proxy socket", lambda: p("egress.sock").exists(), 15, proc="egress-proxy")
    wait_for("helm repository", lambda: port_listening(PORTS["helm-repo"]), 15, proc="helm-repo")

    changes = [f"restarted {n}" for n in reconfigured]
    if kubectl("get", "storageclass", "kwok-volume", check=False).returncode != 0:
        kubectl("apply", "-f", "-", stdin=storage_class_manifest())
        changes.append("created StorageClass kwok-volume")
    changes += ensure_nodes(args.nodes)
    wait_for(f"{args.nodes} sim GPU node(s) Ready", lambda: nodes_ready(args.nodes), 60 + args.nodes, proc="kwok")
    t_nodes = time.monotonic() - t0

    if not args.no_lws_install and not lws_install_complete():
        log(f"installing LWS from {lws_manifests().relative_to(REPO)} (server-side apply)")
        # force: the release manifest leaves defaulted fields out of atomic lists (webhook rules), so a second
        # applier of the same manifest conflicts on values that are in fact identical
        kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=nimops-sim", "-f", str(lws_manifests()))
        changes.append("installed LWS manifests")
        wait_for("LWS CRDs established", lws_crds_established, 60)
    if p("lws-manager.disabled").exists():
        log("the local LWS manager is kept stopped (`simcluster.py lws-manager start` resumes it)")
    elif lws_crds_established():
        wait_for("LWS manager ready (webhook certs injected)", lws_manager_ready, 120, interval=1,
                 proc="lws-supervisor")
    total = time.monotonic() - t0
    if not started and not changes:
        log(f"already up, nothing changed ({total:.1f}s)")
    else:
        log(f"started: {', '.join(started) or 'nothing'}; changes: {', '.join(changes) or 'none'}")
        log(f"nodes Ready after {t_nodes:.1f}s, up complete after {total:.1f}s")
    log(f"kubeconfig: {KUBECONFIG}")
    return 0


def cmd_down(args) -> int:
    stopped = []
    for name in reversed(ORDER):
        if stop_process(name):
            stopped.append(name)
    for leftover in p("pids").glob("*.pid") if p("pids").exists() else []:
        name = leftover.stem
        if stop_process(name):
            stopped.append(name)
    p("egress.sock").unlink(missing_ok=True)
    if not args.keep_data:
        shutil.rmtree(p("etcd-data"), ignore_errors=True)
        shutil.rmtree(p("lws-certs"), ignore_errors=True)
        for name in ("lws-manager.disabled", "lws-manager.kubeconfig", "lws-manager.sa-uid"):
            p(name).unlink(missing_ok=True)
    log(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    return 0


def status_info() -> dict:
    procs = {}
    for name in ORDER:
        rec = read_record(name)
        live = record_alive(rec)
        procs[name] = {"pid": rec["pid"] if rec else None, "alive": live, "rss_kib": _rss_kib(rec["pid"]) if live else None,
                       "exe": rec["exe"] if rec else None, "log": str(p("logs", f"{name}.log"))}
    core = [*COMPONENTS, *HELPERS]
    try:
        settings = json.loads(p("settings.json").read_text())
    except (OSError, ValueError):
        settings = {}
    return {
        "running": all(procs[n]["alive"] for n in core),
        "state_dir": str(STATE), "kubeconfig": str(KUBECONFIG),
        "server": f"https://{HOST}:{PORTS['kube-apiserver']}",
        "kubectl": KUBECTL, "helm": str(binary("helm")),
        "helm_repo": {"url": repo_url(), "credentials_file": str(p("helm-repo-credentials.json")),
                      "chart": "nim-llm"},
        "lws_manager_disabled": p("lws-manager.disabled").exists(),
        "ports": PORTS, "settings": settings, "versions": versions(), "processes": procs,
    }


def _rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def cmd_status(args) -> int:
    info = status_info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0 if info["running"] else 3
    print(f"state dir:  {info['state_dir']}")
    print(f"kubeconfig: {info['kubeconfig']}")
    print(f"helm:       {info['helm']}")
    print(f"helm repo:  {info['helm_repo']['url']} (credentials in {info['helm_repo']['credentials_file']})")
    for name, pr in info["processes"].items():
        state = f"running pid {pr['pid']}, RSS {pr['rss_kib'] // 1024} MiB" if pr["alive"] else "stopped"
        print(f"  {name:24s} {state}")
    if info["running"]:
        r = kubectl("get", "nodes", "-o", "wide", check=False)
        print(r.stdout.rstrip() or r.stderr.rstrip())
    print("running" if info["running"] else "not running")
    return 0 if info["running"] else 3


def cmd_lws_manager(args) -> int:
    flag = p("lws-manager.disabled")
    if args.action == "stop":
        flag.write_text("stopped by `simcluster.py lws-manager stop`\n")
        stopped = stop_process("lws-manager")
        log("lws-manager stopped" if stopped else "lws-manager was not running")
        return 0
    flag.unlink(missing_ok=True)
    if not alive("lws-supervisor"):
        raise SimError("the sim is not running (lws-supervisor is down): run `simcluster.py up`")
    if not lws_crds_established():
        raise SimError("LWS CRDs are not installed, so the manager is not started")
    wait_for("LWS manager ready", lws_manager_ready, 90, interval=1, proc="lws-supervisor")
    log(f"lws-manager running (pid {read_record('lws-manager')['pid']})")
    return 0


# ---------------------------------------------------------------- helpers run as detached processes


def _install_term_handler() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))


def run_egress_proxy() -> int:
    """HTTP CONNECT proxy on a unix socket for the apiserver's `cluster` egress.

    Only two targets are forwarded: the ClusterIP:443 of Service lws-system/lws-webhook-service (to the local LWS
    manager's webhook port) and the fake nodes' kubelet address (to KWOK's kubelet server); everything else is
    refused with 403.
    """
    _install_term_handler()
    sock_path = p("egress.sock")
    sock_path.unlink(missing_ok=True)
    cache = {"ip": None, "at": 0.0}

    def webhook_cluster_ip() -> str | None:
        if time.monotonic() - cache["at"] > 5:
            try:
                status, obj = api("GET", f"/api/v1/namespaces/{LWS_NS}/services/{LWS_WEBHOOK_SERVICE}", timeout=5)
                cache["ip"] = obj["spec"].get("clusterIP") if status == 200 else None
            except (OSError, KeyError, TypeError):
                cache["ip"] = None
            cache["at"] = time.monotonic()
        return cache["ip"]

    async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            try:
                w.close()
            except OSError:
                pass

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, OSError):
            writer.close()
            return
        line = head.split(b"\r\n", 1)[0].decode(errors="replace")
        parts = line.split()
        target = parts[1] if len(parts) == 3 and parts[0] == "CONNECT" else ""
        host, port = target.rpartition(":")[::2]
        if (host, port) == (NODE_IP, str(PORTS["kubelet"])):
            upstream = PORTS["kubelet"]  # a fake node's kubelet API: KWOK's server
        else:
            ip = await asyncio.to_thread(webhook_cluster_ip)
            if not ip or host != ip or port != "443":
                print(f"refused {line!r} (LWS webhook service is {ip}:443)", flush=True)
                writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                writer.close()
                return
            upstream = PORTS["lws-webhook"]
        try:
            up_r, up_w = await asyncio.wait_for(asyncio.open_connection(HOST, upstream), 5)
        except (OSError, asyncio.TimeoutError) as e:
            print(f"upstream {HOST}:{upstream} unavailable for {target}: {e}", flush=True)
            writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        print(f"forwarded {line!r} to {HOST}:{upstream}", flush=True)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))

    async def main() -> None:
        server = await asyncio.start_unix_server(handle, path=str(sock_path))
        os.chmod(sock_path, 0o600)
        print(f"egress proxy on {sock_path}", flush=True)
        async with server:
            await server.serve_forever()

    try:
        asyncio.run(main())
    finally:
        sock_path.unlink(missing_ok=True)
    return 0


def run_helm_repo() -> int:
    """Static Helm repository (index.yaml + chart archives) behind HTTP basic auth."""
    _install_term_handler()
    creds = json.loads(p("helm-repo-credentials.json").read_text())
    expected = "Basic " + base64.b64encode(f"{creds['username']}:{creds['password']}".encode()).decode()
    root = p("helm-repo")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def _authorized(self) -> bool:
            if self.headers.get("Authorization") == expected:
                return True
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="nimops-sim-helm-repo"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return False

        def do_GET(self):  # noqa: N802
            if self._authorized():
                super().do_GET()

        def do_HEAD(self):  # noqa: N802
            if self._authorized():
                super().do_HEAD()

        def list_directory(self, path):
            self.send_error(404)

        def log_message(self, fmt, *a):
            print(f"{self.address_string()} {fmt % a}", flush=True)

    srv = http.server.ThreadingHTTPServer((HOST, PORTS["helm-repo"]), Handler)
    print(f"helm repository on {repo_url()} serving {root}", flush=True)
    srv.serve_forever()
    return 0


def _cri_lines(when: str, lines: list[str]) -> str:
    """Container log lines in the CRI file format that KWOK's kubelet server reads."""
    ts = (when or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())).replace("Z", ".000000000Z")
    return "".join(f"{ts} stdout F {line}\n" for line in lines)


def _pod_fault(pod: dict) -> str | None:
    labels = pod["metadata"].get("labels") or {}
    fault = labels.get("sim.nimops.test/fault")
    if fault in ("crashloop", "neverready"):
        return fault
    if labels.get("leaderworkerset.sigs.k8s.io/worker-index", "0") != "0" and any(
            e.get("name") == "NIM_JSONL_LOGGING" and e.get("value") == "1"
            for c in pod["spec"]["containers"] for e in c.get("env") or []):
        return "crashloop"
    return None


def _write_if_different(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _write_pod_logs(pod: dict, fault: str) -> dict:
    """Write the log files of a faulted pod's containers; returns the Logs spec pointing at them."""
    d = p("pod-logs", pod["metadata"]["uid"])
    d.mkdir(parents=True, exist_ok=True)
    statuses = {c["name"]: c for c in pod.get("status", {}).get("containerStatuses") or []}
    jsonl = any(e.get("name") == "NIM_JSONL_LOGGING" and e.get("value") == "1"
                for c in pod["spec"]["containers"] for e in c.get("env") or [])
    entries = []
    for c in pod["spec"]["containers"]:
        name = c["name"]
        st = statuses.get(name, {})
        start = [f"nimops-sim: container {name} ({c['image']}) simulated on fake node {pod['spec'].get('nodeName')}"]
        if jsonl:
            start = [json.dumps({"level": "INFO", "logger": "nimops-sim", "message": m}) for m in start]
        current = list(start)
        if fault == "neverready":
            current.append("nimops-sim: readiness check failing: GET /v1/health/ready -> 503 (not ready)")
        _write_if_different(d / f"{name}.log",
                            _cri_lines((st.get("state", {}).get("running") or {}).get("startedAt"), current))
        entry = {"containers": [name], "logsFile": str(d / f"{name}.log")}
        term = (st.get("lastState") or {}).get("terminated")
        if fault == "crashloop" and term:
            previous = [*start, "Traceback (most recent call last):", f"RuntimeError: {term.get('message', '')}"]
            _write_if_different(d / f"{name}.previous.log", _cri_lines(term.get("finishedAt"), previous))
            entry["previousLogsFile"] = str(d / f"{name}.previous.log")
        entries.append(entry)
    return {"logs": entries}


def run_pod_logs() -> int:
    """Container logs for faulted pods, served by KWOK's kubelet server: keeps a kwok.x-k8s.io Logs object per
    crash-looping or never-ready pod pointing at files written here (`kubectl logs [--previous]` then shows the
    crash), and the default log file every other pod gets."""
    _install_term_handler()
    p("pod-logs").mkdir(exist_ok=True)
    default = p("pod-logs", "default.log")
    if not default.exists():
        default.write_text(_cri_lines("", ["nimops-sim: simulated container on a fake node (KWOK); no process runs"]))
    print("pod-logs running", flush=True)
    while True:
        try:
            _pod_logs_round()
        except Exception as e:  # noqa: BLE001 (keep going; the next round retries)
            print(f"pod-logs round failed: {type(e).__name__}: {e}", flush=True)
        time.sleep(2)


def _pod_logs_round() -> None:
    pods = {}
    for selector in ("sim.nimops.test/fault", "leaderworkerset.sigs.k8s.io/worker-index"):
        status, obj = api("GET", f"/api/v1/pods?labelSelector={selector}")
        if status == 200:
            pods.update({x["metadata"]["uid"]: x for x in obj["items"]})
    seen = set()
    for uid, pod in pods.items():
        fault = _pod_fault(pod)
        if not fault or pod["metadata"].get("deletionTimestamp"):
            continue
        seen.add(uid)
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        spec = _write_pod_logs(pod, fault)
        path = f"/apis/kwok.x-k8s.io/v1alpha1/namespaces/{ns}/logs/{name}"
        status, cur = api("GET", path)
        if status == 200 and cur.get("spec") == spec:
            continue
        body = {"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Logs",
                "metadata": {"name": name, "namespace": ns, "labels": {"sim.nimops.test/pod-logs": "true"}},
                "spec": spec}
        if status == 200:
            body["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"]
            api("PUT", path, body)
        else:
            api("POST", f"/apis/kwok.x-k8s.io/v1alpha1/namespaces/{ns}/logs", body)
        print(f"logs for {ns}/{name} ({fault})", flush=True)
    live = {(pods[u]["metadata"]["namespace"], pods[u]["metadata"]["name"]) for u in seen}
    status, obj = api("GET", "/apis/kwok.x-k8s.io/v1alpha1/logs?labelSelector=sim.nimops.test/pod-logs")
    for item in obj.get("items", []) if status == 200 else []:
        key = (item["metadata"]["namespace"], item["metadata"]["name"])
        if key not in live:  # pod gone, recreated without a fault, or fault cleared: back to the default logs
            api("DELETE", f"/apis/kwok.x-k8s.io/v1alpha1/namespaces/{key[0]}/logs/{key[1]}")
    for d in p("pod-logs").iterdir():
        if d.is_dir() and d.name not in seen:
            shutil.rmtree(d, ignore_errors=True)


def _lws_sa_uid() -> str | None:
    try:
        status, obj = api("GET", f"/api/v1/namespaces/{LWS_NS}/serviceaccounts/{LWS_SA}", timeout=5)
    except OSError:
        return None
    return obj["metadata"]["uid"] if status == 200 and isinstance(obj, dict) else None


def lws_install_complete() -> bool:
    """The release is applied: CRDs established and the controller Deployment present."""
    return lws_crds_established() and api_ok(f"/apis/apps/v1/namespaces/{LWS_NS}/deployments/lws-controller-manager")


def _lws_kubeconfig() -> bool:
    """A kubeconfig for the manager with a token of its own ServiceAccount, so the release's RBAC is what
    authorises it (as in a real cluster). False while the ServiceAccount does not exist yet."""
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"expirationSeconds": 7 * 24 * 3600}}
    try:
        status, obj = api("POST", f"/api/v1/namespaces/{LWS_NS}/serviceaccounts/{LWS_SA}/token", body)
    except OSError:
        return False
    if status != 201:
        return False
    kc = {
        "apiVersion": "v1", "kind": "Config", "current-context": "lws",
        "clusters": [{"name": "sim", "cluster": {
            "server": f"https://{HOST}:{PORTS['kube-apiserver']}", "certificate-authority": str(PKI / "ca.crt")}}],
        "users": [{"name": "lws", "user": {"token": obj["status"]["token"]}}],
        "contexts": [{"name": "lws", "context": {"cluster": "sim", "user": "lws", "namespace": LWS_NS}}],
    }
    path = p("lws-manager.kubeconfig")
    path.write_text(yaml.safe_dump(kc))
    os.chmod(path, 0o600)
    return True


def _project_lws_cert_secret() -> None:
    """Do what the kubelet's secret volume does for the real Deployment: keep the files of Secret
    lws-webhook-server-cert in the manager's certDir (the cert rotator fills the Secret, then waits for the files)."""
    try:
        status, obj = api("GET", f"/api/v1/namespaces/{LWS_NS}/secrets/lws-webhook-server-cert", timeout=5)
    except OSError:
        return
    if status != 200 or not isinstance(obj, dict):
        return
    d = p("lws-certs")
    d.mkdir(mode=0o700, exist_ok=True)
    for key, b64 in (obj.get("data") or {}).items():
        if "/" in key or key.startswith("."):
            continue
        content = base64.b64decode(b64)
        target = d / key
        if target.exists() and target.read_bytes() == content:
            continue
        tmp = d / f".{key}.tmp"
        tmp.write_bytes(content)
        os.chmod(tmp, 0o600)
        tmp.replace(target)
        print(f"projected secret key {key} into {d}", flush=True)


def run_lws_supervisor() -> int:
    """Runs the local LWS manager while the LWS CRDs and ServiceAccount exist (the in-cluster Deployment's pod
    is a KWOK pod). Restarts it after a crash; stops it when LWS is uninstalled or lws-manager.disabled exists."""
    stopping = {"now": False}

    def on_term(*_):
        stopping["now"] = True

    signal.signal(signal.SIGTERM, on_term)
    flag = p("lws-manager.disabled")
    backoff = 1.0
    last_start = 0.0
    print("lws supervisor running", flush=True)
    uid_file = p("lws-manager.sa-uid")
    token_sa_uid = uid_file.read_text().strip() if uid_file.exists() else None
    while not stopping["now"]:
        try:
            token_sa_uid, last_start, backoff = _supervise_once(flag, token_sa_uid, last_start, backoff)
        except Exception as e:  # noqa: BLE001 (keep supervising; the next round retries)
            print(f"supervisor round failed: {type(e).__name__}: {e}", flush=True)
        for _tick in range(10):
            if stopping["now"]:
                break
            time.sleep(0.2)
    # the manager is left running: `down` stops it next, and a restarted supervisor adopts it
    print("lws supervisor stopped", flush=True)
    return 0


def _supervise_once(flag: Path, token_sa_uid, last_start: float, backoff: float):
    sa_uid = _lws_sa_uid()
    installed = sa_uid is not None and lws_crds_established()
    running = alive("lws-manager")
    if running and (flag.exists() or not installed or sa_uid != token_sa_uid):
        why = "disabled" if flag.exists() else "LWS uninstalled" if not installed else "ServiceAccount replaced"
        print(f"stopping lws-manager ({why})", flush=True)
        stop_process("lws-manager")
    elif not running and installed and not flag.exists():
        if time.monotonic() - last_start >= backoff and _lws_kubeconfig():
            token_sa_uid = sa_uid
            p("lws-manager.sa-uid").write_text(sa_uid)
            if last_start:
                backoff = min(backoff * 2, 30.0)
            last_start = time.monotonic()
            p("lws-certs").mkdir(exist_ok=True)
            pid = start_process("lws-manager", [
                str(binary("lws-manager")), f"--config={p('lws-config.yaml')}", "--zap-log-level=2",
            ], env={"KUBECONFIG": str(p("lws-manager.kubeconfig"))})
            print(f"started lws-manager pid {pid}", flush=True)
    elif running and time.monotonic() - last_start > 60:
        backoff = 1.0
    if running:
        _reap(read_record("lws-manager")["pid"])
    if installed:
        _project_lws_cert_secret()
    return token_sa_uid, last_start, backoff


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start the sim (idempotent)")
    up.add_argument("--nodes", type=int, default=int(os.environ.get("NIMOPS_SIM_NODES", "4")),
                    help=f"number of fake GPU nodes (8 × nvidia.com/gpu each), 1..{MAX_NODES}; default 4")
    up.add_argument("--no-lws-install", action="store_true",
                    help="do not install LWS; the manager still starts once the LWS CRDs appear")
    down = sub.add_parser("down", help="stop every process of the sim by its recorded PID")
    down.add_argument("--keep-data", action="store_true", help="keep etcd data for the next `up`")
    st = sub.add_parser("status", help="show processes and nodes (exit 3 when not running)")
    st.add_argument("--json", action="store_true")
    lm = sub.add_parser("lws-manager", help="stop or start the local LWS manager (fault tests)")
    lm.add_argument("action", choices=["stop", "start"])
    for internal in ("_egress-proxy", "_helm-repo", "_lws-supervisor", "_pod-logs"):
        sub.add_parser(internal)
    args = ap.parse_args(argv)
    handlers = {
        "up": cmd_up, "down": cmd_down, "status": cmd_status, "lws-manager": cmd_lws_manager,
        "_egress-proxy": lambda a: run_egress_proxy(), "_helm-repo": lambda a: run_helm_repo(),
        "_lws-supervisor": lambda a: run_lws_supervisor(), "_pod-logs": lambda a: run_pod_logs(),
    }
    try:
        return handlers[args.cmd](args)
    except SimError as e:
        print(f"simcluster: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
