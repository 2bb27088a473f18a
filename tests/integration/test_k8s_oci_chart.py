"""An oci:// chart behind registry credentials: helm logs in with the password on stdin, into a registry config of
the run's own that is gone afterwards; the password is in no argv, no output, no file left behind. A registry
password over plain HTTP is refused unless allowed, before anything changes."""

from __future__ import annotations

import base64
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from conftest import files_holding
from k8s_playbooks import (CmdlineScanner, cleanup_namespace, example_vars, resource_versions, run_playbook,
                           sim_overrides)


@pytest.fixture
def namespace(sim_cluster):
    name = f"oci-{uuid.uuid4().hex[:8]}"
    yield name
    cleanup_namespace(sim_cluster, name)


def push_test_chart(sim, registry, home: Path) -> None:
    env = sim.helm_env(home)
    chart = next((sim.state_dir / "helm-repo").glob("nim-llm-*.tgz"))
    for args, stdin in ((["registry", "login", registry.host, "--username", registry.username, "--password-stdin",
                          "--plain-http"], registry.password),
                        (["push", str(chart), f"oci://{registry.host}/charts", "--plain-http"], None)):
        r = subprocess.run([sim.helm, *args], input=stdin, env=env, capture_output=True, text=True, timeout=120,
                           check=False)
        assert r.returncode == 0, r.stdout + r.stderr


def oci_vars(sim, namespace, registry, **chart) -> dict:
    v = dict(example_vars("llama-3.1-405b-2node.yml"), **sim_overrides(sim, namespace))
    # one fake GPU per pod (TP=1, PP=2 over the 2 nodes): fits beside other tests' releases
    v.update(nim_gpus_per_node=1, nim_tensor_parallel_size=1, nim_pipeline_parallel_size=2)
    v["nim_chart"] = dict({"source": "oci", "ref": f"oci://{registry.host}/charts/nim-llm", "version": "2.0.0-sim",
                           "username": registry.username, "password": registry.password, "plain_http": True,
                           "allow_http_credentials": True}, **chart)
    return v


def leftovers(needles, own: Path) -> list[str]:
    """Files under the temp dir and the helm config home that hold a needle (a login left behind)."""
    return files_holding(needles, [Path(tempfile.gettempdir()), Path.home() / ".config" / "helm"], own)


def test_oci_chart_with_registry_credentials(sim_cluster, oci_registry, namespace, tmp_path):
    sim, reg = sim_cluster, oci_registry
    push_test_chart(sim, reg, tmp_path / "pusher")
    (tmp_path / "pusher").joinpath("config", "registry", "config.json").unlink()  # the pusher's own login
    served_before = len(reg.requests())
    needles = [reg.password, base64.b64encode(f"{reg.username}:{reg.password}".encode()).decode()]

    with CmdlineScanner(needles) as scan:
        r = run_playbook(sim, "deploy-nim.yml", oci_vars(sim, namespace, reg), verbosity=4)
    assert r.rc == 0, r.out[-4000:]
    assert "1/1 groups ready, 2/2 pods ready" in r.out
    assert scan.samples > 5 and scan.hits == []
    assert not any(n in r.out for n in needles)
    # the chart came from the registry, every request served carried the credentials
    served = reg.requests()[served_before:]
    pulls = [line for line in served if "/v2/charts/nim-llm/" in line and "status=200" in line]
    assert pulls, served
    assert all("credentials=true" in line for line in served if "status=200" in line), served
    # the run's registry login is gone: no file under the temp dir or helm's config holds the password
    assert leftovers(needles, tmp_path) == []
    assert list(Path(tempfile.gettempdir()).glob("ansible.*.nimops-registry")) == []

    # a re-run with the same chart version and values changes nothing; the chart is pulled again (validation reads
    # it, the registry decides what the version is), with the credentials again, and its login is gone again
    served_before = len(reg.requests())
    r = run_playbook(sim, "deploy-nim.yml", oci_vars(sim, namespace, reg))
    assert r.rc == 0 and r.changed == 0, (r.recap, r.out[-3000:])
    assert "already deployed with these values" in r.out
    served = reg.requests()[served_before:]
    assert [line for line in served if "/v2/charts/nim-llm/" in line and "status=200" in line], served
    assert all("credentials=true" in line for line in served if "status=200" in line), served
    assert list(Path(tempfile.gettempdir()).glob("ansible.*.nimops-registry")) == []


def test_oci_registry_password_over_http_refused_unless_allowed(sim_cluster, oci_registry, namespace):
    sim, reg = sim_cluster, oci_registry
    r = run_playbook(sim, "deploy-nim.yml", oci_vars(sim, namespace, reg, allow_http_credentials=False))
    assert r.rc != 0, r.out[-3000:]
    msg = r.failure_message()
    assert "[chart_repo_insecure_credentials] The OCI registry %s is plain HTTP" % reg.host in msg, r.out[-3000:]
    assert reg.requests() == []
    assert resource_versions(sim, namespace) == {}


def test_oci_chart_with_a_wrong_password_names_the_refusal(sim_cluster, oci_registry, namespace, tmp_path):
    sim, reg = sim_cluster, oci_registry
    push_test_chart(sim, reg, tmp_path / "pusher")
    wrong = "FAKEwrongpass" + uuid.uuid4().hex[:8]
    r = run_playbook(sim, "deploy-nim.yml", oci_vars(sim, namespace, reg, password=wrong), verbosity=2)
    assert r.rc != 0, r.out[-3000:]
    msg = r.failure_message()
    assert "Log in to the chart's OCI registry" in msg and "401" in msg, msg
    assert wrong not in r.out
    assert sim.kubectl_json("get", "leaderworkersets", "-n", namespace)["items"] == []
