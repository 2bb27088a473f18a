"""Bare-Docker path end to end on two simulated hosts, over SSH, with real podman, real Ray and real vLLM (CPU).

The tests run in file order and share one deployment:
  check (starts nothing) -> real (Ray cluster across both hosts, vLLM serving the tiny model through the
  leader's address, secrets never exposed) -> idempotent check -> idempotent -> head killed and restored ->
  the Ray executor on CPU fails with its cause surfaced -> teardown (four passes; the model cache stays).

Layout on CPU: vLLM CPU cannot run its Ray executor (see test_ray_executor_failure_is_surfaced), so the server
runs TP=PP=1 on the leader while the Ray cluster spans both hosts.
"""

from __future__ import annotations

import json
import stat
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests

from simhosts_fixtures import RAY_STATUS, LEADER, WORKER, REPO, SimHosts, run_playbook, tiny_vllm_deployment
from simhosts_fixtures import sim_hosts, tiny_model_cache  # noqa: F401  pylint: disable=unused-import
from ansible_collections.nimops.multinode.plugins.module_utils._ray_status import parse_ray_status

FAKE_NGC_KEY = "nvapi-FAKE-" + "0" * 58 + uuid.uuid4().hex[:6]
NAME = "nimt" + uuid.uuid4().hex[:6]
METRICS = REPO / "build" / "simhosts-metrics.json"
STATE: dict = {}


@pytest.fixture(scope="module")
def deployment(sim_hosts: SimHosts, tiny_model_cache: Path, tmp_path_factory) -> dict:  # noqa: F811
    inv = sim_hosts.inventory(tmp_path_factory.mktemp("inv") / "inventory.yml",
                              tiny_vllm_deployment(sim_hosts, NAME, tiny_model_cache))
    with sim_hosts.exclusive():
        yield {"inventory": inv, "hosts": sim_hosts, "cache": tiny_model_cache}
        # Whatever happened, leave no containers of this test behind.
        run_playbook(inv, "teardown-nim-docker.yml")


def play(dep: dict, playbook: str = "deploy-nim-docker.yml", **kw):
    return run_playbook(dep["inventory"], playbook, env={"NGC_API_KEY": FAKE_NGC_KEY}, **kw)


def our_containers(hosts: SimHosts, host: str) -> list:
    return [c for c in hosts.containers(host) if c.name.startswith(NAME + "-")]


def ray_nodes(hosts: SimHosts) -> dict:
    head = hosts.engine(LEADER).containers.get(f"{NAME}-ray-head")
    r = head.exec_run(RAY_STATUS)
    assert r.exit_code == 0, r.output.decode()
    return parse_ray_status(r.output.decode())


