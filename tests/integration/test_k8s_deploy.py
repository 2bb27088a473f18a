"""deploy-nim.yml and teardown-nim.yml on the simulated cluster, each run four times:
check, real, idempotent check, idempotent real."""

from __future__ import annotations

import uuid

import pytest

from k8s_playbooks import (cleanup_namespace, example_vars, lws_named, resource_versions, run_playbook,
                           sim_overrides)


def env_of(container: dict) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env") or []}


@pytest.fixture
def namespace(sim_cluster):
    name = f"k8s-{uuid.uuid4().hex[:8]}"
    yield name
    cleanup_namespace(sim_cluster, name)


def test_deploy_405b_four_passes_then_teardown_four_passes(sim_cluster, namespace):
    sim = sim_cluster
    extravars = dict(example_vars("llama-3.1-405b-2node.yml"), **sim_overrides(sim, namespace))

    # 1. check: says what would change, changes nothing (the namespace does not even appear)
    before = resource_versions(sim, namespace)
    r = run_playbook(sim, "deploy-nim.yml", extravars, check=True, diff=True, settle=None)
    assert r.rc == 0, r.out[-4000:]
    assert r.changed >= 3, r.recap
    assert resource_versions(sim, namespace) == before == {}

    # 2. real: deploys, prints progress, holds Ready for the default settle window, ends with every group ready
    # and the endpoint
    r = run_playbook(sim, "deploy-nim.yml", extravars, settle=None)
    assert r.rc == 0, r.out[-4000:]
    assert r.changed >= 3, r.recap
    assert "lws_wait [" in r.out
    assert "1/1 groups ready, 2/2 pods ready" in r.out
    assert "1/1 groups ready, 2/2 pods ready; holding for 10s before reporting ready" in r.out
    assert f"endpoint: http://llama-405b-nim-llm.{namespace}.svc.cluster.local:8000" in r.out
    lws = lws_named(sim, namespace)
    assert {c["type"]: c["status"] for c in lws["status"]["conditions"]}["Available"] == "True"
    pods = sim.kubectl_json("get", "pods", "-n", namespace)["items"]
    assert sorted(p["metadata"]["name"] for p in pods) == ["llama-405b-nim-llm-0", "llama-405b-nim-llm-0-1"]
    assert all({c["type"]: c["status"] for c in p["status"]["conditions"]}["Ready"] == "True" for p in pods)

    # rendered LWS: group size, GPUs, env, secret refs, Ray port
    tmpl = lws["spec"]["leaderWorkerTemplate"]
    assert tmpl["size"] == 2
    for role in ("leaderTemplate", "workerTemplate"):
        spec = tmpl[role]["spec"]
        c = spec["containers"][0]
        assert c["resources"]["limits"]["nvidia.com/gpu"] in (8, "8")
        assert c["resources"]["requests"]["nvidia.com/gpu"] in (8, "8")
        env = env_of(c)
        assert env["NIM_TENSOR_PARALLEL_SIZE"] == "8" and env["NIM_PIPELINE_PARALLEL_SIZE"] == "2"
        assert env["NIM_JSONL_LOGGING"] == "0"
        assert env["NGC_API_KEY"] == {"secretKeyRef": {"name": "ngc-api", "key": "NGC_API_KEY"}}
        assert spec["imagePullSecrets"] == [{"name": "nvcr-imagepull"}]
        assert "6379" in " ".join(c.get("command", []) + c.get("args", []))
        claims = [v["persistentVolumeClaim"]["claimName"] for v in spec.get("volumes", [])
                  if "persistentVolumeClaim" in v]
        assert claims == ["nim-model-cache"]
    deployed = resource_versions(sim, namespace)

    # 3. idempotent check and 4. idempotent real run: nothing changes
    r = run_playbook(sim, "deploy-nim.yml", extravars, check=True, diff=True, settle=None)
    assert r.rc == 0 and r.changed == 0, (r.recap, r.out[-4000:])
    assert resource_versions(sim, namespace) == deployed
    r = run_playbook(sim, "deploy-nim.yml", extravars, settle=None)
    assert r.rc == 0 and r.changed == 0, (r.recap, r.out[-4000:])
    assert resource_versions(sim, namespace) == deployed

    # teardown, four passes; the model cache PVC and the secrets are kept
    down = {"nim_namespace": namespace, "nim_release": extravars["nim_release"], "nim_helm_binary": sim.helm}
    r = run_playbook(sim, "teardown-nim.yml", down, check=True, diff=True)
    assert r.rc == 0 and r.changed >= 1, (r.recap, r.out[-4000:])
    assert resource_versions(sim, namespace) == deployed
    r = run_playbook(sim, "teardown-nim.yml", down)
    assert r.rc == 0 and r.changed >= 1, (r.recap, r.out[-4000:])
    assert sim.kubectl_json("get", "leaderworkersets", "-n", namespace)["items"] == []
    kept = sim.kubectl_json("get", "pvc,secrets", "-n", namespace)["items"]
    assert {f'{i["kind"]}/{i["metadata"]["name"]}' for i in kept} >= {
        "PersistentVolumeClaim/nim-model-cache", "Secret/ngc-api", "Secret/nvcr-imagepull"}
    after_teardown = resource_versions(sim, namespace)
    r = run_playbook(sim, "teardown-nim.yml", down, check=True)
    assert r.rc == 0 and r.changed == 0, (r.recap, r.out[-4000:])
    r = run_playbook(sim, "teardown-nim.yml", down)
    assert r.rc == 0 and r.changed == 0, (r.recap, r.out[-4000:])
    assert {k: v for k, v in resource_versions(sim, namespace).items() if not k.startswith("Pod/")} == \
        {k: v for k, v in after_teardown.items() if not k.startswith("Pod/")}
