"""Bad-input table: invalid or dangerous configurations of deploy-nim.yml, each refused before anything changes,
with a message naming the problem and the fix.

Every case runs the real playbook against the sim cluster. Two kinds of "nothing changed" are asserted:
- fresh cases target a namespace that does not exist: after the refusal it still does not exist, and no Helm
  release, LeaderWorkerSet, Secret or PVC of the case exists anywhere in the cluster;
- live cases target a namespace holding a healthy release deployed by the module fixture: after the refusal every
  object's resourceVersion and the Helm revision are what they were.
"""

from __future__ import annotations

import json
import re
import uuid

import pytest

from k8s_playbooks import cleanup_namespace, example_vars, resource_versions, run_playbook, sim_overrides

GOOD_NGC = None  # the sim's repository password (a fake nvapi- key) unless a case sets its own
FAKE_HF = "hf_FAKEbadinputtoken0000000000000000000"


def drop(*keys):
    return {k: "__drop__" for k in keys}


# id, vars override (value "__drop__" removes the key), env (ngc, hf), [problem regex], [fix regex]
CASES = [
    # --- the seed's multi-node rules
    ("one-node", {"nim_nodes": 1, "nim_pipeline_parallel_size": 1}, {},
     [r"multinode_nodes|at least 2 nodes|nodes.*1"], [r"Fix:|set nodes|use"]),
    ("tp-pp-and-profile", {"nim_profile": "vllm-fp16-tp8-pp2"}, {},
     [r"parallelism_choice"], [r"Fix:"]),
    ("neither-tp-pp-nor-profile", drop("nim_tensor_parallel_size", "nim_pipeline_parallel_size"), {},
     [r"parallelism_choice"], [r"Fix:"]),
    ("tp-times-pp-not-gpus", {"nim_pipeline_parallel_size": 4}, {},
     [r"gpu_count"], [r"Fix:"]),
    ("tp-not-dividing-gpus", {"nim_tensor_parallel_size": 3, "nim_pipeline_parallel_size": 2}, {},
     [r"gpu_count|tp_layout"], [r"Fix:"]),
    ("cross-node-tp-on-ethernet", {"nim_tensor_parallel_size": 16, "nim_pipeline_parallel_size": 1}, {},
     [r"multinode_tp_interconnect"], [r"Fix:"]),
    ("unknown-interconnect", {"nim_interconnect": "token-ring"}, {},
     [r"interconnect"], [r"Fix:|one of|choices"]),
    ("json-logging-on", {"nim_extra_values": {"model": {"jsonLogging": True}}}, {},
     [r"json_logging"], [r"Fix:"]),
    ("multinode-off-in-extra", {"nim_extra_values": {"multiNode": {"enabled": False}}}, {},
     [r"multinode_enabled"], [r"Fix:"]),
    ("workers-mismatch-in-extra", {"nim_extra_values": {"multiNode": {"workers": 3}}}, {},
     [r"\[workers\]"], [r"Fix:"]),
    ("tp-contradicted-in-extra", {"nim_extra_values": {"multiNode": {"tensorParallelSize": 4}}}, {},
     [r"extra_values_conflict"], [r"Fix:"]),
    ("gpu-limit-not-gpus-per-node", {"nim_extra_values": {"resources": {"limits": {"nvidia.com/gpu": 4}}}}, {},
     [r"gpu_resources"], [r"Fix:"]),
    ("gpu-request-not-limit", {"nim_extra_values": {"resources": {"requests": {"nvidia.com/gpu": 2}}}}, {},
     [r"gpu_resources"], [r"Fix:"]),
    ("ray-port-out-of-range", {"nim_extra_values": {"multiNode": {"ray": {"port": 70000}}}}, {},
     [r"ray_port"], [r"Fix:"]),
    ("ray-port-zero", {"nim_extra_values": {"multiNode": {"ray": {"port": 0}}}}, {},
     [r"ray_port"], [r"Fix:"]),
    # --- planner: the model decides
    ("plan-heads-not-divisible", {**drop("nim_tensor_parallel_size", "nim_pipeline_parallel_size", "nim_nodes",
                                         "nim_gpus_per_node"),
                                  "nim_plan": {"model": "llama-3.1-405b", "gpu_type": "h100-80gb",
                                               "gpus_per_node": 6, "nodes_available": 4}}, {},
     [r"tensor_heads|does_not_fit|not_enough_nodes"], [r"Fix:"]),
    ("plan-does-not-fit", {**drop("nim_tensor_parallel_size", "nim_pipeline_parallel_size", "nim_nodes",
                                  "nim_gpus_per_node"),
                           "nim_plan": {"model": "llama-3.1-405b", "gpu_type": "a100-40gb",
                                        "gpus_per_node": 8, "nodes_available": 2}}, {},
     [r"does_not_fit|not_enough_nodes"], [r"Fix:"]),
    ("plan-unknown-model", {**drop("nim_tensor_parallel_size", "nim_pipeline_parallel_size", "nim_nodes",
                                   "nim_gpus_per_node"),
                            "nim_plan": {"model": "llama-9-9000b", "gpu_type": "h100-80gb",
                                         "gpus_per_node": 8, "nodes_available": 2}}, {},
     [r"plan_input|llama-9-9000b"], [r"Fix:|one of"]),
    ("plan-pvc-smaller-than-model", {**drop("nim_tensor_parallel_size", "nim_pipeline_parallel_size", "nim_nodes",
                                            "nim_gpus_per_node"),
                                     "nim_storage": {"kind": "claim", "claim_name": "nim-model-cache",
                                                     "size": "200Gi"},
                                     "nim_plan": {"model": "llama-3.1-405b", "gpu_type": "h100-80gb",
                                                  "gpus_per_node": 8, "nodes_available": 2}}, {},
     [r"storage_size|smaller than"], [r"Fix:|at least"]),
    # --- types and shapes
    ("nodes-not-a-number", {"nim_nodes": "two"}, {},
     [r"nodes|two"], [r"int|integer|number"]),
    ("gpus-per-node-zero", {"nim_gpus_per_node": 0}, {},
     [r"gpus_per_node|gpu_count|GPU"], [r"Fix:|at least|positive"]),
    ("gpus-per-node-not-a-number", {"nim_gpus_per_node": "eight"}, {},
     [r"gpus_per_node|eight"], [r"int|integer|number"]),
    ("image-without-tag", {"nim_image": {"repository": "nvcr.io/nim/meta/llama-3.1-405b-instruct"}}, {},
     [r"\[image\]|tag"], [r"Fix:|pin"]),
    ("image-without-repository", {"nim_image": {"tag": "1.13.1"}}, {},
     [r"\[image\]|repository"], [r"Fix:"]),
    ("image-not-a-mapping", {"nim_image": "nvcr.io/nim/meta/llama-3.1-405b-instruct:1.13.1"}, {},
     [r"image"], [r"repository|dict|mapping"]),
    ("image-tag-latest-leader-worker-skew", {"nim_image": {"repository": "nvcr.io/nim/meta/llama-3.1-405b-instruct",
                                                           "tag": ""}}, {},
     [r"\[image\]|tag"], [r"Fix:|pin"]),
    ("allow-independent-not-bool", {"nim_storage": {"kind": "claim", "size": "1000Gi",
                                                    "allow_independent_downloads": "maybe"}}, {},
     [r"allow_independent_downloads|maybe|bool"], [r"true|false|bool"]),
    # --- storage
    ("rwo-for-multinode", {"nim_storage": {"kind": "claim", "size": "1000Gi", "access_mode": "ReadWriteOnce"}}, {},
     [r"ReadWriteOnce"], [r"ReadWriteMany"]),
    ("chart-pvc-rwo", {"nim_storage": {"kind": "chart_pvc", "size": "1000Gi", "access_mode": "ReadWriteOnce"}}, {},
     [r"ReadWriteOnce"], [r"ReadWriteMany"]),
    ("no-shared-storage", {"nim_storage": {"kind": "none"}}, {},
     [r"ReadWriteMany|shared|copies"], [r"allow_independent_downloads|NFS"]),
    ("nfs-without-server", {"nim_storage": {"kind": "nfs", "nfs_path": "/exports/nim"}}, {},
     [r"nfs_server"], [r"nfs_server"]),
    ("nfs-relative-path", {"nim_storage": {"kind": "nfs", "nfs_server": "10.0.0.5", "nfs_path": "exports/nim"}}, {},
     [r"nfs_path|absolute"], [r"absolute"]),
    ("unknown-storage-class", {"nim_storage": {"kind": "claim", "size": "1000Gi", "storage_class": "no-such-rwx"}},
     {}, [r"no-such-rwx"], [r"kubectl get storageclass|Pick"]),
    ("missing-existing-claim", {"nim_storage": {"kind": "claim", "claim_name": "absent-cache",
                                                "create_claim": False}}, {},
     [r"absent-cache.*does not exist"], [r"Create it|create_claim: true"]),
    ("storage-size-malformed", {"nim_storage": {"kind": "claim", "size": "lots"}}, {},
     [r"lots|size|quantity"], [r"Gi|Fix:|e\.g\."]),
    ("unknown-storage-kind", {"nim_storage": {"kind": "hostpath"}}, {},
     [r"hostpath|kind"], [r"claim|nfs|one of"]),
    # --- secrets
    ("ngc-key-empty", {}, {"ngc": ""},
     [r"empty|NGC API key"], [r"NGC_API_KEY|vault"]),
    ("ngc-key-wrong-prefix", {}, {"ngc": "FAKE-not-an-nvapi-key-000000"},
     [r"secret_prefix"], [r"nvapi-|Fix:"]),
    ("ngc-key-with-newline", {}, {"ngc": "nvapi-FAKE-with-newline-000000\n"},
     [r"secret_whitespace"], [r"Fix:|strip|remove"]),
    ("ngc-key-with-space", {}, {"ngc": "nvapi-FAKE with-space-000000"},
     [r"secret_whitespace|space"], [r"Fix:|remove"]),
    ("hf-model-without-token", {"nim_model_path": "hf://meta-llama/Llama-3.1-405B-Instruct"}, {},
     [r"hf_token|HF token|hf://"], [r"HF_TOKEN|vault"]),
    ("hf-token-malformed", {"nim_model_path": "hf://meta-llama/Llama-3.1-405B-Instruct"},
     {"hf": "FAKE-not-an-hf-token-00000"}, [r"secret_prefix|hf_"], [r"Fix:|hf_"]),
    ("credential-as-secret-name", {"nim_secret_names": {"ngc": "nvapi-FAKE-pasted-key-0000000000"}}, {},
     [r"secret_by_name|secret name"], [r"Fix:|name of"]),
    ("credential-in-extra-values", {"nim_extra_values": {"env": [{"name": "NGC_API_KEY",
                                                                  "value": "nvapi-FAKE-inline-000000000"}]}}, {},
     [r"secret_by_name"], [r"Fix:"]),
    ("no-pull-secret-for-nvcr", {"nim_secret_names": {"pull": ""}}, {},
     [r"image_pull_secret|pull secret|imagepull"], [r"Fix:|set"]),
    # --- names Kubernetes refuses
    ("namespace-invalid", {"nim_namespace": "Bad_Namespace"}, {},
     [r"Bad_Namespace"], [r"lower case|RFC 1123|a-z0-9"]),
    ("namespace-too-long", {"nim_namespace": "n" * 64}, {},
     [r"n{64}|63"], [r"63|RFC 1123|at most"]),
    ("release-name-invalid", {"nim_release": "Llama_405B"}, {},
     [r"Llama_405B"], [r"lower case|RFC 1123|a-z0-9"]),
    ("release-name-too-long", {"nim_release": "r" * 54}, {},
     [r"r{54}|53"], [r"53|at most|shorter"]),
    ("secret-name-invalid", {"nim_secret_names": {"ngc": "NGC API"}}, {},
     [r"NGC API|secret"], [r"lower case|RFC 1123|a-z0-9|Fix:"]),
    ("claim-name-invalid", {"nim_storage": {"kind": "claim", "claim_name": "Model Cache", "size": "1000Gi"}}, {},
     [r"Model Cache"], [r"lower case|RFC 1123|a-z0-9"]),
    # --- chart
    ("chart-unpinned", {"nim_chart": {"source": "repo", "version": ""}}, {},
     [r"pinned"], [r"nim_release_chart_version|version"]),
    ("chart-oci-without-oci-ref", {"nim_chart": {"source": "oci", "version": "2.0.0", "ref": "nvcr.io/nim/nim-llm"}},
     {}, [r"oci"], [r"oci://"]),
    ("chart-path-without-ref", {"nim_chart": {"source": "path"}}, {},
     [r"chart"], [r"nim_release_chart_ref|folder|\.tgz"]),
    ("chart-unknown-source", {"nim_chart": {"source": "git", "version": "2.0.0"}}, {},
     [r"git|source"], [r"ngc|repo|path|oci"]),
    ("wait-timeout-negative", {"nim_wait_timeout": -5}, {},
     [r"timeout|-5"], [r"positive|at least|greater|seconds"]),
    # --- names that end in a newline ("$" would accept them; the API server refuses them after earlier writes)
    ("namespace-trailing-newline", {"nim_namespace": "nim-newline\n"}, {},
     [r"nim_namespace 'nim-newline\\n' is not a valid namespace name"], [r"RFC 1123"]),
    ("release-trailing-newline", {"nim_release": "llama\n"}, {},
     [r"nim_release 'llama\\n' is not a valid Helm release name"], [r"RFC 1123"]),
    # --- hostile or careless extra values
    ("extra-privileged", {"nim_extra_values": {"containerSecurityContext": {"privileged": True}}}, {},
     [r"\[privileged_values\] extra_values would give the pods their node or another identity: "
      r"containerSecurityContext\.privileged \(privileged: True\)"], [r"Fix: remove them, or set allow_privileged_values"]),
    ("extra-host-path", {"nim_extra_values": {"extraVolumes": [{"name": "root", "hostPath": {"path": "/"}}]}}, {},
     [r"\[privileged_values\].*extraVolumes\[0\]\.hostPath \(a host path\)"], [r"allow_privileged_values"]),
    ("extra-host-network", {"nim_extra_values": {"hostNetwork": True}}, {},
     [r"\[privileged_values\].*hostNetwork \(hostNetwork: True\)"], [r"allow_privileged_values"]),
    ("extra-run-as-root", {"nim_extra_values": {"podSecurityContext": {"runAsUser": 0}}}, {},
     [r"\[privileged_values\].*podSecurityContext\.runAsUser \(UID 0\)"], [r"allow_privileged_values"]),
    ("extra-service-account", {"nim_extra_values": {"serviceAccountName": "cluster-admin"}}, {},
     [r"\[privileged_values\].*serviceAccountName \(service account cluster-admin\)"], [r"allow_privileged_values"]),
    ("extra-bearer-token", {"nim_extra_values": {"probeHeaders": {"Authorization": "Bearer FAKEtoken00000000"}}}, {},
     [r"\[secret_by_name\] extra_values holds credential values at probeHeaders\.Authorization"],
     [r"Fix: remove them"]),
    ("extra-hf-token-flag", {"nim_extra_values": {"args": ["--hf-token=FAKEtoken0000"]}}, {},
     [r"\[secret_by_name\] extra_values holds credential values at args\[0\]"], [r"Fix: remove them"]),
    ("extra-unprefixed-key", {"nim_extra_values": {"env": [{"name": "NGC_KEY_TOKEN", "value": "FAKElegacy0000"}]}}, {},
     [r"\[secret_by_name\] extra_values holds credential values at env\[0\]\.value"], [r"Fix: remove them"]),
    # --- a plan and an explicit setting that disagree: refused, not overridden
    ("plan-contradicts-nodes", {"nim_nodes": 4, "nim_plan": {"model": "llama-3.1-405b", "gpu_type": "h100-80gb",
                                                             "gpus_per_node": 8, "nodes_available": 4}}, {},
     [r"\[plan_conflict\] nim_nodes 4 \(the plan says 2\)"], [r"Fix: remove nim_nodes and let the plan decide"]),
]

