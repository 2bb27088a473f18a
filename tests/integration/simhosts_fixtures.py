"""Fixtures and helpers of the bare-Docker integration tests: the simulated hosts of tests/simhosts.

`sim_hosts` (session scope) holds the hosts for this test session alone (a lock file; concurrent sessions wait),
and brings up two simulated hosts (network namespaces with sshd and a podman engine each) in the suites' own set
(NIMOPS_SIMHOSTS_SET=5), never the default set that `make hosts-up` starts by hand, so hosts left up by hand
neither change a result nor get torn down by the tests. It reuses the set when it is already up, and stops it at
the end only if this session started it (NIMOPS_SIMHOSTS_KEEP=1 leaves it running). The test image and the tiny
model are built once and cached.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SIMHOSTS = REPO / "tests" / "simhosts"
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
HOST_RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
N_HOSTS = 3  # a replica of two, and one host outside it (the security tests reach the replica from there)
TEST_SET = "5"  # the suites' own hosts (set 6: the fleet test; set 7: the bench; set 0: `make hosts-up`)
# tests/simhosts/simhosts.py names a set's hosts
LEADER, WORKER, OUTSIDER = f"simhost{TEST_SET}x1", f"simhost{TEST_SET}x2", f"simhost{TEST_SET}x3"
# `ray status` in a Ray container, with the replica's token from the env file the containers source.
RAY_STATUS = ["sh", "-c", "set -a && . /run/nimops/secrets.env && set +a && exec ray status"]
_HELD = {"depth": 0}  # exclusive() is re-entrant within one test session


def _simhosts(*args: str, host_set: str, timeout: float = 3600, engine: str = "podman") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SIMHOSTS / "simhosts.py"), *args], capture_output=True,
                          text=True, timeout=timeout, check=False,
                          env=dict(os.environ, NIMOPS_SIMHOSTS_SET=host_set, NIMOPS_SIMHOSTS_ENGINE=engine))


def hosts_up(host_set: str, count: int, engine: str = "podman") -> tuple[SimHosts, bool]:
    """The hosts of one set, brought up unless `count` of them already are; also whether they were started here."""
    status = _simhosts("status", host_set=host_set, timeout=120)
    info = json.loads(_simhosts("inventory", host_set=host_set, timeout=60).stdout or "{}")
    if info.get("hosts") and info.get("engine") != engine:
        pytest.fail(f"simulated hosts set {host_set} runs {info.get('engine')}, not {engine}: take it down first")
    started = False
    if status.returncode != 0 or len(info.get("hosts", {})) < count:
        r = _simhosts("up", "--hosts", str(count), host_set=host_set, engine=engine)
        if r.returncode != 0:
            pytest.fail(f"simulated hosts (set {host_set}) failed to start:\n{r.stdout}\n{r.stderr}")
        started = True
        info = json.loads(_simhosts("inventory", host_set=host_set, timeout=60).stdout)
    return SimHosts(info=info), started


def hosts_down(host_set: str, started: bool) -> None:
    """Stop the set only if hosts_up started it (NIMOPS_SIMHOSTS_KEEP=1 keeps it)."""
    if started and os.environ.get("NIMOPS_SIMHOSTS_KEEP") != "1":
        r = _simhosts("down", host_set=host_set, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr


NVIDIA_SMI_STAND_IN = "/var/lib/nimops/nvidia-smi-stand-in"  # inside each simulated host's own /var/lib/nimops
H100 = "NVIDIA H100 80GB HBM3, 550.54.15, 81559"


def stand_in_nvidia_smi(hosts: SimHosts, lines: dict) -> None:
    """A stand-in for nvidia-smi on each host (the test bed has no GPUs): it answers the preflight's query with the
    given lines, one GPU per line, as nvidia-smi --query-gpu=name,driver_version,memory.total does."""
    for host, gpus in lines.items():
        script = hosts.host_path(host, NVIDIA_SMI_STAND_IN)
        script.write_text("#!/bin/sh\ncat <<'EOF'\n" + "".join(g + "\n" for g in gpus) + "EOF\n")
        script.chmod(0o755)


def tiny_vllm_deployment(hosts: SimHosts, name: str, model_cache: Path) -> dict:
    """The bare-host variables of a replica serving the tiny model with vLLM CPU on the leader (no GPUs; vLLM CPU
    cannot use the Ray executor, so the Ray cluster spans the hosts and the server runs TP=PP=1)."""
    return {
        "nim_docker_name": name,
        "nim_docker_engine": "vllm",
        "nim_docker_image": hosts.info["image"],
        "nim_docker_gpus_per_node": 0,
        "nim_docker_shm_size": "1g",
        "nim_docker_object_store_memory": 256 * 1024 * 1024,
        "nim_docker_model_cache_dir": str(model_cache),
        "nim_docker_model_cache_mount": "/models",
        "nim_docker_model": "/models/tiny-llama",
        "nim_docker_served_model_name": "tiny",
        "nim_docker_distributed_executor_backend": "uni",
        "nim_docker_server_extra_args": ["--dtype", "float32", "--max-model-len", "128", "--enforce-eager"],
        "nim_docker_server_env": {"VLLM_CPU_KVCACHE_SPACE": "1"},
    }


def collections_root() -> Path:
    """An ansible_collections/nimops/multinode tree pointing at this checkout.

    Inside the checkout (build/), not in /tmp: a link shared by every checkout on the machine gets re-pointed by
    another checkout's tests in the middle of a play (seen: roles vanishing mid-run, KeyError on the role path)."""
    root = REPO / "build" / "simhosts-collections"
    link = root / "ansible_collections" / "nimops" / "multinode"
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink() or link.resolve() != REPO:
        if link.is_symlink():
            link.unlink()
        link.symlink_to(REPO)
    return root


