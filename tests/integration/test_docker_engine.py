"""The bare-host path on Docker Engine (Debian's docker.io, dockerd with its own containerd per simulated host)
rather than Podman's Docker-compatible service, which every other bare-host suite uses.

The tests run in file order and share one replica of two hosts (set 8, its own bridge): GPUs refused without the
NVIDIA Container Toolkit, before anything starts -> deploy (Ray across both hosts, vLLM CPU serving the tiny model
on the leader, the API key required, no secret in `docker inspect`) -> check mode and a re-run change nothing ->
an image from a private registry (a stand-in with basic auth on the leader's loopback) pulled with its login only,
which no file keeps -> teardown leaves no container, and a second teardown changes nothing.
"""

from __future__ import annotations

import base64
import io
import json
import tarfile
import tempfile
import uuid
from pathlib import Path

import pytest
import requests

from simhosts_fixtures import (H100, NVIDIA_SMI_STAND_IN, RAY_STATUS, SimHosts, hosts_down, hosts_up, model_cache_dir,
                               run_playbook, stand_in_nvidia_smi)
from simhosts_fixtures import tiny_vllm_deployment
from conftest import files_holding, running_oci_registry
from k8s_playbooks import CmdlineScanner
from ansible_collections.nimops.multinode.plugins.module_utils._ray_status import parse_ray_status

SET = "8"
LEADER, WORKER = f"simhost{SET}x1", f"simhost{SET}x2"
NAME = "nimde" + uuid.uuid4().hex[:6]
FAKE_NGC_KEY = "nvapi-FAKE-" + "8" * 58 + uuid.uuid4().hex[:6]
FAKE_API_KEY = "FAKE-api-key-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> dict:
    hosts, started = hosts_up(SET, 2, engine="docker")
    try:
        assert hosts.info["engine"] == "docker"
        d = tmp_path_factory.mktemp("inv")
        group_vars = {**tiny_vllm_deployment(hosts, NAME, model_cache_dir()), "nim_docker_api_key": FAKE_API_KEY}
        inv = hosts.inventory(d / "inventory.yml", group_vars)
        gpus = hosts.inventory(d / "gpus.yml", dict(group_vars, nim_docker_gpus_per_node=1,
                                                    nim_docker_nvidia_smi=NVIDIA_SMI_STAND_IN))
        with hosts.exclusive():
            yield {"inventory": inv, "gpus": gpus, "hosts": hosts}
            run_playbook(inv, "teardown-nim-docker.yml")
            for host in (LEADER, WORKER):
                hosts.host_path(host, NVIDIA_SMI_STAND_IN).unlink(missing_ok=True)
    finally:
        hosts_down(SET, started)


def play(dep: dict, playbook: str = "deploy-nim-docker.yml", **kw):
    return run_playbook(dep["inventory"], playbook, env={"NGC_API_KEY": FAKE_NGC_KEY}, **kw)


def ours(hosts: SimHosts, host: str) -> list:
    return [c for c in hosts.containers(host) if c.name.startswith(NAME + "-")]


def test_the_hosts_run_docker_engine(deployment):
    for host in (LEADER, WORKER):
        version = deployment["hosts"].engine(host).version()
        assert version["Components"][0]["Name"] == "Engine" and version["Version"].startswith("20.10."), version
        assert "podman" not in json.dumps(version).lower(), version


def test_gpus_without_the_nvidia_toolkit_are_refused_before_anything_starts(deployment):
    """Docker Engine names its GPU driver only with the NVIDIA Container Toolkit's hook, which these hosts lack (their
    nvidia-smi is a stand-in that lists one GPU each, so the GPU count passes)."""
    stand_in_nvidia_smi(deployment["hosts"], {LEADER: [H100], WORKER: [H100]})
    r = run_playbook(deployment["gpus"], "deploy-nim-docker.yml", env={"NGC_API_KEY": FAKE_NGC_KEY})
    assert r.rc != 0, r.out[-4000:]
    assert f"[gpu_attachment] {LEADER} runs docker 20.10." in r.out, r.out[-4000:]
    assert "nvidia-container-runtime-hook (the NVIDIA Container Toolkit) is not in the PATH" in r.out, r.out[-4000:]
    assert r.recap()[LEADER]["failed"] == 1 and r.recap()[WORKER]["failed"] == 1, r.recap()
    assert ours(deployment["hosts"], LEADER) == [] and ours(deployment["hosts"], WORKER) == []


def test_deploy_forms_ray_and_serves_with_the_api_key(deployment):
    hosts = deployment["hosts"]
    r = play(deployment, diff=True)
    assert r.rc == 0, r.out[-6000:]
    assert all(n > 0 for n in r.changed().values()), r.changed()
    head = hosts.engine(LEADER).containers.get(f"{NAME}-ray-head")
    status = head.exec_run(RAY_STATUS)
    assert status.exit_code == 0, status.output.decode()
    assert parse_ray_status(status.output.decode())["alive"] == 2
    url = f"http://{hosts.ip(LEADER)}:8000/v1/models"
    assert requests.get(url, timeout=30).status_code == 401
    answer = requests.get(url, headers={"Authorization": f"Bearer {FAKE_API_KEY}"}, timeout=30)
    assert answer.status_code == 200 and answer.json()["data"][0]["id"] == "tiny", answer.text


