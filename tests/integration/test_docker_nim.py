"""The NIM flavour of the bare-Docker path on two simulated hosts: the leader runs `nim-serve-ray --head`, the
worker `nim-serve-ray --head-address`, with NIM's multi-node variables.

NIM images cannot be had here; the image is the clearly named test stand-in built by
tests/simhosts/build-nim-standin.sh (nim-standin/nim-serve-ray keeps NIM's entrypoint contract, starts real
Ray, and serves real vLLM once every node joined; /v1/health/ready is 200 only with all nodes present).
"""

from __future__ import annotations

import subprocess
import uuid

import pytest
import requests

from simhosts_fixtures import LEADER, WORKER, SIMHOSTS, SimHosts, run_playbook
from simhosts_fixtures import sim_hosts, tiny_model_cache  # noqa: F401  pylint: disable=unused-import

FAKE_NGC_KEY = "nvapi-FAKE-" + "1" * 58 + uuid.uuid4().hex[:6]
NAME = "nimn" + uuid.uuid4().hex[:6]


@pytest.fixture(scope="module")
def nim(sim_hosts: SimHosts, tiny_model_cache, tmp_path_factory):  # noqa: F811
    r = subprocess.run([str(SIMHOSTS / "build-nim-standin.sh")], capture_output=True, text=True, timeout=1800,
                       check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    image = r.stdout.strip().splitlines()[-1]
    inv = sim_hosts.inventory(tmp_path_factory.mktemp("nim") / "inventory.yml", {
        "nim_docker_name": NAME,
        "nim_docker_engine": "nim",
        "nim_docker_image": image,
        "nim_docker_gpus_per_node": 0,
        "nim_docker_shm_size": "1g",
        "nim_docker_object_store_memory": 256 * 1024 * 1024,
        "nim_docker_model_cache_dir": str(tiny_model_cache),
        "nim_docker_model_cache_mount": "/models",
        "nim_docker_ray_wait_timeout": 300,
        "nim_docker_env": {
            "NIM_MODEL_PATH": "/models/tiny-llama",
            "NIM_SERVED_MODEL_NAME": "tiny",
            "NIM_TENSOR_PARALLEL_SIZE": "1",
            "NIM_PIPELINE_PARALLEL_SIZE": "1",
            "VLLM_CPU_KVCACHE_SPACE": "1",
            "NIM_STANDIN_VLLM_ARGS": "--dtype float32 --max-model-len 128 --enforce-eager",
        },
    })
    with sim_hosts.exclusive():
        yield {"inventory": inv, "hosts": sim_hosts}
        run_playbook(inv, "teardown-nim-docker.yml")


def test_missing_ngc_key_stops_early_with_the_cause(nim):
    r = run_playbook(nim["inventory"], "deploy-nim-docker.yml", timeout=600)
    assert r.rc != 0
    # The NIM leader exits at once without a key; the Ray wait reports why instead of waiting out its timeout.
    assert "Ray head is down" in r.out and "NGC_API_KEY is not set" in r.out, r.out[-5000:]
    assert r.seconds < 280, r.seconds


def test_nim_deploy_serves_and_is_idempotent(nim):
    hosts = nim["hosts"]
    r = run_playbook(nim["inventory"], "deploy-nim-docker.yml", env={"NGC_API_KEY": FAKE_NGC_KEY})
    assert r.rc == 0, r.out[-6000:]
    assert "2/2 Ray nodes alive" in r.out
    leader_ip = hosts.ip(LEADER)
    assert requests.get(f"http://{leader_ip}:8000/v1/health/ready", timeout=10).status_code == 200
    answer = requests.post(f"http://{leader_ip}:8000/v1/completions",
                           json={"model": "tiny", "prompt": "leader worker", "max_tokens": 4}, timeout=60).json()
    assert answer["usage"]["completion_tokens"] == 4, answer

    head = hosts.engine(LEADER).containers.get(f"{NAME}-ray-head")
    worker = hosts.engine(WORKER).containers.get(f"{NAME}-ray-worker")
    assert head.attrs["Config"]["Cmd"][-4:] == ["nim-serve-ray", "--head", "--port", "6379"]
    assert worker.attrs["Config"]["Cmd"][-3:] == ["nim-serve-ray", "--head-address", f"{leader_ip}:6379"]
    for container, host, rank, role in ((head, LEADER, "0", "1"), (worker, WORKER, "1", "0")):
        env = dict(item.split("=", 1) for item in container.attrs["Config"]["Env"])
        assert {k: env.get(k) for k in ("NIM_MULTI_NODE", "NIM_NUM_COMPUTE_NODES", "NIM_NODE_RANK", "NIM_LEADER_ROLE",
                                        "NIM_JSONL_LOGGING", "NIM_CACHE_PATH", "VLLM_HOST_IP", "NCCL_SOCKET_IFNAME",
                                        "GLOO_SOCKET_IFNAME")} == {
            "NIM_MULTI_NODE": "1", "NIM_NUM_COMPUTE_NODES": "2", "NIM_NODE_RANK": rank, "NIM_LEADER_ROLE": role,
            "NIM_JSONL_LOGGING": "0", "NIM_CACHE_PATH": "/models", "VLLM_HOST_IP": hosts.ip(host),
            "NCCL_SOCKET_IFNAME": "eth0", "GLOO_SOCKET_IFNAME": "eth0"}
        assert "NGC_API_KEY" not in env and FAKE_NGC_KEY not in str(container.attrs["Config"])
        assert container.attrs["HostConfig"]["NetworkMode"] == "host"
        assert container.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert FAKE_NGC_KEY not in r.out

    r = run_playbook(nim["inventory"], "deploy-nim-docker.yml", env={"NGC_API_KEY": FAKE_NGC_KEY}, diff=True)
    assert r.rc == 0, r.out[-4000:]
    assert r.changed() == {LEADER: 0, WORKER: 0}, r.out[-6000:]


def test_nim_teardown(nim):
    hosts = nim["hosts"]
    r = run_playbook(nim["inventory"], "teardown-nim-docker.yml", diff=True)
    assert r.rc == 0, r.out[-4000:]
    for host in (LEADER, WORKER):
        assert [c.name for c in hosts.containers(host) if c.name.startswith(NAME + "-")] == []
        assert not hosts.host_path(host, f"/etc/nimops/{NAME}.env").exists()