# Dangerous changes to a live release: refused, the release untouched.
LIVE_CASES = [
    ("live-json-logging-on", {"nim_extra_values": {"model": {"jsonLogging": True}}}, [r"json_logging"]),
    ("live-drop-to-one-node", {"nim_nodes": 1, "nim_pipeline_parallel_size": 1}, [r"multinode_nodes|nodes"]),
    ("live-cross-node-tp-on-ethernet", {"nim_tensor_parallel_size": 2, "nim_pipeline_parallel_size": 1},
     [r"multinode_tp_interconnect"]),
    ("live-rwo-storage", {"nim_storage": {"kind": "chart_pvc", "size": "1000Gi", "access_mode": "ReadWriteOnce"}},
     [r"ReadWriteOnce"]),
    ("live-bad-ngc-key", {"__ngc__": "FAKE-rotated-without-prefix-0000"}, [r"secret_prefix"]),
]


def apply_override(base: dict, override: dict) -> dict:
    v = dict(base)
    for key, value in override.items():
        if value == "__drop__":
            v.pop(key, None)
        elif key == "nim_chart":
            v[key] = dict(v[key], **value)
        else:
            v[key] = value
    return v


def helm_releases(sim) -> list:
    r = sim.kubectl("get", "secrets", "-A", "-l", "owner=helm", "-o", "json")
    return [(i["metadata"]["namespace"], i["metadata"]["labels"].get("name")) for i in json.loads(r.stdout)["items"]]


