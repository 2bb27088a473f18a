# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nim_plan logic: exact plans for the seed's configurations, refusals with their shortfall, plan -> values."""

from __future__ import annotations

import pytest

from ansible_collections.nimops.multinode.plugins.module_utils._errors import InputError, PlanError
from ansible_collections.nimops.multinode.plugins.module_utils._plan import GPU_TYPES, MODELS, plan_topology
from ansible_collections.nimops.multinode.plugins.module_utils._values import build_values

ETHERNET_NOTE = ("Nodes talk over Ethernet: only pipeline traffic crosses nodes, which it tolerates; "
                 "expect lower throughput than with RDMA.")


def h100(**kwargs):
    options = dict(gpu_type="h100-80gb", gpus_per_node=8, nodes_available=2)
    options.update(kwargs)
    return options


def test_seed_405b_on_two_h100_nodes_exact():
    assert plan_topology(**h100(model="llama-3.1-405b")) == {
        "model": "llama-3.1-405b",
        "parameters_billion": 405.9,
        "precision": "bf16",
        "gpu_memory_gb": 80,
        "tensor_parallel_size": 8,
        "pipeline_parallel_size": 2,
        "nodes": 2,
        "workers": 1,
        "gpus_per_node": 8,
        "total_gpus": 16,
        "interconnect": "ethernet",
        "model_size_gb": 811.8,
        # 811.8e9 bytes, 63 of 126 layers per stage, over 8 GPUs
        "weight_bytes_per_gpu": 50737500000,
        "weight_gb_per_gpu": 50.7,
        "headroom_gb_per_gpu": 29.3,
        "headroom_fraction": 0.366,
        "notes": [ETHERNET_NOTE],
        "explanation": (
            "Llama 3.1 405B at bf16 is 811.8 GB of weights; one H100 80GB keeps 64.0 GB for weights after 20% "
            "headroom for KV cache and activations, so it needs 2 node(s) of 8 GPUs (16 GPUs). TP=8 = GPUs per "
            "node, so tensor traffic stays inside each node; PP=2 = nodes, one pipeline stage per node, so only "
            "stage-to-stage activations cross the ethernet network. Each GPU holds 50.7 GB of weights and keeps "
            "29.3 GB (37%) free."),
    }


# (case, options, TP, PP, nodes, workers, total GPUs, weight bytes on the fullest GPU)
SEED_PLANS = [
    # 671e9 fp8 bytes; 31 of 61 layers on the first stage; 8 GPUs
    ("deepseek-r1 2x8", h100(model="deepseek-r1"), 8, 2, 2, 1, 16, 42625000000),
    ("405b tp16 pp1 infiniband", h100(model="llama-3.1-405b", nodes=2, interconnect="infiniband",
                                      cross_node_parallelism="tensor"), 16, 1, 2, 1, 16, 50737500000),
    ("405b tp16 pp1 roce", h100(model="llama-3.1-405b", nodes=2, interconnect="roce",
                                cross_node_parallelism="tensor"), 16, 1, 2, 1, 16, 50737500000),
    # 32 of 126 layers per stage: ceil(811.8e9 * 32 / 126 / 8)
    ("405b 4 nodes", h100(model="llama-3.1-405b", nodes_available=4, nodes=4), 8, 4, 4, 3, 32, 25771428572),
    # 180e9 bf16 = 360 GB; 38.4 GB usable per 48 GB GPU -> 3 nodes of 4 GPUs hold 30 GB each
    ("raw size", dict(parameters_billion=180, precision="bf16", gpu_memory_gb=48, gpus_per_node=4, nodes_available=6),
     4, 3, 3, 2, 12, 30000000000),
    # 405B at fp8 fits one node
    ("405b fp8 one node", h100(model="llama-3.1-405b", precision="fp8"), 8, 1, 1, 0, 8, 50737500000),
    # 141.2 GB bf16 fits one node of 4 L40S (35.3 GB each, 38.4 usable) ...
    ("70b on one L40S node of 4", dict(model="llama-3.1-70b", gpu_type="l40s-48gb", gpus_per_node=4,
                                       nodes_available=3), 4, 1, 1, 0, 4, 35300000000),
    # ... but needs two nodes of 2
    ("70b on two L40S nodes of 2", dict(model="llama-3.1-70b", gpu_type="l40s-48gb", gpus_per_node=2,
                                        nodes_available=3), 2, 2, 2, 1, 4, 35300000000),
]