def complete(hosts: SimHosts, prompt: str = "ray node worker") -> dict:
    r = requests.post(f"http://{hosts.ip(LEADER)}:8000/v1/completions",
                      json={"model": "tiny", "prompt": prompt, "max_tokens": 5, "temperature": 0}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def env_file(hosts: SimHosts, host: str) -> Path:
    return hosts.host_path(host, f"/etc/nimops/{NAME}.env")


def test_check_mode_starts_nothing(deployment):
    r = play(deployment, check=True, diff=True)
    assert r.rc == 0, r.out[-4000:]
    changed = r.changed()
    assert changed[LEADER] > 0 and changed[WORKER] > 0, changed
    for host in (LEADER, WORKER):
        assert our_containers(deployment["hosts"], host) == []
        assert not env_file(deployment["hosts"], host).exists()
    assert FAKE_NGC_KEY not in r.out


def test_deploy_forms_ray_cluster_and_serves(deployment):
    hosts = deployment["hosts"]
    start = time.monotonic()
    r = play(deployment, diff=True, verbosity=4)
    assert r.rc == 0, r.out[-6000:]
    assert all(n > 0 for n in r.changed().values()), r.changed()
    STATE["verbose_output"] = r.out

    nodes = ray_nodes(hosts)
    assert nodes["alive"] == 2, nodes
    assert "ray_cluster_wait" in r.out and "2/2 Ray nodes alive" in r.out

    answer = complete(hosts)
    first_completion = time.monotonic() - start
    assert answer["model"] == "tiny"
    assert answer["usage"]["completion_tokens"] == 5 and answer["choices"][0]["text"], answer

    memory = {}
    for host in (LEADER, WORKER):
        per = {c.name: c.stats(stream=False)["memory_stats"]["usage"] for c in our_containers(hosts, host)}
        memory[host] = {"containers_mib": {k: round(v / 2**20) for k, v in per.items()},
                        "total_mib": round(sum(per.values()) / 2**20)}
    METRICS.parent.mkdir(exist_ok=True)
    METRICS.write_text(json.dumps({"playbook_seconds": round(r.seconds, 1),
                                   "start_to_first_completion_seconds": round(first_completion, 1),
                                   "memory_per_host": memory}, indent=2) + "\n")
    print(f"\nbare-Docker deploy: playbook {r.seconds:.0f}s, first completion {first_completion:.0f}s "
          f"after start; memory {json.dumps(memory)}")


def test_secret_never_exposed(deployment):
    hosts = deployment["hosts"]
    # Planted: the env file holds the key, root only.
    for host in (LEADER, WORKER):
        f = env_file(hosts, host)
        st = f.stat()
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0, oct(st.st_mode)
        assert FAKE_NGC_KEY in f.read_text()
    # ... and the server process really got it (through the env file, not its arguments).
    server = hosts.engine(LEADER).containers.get(f"{NAME}-server")
    got = server.exec_run(["sh", "-c", 'tr "\\0" "\\n" < /proc/1/environ | grep -c "^NGC_API_KEY=nvapi-FAKE-"'])
    assert got.output.decode().strip() == "1", got.output
    # Not in any process's arguments (the simulated hosts share this machine's PID namespace).
    ps = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True, check=True).stdout
    assert FAKE_NGC_KEY not in ps
    # The containers' processes were among those looked at: the server and the worker's raylet.
    assert "vllm.entrypoints.openai.api_server" in ps
    assert f"--node-ip-address={hosts.ip(WORKER)}" in ps
    # Not in the containers' command, args, entrypoint or configured environment.
    for host in (LEADER, WORKER):
        for c in our_containers(hosts, host):
            cfg = c.attrs["Config"]
            shown = json.dumps([cfg.get("Cmd"), cfg.get("Entrypoint"), c.attrs.get("Args"), c.attrs.get("Path"),
                                cfg.get("Env"), cfg.get("Labels")])
            assert FAKE_NGC_KEY not in shown, c.name
    # Not in Ansible's output at -vvvv.
    out = STATE["verbose_output"]
    assert "<ESTABLISH SSH CONNECTION" in out or "ESTABLISH SSH CONNECTION" in out  # really -vvvv
    assert FAKE_NGC_KEY not in out
    assert FAKE_NGC_KEY[len("nvapi-FAKE-"):] not in out


def test_idempotent_check_then_idempotent(deployment):
    r = play(deployment, check=True, diff=True)
    assert r.rc == 0, r.out[-4000:]
    assert r.changed() == {LEADER: 0, WORKER: 0}, r.out[-6000:]
    r = play(deployment, diff=True)
    assert r.rc == 0, r.out[-4000:]
    assert r.changed() == {LEADER: 0, WORKER: 0}, r.out[-6000:]
    assert ray_nodes(deployment["hosts"])["alive"] == 2