def check_message(out: str, msg: str, problem: list, fix: list, case: str) -> None:
    text = msg or out[-3000:]
    for pattern in problem:
        assert re.search(pattern, text), f"{case}: refusal does not name the problem ({pattern}):\n{text}"
    for pattern in fix:
        assert re.search(pattern, text), f"{case}: refusal does not say how to fix it ({pattern}):\n{text}"


def failure_text(r) -> str:
    """The failed task's message (fatal line or assertion message)."""
    lines = re.findall(r"^(?:fatal|failed): \[localhost\].*?=> (.*)$", r.out, re.M)
    return "\n".join(lines)


@pytest.mark.parametrize("case,override,env,problem,fix", CASES, ids=[c[0] for c in CASES])
def test_refused_before_any_change(sim_cluster, case, override, env, problem, fix):
    sim = sim_cluster
    namespace = f"bad-{uuid.uuid4().hex[:8]}"
    base = dict(example_vars("llama-3.1-405b-2node.yml"), **sim_overrides(sim, namespace))
    extravars = apply_override(base, override)
    target_ns = extravars.get("nim_namespace", namespace)
    try:
        r = run_playbook(sim, "deploy-nim.yml", extravars, ngc_key=env.get("ngc"), hf_token=env.get("hf"))
        assert r.rc != 0, f"{case}: accepted, rc=0\n{r.out[-3000:]}"
        assert r.recap["failed"] >= 1, r.out[-3000:]
        check_message(r.out, failure_text(r), problem, fix, case)
        # nothing changed: the namespace was never created, no release anywhere new
        assert sim.kubectl("get", "namespace", target_ns, check=False).returncode != 0, \
            f"{case}: namespace {target_ns} was created before the refusal"
        assert resource_versions(sim, target_ns) == {}
        assert [x for x in helm_releases(sim) if x[0] == target_ns] == []
        # secrets never echoed
        for secret in (env.get("ngc"), env.get("hf")):
            if secret and len(secret.strip()) > 8:
                assert secret.strip() not in r.out, f"{case}: the secret value appears in the output"
    finally:
        if sim.kubectl("get", "namespace", target_ns, check=False).returncode == 0:
            cleanup_namespace(sim, target_ns)


