"""Shared fixtures of the integration tests.

`sim_cluster` (session scope) brings up the suites' own simulated GPU Kubernetes cluster of tests/simcluster once
per test session: its own state dir and port offset (TEST_SIM_ENV), never the one `make demo` or `make sim-up`
runs, so a release or a cluster left up by hand neither changes a result nor gets torn down by the tests. It
reuses the suites' sim when one is already running, and stops it at the end only if this session started it
(set NIMOPS_SIM_KEEP=1 to leave it running); `sim_cluster_factory` makes extra, independent sims (e.g. without
LWS, to test installing it). Other test beds add their own fixtures beside these.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SIMCLUSTER = REPO / "tests" / "simcluster" / "simcluster.py"
FAULT_LABEL = "sim.nimops.test/fault"
FAULTS = ("crashloop", "imagepull", "neverready")
CACHE = Path(os.environ.get("NIMOPS_CACHE") or Path.home() / ".cache" / "nimops")
# The suites' own sim, beside the default one (offset 0, `make demo`/`make sim-up`), the bench's (5000) and the
# extra sims below: no shifted port of one lands on a port of another.
# NIMOPS_TEST_SIM_DIR / NIMOPS_TEST_SIM_PORT_OFFSET move it, so that two checkouts can run their suites at once.
TEST_SIM_ENV = {"NIMOPS_SIM_DIR": os.environ.get("NIMOPS_TEST_SIM_DIR") or str(CACHE / "simcluster-tests"),
                "NIMOPS_SIM_PORT_OFFSET": os.environ.get("NIMOPS_TEST_SIM_PORT_OFFSET") or "3500"}


# Seconds per test file (setup + call + teardown, session fixtures included where they run), printed at the end of
# the session so that the time a run takes can be traced to files, not just to the slowest tests.
FILE_SECONDS: dict[str, float] = {}


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::", 1)[0]
    FILE_SECONDS[path] = FILE_SECONDS.get(path, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter):
    if not FILE_SECONDS:
        return
    terminalreporter.section("seconds per test file")
    for path, seconds in sorted(FILE_SECONDS.items(), key=lambda kv: -kv[1]):
        terminalreporter.write_line(f"{seconds:8.1f}  {path}")
    terminalreporter.write_line(f"{sum(FILE_SECONDS.values()):8.1f}  (all files)")


def run_simcluster(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the sim's CLI with this interpreter; output is captured so a failure can show it."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, str(SIMCLUSTER), *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, check=False)


def sim_status(env: dict | None = None) -> dict:
    r = run_simcluster("status", "--json", env=env, timeout=60)
    return json.loads(r.stdout)


@dataclass
class SimCluster:
    """Handle on a running sim cluster: paths, credentials and helpers for the tests."""

    info: dict
    env: dict = field(default_factory=dict)

    @property
    def kubeconfig(self) -> str:
        return self.info["kubeconfig"]

    @property
    def helm(self) -> str:
        return self.info["helm"]

    @property
    def kubectl_bin(self) -> str:
        return self.info["kubectl"]

    @property
    def repo_url(self) -> str:
        return self.info["helm_repo"]["url"]

    @property
    def repo_credentials(self) -> tuple[str, str]:
        creds = json.loads(Path(self.info["helm_repo"]["credentials_file"]).read_text())
        return creds["username"], creds["password"]

    @property
    def state_dir(self) -> Path:
        return Path(self.info["state_dir"])

    def refresh(self) -> dict:
        self.info = sim_status(self.env)
        return self.info

    def simcluster(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        """Run the sim's CLI against this sim (e.g. "up", "down", "status")."""
        return run_simcluster(*args, env=self.env, timeout=timeout)

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 120) -> subprocess.CompletedProcess:
        r = subprocess.run([self.kubectl_bin, f"--kubeconfig={self.kubeconfig}", *args], input=input,
                           capture_output=True, text=True, timeout=timeout, check=False)
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({r.returncode}): {r.stderr}")
        return r

    def kubectl_json(self, *args: str) -> dict:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def helm_env(self, home: Path) -> dict:
        """Environment for helm with its own config/cache/data under `home` and the sim's kubeconfig."""
        return dict(os.environ, KUBECONFIG=self.kubeconfig, HELM_CONFIG_HOME=str(home / "config"),
                    HELM_CACHE_HOME=str(home / "cache"), HELM_DATA_HOME=str(home / "data"))

    def namespace(self, prefix: str = "t") -> str:
        """Create a fresh namespace (the caller deletes it, or it goes with the sim's data at `down`)."""
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.kubectl("create", "namespace", name)
        return name

    # ---- faults (see tests/simcluster/README.md)

    def set_fault(self, namespace: str, pod: str, kind: str, message: str | None = None,
                  exit_code: int | None = None) -> None:
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; one of {FAULTS}")
        if message is not None:
            self.kubectl("-n", namespace, "annotate", "--overwrite", "pod", pod,
                         f"sim.nimops.test/fault-message={message}")
        if exit_code is not None:
            self.kubectl("-n", namespace, "annotate", "--overwrite", "pod", pod,
                         f"sim.nimops.test/fault-exit-code={exit_code}")
        self.kubectl("-n", namespace, "label", "--overwrite", "pod", pod, f"{FAULT_LABEL}={kind}")

    def clear_fault(self, namespace: str, pod: str) -> None:
        self.kubectl("-n", namespace, "label", "pod", pod, f"{FAULT_LABEL}-")

    # ---- the local LWS manager

    def stop_lws_manager(self) -> None:
        r = run_simcluster("lws-manager", "stop", env=self.env, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr

    def start_lws_manager(self) -> None:
        r = run_simcluster("lws-manager", "start", env=self.env, timeout=180)
        assert r.returncode == 0, r.stdout + r.stderr

    def lws_manager_pid(self) -> int | None:
        proc = self.refresh()["processes"]["lws-manager"]
        return proc["pid"] if proc["alive"] else None


def wait_until(what: str, check, timeout: float = 60, interval: float = 0.5):
    """Poll check() until it returns a truthy value (returned) or fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


@pytest.fixture
def sim_namespace(sim_cluster: SimCluster):
    """A fresh namespace on the sim, deleted (without waiting) after the test, pass or fail."""
    ns = sim_cluster.namespace()
    yield ns
    sim_cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


# Port offsets for extra sims: every shifted port stays below Linux's ephemeral range (32768+).
EXTRA_SIM_OFFSETS = (20000, 17000, 14000, 11000)


def _ports_free(offset: int) -> bool:
    base = (2379, 2380, 6443, 10257, 10259, 9443, 8081, 8879, 10250)
    for port in base:
        with socket.socket() as sock:
            sock.settimeout(0.3)
            if sock.connect_ex(("127.0.0.1", port + offset)) == 0:
                return False
    return True


@pytest.fixture
def sim_cluster_factory(tmp_path_factory):
    """Start extra, independent sims (own state dir, shifted ports), e.g. one without LWS to test installing it.

    `make(nodes=2, lws_install=False)` returns a SimCluster; every sim made is stopped after the test.
    """
    made: list[dict] = []

    def make(nodes: int = 2, lws_install: bool = True) -> SimCluster:
        offset = next((o for o in EXTRA_SIM_OFFSETS if o not in {m["NIMOPS_SIM_PORT_OFFSET"] for m in made}
                       and _ports_free(int(o))), None)
        if offset is None:
            pytest.fail("no free port range for another simulated cluster")
        env = {"NIMOPS_SIM_DIR": str(tmp_path_factory.mktemp("sim")), "NIMOPS_SIM_PORT_OFFSET": str(offset)}
        made.append(env)
        args = ["up", "--nodes", str(nodes)] + ([] if lws_install else ["--no-lws-install"])
        r = run_simcluster(*args, env=env, timeout=600)
        if r.returncode != 0:
            pytest.fail(f"extra simulated cluster failed to start:\n{r.stdout}\n{r.stderr}")
        return SimCluster(info=sim_status(env), env=env)

    yield make
    for env in made:
        r = run_simcluster("down", env=env, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr


@pytest.fixture(scope="session")
def sim_cluster() -> SimCluster:
    env = TEST_SIM_ENV
    info = sim_status(env)
    # stopped at the end only if nothing of it ran before (a partly running sim was left by a kept session:
    # repaired, kept)
    started = not any(proc["alive"] for proc in info["processes"].values())
    if not info["running"]:
        r = run_simcluster("up", env=env, timeout=900)
        if r.returncode != 0:
            pytest.fail(f"simulated cluster failed to start:\n{r.stdout}\n{r.stderr}")
        info = sim_status(env)
        assert info["running"], info
    sim = SimCluster(info=info, env=env)
    yield sim
    if started and os.environ.get("NIMOPS_SIM_KEEP") != "1":
        r = run_simcluster("down", env=env, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr


def files_holding(needles, roots, own: Path) -> list[str]:
    """Files under ``roots`` (below 1 MB) that hold a needle, e.g. a registry login left behind; ``own`` (the test's
    directory, holding the registry's credentials and its inventories) aside. os.walk skips directories that vanish
    while it reads them: the other test group's runs share /tmp."""
    hits = []
    for root in roots:
        for parent, _dirs, names in os.walk(root, onerror=lambda _err: None):
            for name in names:
                f = Path(parent, name)
                try:
                    if own in f.parents:
                        continue
                    if f.is_file() and f.stat().st_size < 1_000_000:
                        data = f.read_bytes()
                        hits += [str(f) for n in needles if n.encode() in data]
                except OSError:
                    continue
    return hits


@dataclass
class OciRegistry:
    """The OCI chart tests' registry (tests/simcluster/oci-registry): basic auth, loopback, in memory."""

    host: str
    username: str
    password: str
    log: Path

    def requests(self) -> list[str]:
        """One line per request served: method, path, status, and whether valid credentials came."""
        return [line for line in self.log.read_text().splitlines() if line.split(" ", 2)[-1].startswith("request ")]


@contextlib.contextmanager
def running_oci_registry(state_dir: Path, netns: str | None = None):
    """The OCI registry on a free loopback port (of network namespace ``netns`` when given, where a simulated
    host's engine reaches it), stopped by its PID on exit."""
    build = subprocess.run(["bash", str(REPO / "tests" / "simcluster" / "build.sh"), "oci-registry"],
                           capture_output=True, text=True, timeout=900, check=False)
    assert build.returncode == 0, build.stdout + build.stderr
    versions = dict(line.split("=", 1) for line in (REPO / "tests" / "simcluster" / "versions.env").read_text()
                    .splitlines() if "=" in line and not line.startswith("#"))
    digest = hashlib.sha256((REPO / "tests" / "simcluster" / "oci-registry" / "main.go").read_bytes()).hexdigest()
    binary = CACHE / "bin" / f"oci-registry-{versions['OCI_REGISTRY_VERSION']}-{digest[:12]}"
    enter = ["nsenter", f"--net=/run/netns/{netns}"] if netns else []
    # a port free here is almost surely free in a test namespace too; a clash shows as the registry exiting
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    creds = state_dir / "registry-credentials"
    password = "FAKEregistrypass" + uuid.uuid4().hex[:12]
    creds.write_text("chartbot:" + password)
    creds.chmod(0o600)
    log = state_dir / "registry.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(enter + [str(binary), "-listen", f"127.0.0.1:{port}", "-credentials", str(creds)],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        def answering():
            assert proc.poll() is None, log.read_text()
            probe = enter + [sys.executable, "-c", f"import socket; socket.create_connection(('127.0.0.1', {port}), 1)"]
            return subprocess.run(probe, capture_output=True, timeout=10, check=False).returncode == 0
        wait_until("the OCI registry to listen", answering, timeout=30, interval=0.2)
        yield OciRegistry(f"127.0.0.1:{port}", "chartbot", password, log)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def oci_registry(tmp_path):
    """A fresh registry on a free loopback port, stopped (by its PID) after the test."""
    with running_oci_registry(tmp_path) as registry:
        yield registry
