# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE: this module_utils file is internal to nimops.multinode and may change without notice.
"""Topology planner: how many nodes, and which tensor/pipeline split, a model needs.

The standard layout is TP = GPUs per node (tensor parallelism stays inside a node, on NVLink) and
PP = nodes (one pipeline stage per node, which tolerates Ethernet between nodes). Tensor parallelism
across nodes is only offered when the interconnect is RDMA (InfiniBand or RoCE).

Only weights are sized here; the headroom fraction keeps the rest of each GPU for KV cache, activations
and the CUDA/NCCL runtime. Sizes use decimal units (1 GB = 10**9 bytes), as model cards do.
"""

from __future__ import annotations

import math

from ansible_collections.nimops.multinode.plugins.module_utils._common_args import TOPOLOGY_ARGSPEC
from ansible_collections.nimops.multinode.plugins.module_utils._errors import InputError, PlanError

GB = 10 ** 9

# Memory per GPU in GB as sold (decimal).
GPU_TYPES = {
    "a100-40gb": {"label": "A100 40GB", "memory_gb": 40},
    "a100-80gb": {"label": "A100 80GB", "memory_gb": 80},
    "h100-80gb": {"label": "H100 80GB", "memory_gb": 80},
    "h100-94gb": {"label": "H100 NVL 94GB", "memory_gb": 94},
    "h200-141gb": {"label": "H200 141GB", "memory_gb": 141},
    "l40s-48gb": {"label": "L40S 48GB", "memory_gb": 48},
    "b200-180gb": {"label": "B200 180GB", "memory_gb": 180},
}

PRECISION_BYTES = {
    "fp32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5,
    "fp4": 0.5,
}

# Parameter counts from the model cards; precision is the one the weights are published in.
# layers bound the pipeline depth, attention heads must split evenly across a tensor-parallel group.
MODELS = {
    "llama-3.1-8b": {"label": "Llama 3.1 8B", "parameters_billion": 8.03, "precision": "bf16", "layers": 32, "heads": 32},
    "llama-3.1-70b": {"label": "Llama 3.1 70B", "parameters_billion": 70.6, "precision": "bf16", "layers": 80, "heads": 64},
    "llama-3.1-405b": {"label": "Llama 3.1 405B", "parameters_billion": 405.9, "precision": "bf16", "layers": 126, "heads": 128},
    "llama-3.3-70b": {"label": "Llama 3.3 70B", "parameters_billion": 70.6, "precision": "bf16", "layers": 80, "heads": 64},
    "deepseek-r1": {"label": "DeepSeek-R1 671B", "parameters_billion": 671.0, "precision": "fp8", "layers": 61, "heads": 128},
    "mixtral-8x22b": {"label": "Mixtral 8x22B", "parameters_billion": 141.0, "precision": "bf16", "layers": 56, "heads": 48},
    "nemotron-4-340b": {"label": "Nemotron-4 340B", "parameters_billion": 340.0, "precision": "bf16", "layers": 96, "heads": 96},
    "qwen2.5-72b": {"label": "Qwen2.5 72B", "parameters_billion": 72.7, "precision": "bf16", "layers": 80, "heads": 64},
}

INTERCONNECTS = ("ethernet", "infiniband", "roce")
RDMA_INTERCONNECTS = ("infiniband", "roce")
CROSS_NODE = ("pipeline", "tensor")

# Upper bound of the "how many nodes would it take" search in a refusal.
MAX_NODES_SEARCH = 1024


def _gb(value):
    return round(value / GB, 1)


def _model_spec(model, parameters_billion, precision):
    if model is not None and parameters_billion is not None:
        raise InputError(
            "plan_input", "both model and parameters_billion are set",
            "the size must come from one place",
            "set model (a known name) or parameters_billion with precision, not both")
    if model is not None:
        if model not in MODELS:
            raise InputError(
                "plan_input", "model '{0}' is not in the built-in table".format(model),
                "the planner only knows the sizes of the models it lists",
                "use one of {0}, or give parameters_billion and precision".format(", ".join(sorted(MODELS))))
        spec = dict(MODELS[model])
        if precision is not None:
            spec["precision"] = precision
        return spec
    if parameters_billion is None:
        raise InputError(
            "plan_input", "neither model nor parameters_billion is set",
            "the planner needs the model size to place the weights",
            "set model (e.g. llama-3.1-405b) or parameters_billion with precision")
    if parameters_billion <= 0:
        raise InputError(
            "plan_input", "parameters_billion is {0}".format(parameters_billion),
            "a model has a positive number of parameters", "give the parameter count in billions, e.g. 405")
    if precision is None:
        raise InputError(
            "plan_input", "parameters_billion is set without precision",
            "bytes per parameter depend on the precision of the weights",
            "set precision to one of {0}".format(", ".join(PRECISION_BYTES)))
    return {"label": "{0:g}B-parameter model".format(parameters_billion), "parameters_billion": parameters_billion,
            "precision": precision, "layers": None, "heads": None}


