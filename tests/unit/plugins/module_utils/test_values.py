# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nim_values logic: golden values for every configuration of the seed guide, and every refusal."""

from __future__ import annotations

import copy
import json

import pytest

from ansible_collections.nimops.multinode.plugins.module_utils._errors import InputError, NimOpsError, ValuesRuleError
from ansible_collections.nimops.multinode.plugins.module_utils._values import build_values, deep_merge, quantity_bytes

FAKE_NGC = "nvapi-FAKE-0000000000000000000000000000000000000000000000000000000000000000"
FAKE_HF = "hf_FAKE0000000000000000000000000000000"
IMAGE_405B = {"repository": "nvcr.io/nim/meta/llama-3.1-405b-instruct", "tag": "latest"}


def seed_405b(**overrides):
    """Options for the seed's minimal configuration: Llama 3.1 405B on two 8-GPU nodes, TP=8, PP=2, RWX PVC."""
    options = dict(
        image=dict(IMAGE_405B),
        image_pull_secret="nvcr-imagepull",
        ngc_api_secret="ngc-api",
        tensor_parallel_size=8,
        pipeline_parallel_size=2,
        nodes=2,
        gpus_per_node=8,
        storage={"kind": "pvc", "size": "200Gi", "access_mode": "ReadWriteMany", "storage_class": "nfs-rwx"},
    )
    options.update(overrides)
    return options


def expected(image=None, model=None, multi=None, gpus=8, storage=None, pull="nvcr-imagepull"):
    values = {"image": dict(image or IMAGE_405B)}
    if pull:
        values["imagePullSecrets"] = [{"name": pull}]
    values["model"] = model or {"ngcAPISecret": "ngc-api", "jsonLogging": False}
    values["multiNode"] = multi or {"enabled": True, "workers": 1, "tensorParallelSize": 8,
                                    "pipelineParallelSize": 2, "ray": {"port": 6379}}
    values["resources"] = {"limits": {"nvidia.com/gpu": gpus}, "requests": {"nvidia.com/gpu": gpus}}
    values.update(storage or {"persistence": {"enabled": True, "size": "200Gi", "accessMode": "ReadWriteMany",
                                              "storageClass": "nfs-rwx"}})
    return values


# ---------------------------------------------------------------------------------------------------------------
# Golden values: each configuration the seed documents.

