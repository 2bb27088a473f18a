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


# The two shortages below are what the deploy's preflight refuses first (test_k8s_preflight); with it off, the
# wait itself must still name them when the cluster changes after the check.
def test_gpu_shortage_is_named(sim_cluster, namespace):
    sim = sim_cluster
    v = deploy_vars(sim, namespace, nim_gpus_per_node=16, nim_tensor_parallel_size=16, nim_preflight=False)
    r = run_playbook(sim, "deploy-nim.yml", v)
    assert r.rc != 0, r.out[-4000:]
    msg = r.failure_message()
    assert "[insufficient_gpu]" in msg and "Insufficient nvidia.com/gpu" in msg, msg
    assert waited(msg) <= 30, msg


def test_cpu_and_memory_shortage_is_named_by_what_blocks_not_by_gpus(sim_cluster, namespace):
    """Every node has the GPUs free, none the CPU and memory a pod asks for: the real scheduler's reasons decide."""
    sim = sim_cluster
    v = deploy_vars(sim, namespace, nim_extra_values={"resources": {"requests": {"cpu": "4000", "memory": "64Ti"}}},
                    nim_preflight=False)
    r = run_playbook(sim, "deploy-nim.yml", v)
    assert r.rc != 0, r.out[-4000:]
    msg = r.failure_message()
    assert "[insufficient_resources]" in msg, msg
    assert re.search(r"no node has enough free cpu and memory \((\d)/\1 nodes lack cpu, \1/\1 nodes lack memory\)", msg) \
        or re.search(r"no node has enough free cpu and memory \((\d)/\1 nodes lack memory, \1/\1 nodes lack cpu\)", msg), msg
    assert "insufficient_gpu" not in msg and "lack nvidia.com/gpu" not in msg, msg
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


def test_service_holding_the_lws_name_is_never_ready(sim_cluster, namespace):
    """A Service that is not headless holds the LeaderWorkerSet's name (made beforehand here; a chart that names its
    client Service like its LWS does the same): the LWS controller then creates no headless Service, so the workers
    could never resolve the leader. The pods on this bed turn Ready all the same; the wait names the clash."""
    sim = sim_cluster
    sim.kubectl("create", "namespace", namespace)
    sim.kubectl("-n", namespace, "create", "service", "clusterip", "llama-405b-nim-llm", "--tcp=8000:8000")
    r = run_playbook(sim, "deploy-nim.yml", deploy_vars(sim, namespace))
    assert r.rc != 0 and r.recap["failed"] == 1, r.out[-4000:]
    msg = r.failure_message()
    assert "[headless_service_conflict] Service %s/llama-405b-nim-llm (type ClusterIP) has the LeaderWorkerSet's " \
           "name" % namespace in msg, msg
    assert "groups ready, 2/2 pods ready; endpoint" not in r.out
    assert waited(msg) <= 30, msg
    # the real LWS controller did leave its headless Service out
    services = sim.kubectl_json("get", "services", "-n", namespace)["items"]
    assert [(s["metadata"]["name"], s["spec"]["clusterIP"] == "None") for s in services] == [
        ("llama-405b-nim-llm", False), ("llama-405b-nim-llm-openai", False)], services


def test_group_shrunk_behind_the_collections_back_is_not_ready(sim_cluster, namespace):
    """Someone edits the live LeaderWorkerSet to groups of one pod: its pods turn Ready, but a one-pod group cannot
    hold the planned two nodes, so the next run's wait fails naming the size instead of reporting it ready.
    First, without a clash, the LWS controller's headless Service exists under the LeaderWorkerSet's name and
    selects the group's pods: the DNS name in LWS_LEADER_ADDRESS has a record to resolve to."""
    sim = sim_cluster
    v = deploy_vars(sim, namespace)
    r = run_playbook(sim, "deploy-nim.yml", v)
    assert r.rc == 0, r.out[-4000:]
    headless = sim.kubectl_json("get", "service", "llama-405b-nim-llm", "-n", namespace)
    assert headless["spec"]["clusterIP"] == "None", headless
    assert headless["spec"]["selector"] == {"leaderworkerset.sigs.k8s.io/name": "llama-405b-nim-llm"}, headless
    leader = sim.kubectl_json("get", "pod", "llama-405b-nim-llm-0", "-n", namespace)
    env = {e["name"]: e.get("value") for c in leader["spec"]["containers"] for e in c.get("env") or []}
    assert env.get("LWS_LEADER_ADDRESS", "").startswith("llama-405b-nim-llm-0.llama-405b-nim-llm."), env

    sim.kubectl("patch", "leaderworkerset", "llama-405b-nim-llm", "-n", namespace, "--type", "merge", "-p",
                '{"spec": {"leaderWorkerTemplate": {"size": 1}}}')
    wait_until("LWS to bring up groups of one pod", lambda: [
        p["metadata"]["name"] for p in sim.kubectl_json("get", "pods", "-n", namespace)["items"]
        if p["status"].get("phase") == "Running"] == ["llama-405b-nim-llm-0"], timeout=120, interval=1)
    r = run_playbook(sim, "deploy-nim.yml", v)
    assert r.rc != 0, r.out[-4000:]
    msg = r.failure_message()
    assert "[group_size_mismatch] LeaderWorkerSet llama-405b-nim-llm has groups of 1 pod(s) but the plan needs 2 " \
           "nodes per group" in msg, msg
    assert "groups ready, 1/1 pods ready; endpoint" not in r.out
    assert "1/1 groups with all pods Ready but not serving (group_size_mismatch), 1/1 pods ready" in r.out


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