@pytest.fixture(scope="module")
def live_release(sim_cluster):
    sim = sim_cluster
    namespace = f"live-{uuid.uuid4().hex[:8]}"
    extravars = dict(example_vars("llama-3.1-405b-2node.yml"), **sim_overrides(sim, namespace))
    # one fake GPU per pod (TP=1, PP=2): the shared sim's nodes hold other tests' releases too
    extravars.update(nim_gpus_per_node=1, nim_tensor_parallel_size=1, nim_pipeline_parallel_size=2)
    r = run_playbook(sim, "deploy-nim.yml", extravars)
    assert r.rc == 0, r.out[-4000:]
    yield namespace, extravars
    cleanup_namespace(sim, namespace)


def helm_revision(sim, namespace: str) -> list:
    r = sim.kubectl("get", "secrets", "-n", namespace, "-l", "owner=helm", "-o", "json")
    return sorted(i["metadata"]["name"] for i in json.loads(r.stdout)["items"])


@pytest.mark.parametrize("case,override,problem", LIVE_CASES, ids=[c[0] for c in LIVE_CASES])
def test_dangerous_change_to_live_release_refused(sim_cluster, live_release, case, override, problem):
    sim = sim_cluster
    namespace, base = live_release
    override = dict(override)
    ngc = override.pop("__ngc__", None)
    before = resource_versions(sim, namespace)
    revisions = helm_revision(sim, namespace)
    r = run_playbook(sim, "deploy-nim.yml", apply_override(base, override), ngc_key=ngc)
    assert r.rc != 0, f"{case}: accepted\n{r.out[-3000:]}"
    check_message(r.out, failure_text(r), problem, [r"Fix:|Use|use|set"], case)
    assert resource_versions(sim, namespace) == before, f"{case}: the live release changed"
    assert helm_revision(sim, namespace) == revisions


def test_table_is_large_enough():
    assert len(CASES) + len(LIVE_CASES) >= 40
    assert len({c[0] for c in CASES + LIVE_CASES}) == len(CASES) + len(LIVE_CASES)
