"""Fault matrix, bare hosts (two simulated hosts over SSH, real podman, Ray and vLLM CPU): each fault ends with
a re-run that converges (every Ray node alive, the server answering through the leader's address, changed=0 on
the run after) and nothing lost (the model cache's files are byte-for-byte the same).

- the Ray head container is killed under a serving cluster;
- the worker host becomes unreachable in the middle of a rollout (its link goes down once the rollout has
  started changing containers): the play stops naming that host, and converges once it is back.
"""

from __future__ import annotations

import hashlib
import subprocess
import threading
import time
import uuid
from pathlib import Path

import docker
import pytest
import requests

from simhosts_fixtures import RAY_STATUS, LEADER, WORKER, SimHosts, run_playbook, tiny_vllm_deployment, sim_hosts, tiny_model_cache  # noqa: F401  # pylint: disable=unused-import
from ansible_collections.nimops.multinode.plugins.module_utils._ray_status import parse_ray_status

FAKE_NGC_KEY = "nvapi-FAKE-faults-" + uuid.uuid4().hex
NAME = "nimf" + uuid.uuid4().hex[:6]


def digest(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def deployment(sim_hosts: SimHosts, tiny_model_cache: Path, tmp_path_factory):  # noqa: F811
    base = {
        # SSH keepalives, as examples/docker/inventory.yml recommends: a host that loses its link mid-task is seen
        # as unreachable within seconds instead of after the kernel's TCP retransmission timeout (~15 min).
        "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
                                   "-o ConnectTimeout=10 -o ServerAliveInterval=5 -o ServerAliveCountMax=3",
        **tiny_vllm_deployment(sim_hosts, NAME, tiny_model_cache),
    }
    d = tmp_path_factory.mktemp("faults")
    inv = sim_hosts.inventory(d / "inventory.yml", base)
    with sim_hosts.exclusive():
        dep = {"inventory": inv, "hosts": sim_hosts, "cache": tiny_model_cache, "base": base, "dir": d,
               "cache_digest": digest(tiny_model_cache)}
        try:
            r = play(dep)
            assert r.rc == 0, r.out[-6000:]
            yield dep
        finally:
            # whatever happened (a failed first deploy too), leave no container of ours on the shared hosts
            link(WORKER, "up")
            run_playbook(inv, "teardown-nim-docker.yml")
            for host in sim_hosts.names:
                for c in sim_hosts.containers(host):
                    if c.name.startswith(NAME + "-"):
                        c.remove(force=True)


def play(dep: dict, inventory: Path | None = None, **kw):
    # SSH masters of this file's own (with its keepalives): an earlier test's master to the same host, still
    # persisting and reused, would carry no keepalive and hang on the cut link for TCP's ~15 min
    env = {"NGC_API_KEY": FAKE_NGC_KEY, "ANSIBLE_SSH_CONTROL_PATH_DIR": str(dep["dir"] / "ssh-cp")}
    return run_playbook(inventory or dep["inventory"], "deploy-nim-docker.yml", env=env, **kw)


def link(host: str, state: str) -> None:
    subprocess.run(["ip", "-n", host, "link", "set", "eth0", state], check=True, capture_output=True)


def ray_alive(hosts: SimHosts) -> int:
    head = hosts.engine(LEADER).containers.get(f"{NAME}-ray-head")
    r = head.exec_run(RAY_STATUS)
    assert r.exit_code == 0, r.output.decode()[-2000:]
    return parse_ray_status(r.output.decode())["alive"]


def serves(hosts: SimHosts) -> bool:
    r = requests.post(f"http://{hosts.ip(LEADER)}:8000/v1/completions",
                      json={"model": "tiny", "prompt": "fault matrix", "max_tokens": 3, "temperature": 0}, timeout=60)
    return r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 3


def assert_converged(dep: dict, inventory: Path | None = None) -> None:
    hosts = dep["hosts"]
    r = play(dep, inventory)
    print("\n".join(line for line in r.out.splitlines() if line.startswith("ray_cluster_wait [")))
    assert r.rc == 0, r.out[-6000:]
    r = play(dep, inventory)
    assert r.rc == 0 and r.changed() == {LEADER: 0, WORKER: 0}, (r.changed(), r.out[-4000:])
    assert ray_alive(hosts) == 2
    assert serves(hosts)
    assert digest(dep["cache"]) == dep["cache_digest"], "the model cache changed"


def test_ray_head_killed(deployment):
    hosts = deployment["hosts"]
    head = hosts.engine(LEADER).containers.get(f"{NAME}-ray-head")
    before = head.attrs["State"]["StartedAt"]
    head.kill()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and hosts.engine(LEADER).containers.get(f"{NAME}-ray-head").status == "running" \
            and hosts.engine(LEADER).containers.get(f"{NAME}-ray-head").attrs["State"]["StartedAt"] == before:
        time.sleep(0.5)
    assert_converged(deployment)
    head = hosts.engine(LEADER).containers.get(f"{NAME}-ray-head")
    assert head.attrs["State"]["StartedAt"] != before


def test_host_unreachable_mid_rollout(deployment):
    hosts = deployment["hosts"]
    # a rollout: new worker/head environment, so every Ray container is recreated
    text = deployment["inventory"].read_text()
    rollout = deployment["dir"] / "rollout.yml"
    rollout.write_text(text.replace("nim_docker_server_env:", "nim_docker_env:\n      FAULT_ROLLOUT: '2'\n"
                                    "    nim_docker_server_env:", 1))
    assert rollout.read_text() != text
    head_id = hosts.engine(LEADER).containers.get(f"{NAME}-ray-head").id
    cut = {}

    def cut_when_rolling():
        # The head is the first container the rollout changes (stopped, removed, recreated); the worker's link
        # goes down at the first sign of that, so it is lost before the play reaches the worker's container.
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                c = hosts.engine(LEADER).containers.get(f"{NAME}-ray-head")
                rolling = c.id != head_id or c.status != "running"
            except docker.errors.NotFound:
                rolling = True  # between removal and creation
            except Exception:  # pylint: disable=broad-except
                rolling = False  # the engine busy; ask again
            if rolling:
                link(WORKER, "down")
                cut["at"] = time.monotonic()
                return
            time.sleep(0.2)

    watcher = threading.Thread(target=cut_when_rolling, daemon=True)
    watcher.start()
    try:
        r = play(deployment, rollout, timeout=900)
    except subprocess.TimeoutExpired as e:
        out = e.output.decode(errors="replace") if isinstance(e.output, bytes) else (e.output or "")
        pytest.fail(f"the rollout was still running after {e.timeout}s with the worker unreachable "
                    f"(link cut: {'at' in cut}); output tail:\n{out[-4000:]}")
    finally:
        watcher.join(timeout=5)
        link(WORKER, "up")
    ended = time.monotonic()
    assert "at" in cut, f"the rollout never started changing the head container:\n{r.out[-4000:]}"
    assert r.rc != 0, r.out[-6000:]
    recap = r.recap()
    assert recap[WORKER]["unreachable"] + recap[WORKER]["failed"] >= 1, (recap, r.out[-4000:])
    # the play names the lost worker: Ansible's own line for it, then the leader stops on it instead of waiting
    assert f"fatal: [{WORKER}]: UNREACHABLE!" in r.out, r.out[-6000:]
    assert f"{WORKER} of replica replica1 dropped out of this run" in r.out, r.out[-6000:]
    stopped_after = ended - cut["at"]
    print(f"rollout failed {stopped_after:.1f}s after the link was cut (play {r.seconds:.1f}s)")
    assert stopped_after < 120, f"the play took {stopped_after:.0f}s to stop after the worker's link went down"
    assert_converged(deployment, rollout)