def test_no_secret_in_docker_inspect(deployment):
    hosts = deployment["hosts"]
    seen = 0
    for host in (LEADER, WORKER):
        for c in ours(hosts, host):
            shown = json.dumps(hosts.engine(host).api.inspect_container(c.id))
            assert FAKE_NGC_KEY not in shown and FAKE_API_KEY not in shown, c.name
            assert c.status == "running", c.name
            seen += 1
    assert seen == 3  # head and server on the leader, the worker


def test_check_mode_and_rerun_change_nothing(deployment):
    for check in (True, False):
        r = play(deployment, check=check, diff=True)
        assert r.rc == 0, r.out[-6000:]
        assert r.changed() == {LEADER: 0, WORKER: 0}, r.out[-6000:]


PULL_PLAY = """
- name: Pull the replica's image with the registry login (docker_ray_cluster's pull step)
  hosts: {host}
  gather_facts: false
  tasks:
    - name: Pull
      ansible.builtin.include_role:
        name: nimops.multinode.docker_ray_cluster
        tasks_from: pull.yml
"""


def tiny_image_tar() -> bytes:
    """A one-file root filesystem: an image small enough to push and pull in a second."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"nimops registry login test\n"
        info = tarfile.TarInfo("etc/nimops-test")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_image_from_a_private_registry_is_pulled_with_its_login_only(deployment, tmp_path):
    """The registry login (nvcr.io's `$oauthtoken` + NGC key, here a stand-in registry with basic auth on the
    leader's loopback) goes through the engine's API, is used for that registry's image only, and is not left on
    the host; check mode pulls nothing; a re-run finds the image and logs in to nothing."""
    hosts = deployment["hosts"]
    engine = hosts.engine(LEADER)
    with running_oci_registry(tmp_path, netns=LEADER) as reg:
        image = f"{reg.host}/nim/registry-login-test"
        engine.api.import_image_from_data(tiny_image_tar(), repository=image, tag="1")
        pushed = engine.images.push(image, tag="1", auth_config={"username": reg.username, "password": reg.password})
        assert '"error"' not in pushed, pushed
        engine.images.remove(f"{image}:1")
        playbook = tmp_path / "pull.yml"
        playbook.write_text(PULL_PLAY.format(host=LEADER))
        inventory = hosts.inventory(tmp_path / "inventory.yml", {
            "docker_ray_cluster_image": f"{image}:1", "docker_ray_cluster_registry": f"http://{reg.host}/",
            "docker_ray_cluster_registry_username": reg.username, "docker_ray_cluster_registry_password": reg.password})
        needles = [reg.password, base64.b64encode(f"{reg.username}:{reg.password}".encode()).decode()]

        def pulled() -> bool:
            return any(f"{image}:1" in i.tags for i in engine.images.list())

        served = len(reg.requests())
        r = run_playbook(inventory, str(playbook), check=True)
        assert r.rc == 0 and r.changed()[LEADER] == 1, r.out[-4000:]
        assert not pulled() and len(reg.requests()) == served, reg.requests()[served:]

        with CmdlineScanner(needles) as scan:
            r = run_playbook(inventory, str(playbook), verbosity=4)
        assert r.rc == 0, r.out[-6000:]
        assert pulled()
        assert scan.samples > 5 and scan.hits == []
        assert not any(n in r.out for n in needles)
        after = reg.requests()[served:]
        assert any("/v2/nim/registry-login-test/manifests/1" in line and "status=200" in line for line in after), after
        assert all("credentials=true" in line for line in after if "status=200" in line), after
        # the login lived in a root-only temporary directory that is gone; nothing else under /tmp or in ~/.docker
        # holds it
        assert list(Path(tempfile.gettempdir()).glob("ansible.*.nimops-registry")) == []
        assert files_holding(needles, [Path(tempfile.gettempdir()), Path.home() / ".docker"], tmp_path) == []

        served = len(reg.requests())
        r = run_playbook(inventory, str(playbook))
        assert r.rc == 0 and r.changed() == {LEADER: 0}, r.out[-4000:]
        assert len(reg.requests()) == served, reg.requests()[served:]

        # a wrong password: the registry's refusal, named, and still no password in the output
        engine.images.remove(f"{image}:1")
        wrong = hosts.inventory(tmp_path / "wrong.yml", {
            "docker_ray_cluster_image": f"{image}:1", "docker_ray_cluster_registry": reg.host,
            "docker_ray_cluster_registry_username": reg.username,
            "docker_ray_cluster_registry_password": "FAKE-wrong-" + reg.password})
        r = run_playbook(wrong, str(playbook), verbosity=4)
        assert r.rc != 0 and not pulled(), r.out[-4000:]
        assert f"[registry_login] {LEADER}: the engine could not log in to {reg.host} as {reg.username}" in r.out
        assert "401 Unauthorized" in r.out and "Fix: check the credential" in r.out, r.out[-4000:]
        assert not any(n in r.out for n in needles + ["FAKE-wrong-"]), r.out[-4000:]
        assert list(Path(tempfile.gettempdir()).glob("ansible.*.nimops-registry")) == []


def test_teardown_removes_everything_and_is_idempotent(deployment):
    hosts = deployment["hosts"]
    r = run_playbook(deployment["inventory"], "teardown-nim-docker.yml")
    assert r.rc == 0, r.out[-6000:]
    assert ours(hosts, LEADER) == [] and ours(hosts, WORKER) == []
    r = run_playbook(deployment["inventory"], "teardown-nim-docker.yml")
    assert r.rc == 0 and r.changed() == {LEADER: 0, WORKER: 0}, r.out[-6000:]
    assert Path(model_cache_dir()).is_dir()
