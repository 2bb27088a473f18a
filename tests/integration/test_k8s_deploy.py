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
    assert f"endpoint: http://llama-405b-nim-llm-openai.{namespace}.svc.cluster.local:8000" in r.out
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


def test_teardown_deletes_only_the_secrets_no_other_release_uses(sim_cluster, namespace):
    """Two releases share the namespace's credential Secrets: each records itself on them; tearing one down with
    nim_delete_secrets keeps them for the other; tearing down the last one deletes them."""
    sim = sim_cluster
    secrets = ("ngc-api", "nvcr-imagepull")

    def release_vars(release):
        v = dict(example_vars("llama-3.1-405b-2node.yml"), **sim_overrides(sim, namespace, release))
        # one fake GPU per pod (TP=1, PP=2 over the 2 nodes): both releases fit on the shared sim
        v.update(nim_gpus_per_node=1, nim_tensor_parallel_size=1, nim_pipeline_parallel_size=2)
        return v

    def users():
        return {name: sim.kubectl_json("get", "secret", name, "-n", namespace)["metadata"]
                .get("annotations", {}).get("nimops.multinode/releases") for name in secrets}

    for release in ("rel-a", "rel-b"):
        r = run_playbook(sim, "deploy-nim.yml", release_vars(release))
        assert r.rc == 0, r.out[-4000:]
    assert users() == {name: "rel-a,rel-b" for name in secrets}
    r = run_playbook(sim, "deploy-nim.yml", release_vars("rel-a"))
    assert r.rc == 0 and r.changed == 0, (r.recap, r.out[-3000:])

    def teardown(release):
        down = {"nim_namespace": namespace, "nim_release": release, "nim_helm_binary": sim.helm,
                "nim_delete_secrets": True}
        r = run_playbook(sim, "teardown-nim.yml", down, diff=True)
        assert r.rc == 0, r.out[-4000:]
        return r

    r = teardown("rel-a")
    # the diff shows rel-a struck from each Secret, which stays
    assert r.out.count('-        "rel-a",') == len(secrets), r.out[-4000:]
    assert users() == {name: "rel-b" for name in secrets}
    teardown("rel-b")
    left = {s["metadata"]["name"] for s in sim.kubectl_json("get", "secrets", "-n", namespace)["items"]}
    assert not left & set(secrets), left


def test_teardown_of_a_release_never_deployed_changes_nothing(sim_cluster):
    """No namespace, no release: teardown has nothing to lock or remove, and says so without failing."""
    sim = sim_cluster
    namespace = f"never-{uuid.uuid4().hex[:8]}"
    down = {"nim_namespace": namespace, "nim_release": "ghost", "nim_helm_binary": sim.helm, "nim_delete_secrets": True}
    r = run_playbook(sim, "teardown-nim.yml", down)
    assert r.rc == 0 and r.changed == 0, (r.recap, r.out[-3000:])
    assert sim.kubectl("get", "namespace", namespace, check=False).returncode != 0