@pytest.mark.parametrize("case,options,tp,pp,nodes,workers,total,weight", SEED_PLANS, ids=[p[0] for p in SEED_PLANS])
def test_plans(case, options, tp, pp, nodes, workers, total, weight):
    plan = plan_topology(**options)
    assert (plan["tensor_parallel_size"], plan["pipeline_parallel_size"], plan["nodes"], plan["workers"],
            plan["total_gpus"], plan["weight_bytes_per_gpu"]) == (tp, pp, nodes, workers, total, weight)
    gpu_bytes = plan["gpu_memory_gb"] * 10 ** 9
    assert plan["headroom_fraction"] == round((gpu_bytes - weight) / gpu_bytes, 3)


def test_notes_single_node_and_unused_nodes():
    plan = plan_topology(**h100(model="llama-3.1-405b", precision="fp8"))
    assert plan["notes"] == [
        "The model fits on one node of 8 GPUs: multi-node is not needed; nim_values refuses fewer than 2 nodes, "
        "deploy it single-node instead.",
        "1 of 2 available node(s) stay unused; set nodes to spread the model wider.",
    ]


def test_note_for_tensor_parallelism_across_nodes():
    plan = plan_topology(**h100(model="llama-3.1-405b", nodes=2, interconnect="infiniband",
                                cross_node_parallelism="tensor"))
    assert plan["notes"] == ["Tensor parallelism spans 2 nodes: NCCL must use infiniband (check NCCL_IB_DISABLE=0 "
                             "and NCCL_IB_HCA on every node)."]
    assert "TP=16: one tensor-parallel group spans all 2 nodes over infiniband; PP=1." in plan["explanation"]


def test_more_headroom_needs_more_nodes():
    assert plan_topology(**h100(model="llama-3.1-405b", nodes_available=4, headroom=0.4))["nodes"] == 3


def test_tables_are_consistent():
    for name, spec in MODELS.items():
        assert spec["parameters_billion"] > 0 and spec["layers"] > 0 and spec["heads"] > 0, name
    assert all(gpu["memory_gb"] > 0 for gpu in GPU_TYPES.values())