# The collection's pure logic (e.g. the `ray status` parser) is imported by the tests under its real name.
if str(collections_root()) not in sys.path:
    sys.path.append(str(collections_root()))


@dataclass
class PlayResult:
    rc: int
    out: str
    seconds: float

    def recap(self) -> dict:
        """host -> {ok, changed, unreachable, failed} from the last PLAY RECAP."""
        tail = self.out[self.out.rfind("PLAY RECAP"):]
        rows = HOST_RECAP.findall(tail)
        assert rows, f"no play recap in output:\n{self.out[-4000:]}"
        return {h: dict(zip(("ok", "changed", "unreachable", "failed"), map(int, v))) for h, *v in rows}

    def changed(self) -> dict:
        return {h: r["changed"] for h, r in self.recap().items()}


@dataclass
class SimHosts:
    info: dict
    outsider: str | None = None  # a host of the set kept out of the replica

    @property
    def names(self) -> list[str]:
        """The replica's hosts."""
        return sorted(h for h in self.info["hosts"] if h != self.outsider)

    def ip(self, host: str) -> str:
        return self.info["hosts"][host]["ansible_host"]

    def engine(self, host: str) -> docker.DockerClient:
        """Docker SDK client on the host's own engine (Docker Engine, or podman's Docker-compatible API)."""
        return docker.DockerClient(base_url=self.info["hosts"][host]["docker_host"], timeout=120)

    def host_path(self, host: str, path: str) -> Path:
        """Where a path under /etc/nimops or /var/lib/nimops of a simulated host lives on this machine."""
        for private in ("/etc/nimops", "/var/lib/nimops"):
            if path == private or path.startswith(private + "/"):
                base = Path(self.info["hosts"][host]["state_dir"]) / "fs" / private.strip("/").replace("/", "-")
                return base / path[len(private):].lstrip("/")
        return Path(path)

    @contextlib.contextmanager
    def exclusive(self, timeout: float = 1800):
        """Hold the hosts for one deployment at a time: Ray's pinned ports and the server port are per host,
        so two clusters deployed at once by concurrent test sessions would break each other."""
        if _HELD["depth"]:
            _HELD["depth"] += 1
            try:
                yield
            finally:
                _HELD["depth"] -= 1
            return
        lock = Path(self.info["hosts"][sorted(self.info["hosts"])[0]]["state_dir"]).parent / "deployments.lock"
        with open(lock, "a") as handle:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise AssertionError(f"simulated hosts still busy after {timeout}s ({lock})")
                    time.sleep(2)
            _HELD["depth"] = 1
            try:
                yield
            finally:
                _HELD["depth"] = 0
                fcntl.flock(handle, fcntl.LOCK_UN)

    def containers(self, host: str) -> list:
        return self.engine(host).containers.list(all=True)

    def inventory(self, path: Path, group_vars: dict, replica: str = "replica1") -> Path:
        """A replica group holding every simulated host (the first is the leader), reached over SSH."""
        inv = {"nim_docker": {
            "vars": {
                "ansible_user": "root",
                "ansible_ssh_private_key_file": self.info["ssh_key"],
                # keepalives as in examples/docker/inventory.yml: a lost link fails in seconds, not after TCP's
                # ~15 min; every SSH master a test run leaves behind (ControlPersist) carries them too
                "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
                                           "-o ConnectTimeout=10 -o ServerAliveInterval=5 -o ServerAliveCountMax=3",
                "ansible_python_interpreter": "/usr/bin/python3",
                "nim_docker_replica_group": replica,
                **group_vars,
            },
            "children": {replica: {"hosts": {h: {"ansible_host": self.ip(h)} for h in self.names}}},
        }}
        path.write_text(yaml.safe_dump(inv, sort_keys=False))
        return path


def run_playbook(inventory: Path, playbook: str, *, check: bool = False, diff: bool = False,
                 verbosity: int = 0, env: dict | None = None, timeout: float = 1500,
                 limit: str | None = None) -> PlayResult:
    full_env = dict(os.environ)
    full_env.update({
        "ANSIBLE_COLLECTIONS_PATH": str(collections_root()),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "PATH": str(Path(sys.executable).parent) + os.pathsep + full_env.get("PATH", ""),
    })
    for name in ("NGC_API_KEY", "HF_TOKEN", "DOCKER_HOST"):
        full_env.pop(name, None)
    full_env.update(env or {})
    cmd = [ANSIBLE_PLAYBOOK, "-i", str(inventory), str(REPO / "playbooks" / playbook)]
    cmd += (["--check"] if check else []) + (["--diff"] if diff else []) + (["-" + "v" * verbosity] if verbosity else [])
    cmd += ["--limit", limit] if limit else []
    start = time.monotonic()
    r = subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=timeout, cwd=str(REPO), check=False)
    return PlayResult(r.returncode, r.stdout + r.stderr, time.monotonic() - start)


def model_cache_dir() -> Path:
    r = subprocess.run([str(SIMHOSTS / "make-model.sh")], capture_output=True, text=True, timeout=3600, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    return Path(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def sim_hosts() -> SimHosts:
    hosts, started = hosts_up(TEST_SET, N_HOSTS)
    hosts.outsider = OUTSIDER
    # One test session at a time deploys on the hosts (Ray's pinned ports and the server port are per host):
    # every test using this fixture is covered, whichever file it is in.
    try:
        with hosts.exclusive(timeout=3600):
            yield hosts
    finally:
        hosts_down(TEST_SET, started)


@pytest.fixture(scope="session")
def tiny_model_cache(sim_hosts: SimHosts) -> Path:
    """The host directory holding the generated tiny Llama (mounted as the model cache)."""
    return model_cache_dir()