def _gpu_spec(gpu_type, gpu_memory_gb):
    if gpu_type is not None and gpu_memory_gb is not None:
        raise InputError(
            "plan_input", "both gpu_type and gpu_memory_gb are set",
            "GPU memory must come from one place", "set gpu_type or gpu_memory_gb, not both")
    if gpu_type is not None:
        if gpu_type not in GPU_TYPES:
            raise InputError(
                "plan_input", "gpu_type '{0}' is not in the built-in table".format(gpu_type),
                "the planner only knows the memory of the GPUs it lists",
                "use one of {0}, or give gpu_memory_gb".format(", ".join(sorted(GPU_TYPES))))
        return dict(GPU_TYPES[gpu_type])
    if gpu_memory_gb is None:
        raise InputError(
            "plan_input", "neither gpu_type nor gpu_memory_gb is set",
            "the planner needs the memory of one GPU", "set gpu_type (e.g. h100-80gb) or gpu_memory_gb")
    if gpu_memory_gb <= 0:
        raise InputError(
            "plan_input", "gpu_memory_gb is {0}".format(gpu_memory_gb),
            "a GPU has a positive amount of memory", "give the memory of one GPU in GB, e.g. 80")
    return {"label": "{0:g} GB GPU".format(gpu_memory_gb), "memory_gb": gpu_memory_gb}


def _check_counts(gpus_per_node, nodes_available, nodes, headroom, interconnect, cross_node_parallelism):
    if gpus_per_node is None or gpus_per_node < 1:
        raise InputError(
            "plan_input", "gpus_per_node is {0}".format(gpus_per_node),
            "every node must contribute at least one GPU", "set gpus_per_node to the GPUs in one node, e.g. 8")
    if nodes_available is None or nodes_available < 1:
        raise InputError(
            "plan_input", "nodes_available is {0}".format(nodes_available),
            "the plan needs at least one node", "set nodes_available to the number of GPU nodes you can use")
    if nodes is not None and nodes < 1:
        raise InputError(
            "plan_input", "nodes is {0}".format(nodes), "a deployment needs at least one node",
            "set nodes to 2 or more, or leave it unset to use the fewest nodes that fit")
    if nodes is not None and nodes > nodes_available:
        raise PlanError(
            "not_enough_nodes", "nodes is {0} but only {1} are available".format(nodes, nodes_available),
            "every pipeline stage needs a node of its own",
            "lower nodes to at most {0} or make {1} more node(s) available".format(nodes_available, nodes - nodes_available))
    if headroom is None or not 0 <= headroom < 1:
        raise InputError(
            "plan_input", "headroom is {0}".format(headroom),
            "headroom is the fraction of each GPU kept free for KV cache and activations (0 to below 1)",
            "set headroom between 0 and 0.9, e.g. 0.2")
    if interconnect not in INTERCONNECTS:
        raise InputError(
            "plan_input", "interconnect '{0}' is unknown".format(interconnect),
            "the planner decides on cross-node tensor parallelism from the interconnect",
            "use one of {0}".format(", ".join(INTERCONNECTS)))
    if cross_node_parallelism not in CROSS_NODE:
        raise InputError(
            "plan_input", "cross_node_parallelism '{0}' is unknown".format(cross_node_parallelism),
            "nodes are joined either by pipeline stages or by one tensor-parallel group",
            "use pipeline (the standard) or tensor (needs InfiniBand or RoCE)")


def _layout(nodes, gpus_per_node, cross_node_parallelism):
    """(TP, PP) for a node count: TP inside the node and one pipeline stage per node, or one TP group."""
    if cross_node_parallelism == "tensor":
        return gpus_per_node * nodes, 1
    return gpus_per_node, nodes


def _weight_bytes_per_gpu(total_bytes, tp, pp, layers):
    # Pipeline stages hold whole layers, so the largest stage has ceil(layers / PP) of them.
    share = (math.ceil(layers / pp) / layers) if layers else (1.0 / pp)
    return int(math.ceil(total_bytes * share / tp))