REFUSALS = [
    ("405b on one node", h100(model="llama-3.1-405b", nodes_available=1), PlanError, "does_not_fit",
     ["on all 1 node(s) x 8 GPUs each GPU would hold 101.5 GB, 37.5 GB more than fits",
      "Fix: make 2 node(s) available (1 more)"]),
    ("deepseek on a100 40gb", dict(model="deepseek-r1", gpu_type="a100-40gb", gpus_per_node=8, nodes_available=2),
     PlanError, "does_not_fit", ["42.6 GB, 10.6 GB more than fits", "Fix: make 3 node(s) available (1 more)"]),
    ("fixed node count too small", h100(model="llama-3.1-405b", nodes=1), PlanError, "does_not_fit",
     ["on 1 node(s) x 8 GPUs each GPU would hold 101.5 GB, 37.5 GB more than fits", "Fix: set nodes to at least 2"]),
    ("multi-node tp on ethernet", h100(model="llama-3.1-405b", nodes=2, cross_node_parallelism="tensor"), PlanError,
     "multinode_tp_interconnect", ["16 GPUs across 2 nodes over ethernet", "RDMA",
                                   "Fix: use cross_node_parallelism=pipeline (TP=8, PP=2)"]),
    ("heads do not split", dict(model="mixtral-8x22b", gpu_type="h100-80gb", gpus_per_node=8, nodes_available=4,
                                nodes=4, interconnect="roce", cross_node_parallelism="tensor"), PlanError,
     "tensor_heads", ["48 attention heads, which do not split evenly over TP=32", "Fix: use a TP that divides 48"]),
    ("more stages than layers", dict(model="llama-3.1-8b", gpu_type="l40s-48gb", gpus_per_node=1, nodes_available=40,
                                     nodes=33), PlanError, "pipeline_layers",
     ["32 layers but PP=33", "Fix: use at most 32 nodes"]),
    ("more nodes than available", h100(model="llama-3.1-405b", nodes=4), PlanError, "not_enough_nodes",
     ["nodes is 4 but only 2 are available", "Fix: lower nodes to at most 2 or make 2 more node(s) available"]),
    ("model and size", h100(model="llama-3.1-8b", parameters_billion=8), InputError, "plan_input",
     ["both model and parameters_billion", "Fix: set model"]),
    ("no model", h100(), InputError, "plan_input", ["neither model nor parameters_billion", "Fix: set model"]),
    ("size without precision", h100(parameters_billion=8), InputError, "plan_input",
     ["without precision", "Fix: set precision"]),
    ("unknown model", h100(model="llama-9"), InputError, "plan_input",
     ["model 'llama-9' is not in the built-in table", "Fix: use one of deepseek-r1"]),
    ("gpu type and memory", h100(model="llama-3.1-8b", gpu_memory_gb=80), InputError, "plan_input",
     ["both gpu_type and gpu_memory_gb", "Fix: set gpu_type or gpu_memory_gb"]),
    ("no gpu", dict(model="llama-3.1-8b", gpus_per_node=8, nodes_available=2), InputError, "plan_input",
     ["neither gpu_type nor gpu_memory_gb", "Fix: set gpu_type"]),
    ("headroom 1", h100(model="llama-3.1-8b", headroom=1.0), InputError, "plan_input",
     ["headroom is 1.0", "Fix: set headroom between 0 and 0.9"]),
    ("no gpus per node", h100(model="llama-3.1-8b", gpus_per_node=0), InputError, "plan_input",
     ["gpus_per_node is 0", "Fix: set gpus_per_node"]),
    ("unknown interconnect", h100(model="llama-3.1-8b", interconnect="nvlink"), InputError, "plan_input",
     ["interconnect 'nvlink' is unknown", "Fix: use one of ethernet, infiniband, roce"]),
]


@pytest.mark.parametrize("case,options,error,rule,words", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusal(case, options, error, rule, words):
    with pytest.raises(error) as caught:
        plan_topology(**options)
    message = str(caught.value)
    assert caught.value.rule == rule
    assert message.startswith("[{0}] ".format(rule)) and " Why: " in message and " Fix: " in message
    for word in words:
        assert word in message, "{0!r} not in {1!r}".format(word, message)


def test_does_not_fit_details_give_the_shortfall():
    with pytest.raises(PlanError) as caught:
        plan_topology(**h100(model="llama-3.1-405b", nodes_available=1))
    assert caught.value.details == {"needed_nodes": 2, "short_bytes_per_gpu": 37475000000}


@pytest.mark.parametrize("case", ["405b 2x8", "deepseek-r1 2x8", "405b tp16 infiniband", "405b 4 nodes"])
def test_plan_feeds_values(case):
    """The plan's return keys are nim_values option names; the values it gives are accepted as they are."""
    options = {
        "405b 2x8": h100(model="llama-3.1-405b"),
        "deepseek-r1 2x8": h100(model="deepseek-r1"),
        "405b tp16 infiniband": h100(model="llama-3.1-405b", nodes=2, interconnect="infiniband",
                                     cross_node_parallelism="tensor"),
        "405b 4 nodes": h100(model="llama-3.1-405b", nodes_available=4, nodes=4),
    }[case]
    plan = plan_topology(**options)
    keys = ("tensor_parallel_size", "pipeline_parallel_size", "nodes", "gpus_per_node", "interconnect", "model_size_gb")
    values = build_values(
        image={"repository": "nvcr.io/nim/nim-llm", "tag": "1.13.1"}, image_pull_secret="nvcr-imagepull",
        ngc_api_secret="ngc-api", storage={"kind": "pvc", "size": "1000Gi", "storage_class": "nfs-rwx"},
        **{key: plan[key] for key in keys})["values"]
    assert values["multiNode"] == {"enabled": True, "workers": plan["workers"],
                                   "tensorParallelSize": plan["tensor_parallel_size"],
                                   "pipelineParallelSize": plan["pipeline_parallel_size"], "ray": {"port": 6379}}
    assert values["resources"]["limits"] == {"nvidia.com/gpu": plan["gpus_per_node"]}