def test_run_without_the_leader_is_refused_by_name(deployment):
    """--limit to the worker leaves the leader out of the run: refused by name, nothing changed, still running."""
    hosts = deployment["hosts"]
    before = hosts.engine(WORKER).containers.get(f"{NAME}-ray-worker").attrs["State"]["StartedAt"]
    r = play(deployment, limit=WORKER)
    assert r.rc != 0, r.out[-4000:]
    assert f"[leader_not_in_run] {LEADER}, the leader of replica1, is not among this run's hosts" in r.out, \
        r.out[-4000:]
    assert "is undefined" not in r.out, r.out[-4000:]
    assert r.changed() == {WORKER: 0}, r.out[-4000:]
    worker = hosts.engine(WORKER).containers.get(f"{NAME}-ray-worker")
    assert worker.status == "running" and worker.attrs["State"]["StartedAt"] == before
    assert ray_nodes(hosts)["alive"] == 2


def test_killed_head_is_restored(deployment):
    hosts = deployment["hosts"]
    head = hosts.engine(LEADER).containers.get(f"{NAME}-ray-head")
    started = head.attrs["State"]["StartedAt"]
    head.kill()
    r = play(deployment, diff=True)
    assert r.rc == 0, r.out[-6000:]
    head = hosts.engine(LEADER).containers.get(f"{NAME}-ray-head")
    assert head.status == "running" and head.attrs["State"]["StartedAt"] != started
    assert ray_nodes(hosts)["alive"] == 2
    worker = hosts.engine(WORKER).containers.get(f"{NAME}-ray-worker")
    assert worker.labels["nimops.head-started"] == head.attrs["State"]["StartedAt"]
    assert complete(hosts)["usage"]["completion_tokens"] == 5


def test_ray_executor_failure_is_surfaced(deployment, tmp_path):
    """Pipeline parallel over Ray across the two hosts: vLLM CPU refuses the Ray executor; the play must stop
    early with that cause (from the server's log), not time out."""
    hosts = deployment["hosts"]
    inv = deployment["inventory"]
    pp = tmp_path / "inventory.yml"
    text = inv.read_text().replace("nim_docker_distributed_executor_backend: uni",
                                   "nim_docker_distributed_executor_backend: ray\n    "
                                   "nim_docker_pipeline_parallel_size: 2")
    assert text != inv.read_text()
    pp.write_text(text)
    r = run_playbook(pp, "deploy-nim-docker.yml", env={"NGC_API_KEY": FAKE_NGC_KEY}, timeout=900)
    assert r.rc != 0
    assert f"{NAME}-server did not become healthy" in r.out, r.out[-6000:]
    assert "Cause from its log:" in r.out
    # The server joined the Ray cluster (it shares the head's PID namespace, so its driver finds the raylet);
    # what stops it is vLLM's CPU platform itself.
    assert "Cause from its log: ValueError: current platform cpu does not support ray." in r.out, r.out[-6000:]
    STATE["ray_executor_failure"] = [line for line in r.out.splitlines() if "Cause from its log" in line][-1][:600]
    print("\nRay executor on CPU:", STATE["ray_executor_failure"])
    assert ray_nodes(hosts)["alive"] == 2  # the Ray cluster itself stays healthy


def test_teardown_four_pass_keeps_model_cache(deployment):
    hosts = deployment["hosts"]
    r = run_playbook(deployment["inventory"], "teardown-nim-docker.yml", check=True, diff=True)
    assert r.rc == 0, r.out[-4000:]
    assert r.changed()[LEADER] > 0
    assert our_containers(hosts, LEADER), "check mode removed containers"
    assert env_file(hosts, LEADER).exists()
    r = run_playbook(deployment["inventory"], "teardown-nim-docker.yml", diff=True)
    assert r.rc == 0, r.out[-4000:]
    for host in (LEADER, WORKER):
        assert our_containers(hosts, host) == []
        assert not env_file(hosts, host).exists()
    assert (deployment["cache"] / "tiny-llama" / "model.safetensors").exists()
    for check in (True, False):
        r = run_playbook(deployment["inventory"], "teardown-nim-docker.yml", check=check, diff=True)
        assert r.rc == 0, r.out[-4000:]
        assert r.changed() == {LEADER: 0, WORKER: 0}, r.out[-4000:]
