"""Helpers of the Kubernetes-path integration tests: run the collection's playbooks against the sim cluster,
read the play recap, and snapshot resourceVersions to prove check mode changed nothing."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "kubernetes"
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
RECAP = re.compile(r"^localhost\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
# The sim's Helm repository password doubles as the planted fake NGC API key.
FAKE_HF_TOKEN = "hf_FAKEleaktoken000000000000000000000"


def collections_root() -> Path:
    """An ansible_collections/nimops/multinode tree pointing at this checkout (what ansible needs to find it)."""
    # one tree per checkout: two checkouts running tests at once must not re-point each other's link
    tag = hashlib.sha256(str(REPO).encode()).hexdigest()[:10]
    root = Path(tempfile.gettempdir()) / f"nimops-ac-{os.getuid()}-{tag}"
    link = root / "ansible_collections" / "nimops" / "multinode"
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink() or link.resolve() != REPO:
        if link.is_symlink():
            link.unlink()
        link.symlink_to(REPO)
    return root


@dataclass
class PlayResult:
    rc: int
    out: str
    seconds: float

    @property
    def recap(self) -> dict:
        m = RECAP.findall(self.out)
        assert m, f"no play recap in output:\n{self.out[-3000:]}"
        ok, changed, unreachable, failed = (int(x) for x in m[-1])
        return {"ok": ok, "changed": changed, "unreachable": unreachable, "failed": failed}

    @property
    def changed(self) -> int:
        return self.recap["changed"]

    def failure_message(self) -> str:
        msgs = re.findall(r"^fatal: \[localhost\]: FAILED! => (.*)$", self.out, re.M)
        return msgs[-1] if msgs else ""


def example_vars(name: str) -> dict:
    return yaml.safe_load((EXAMPLES / name).read_text())


def sim_overrides(sim, namespace: str, release: str | None = None) -> dict:
    """Point an example at the sim: its authenticated Helm repo (test chart), helm binary, a test namespace."""
    over = {
        "nim_namespace": namespace,
        # The sim's repository is a mirror (not NGC) on plain HTTP on loopback: its own password, allowed over HTTP.
        "nim_chart": {"source": "repo", "repo_url": sim.repo_url, "version": "2.0.0-sim",
                      "password": sim.repo_credentials[1], "allow_http_credentials": True},
        "nim_helm_binary": sim.helm,
    }
    if release:
        over["nim_release"] = release
    return over


# Seconds every group must hold Ready in these suites' deploys: the wait still holds (so a crash right after Ready
# still fails the play), without the default 10 s on each of the suites' deploys. test_k8s_deploy keeps the default.
SETTLE = 2


def _playbook_call(sim, playbook: str, extravars: dict, *, check: bool, diff: bool, verbosity: int,
                   ngc_key: str | None, hf_token: str | None, tags: str | None, settle: int | None):
    """(argv, environment, vars file) of an ansible-playbook run against the sim; the caller removes the file."""
    if settle is not None and "nim_release_settle" not in extravars:
        extravars = dict(extravars, nim_release_settle=settle)
    env = dict(os.environ)
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": str(collections_root()),
        "K8S_AUTH_KUBECONFIG": sim.kubeconfig,
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
        "PATH": str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""),
    })
    env["NGC_API_KEY"] = ngc_key if ngc_key is not None else sim.repo_credentials[1]
    if hf_token is not None:
        env["HF_TOKEN"] = hf_token
    else:
        env.pop("HF_TOKEN", None)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(extravars, fh)
        vars_file = fh.name
    cmd = [ANSIBLE_PLAYBOOK, str(REPO / "playbooks" / playbook), "-e", "@" + vars_file]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    if verbosity:
        cmd.append("-" + "v" * verbosity)
    if tags:
        cmd += ["--tags", tags]
    return cmd, env, vars_file


def run_playbook(sim, playbook: str, extravars: dict, *, check: bool = False, diff: bool = False,
                 verbosity: int = 0, ngc_key: str | None = None, hf_token: str | None = None,
                 tags: str | None = None, timeout: float = 900, settle: int | None = SETTLE) -> PlayResult:
    cmd, env, vars_file = _playbook_call(sim, playbook, extravars, check=check, diff=diff, verbosity=verbosity,
                                         ngc_key=ngc_key, hf_token=hf_token, tags=tags, settle=settle)
    start = time.monotonic()
    try:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=str(REPO),
                           check=False)
    finally:
        os.unlink(vars_file)
    return PlayResult(r.returncode, r.stdout + r.stderr, time.monotonic() - start)


class BackgroundPlay:
    """A playbook run in the background (its own session), to be finished or killed like a lost controller."""

    def __init__(self, sim, playbook: str, extravars: dict, settle: int | None = SETTLE):
        cmd, env, self._vars_file = _playbook_call(sim, playbook, extravars, check=False, diff=False, verbosity=0,
                                                   ngc_key=None, hf_token=None, tags=None, settle=settle)
        self._out = tempfile.TemporaryFile("w+")
        self._start = time.monotonic()
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._out, stderr=subprocess.STDOUT, text=True,
                                     cwd=str(REPO), start_new_session=True)

    def finish(self, timeout: float = 900) -> PlayResult:
        try:
            rc = self.proc.wait(timeout=timeout)
        finally:
            os.unlink(self._vars_file)
        self._out.seek(0)
        return PlayResult(rc, self._out.read(), time.monotonic() - self._start)

    def kill(self) -> None:
        """SIGKILL the run and every process under it at once (helm included), as a controller lost mid-task."""
        pids = [self.proc.pid] + descendants(self.proc.pid)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=30)
        os.unlink(self._vars_file)


def descendants(pid: int) -> list[int]:
    """PIDs of every process below `pid` (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def resource_versions(sim, namespace: str) -> dict:
    """name -> resourceVersion of everything the deploy touches in the namespace (and the namespace itself)."""
    kinds = "secrets,persistentvolumeclaims,services,statefulsets,leaderworkersets,configmaps,pods"
    r = sim.kubectl("get", kinds, "-n", namespace, "-o", "json", check=False)
    versions = {}
    if r.returncode == 0:
        for item in json.loads(r.stdout)["items"]:
            versions[f'{item["kind"]}/{item["metadata"]["name"]}'] = item["metadata"]["resourceVersion"]
    ns = sim.kubectl("get", "namespace", namespace, "-o", "json", check=False)
    if ns.returncode == 0:
        versions["Namespace/" + namespace] = json.loads(ns.stdout)["metadata"]["resourceVersion"]
    return versions


def lws_named(sim, namespace: str) -> dict:
    items = sim.kubectl_json("get", "leaderworkersets", "-n", namespace)["items"]
    assert len(items) == 1, [i["metadata"]["name"] for i in items]
    return items[0]


def cleanup_namespace(sim, namespace: str) -> None:
    sim.kubectl("delete", "namespace", namespace, "--wait=true", "--timeout=120s", check=False, timeout=180)


class ExecEvents:
    """The kernel's process events (netlink proc connector; root, this network namespace): the PID of every process
    that execs anywhere on the machine, as it execs. open() gives None where the connector is not available."""

    NETLINK_CONNECTOR, CN_IDX_PROC, CN_VAL_PROC, PROC_CN_MCAST_LISTEN, PROC_EVENT_EXEC = 11, 1, 1, 1, 2

    def __init__(self, sock: socket.socket):
        self.sock = sock

    @classmethod
    def open(cls) -> ExecEvents | None:
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, cls.NETLINK_CONNECTOR)
            sock.bind((0, cls.CN_IDX_PROC))
            op = struct.pack("I", cls.PROC_CN_MCAST_LISTEN)
            msg = struct.pack("IIIIHH", cls.CN_IDX_PROC, cls.CN_VAL_PROC, 0, 0, len(op), 0) + op
            sock.send(struct.pack("IHHII", 16 + len(msg), 3, 0, 0, os.getpid()) + msg)  # type 3: NLMSG_DONE
        except OSError:
            return None
        return cls(sock)

    def pids(self, timeout: float) -> list[int]:
        """PIDs that exec'ed since the last call, waiting up to `timeout` for the first."""
        found = []
        self.sock.settimeout(max(timeout, 0.001))
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:  # nothing more for now (or ENOBUFS: events dropped, the next full read covers them)
                return found
            # nlmsghdr (16) + cn_msg (20) + proc_event: what, cpu, timestamp (16), then the exec'ing pid
            if len(data) >= 56 and struct.unpack_from("I", data, 36)[0] == self.PROC_EVENT_EXEC:
                found.append(struct.unpack_from("i", data, 52)[0])
            self.sock.settimeout(0.0)

    def close(self):
        self.sock.close()


