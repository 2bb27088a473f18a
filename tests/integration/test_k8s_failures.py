"""Each failure the sim can stage ends deploy-nim.yml with a failed play whose message names the cause, well
before the wait's timeout; bad input is refused before anything is created."""

from __future__ import annotations

import re
import uuid

import pytest

from conftest import wait_until
from k8s_playbooks import cleanup_namespace, example_vars, resource_versions, run_playbook, sim_overrides

FAULT = "sim.nimops.test/fault"
WAIT_TIMEOUT = 600  # what the deploy would wait at most; fatal causes must stop it far earlier


@pytest.fixture
def namespace(sim_cluster):
    name = f"fail-{uuid.uuid4().hex[:8]}"
    yield name
    cleanup_namespace(sim_cluster, name)


def deploy_vars(sim, namespace, **extra):
    v = dict(example_vars("llama-3.1-405b-2node.yml"), **sim_overrides(sim, namespace))
    v["nim_wait_timeout"] = WAIT_TIMEOUT
    v.update(extra)
    return v


def waited(message: str) -> int:
    m = re.search(r"cannot become ready after (\d+)s", message)
    assert m, message
    return int(m.group(1))


@pytest.mark.parametrize("fault,annotations,codes,text", [
    ("crashloop", {"sim.nimops.test/fault-message": "fatal: CUDA driver version is insufficient"},
     ("crash_loop",), "fatal: CUDA driver version is insufficient"),
    ("crashloop", {"sim.nimops.test/fault-message":
                   "ConnectionError: Failed to connect to GCS at address llama-405b-nim-llm-0.llama-405b-nim-llm:6379"},
     ("ray_join_failed",), "Failed to connect to GCS"),
    ("imagepull", {"sim.nimops.test/fault-message": "failed to pull image: 401 Unauthorized"},
     ("image_pull_auth",), "cannot pull its image"),
])
def test_pod_failure_fails_fast_with_named_cause(sim_cluster, namespace, fault, annotations, codes, text):
    sim = sim_cluster
    extra = {"podLabels": {FAULT: fault}, "podAnnotations": annotations}
    r = run_playbook(sim, "deploy-nim.yml", deploy_vars(sim, namespace, nim_extra_values=extra))
    assert r.rc != 0 and r.recap["failed"] == 1, r.out[-4000:]
    msg = r.failure_message()
    assert any("[%s]" % code in msg for code in codes), msg
    assert text in msg, msg
    # a crash shows 2-5 s after the pod runs; the wait names it within 15 s of that
    assert waited(msg) <= 20, msg


def test_wait_begun_after_the_first_crash_still_names_its_message(sim_cluster, namespace):
    """The crashed pod and its termination message are gone once LWS has recreated the group; the wait watches
    for the next crash instead of failing on the recreation alone, and names the message."""
    sim = sim_cluster
    message = "fatal: CUDA driver version is insufficient"
    extra = {"podLabels": {FAULT: "crashloop"}, "podAnnotations": {"sim.nimops.test/fault-message": message}}
    r = run_playbook(sim, "deploy-nim.yml", deploy_vars(sim, namespace, nim_extra_values=extra,
                                                        nim_release_wait=False))
    assert r.rc == 0, r.out[-4000:]

    def recreated():
        events = sim.kubectl_json("get", "events", "-n", namespace)["items"]
        return [e for e in events if e.get("reason") == "RecreateGroup"]

    wait_until("LWS to recreate the crashed group", recreated, timeout=90, interval=1)
    # the default settle window (10 s): the recreated pods turn Ready before they crash again
    r = run_playbook(sim, "deploy-nim.yml", deploy_vars(sim, namespace, nim_extra_values=extra), settle=None)
    assert r.rc != 0 and r.recap["failed"] == 1, r.out[-4000:]
    msg = r.failure_message()
    assert "[crash_loop]" in msg and message in msg, msg
    # the next crash comes 3-6 s after the recreated pods run; within the 30 s grace of a message-less recreation
    assert waited(msg) < 30, msg


def test_gpu_shortage_is_named(sim_cluster, namespace):
    sim = sim_cluster
    v = deploy_vars(sim, namespace, nim_gpus_per_node=16, nim_tensor_parallel_size=16)
    r = run_playbook(sim, "deploy-nim.yml", v)
    assert r.rc != 0, r.out[-4000:]
    msg = r.failure_message()
    assert "[insufficient_gpu]" in msg and "Insufficient nvidia.com/gpu" in msg, msg
    assert waited(msg) <= 30, msg


def test_never_ready_times_out_naming_the_pod(sim_cluster, namespace):
    sim = sim_cluster
    v = deploy_vars(sim, namespace, nim_wait_timeout=20, nim_extra_values={"podLabels": {FAULT: "neverready"}})
    r = run_playbook(sim, "deploy-nim.yml", v)
    assert r.rc != 0, r.out[-4000:]
    msg = r.failure_message()
    assert re.search(r"timed out after 2\ds: llama-405b-nim-llm: 0/1 groups ready", msg), msg
    assert "[not_ready] pod llama-405b-nim-llm-0 is Running but not Ready" in msg, msg
    # never reported ready while pods are not
    assert "groups ready, 2/2 pods ready; endpoint" not in r.out


def test_rwo_existing_claim_refused_before_any_change(sim_cluster, namespace):
    sim = sim_cluster
    sim.kubectl("create", "namespace", namespace)
    sim.kubectl("apply", "-f", "-", input=(
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: rwo-cache, namespace: %s}\n"
        "spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 10Gi}}}\n" % namespace))
    before = resource_versions(sim, namespace)
    v = deploy_vars(sim, namespace, nim_storage={"kind": "claim", "claim_name": "rwo-cache", "create_claim": False})
    r = run_playbook(sim, "deploy-nim.yml", v)
    assert r.rc != 0
    assert "PVC rwo-cache is ReadWriteOnce, not ReadWriteMany" in r.out, r.out[-3000:]
    after = resource_versions(sim, namespace)
    # the secrets role ran before storage and wrote its secrets; no release, no LWS
    assert not any(k.startswith(("LeaderWorkerSet/", "StatefulSet/")) for k in after)
    assert {k: v for k, v in after.items() if not k.startswith("Secret/")} == before


@pytest.mark.parametrize("key,rule", [
    ("FAKE-not-an-nvapi-key-000", "secret_prefix"),
    ("nvapi-FAKE-with-newline-000\n", "secret_whitespace"),
])
def test_bad_ngc_key_refused_before_any_change(sim_cluster, namespace, key, rule):
    sim = sim_cluster
    r = run_playbook(sim, "deploy-nim.yml", deploy_vars(sim, namespace), ngc_key=key)
    assert r.rc != 0
    assert "[%s]" % rule in r.out, r.out[-3000:]
    assert key.strip() not in r.out
    assert resource_versions(sim, namespace) == {}  # not even the namespace
