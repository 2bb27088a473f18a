"""Every seed configuration (one example vars file each) deploys to Available on the simulated cluster, and the
LeaderWorkerSet the chart renders has the right group size, GPUs, env, secret refs and volumes."""

from __future__ import annotations

import uuid

import pytest

from k8s_playbooks import (FAKE_HF_TOKEN, cleanup_namespace, example_vars, lws_named, run_playbook,
                           sim_overrides)

RWX_CLAIM = """
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: nim-model-cache, namespace: %s}
spec:
  accessModes: [ReadWriteMany]
  resources: {requests: {storage: 1000Gi}}
"""

# example file -> (group size, env that must be set, env that must be absent, volume kind)
CASES = {
    "deepseek-r1-2node.yml": (2, {"NIM_TENSOR_PARALLEL_SIZE": "8", "NIM_PIPELINE_PARALLEL_SIZE": "2"}, [], "pvc"),
    "llama-3.1-405b-tp16-infiniband.yml": (
        2, {"NIM_TENSOR_PARALLEL_SIZE": "16", "NIM_PIPELINE_PARALLEL_SIZE": "1", "NCCL_IB_DISABLE": "0"}, [], "pvc"),
    "llama-3.1-405b-4node-tp8-pp4.yml": (
        4, {"NIM_TENSOR_PARALLEL_SIZE": "8", "NIM_PIPELINE_PARALLEL_SIZE": "4"}, [], "pvc"),
    "llama-3.1-405b-explicit-profile.yml": (
        2, {"NIM_MODEL_PROFILE": "vllm-fp16-tp8-pp2"}, ["NIM_TENSOR_PARALLEL_SIZE"], "pvc"),
    "model-free-hf.yml": (
        2, {"NIM_MODEL_PATH": "hf://meta-llama/Llama-3.1-405B-Instruct",
            "HF_TOKEN": {"secretKeyRef": {"name": "hf-token", "key": "HF_TOKEN"}}}, [], "pvc"),
    "nfs.yml": (2, {"NIM_TENSOR_PARALLEL_SIZE": "8"}, [], "nfs"),
    "existing-claim.yml": (2, {"NIM_TENSOR_PARALLEL_SIZE": "8"}, [], "pvc"),
    "llama-3.1-405b-planned.yml": (2, {"NIM_TENSOR_PARALLEL_SIZE": "8", "NIM_PIPELINE_PARALLEL_SIZE": "2"}, [],
                                   "pvc"),
}


@pytest.fixture
def namespace(sim_cluster):
    name = f"seed-{uuid.uuid4().hex[:8]}"
    yield name
    cleanup_namespace(sim_cluster, name)


@pytest.mark.parametrize("example", sorted(CASES))
def test_seed_configuration_deploys_to_available(sim_cluster, namespace, example):
    sim = sim_cluster
    size, env_expected, env_absent, volume = CASES[example]
    extravars = dict(example_vars(example), **sim_overrides(sim, namespace))
    if example == "existing-claim.yml":
        sim.kubectl("create", "namespace", namespace)
        sim.kubectl("apply", "-f", "-", input=RWX_CLAIM % namespace)
    hf = FAKE_HF_TOKEN if "nim_model_path" in extravars else None

    r = run_playbook(sim, "deploy-nim.yml", extravars, hf_token=hf)
    assert r.rc == 0, r.out[-5000:]
    assert f"1/1 groups ready, {size}/{size} pods ready" in r.out

    lws = lws_named(sim, namespace)
    assert {c["type"]: c["status"] for c in lws["status"]["conditions"]}["Available"] == "True"
    assert lws["status"]["readyReplicas"] == 1
    tmpl = lws["spec"]["leaderWorkerTemplate"]
    assert tmpl["size"] == size
    for role in ("leaderTemplate", "workerTemplate"):
        spec = tmpl[role]["spec"]
        c = spec["containers"][0]
        assert str(c["resources"]["limits"]["nvidia.com/gpu"]) == "8"
        env = {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env") or []}
        for key, value in env_expected.items():
            assert env.get(key) == value, (role, key, env.get(key))
        for key in env_absent:
            assert key not in env, (role, key)
        assert env["NIM_JSONL_LOGGING"] == "0"
        kinds = {k for v in spec.get("volumes", []) for k in v if k in ("persistentVolumeClaim", "nfs")}
        assert kinds == ({"nfs"} if volume == "nfs" else {"persistentVolumeClaim"}), spec.get("volumes")
    pods = sim.kubectl_json("get", "pods", "-n", namespace)["items"]
    assert len(pods) == size

    r = run_playbook(sim, "teardown-nim.yml", {"nim_namespace": namespace, "nim_release": extravars["nim_release"],
                                               "nim_helm_binary": sim.helm})
    assert r.rc == 0, r.out[-3000:]
    if example == "existing-claim.yml":
        assert sim.kubectl("get", "pvc", "nim-model-cache", "-n", namespace, check=False).returncode == 0