def plan_topology(model=None, parameters_billion=None, precision=None, gpu_type=None, gpu_memory_gb=None,
                  gpus_per_node=None, nodes_available=None, nodes=None, interconnect="ethernet",
                  headroom=0.2, cross_node_parallelism="pipeline"):
    """Propose TP/PP/nodes for a model on a fleet of identical GPU nodes, or refuse with the shortfall."""
    spec = _model_spec(model, parameters_billion, precision)
    gpu = _gpu_spec(gpu_type, gpu_memory_gb)
    _check_counts(gpus_per_node, nodes_available, nodes, headroom, interconnect, cross_node_parallelism)

    precision = spec["precision"]
    if precision not in PRECISION_BYTES:
        raise InputError(
            "plan_input", "precision '{0}' is unknown".format(precision),
            "bytes per parameter depend on the precision",
            "use one of {0}".format(", ".join(PRECISION_BYTES)))
    total_bytes = int(round(spec["parameters_billion"] * GB * PRECISION_BYTES[precision]))
    gpu_bytes = gpu["memory_gb"] * GB
    usable_bytes = gpu_bytes * (1 - headroom)
    layers = spec["layers"]

    def per_gpu(count):
        tp, pp = _layout(count, gpus_per_node, cross_node_parallelism)
        return _weight_bytes_per_gpu(total_bytes, tp, pp, layers)

    def fewest_nodes_that_fit(limit):
        for count in range(1, limit + 1):
            if layers and _layout(count, gpus_per_node, cross_node_parallelism)[1] > layers:
                return None
            if per_gpu(count) <= usable_bytes:
                return count
        return None

    fit_text = ("{0} at {1} is {2} GB of weights; one {3} keeps {4} GB for weights "
                "after {5:.0%} headroom for KV cache and activations").format(
        spec["label"], precision, _gb(total_bytes), gpu["label"], _gb(usable_bytes), headroom)

    if nodes is None:
        count = fewest_nodes_that_fit(nodes_available)
        if count is None:
            needed = fewest_nodes_that_fit(MAX_NODES_SEARCH)
            short = per_gpu(nodes_available) - usable_bytes
            raise PlanError(
                "does_not_fit",
                "{0}; on all {1} node(s) x {2} GPUs each GPU would hold {3} GB, {4} GB more than fits".format(
                    fit_text, nodes_available, gpus_per_node, _gb(per_gpu(nodes_available)), _gb(short)),
                "weights that do not fit leave no room to serve, and the server fails while loading",
                "{0}, use GPUs with more memory, a lower precision, or a smaller headroom".format(
                    "make {0} node(s) available ({1} more)".format(needed, needed - nodes_available)
                    if needed else "no node count up to {0} fits; choose a smaller model".format(MAX_NODES_SEARCH)),
                needed_nodes=needed, short_bytes_per_gpu=int(short))
    else:
        count = nodes
        if per_gpu(count) > usable_bytes:
            needed = fewest_nodes_that_fit(MAX_NODES_SEARCH)
            short = per_gpu(count) - usable_bytes
            raise PlanError(
                "does_not_fit",
                "{0}; on {1} node(s) x {2} GPUs each GPU would hold {3} GB, {4} GB more than fits".format(
                    fit_text, count, gpus_per_node, _gb(per_gpu(count)), _gb(short)),
                "weights that do not fit leave no room to serve, and the server fails while loading",
                "{0}, use GPUs with more memory, or a lower precision".format(
                    "set nodes to at least {0}".format(needed) if needed else "choose a smaller model"),
                needed_nodes=needed, short_bytes_per_gpu=int(short))

    tp, pp = _layout(count, gpus_per_node, cross_node_parallelism)
    if tp > gpus_per_node and interconnect not in RDMA_INTERCONNECTS:
        raise PlanError(
            "multinode_tp_interconnect",
            "cross_node_parallelism=tensor puts one tensor-parallel group of {0} GPUs across {1} nodes "
            "over {2}".format(tp, count, interconnect),
            "tensor parallelism exchanges activations on every layer, which needs RDMA bandwidth and latency; "
            "over Ethernet it runs far slower or times out",
            "use cross_node_parallelism=pipeline (TP={0}, PP={1}), or declare interconnect infiniband/roce "
            "if the nodes have it".format(gpus_per_node, count))
    if spec["heads"] and spec["heads"] % tp:
        raise PlanError(
            "tensor_heads",
            "{0} has {1} attention heads, which do not split evenly over TP={2}".format(spec["label"], spec["heads"], tp),
            "each tensor-parallel rank must hold the same number of heads",
            "use a TP that divides {0} (fewer GPUs per node or cross_node_parallelism=pipeline)".format(spec["heads"]))
    if layers and pp > layers:
        raise PlanError(
            "pipeline_layers",
            "{0} has {1} layers but PP={2}".format(spec["label"], layers, pp),
            "every pipeline stage needs at least one layer",
            "use at most {0} nodes for pipeline stages".format(layers))

    weight_bytes = per_gpu(count)
    free_bytes = gpu_bytes - weight_bytes
    notes = []
    if count == 1:
        notes.append("The model fits on one node of {0} GPUs: multi-node is not needed; "
                     "nim_values refuses fewer than 2 nodes, deploy it single-node instead.".format(gpus_per_node))
    if nodes is None and count < nodes_available:
        notes.append("{0} of {1} available node(s) stay unused; set nodes to spread the model "
                     "wider.".format(nodes_available - count, nodes_available))
    if tp > gpus_per_node:
        notes.append("Tensor parallelism spans {0} nodes: NCCL must use {1} (check NCCL_IB_DISABLE=0 and "
                     "NCCL_IB_HCA on every node).".format(count, interconnect))
    if pp > 1 and interconnect == "ethernet":
        notes.append("Nodes talk over Ethernet: only pipeline traffic crosses nodes, which it tolerates; "
                     "expect lower throughput than with RDMA.")

    if tp > gpus_per_node:
        how = ("TP={0}: one tensor-parallel group spans all {1} nodes over {2}; PP=1".format(tp, count, interconnect))
    elif count == 1:
        how = "TP={0}: all GPUs of one node; PP=1".format(tp)
    else:
        how = ("TP={0} = GPUs per node, so tensor traffic stays inside each node; PP={1} = nodes, one pipeline "
               "stage per node, so only stage-to-stage activations cross the {2} network".format(tp, pp, interconnect))
    explanation = ("{0}, so it needs {1} node(s) of {2} GPUs ({3} GPUs). {4}. Each GPU holds {5} GB of "
                   "weights and keeps {6} GB ({7:.0%}) free.").format(
        fit_text, count, gpus_per_node, tp * pp, how, _gb(weight_bytes), _gb(free_bytes), free_bytes / gpu_bytes)

    return {
        "model": model,
        "parameters_billion": spec["parameters_billion"],
        "precision": precision,
        "gpu_memory_gb": gpu["memory_gb"],
        "tensor_parallel_size": tp,
        "pipeline_parallel_size": pp,
        "nodes": count,
        "workers": count - 1,
        "gpus_per_node": gpus_per_node,
        "total_gpus": tp * pp,
        "interconnect": interconnect,
        "model_size_gb": _gb(total_bytes),
        "weight_bytes_per_gpu": weight_bytes,
        "weight_gb_per_gpu": _gb(weight_bytes),
        "headroom_gb_per_gpu": _gb(free_bytes),
        "headroom_fraction": round(free_bytes / gpu_bytes, 3),
        "notes": notes,
        "explanation": explanation,
    }