class CmdlineScanner:
    """Watches every process's argv while a playbook runs (a key on a command line is visible to all users): each
    process is read as it execs (ExecEvents, so that even one living a millisecond is seen), and every process is
    read again 4 times a second (processes already running, or changing their title). Without the kernel's events
    it reads every process every 5 ms instead. `needles`: values, or {name: value}; `hits` names each one found."""

    def __init__(self, needles):
        named = needles.items() if isinstance(needles, dict) else ((n, n) for n in needles)
        self.needles = [(name, value.encode()) for name, value in named]
        self.hits = []
        self.samples = 0
        self.exec_events = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _check(self, pid) -> None:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return
        for name, value in self.needles:
            if value in argv:
                excerpt = argv.replace(b"\0", b" ")[:120].decode(errors="replace")
                hit = f"argv of pid {pid} ({excerpt}): {name}"
                if hit not in self.hits:
                    self.hits.append(hit)

    def _run(self):
        events = ExecEvents.open()
        self.exec_events = events is not None
        period = 0.25 if events else 0.005
        next_read = 0.0
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= next_read:
                    for pid in os.listdir("/proc"):
                        if pid.isdigit():
                            self._check(pid)
                    self.samples += 1
                    next_read = now + period
                if events:
                    for pid in events.pids(next_read - time.monotonic()):
                        self._check(pid)
                else:
                    self._stop.wait(max(0.0, next_read - time.monotonic()))
        finally:
            if events:
                events.close()

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=10)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