GOLDEN = {
    "405b-2x8-tp8-pp2": (seed_405b(), expected()),
    "deepseek-r1-2x8-tp8-pp2": (
        seed_405b(image={"repository": "nvcr.io/nim/deepseek-ai/deepseek-r1", "tag": "latest"},
                  storage={"kind": "pvc", "size": "800Gi", "storage_class": "nfs-rwx"}, model_size_gb=671.0),
        expected(image={"repository": "nvcr.io/nim/deepseek-ai/deepseek-r1", "tag": "latest"},
                 storage={"persistence": {"enabled": True, "size": "800Gi", "accessMode": "ReadWriteMany",
                                          "storageClass": "nfs-rwx"}}),
    ),
    "multinode-tp16-pp1-infiniband": (
        seed_405b(tensor_parallel_size=16, pipeline_parallel_size=1, interconnect="infiniband"),
        expected(multi={"enabled": True, "workers": 1, "tensorParallelSize": 16, "pipelineParallelSize": 1,
                        "ray": {"port": 6379}}),
    ),
    "multinode-tp16-pp1-roce": (
        seed_405b(tensor_parallel_size=16, pipeline_parallel_size=1, interconnect="roce"),
        expected(multi={"enabled": True, "workers": 1, "tensorParallelSize": 16, "pipelineParallelSize": 1,
                        "ray": {"port": 6379}}),
    ),
    "4-nodes-tp8-pp4": (
        seed_405b(nodes=4, pipeline_parallel_size=4),
        expected(multi={"enabled": True, "workers": 3, "tensorParallelSize": 8, "pipelineParallelSize": 4,
                        "ray": {"port": 6379}}),
    ),
    "explicit-profile-option-b": (
        seed_405b(tensor_parallel_size=None, pipeline_parallel_size=None, profile="vllm-fp16-tp8-pp2"),
        expected(model={"ngcAPISecret": "ngc-api", "jsonLogging": False, "profile": "vllm-fp16-tp8-pp2"},
                 multi={"enabled": True, "workers": 1, "ray": {"port": 6379}}),
    ),
    "profile-hash": (
        seed_405b(tensor_parallel_size=None, pipeline_parallel_size=None,
                  profile="0f3de1afe11d355e01657424a267fbaad19bfea3143a9879307c49aed8299db0"),
        expected(model={"ngcAPISecret": "ngc-api", "jsonLogging": False,
                        "profile": "0f3de1afe11d355e01657424a267fbaad19bfea3143a9879307c49aed8299db0"},
                 multi={"enabled": True, "workers": 1, "ray": {"port": 6379}}),
    ),
    "model-free-hf-with-token": (
        seed_405b(image={"repository": "nvcr.io/nim/nim-llm", "tag": "latest"},
                  model_path="hf://meta-llama/Llama-3.1-405B-Instruct", hf_token_secret="hf-token",
                  storage={"kind": "pvc", "size": "200Gi", "storage_class": "local-nfs"}),
        expected(image={"repository": "nvcr.io/nim/nim-llm", "tag": "latest"},
                 model={"ngcAPISecret": "ngc-api", "jsonLogging": False, "hfTokenSecret": "hf-token",
                        "modelPath": "hf://meta-llama/Llama-3.1-405B-Instruct"},
                 storage={"persistence": {"enabled": True, "size": "200Gi", "accessMode": "ReadWriteMany",
                                          "storageClass": "local-nfs"}}),
    ),
    "nfs-direct-mount": (
        seed_405b(storage={"kind": "nfs", "server": "nfs-server.internal", "path": "/exports/nim-models"}),
        expected(storage={"nfs": {"enabled": True, "server": "nfs-server.internal", "path": "/exports/nim-models"}}),
    ),
    "existing-claim": (
        seed_405b(storage={"kind": "existing_claim", "existing_claim": "nim-model-cache"}),
        expected(storage={"persistence": {"enabled": True, "existingClaim": "nim-model-cache",
                                          "accessMode": "ReadWriteMany"}}),
    ),
    "ray-port-and-private-registry": (
        seed_405b(image={"repository": "registry.internal/nim/llama-3.1-405b-instruct", "tag": "1.13.1"},
                  image_pull_secret=None, ray_port=16379),
        expected(image={"repository": "registry.internal/nim/llama-3.1-405b-instruct", "tag": "1.13.1"}, pull=None,
                 multi={"enabled": True, "workers": 1, "tensorParallelSize": 8, "pipelineParallelSize": 2,
                        "ray": {"port": 16379}}),
    ),
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_values(name):
    options, want = GOLDEN[name]
    result = build_values(**options)
    assert result["values"] == want


def test_golden_notes_for_the_seed_example():
    assert build_values(**seed_405b())["notes"] == [
        "image.tag is 'latest': leader and workers may pull different builds; pin a version tag.",
    ]


def test_notes_for_existing_claim_and_default_class():
    result = build_values(**seed_405b(image={"repository": IMAGE_405B["repository"], "tag": "1.13.1"},
                                      storage={"kind": "existing_claim", "existing_claim": "nim-model-cache"}))
    assert result["notes"] == ["PVC nim-model-cache is kept on uninstall, so the model cache survives redeployments."]
    result = build_values(**seed_405b(image={"repository": IMAGE_405B["repository"], "tag": "1.13.1"},
                                      storage={"kind": "pvc", "size": "1000Gi"}))
    assert result["notes"] == ["No storage_class given: the cluster's default class must provide ReadWriteMany."]


def test_model_free_note_when_image_is_model_specific():
    result = build_values(**seed_405b(model_path="hf://meta-llama/Llama-3.1-405B-Instruct", hf_token_secret="hf-token"))
    assert ("model_path is hf://: model-free NIM normally runs the generic image nvcr.io/nim/nim-llm, not "
            "nvcr.io/nim/meta/llama-3.1-405b-instruct.") in result["notes"]


def test_multinode_tp_note_names_nccl():
    result = build_values(**seed_405b(tensor_parallel_size=16, pipeline_parallel_size=1, interconnect="infiniband"))
    assert "Tensor parallelism spans nodes over infiniband: make sure NCCL uses it (NCCL_IB_DISABLE=0, NCCL_IB_HCA)." \
        in result["notes"]


# ---------------------------------------------------------------------------------------------------------------
# Independent downloads: refused by default, accepted only explicitly, with the cost stated.

def test_independent_downloads_accepted_with_cost():
    result = build_values(**seed_405b(storage={"kind": "none"}, allow_independent_downloads=True, model_size_gb=811.8))
    assert result["values"]["persistence"] == {"enabled": False}
    assert "Independent downloads accepted: each of the 2 nodes downloads the model on its own " \
           "(2 copies x 811.8 GB = 1623.6 GB)." in result["notes"]


def test_independent_downloads_without_size_still_counts_copies():
    result = build_values(**seed_405b(nodes=4, pipeline_parallel_size=4, storage={"kind": "none"},
                                      allow_independent_downloads=True))
    assert "Independent downloads accepted: each of the 4 nodes downloads the model on its own (4 copies)." \
        in result["notes"]


def test_rwo_pvc_accepted_only_with_opt_in():
    storage = {"kind": "pvc", "size": "1000Gi", "access_mode": "ReadWriteOnce", "storage_class": "local-path"}
    result = build_values(**seed_405b(storage=storage, allow_independent_downloads=True, model_size_gb=811.8))
    assert result["values"]["persistence"] == {"enabled": True, "size": "1000Gi", "accessMode": "ReadWriteOnce",
                                               "storageClass": "local-path"}
    assert "Independent downloads accepted with ReadWriteOnce storage: each of the 2 nodes downloads the model on " \
           "its own (2 copies x 811.8 GB = 1623.6 GB)." in result["notes"]


# ---------------------------------------------------------------------------------------------------------------
# extra_values: unknown keys pass through; consistent duplicates are fine.

def test_unknown_extra_values_pass_through_untouched():
    extra = {
        "model": {"logLevel": "INFO", "openaiPort": 8000, "nimCache": "/model-store"},
        "startupProbe": {"failureThreshold": 360, "httpGet": {"path": "/v1/health/ready", "port": "http-openai"}},
        "env": [{"name": "NCCL_DEBUG", "value": "INFO"}, {"name": "NCCL_IB_DISABLE", "value": "0"}],
        "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
        "resources": {"limits": {"memory": "1500Gi"}},
        "multiNode": {"ray": {"dashboardPort": 8265}},
        "persistence": {"annotations": {"helm.sh/resource-policy": "keep"}},
    }
    extra_before = copy.deepcopy(extra)
    values = build_values(**seed_405b(extra_values=extra))["values"]
    assert extra == extra_before, "extra_values must not be modified in place"
    want = expected()
    want["model"].update({"logLevel": "INFO", "openaiPort": 8000, "nimCache": "/model-store"})
    want["startupProbe"] = extra["startupProbe"]
    want["env"] = extra["env"]
    want["nodeSelector"] = extra["nodeSelector"]
    want["resources"]["limits"]["memory"] = "1500Gi"
    want["multiNode"]["ray"]["dashboardPort"] = 8265
    want["persistence"]["annotations"] = {"helm.sh/resource-policy": "keep"}
    assert values == want


def test_extra_values_that_agree_are_accepted():
    extra = {"model": {"jsonLogging": False}, "multiNode": {"enabled": True, "workers": 1},
             "resources": {"requests": {"nvidia.com/gpu": 8}}}
    assert build_values(**seed_405b(extra_values=extra))["values"] == expected()


def test_deep_merge_replaces_lists_and_scalars():
    assert deep_merge({"a": {"b": 1, "c": [1, 2]}, "d": 1}, {"a": {"c": [3]}, "d": {"e": 2}}) == \
        {"a": {"b": 1, "c": [3]}, "d": {"e": 2}}


@pytest.mark.parametrize("quantity,size", [
    ("200Gi", 200 * 2 ** 30), ("1T", 10 ** 12), ("1.5Ti", int(1.5 * 2 ** 40)), ("500", 500), ("200GB", None),
    ("lots", None), ("", None),
])
def test_quantity_bytes(quantity, size):
    assert quantity_bytes(quantity) == size


# ---------------------------------------------------------------------------------------------------------------
# Diff against the deployed values.

def test_diff_against_nothing_deployed():
    result = build_values(**seed_405b())
    assert result["diff"] == {"before": {}, "after": expected(), "before_header": "deployed values",
                              "after_header": "rendered values"}
    assert "multiNode.pipelineParallelSize" in result["changed_paths"]
    assert "resources.limits.nvidia.com/gpu" in result["changed_paths"]


def test_no_changes_when_deployed_values_match():
    assert build_values(**seed_405b(current_values=expected()))["changed_paths"] == []


def test_changed_paths_going_from_two_to_four_nodes():
    result = build_values(**seed_405b(nodes=4, pipeline_parallel_size=4, current_values=expected()))
    assert result["changed_paths"] == ["multiNode.pipelineParallelSize", "multiNode.workers"]
    assert result["diff"]["before"]["multiNode"]["workers"] == 1
    assert result["diff"]["after"]["multiNode"]["workers"] == 3


def test_removed_keys_show_as_changed():
    deployed = expected()
    deployed["model"]["logLevel"] = "DEBUG"
    assert build_values(**seed_405b(current_values=deployed))["changed_paths"] == ["model.logLevel"]


def test_diff_redacts_credentials_deployed_by_someone_else():
    deployed = expected()
    deployed["env"] = [{"name": "NGC_API_KEY", "value": FAKE_NGC}, {"name": "HF_TOKEN", "value": "whatever"}]
    deployed["model"]["token"] = FAKE_HF
    result = build_values(**seed_405b(current_values=deployed))
    text = json.dumps(result)
    assert FAKE_NGC not in text and FAKE_HF not in text and "whatever" not in text
    assert result["diff"]["before"]["env"] == [{"name": "NGC_API_KEY", "value": "<redacted>"},
                                               {"name": "HF_TOKEN", "value": "<redacted>"}]
    assert deployed["env"][0]["value"] == FAKE_NGC, "current_values must not be modified in place"


# ---------------------------------------------------------------------------------------------------------------
# Refusals: each names its rule and the fix.

REFUSALS = [
    # (case, option overrides, error class, rule, words the message must contain)
    ("single node", dict(nodes=1, pipeline_parallel_size=1), ValuesRuleError, "multinode_nodes",
     ["nodes is 1", "Fix: set nodes to 2 or more"]),
    ("json logging on", dict(json_logging=True), ValuesRuleError, "json_logging",
     ["json_logging is true", "Ray worker", "Fix: set json_logging=false"]),
    ("json logging via extra_values", dict(extra_values={"model": {"jsonLogging": True}}), ValuesRuleError,
     "json_logging", ["extra_values sets model.jsonLogging to True", "Ray worker",
                      "Fix: remove model.jsonLogging from extra_values"]),
    ("multiNode disabled via extra_values", dict(extra_values={"multiNode": {"enabled": False}}), ValuesRuleError,
     "multinode_enabled", ["multiNode.enabled to False", "Fix: remove multiNode.enabled from extra_values"]),
    ("workers via extra_values", dict(extra_values={"multiNode": {"workers": 3}}), ValuesRuleError, "workers",
     ["multiNode.workers to 3 but nodes - 1 is 1", "Fix: remove multiNode.workers from extra_values and set nodes"]),
    ("gpu limits via extra_values", dict(extra_values={"resources": {"limits": {"nvidia.com/gpu": 4}}}),
     ValuesRuleError, "gpu_resources",
     ["resources.limits.nvidia.com/gpu to 4 but gpus_per_node is 8", "Fix: remove resources.limits.nvidia.com/gpu"]),
    ("gpus_per_node zero", dict(gpus_per_node=0), InputError, "gpu_resources", ["gpus_per_node is 0", "Fix: set gpus_per_node"]),
    ("neither tp/pp nor profile", dict(tensor_parallel_size=None, pipeline_parallel_size=None), ValuesRuleError,
     "parallelism_choice", ["neither", "refuses to render", "Fix: set tensor_parallel_size=8 and pipeline_parallel_size=2"]),
    ("both tp/pp and profile", dict(profile="vllm-fp16-tp8-pp2"), ValuesRuleError, "parallelism_choice",
     ["both", "Fix: keep TP/PP (recommended) and drop profile"]),
    ("tp without pp", dict(pipeline_parallel_size=None), ValuesRuleError, "parallelism_choice",
     ["pipeline_parallel_size is not set", "Fix: set both"]),
    ("profile added through extra_values", dict(extra_values={"model": {"profile": "vllm-fp16-tp8-pp2"}}),
     ValuesRuleError, "parallelism_choice", ["both model.profile and multiNode TP/PP", "Fix: remove the extra one"]),
    ("tp x pp below the gpus", dict(pipeline_parallel_size=1), ValuesRuleError, "gpu_count",
     ["= 8 GPUs but 2 nodes x 8 GPUs = 16", "Fix: make TP x PP equal 16 (standard: TP=8, PP=2)"]),
    ("profile for other gpus", dict(tensor_parallel_size=None, pipeline_parallel_size=None, profile="vllm-bf16-tp8-pp4"),
     ValuesRuleError, "gpu_count", ["profile vllm-bf16-tp8-pp4 (tp8, pp4) = 32 GPUs", "Fix: make TP x PP equal 16"]),
    ("tp across nodes not whole nodes", dict(nodes=3, tensor_parallel_size=12, pipeline_parallel_size=2),
     ValuesRuleError, "tp_layout", ["TP=12 spans nodes but is not a multiple of 8", "Fix: use TP=8"]),
    ("tp straddles a node", dict(gpus_per_node=6, tensor_parallel_size=4, pipeline_parallel_size=3), ValuesRuleError,
     "tp_layout", ["TP=4 does not divide 6", "Fix: use TP=6"]),
    ("multi-node tp on ethernet", dict(tensor_parallel_size=16, pipeline_parallel_size=1), ValuesRuleError,
     "multinode_tp_interconnect", ["TP=16 is larger than 8 GPUs per node", "ethernet", "RDMA",
                                   "Fix: use tensor_parallel_size=8, pipeline_parallel_size=2, or set interconnect"]),
    ("multi-node tp profile on ethernet",
     dict(tensor_parallel_size=None, pipeline_parallel_size=None, profile="vllm-bf16-tp16-pp1"), ValuesRuleError,
     "multinode_tp_interconnect", ["TP=16", "Fix: use tensor_parallel_size=8"]),
    ("no shared storage", dict(storage={"kind": "none"}, model_size_gb=811.8), ValuesRuleError, "shared_storage",
     ["storage kind is none for a 2-node release", "2 copies x 811.8 GB = 1623.6 GB",
      "Fix: use a ReadWriteMany PVC", "allow_independent_downloads=true"]),
    ("rwo pvc", dict(storage={"kind": "pvc", "size": "1000Gi", "access_mode": "ReadWriteOnce"}), ValuesRuleError,
     "shared_storage", ["storage.access_mode is ReadWriteOnce for a 2-node release", "(2 copies)",
                        "Fix: use access_mode ReadWriteMany"]),
    ("rwo existing claim even with opt-in",
     dict(storage={"kind": "existing_claim", "existing_claim": "cache", "access_mode": "ReadWriteOncePod"},
          allow_independent_downloads=True), ValuesRuleError, "shared_storage",
     ["existing claim cache is ReadWriteOncePod", "Pending", "Fix: use a ReadWriteMany claim"]),
    ("read-only pvc", dict(storage={"kind": "pvc", "size": "1000Gi", "access_mode": "ReadOnlyMany"}), ValuesRuleError,
     "shared_storage", ["ReadOnlyMany", "Fix: use ReadWriteMany"]),
    ("pvc smaller than the model", dict(model_size_gb=811.8), ValuesRuleError, "storage_size",
     ["storage.size 200Gi (214.7 GB) is smaller than the 811.8 GB model", "Fix: set storage.size to at least 757Gi"]),
    ("seed's deepseek pvc", dict(storage={"kind": "pvc", "size": "500Gi"}, model_size_gb=671.0), ValuesRuleError,
     "storage_size", ["500Gi (536.9 GB) is smaller than the 671 GB model", "Fix: set storage.size to at least 625Gi"]),
    ("claim the collection creates, smaller than the model",
     dict(storage={"kind": "existing_claim", "existing_claim": "cache", "size": "200Gi"}, model_size_gb=811.8),
     ValuesRuleError, "storage_size",
     ["storage.size 200Gi (214.7 GB) is smaller than the 811.8 GB model", "Fix: set storage.size to at least 757Gi"]),
    ("pvc without size", dict(storage={"kind": "pvc"}), InputError, "storage_options",
     ["needs storage.size", "Fix: set storage.size"]),
    ("pvc size not a quantity", dict(storage={"kind": "pvc", "size": "200GB"}), InputError, "storage_options",
     ["Kubernetes quantity", "Fix: set storage.size, e.g. 1000Gi"]),
    ("nfs without path", dict(storage={"kind": "nfs", "server": "nfs.internal"}), InputError, "storage_options",
     ["needs server and an absolute path", "Fix: set storage.server and storage.path"]),
    ("nfs relative path", dict(storage={"kind": "nfs", "server": "nfs.internal", "path": "exports"}), InputError,
     "storage_options", ["absolute path", "Fix: set storage.server and storage.path"]),
    ("existing claim without name", dict(storage={"kind": "existing_claim"}), InputError, "storage_options",
     ["needs storage.existing_claim", "Fix: set storage.existing_claim"]),
    ("no storage decision", dict(storage={}), InputError, "storage_options",
     ["storage.kind is not set", "Fix: set storage.kind"]),
    ("unknown storage kind", dict(storage={"kind": "hostpath"}), InputError, "storage_options",
     ["storage.kind 'hostpath' is unknown", "Fix: use one of pvc, existing_claim, nfs, none"]),
    ("nfs and pvc both", dict(extra_values={"nfs": {"enabled": True, "server": "s", "path": "/p"}}), ValuesRuleError,
     "storage_options", ["both persistence and nfs", "Fix: choose the storage kind once"]),
    ("hf model without token", dict(model_path="hf://meta-llama/Llama-3.1-405B-Instruct"), ValuesRuleError, "hf_token",
     ["hf://meta-llama/Llama-3.1-405B-Instruct is a Hugging Face model but hf_token_secret is not set",
      "Fix: create a Secret with key HF_TOKEN and set hf_token_secret"]),
    ("nvcr image without pull secret", dict(image_pull_secret=None), ValuesRuleError, "image_pull_secret",
     ["is on nvcr.io but image_pull_secret is not set", "ImagePullBackOff", "Fix: create a dockerconfigjson Secret"]),
    ("ngc secret missing", dict(ngc_api_secret=None), InputError, "secret_by_name",
     ["ngc_api_secret is not set", "Fix: create the Secret"]),
    ("ngc secret is not a name", dict(ngc_api_secret="NGC API"), InputError, "secret_by_name",
     ["ngc_api_secret is not a valid Kubernetes Secret name", "Fix: set ngc_api_secret to the name"]),
    ("ngc key given instead of a name", dict(ngc_api_secret=FAKE_NGC), InputError, "secret_by_name",
     ["ngc_api_secret looks like a credential", "Fix: put the credential in a Secret"]),
    ("hf token given instead of a name", dict(hf_token_secret=FAKE_HF), InputError, "secret_by_name",
     ["hf_token_secret looks like a credential", "Fix: put the credential in a Secret"]),
    ("credential in extra env", dict(extra_values={"env": [{"name": "NGC_API_KEY", "value": FAKE_NGC}]}), InputError,
     "secret_by_name", ["extra_values holds credential values at env[0].value", "Fix: remove them"]),
    ("credential anywhere in extra_values", dict(extra_values={"model": {"hfToken": FAKE_HF}}), InputError,
     "secret_by_name", ["at model.hfToken", "Fix: remove them"]),
    ("credential as a map entry", dict(extra_values={"secretEnv": {"HF_TOKEN": "plain"}}), InputError,
     "secret_by_name", ["at secretEnv.HF_TOKEN", "Fix: remove them"]),
    ("unprefixed key in a credential-named env entry",
     dict(extra_values={"env": [{"name": "LEGACY_NGC_API_KEY", "value": "b64FAKElegacykeyvalue0000"}]}), InputError,
     "secret_by_name", ["at env[0].value", "Fix: remove them"]),
    ("bearer header", dict(extra_values={"probeHeaders": {"Authorization": "Bearer FAKEtoken00000000"}}), InputError,
     "secret_by_name", ["at probeHeaders.Authorization", "Fix: remove them"]),
    ("token flag in arguments", dict(extra_values={"args": ["--hf-token=FAKEtoken0000"]}), InputError,
     "secret_by_name", ["at args[0]", "Fix: remove them"]),
    ("privileged container", dict(extra_values={"containerSecurityContext": {"privileged": True}}), InputError,
     "privileged_values", ["containerSecurityContext.privileged (privileged: True)",
                           "Fix: remove them, or set allow_privileged_values=true"]),
    ("host path", dict(extra_values={"extraVolumes": [{"name": "root", "hostPath": {"path": "/"}}]}), InputError,
     "privileged_values", ["extraVolumes[0].hostPath (a host path)"]),
    ("host network", dict(extra_values={"hostNetwork": True}), InputError, "privileged_values",
     ["hostNetwork (hostNetwork: True)"]),
    ("host PID and IPC", dict(extra_values={"hostPID": True, "hostIPC": True}), InputError, "privileged_values",
     ["hostPID (hostPID: True), hostIPC (hostIPC: True)"]),
    ("root", dict(extra_values={"podSecurityContext": {"runAsUser": 0}}), InputError, "privileged_values",
     ["podSecurityContext.runAsUser (UID 0)"]),
    ("another service account", dict(extra_values={"serviceAccountName": "cluster-admin-sa"}), InputError,
     "privileged_values", ["serviceAccountName (service account cluster-admin-sa)"]),
    ("all capabilities", dict(extra_values={"securityContext": {"capabilities": {"add": ["ALL"]}}}), InputError,
     "privileged_values", ["securityContext.capabilities.add (capabilities ALL)"]),
    ("tag missing", dict(image={"repository": "nvcr.io/nim/nim-llm"}), InputError, "image",
     ["image.repository and image.tag must both be set", "Fix: set image.repository"]),
    ("extra_values contradicts an option", dict(extra_values={"image": {"tag": "1.0.0"}}), InputError,
     "extra_values_conflict", ["extra_values sets image.tag to '1.0.0', which contradicts the rendered 'latest'",
                               "Fix: remove image.tag from extra_values and set image"]),
    ("extra_values replaces the pull secrets", dict(extra_values={"imagePullSecrets": [{"name": "other"}]}), InputError,
     "extra_values_conflict", ["imagePullSecrets", "Fix: remove imagePullSecrets from extra_values and set image_pull_secret"]),
    ("ray port out of range", dict(ray_port=70000), InputError, "ray_port", ["ray_port is 70000", "Fix: use 6379"]),
    ("unknown interconnect", dict(interconnect="nvlink"), InputError, "interconnect",
     ["interconnect 'nvlink' is unknown", "Fix: use one of ethernet, infiniband, roce"]),
]


@pytest.mark.parametrize("case,overrides,error,rule,words", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusal(case, overrides, error, rule, words):
    with pytest.raises(error) as caught:
        build_values(**seed_405b(**overrides))
    exc = caught.value
    assert exc.rule == rule
    message = str(exc)
    assert message.startswith("[{0}] ".format(rule))
    assert " Why: " in message and " Fix: " in message
    for word in words:
        assert word in message, "{0!r} not in {1!r}".format(word, message)
    assert FAKE_NGC not in message and FAKE_HF not in message


def test_every_rule_of_the_issue_has_a_refusal_test():
    rules = {r[3] for r in REFUSALS}
    assert {"multinode_enabled", "workers", "parallelism_choice", "json_logging", "gpu_resources", "shared_storage",
            "multinode_tp_interconnect", "hf_token", "secret_by_name", "image_pull_secret"} <= rules


def test_failure_result_carries_rule_and_parts():
    with pytest.raises(NimOpsError) as caught:
        build_values(**seed_405b(json_logging=True))
    result = caught.value.to_result()
    assert set(result) == {"msg", "rule", "what", "why", "fix"}
    assert result["rule"] == "json_logging"
    assert result["fix"] == "set json_logging=false (the default)"


def test_privileged_values_pass_through_when_allowed():
    extra = {"hostNetwork": True, "podSecurityContext": {"runAsUser": 0}}
    values = build_values(**seed_405b(extra_values=extra, allow_privileged_values=True))["values"]
    assert values["hostNetwork"] is True and values["podSecurityContext"] == {"runAsUser": 0}


@pytest.mark.parametrize("extra", [
    {"podSecurityContext": {"runAsUser": 1000, "fsGroup": 1000}},  # the chart's own defaults
    {"containerSecurityContext": {"privileged": False, "allowPrivilegeEscalation": False}},
    {"env": [{"name": "NIM_LOG_LEVEL", "value": "INFO"}, {"name": "TOKENIZERS_PARALLELISM", "value": "false"}]},
])
def test_harmless_settings_are_not_taken_for_privileged_or_credentials(extra):
    assert build_values(**seed_405b(extra_values=extra))["values"]