# The plan's results that a user may also set explicitly (nim_values option names).
PLANNED_KEYS = ("nodes", "tensor_parallel_size", "pipeline_parallel_size", "gpus_per_node", "interconnect")


def plan_conflict(planned, explicit, prefix="nim_"):
    """Refuse explicit topology settings that contradict the plan: the plan never silently overrides them.

    ``planned`` is nim_plan's result (or empty: nothing planned), ``explicit`` maps nim_values option names to what
    the user set; ``prefix`` turns an option into the user's variable name. Returns the refusal or ''.
    """
    if not planned:
        return ""
    clashes = []
    for key in PLANNED_KEYS:
        mine = explicit.get(key)
        if mine is not None and str(mine).strip().lower() != str(planned[key]).lower():
            clashes.append((key, mine, planned[key]))
    if not clashes:
        return ""
    what = ", ".join("%s%s %s (the plan says %s)" % (prefix, key, mine, plan) for key, mine, plan in clashes)
    fix = ("remove %s and let the plan decide, or give the plan the same constraint (%splan.nodes, "
           "%splan.gpus_per_node, %splan.interconnect)" % (
               " and ".join(prefix + key for key, _m, _p in clashes), prefix, prefix, prefix))
    return PlanError("plan_conflict", what, "an explicit setting and the plan would deploy different topologies, "
                     "and one of them would be ignored", fix).message


# The options of nimops.multinode.nim_plan (its module and its controller-side action share them).
PLAN_ARGSPEC = dict(
    model=dict(type="str", choices=list(MODELS)),
    parameters_billion=dict(type="float"),
    precision=dict(type="str", choices=list(PRECISION_BYTES)),
    gpu_type=dict(type="str", choices=list(GPU_TYPES)),
    gpu_memory_gb=dict(type="float"),
    nodes_available=dict(type="int", required=True),
    nodes=dict(type="int"),
    headroom=dict(type="float", default=0.2),
    cross_node_parallelism=dict(type="str", choices=["pipeline", "tensor"], default="pipeline"),
    **TOPOLOGY_ARGSPEC
)
PLAN_CONSTRAINTS = dict(
    mutually_exclusive=[("model", "parameters_billion"), ("gpu_type", "gpu_memory_gb")],
    required_one_of=[("model", "parameters_billion"), ("gpu_type", "gpu_memory_gb")],
    required_by={"parameters_billion": "precision"},
)
