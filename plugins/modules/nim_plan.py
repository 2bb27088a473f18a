#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: nim_plan
short_description: Plan the multi-node topology (TP, PP, nodes) for a NIM model
version_added: 0.1.0
description:
  - Proposes how to split a model over identical GPU nodes, that is the tensor-parallel size (TP), the
    pipeline-parallel size (PP), the number of nodes and workers, and the weight bytes each GPU holds.
  - The standard layout is TP = GPUs per node (tensor traffic stays on NVLink inside a node) and
    PP = nodes (one pipeline stage per node). One tensor-parallel group across nodes
    (O(cross_node_parallelism=tensor)) is offered only on an RDMA interconnect.
  - Uses the fewest nodes whose GPUs hold the weights with O(headroom) left for KV cache and activations,
    unless O(nodes) fixes the count.
  - Refuses a plan that cannot fit or cannot work, and says by how much it misses
    (GB per GPU, nodes needed). The failure result carries C(rule), C(what), C(why), C(fix).
  - The return values C(tensor_parallel_size), C(pipeline_parallel_size), C(nodes), C(gpus_per_node),
    C(interconnect) and C(model_size_gb) have the names of M(nimops.multinode.nim_values) options.
  - Computes only; it contacts nothing and changes nothing.
author:
  - nimops maintainers (@nimops)
extends_documentation_fragment:
  - nimops.multinode.topology
  - nimops.multinode.attributes
  - nimops.multinode.attributes.pure
attributes:
  diff_mode:
    support: none
    details: There is nothing to compare; the plan is in the result.
options:
  model:
    description:
      - A model from the built-in table (parameter count, published precision, layers and attention heads).
      - Mutually exclusive with O(parameters_billion).
    type: str
    choices: [llama-3.1-8b, llama-3.1-70b, llama-3.1-405b, llama-3.3-70b, deepseek-r1, mixtral-8x22b,
              nemotron-4-340b, qwen2.5-72b]
  parameters_billion:
    description:
      - Parameter count in billions, for a model that is not in the table. Needs O(precision).
    type: float
  precision:
    description:
      - Precision of the weights. Defaults to the published precision of O(model); required with
        O(parameters_billion).
    type: str
    choices: [fp32, bf16, fp16, fp8, int8, int4, fp4]
  gpu_type:
    description:
      - A GPU from the built-in table. Mutually exclusive with O(gpu_memory_gb).
    type: str
    choices: [a100-40gb, a100-80gb, h100-80gb, h100-94gb, h200-141gb, l40s-48gb, b200-180gb]
  gpu_memory_gb:
    description:
      - Memory of one GPU in GB (10^9 bytes), for a GPU that is not in the table.
    type: float
  nodes_available:
    description:
      - GPU nodes that can be used for one replica.
    type: int
    required: true
  nodes:
    description:
      - Use exactly this many nodes instead of the fewest that fit (for example 4 for the seed's TP=8, PP=4).
    type: int
  headroom:
    description:
      - Fraction of each GPU's memory kept free of weights, for KV cache, activations and the runtime.
    type: float
    default: 0.2
  cross_node_parallelism:
    description:
      - How nodes are joined. V(pipeline) gives TP = O(gpus_per_node), PP = nodes.
        V(tensor) gives one tensor-parallel group over all GPUs (TP = nodes x GPUs per node, PP = 1) and
        needs O(interconnect=infiniband) or O(interconnect=roce).
    type: str
    choices: [pipeline, tensor]
    default: pipeline
notes:
  - Only weights are sized. Long contexts and large batches need more KV cache; raise O(headroom) for them.
seealso:
  - module: nimops.multinode.nim_values
"""

EXAMPLES = r"""
- name: Plan Llama 3.1 405B on 8-GPU H100 nodes over Ethernet
  nimops.multinode.nim_plan:
    model: llama-3.1-405b
    gpu_type: h100-80gb
    gpus_per_node: 8
    nodes_available: 2
  register: plan

- name: Show why
  ansible.builtin.debug:
    msg: "{{ plan.explanation }}"

- name: One tensor-parallel group across two InfiniBand nodes (TP=16, PP=1)
  nimops.multinode.nim_plan:
    model: llama-3.1-405b
    gpu_type: h100-80gb
    gpus_per_node: 8
    nodes_available: 2
    nodes: 2
    interconnect: infiniband
    cross_node_parallelism: tensor

- name: A model that is not in the table
  nimops.multinode.nim_plan:
    parameters_billion: 180
    precision: bf16
    gpu_memory_gb: 48
    gpus_per_node: 4
    nodes_available: 6
"""

RETURN = r"""
tensor_parallel_size:
  description: GPUs in one tensor-parallel group (option of the same name of M(nimops.multinode.nim_values)).
  returned: success
  type: int
  sample: 8
pipeline_parallel_size:
  description: Pipeline stages.
  returned: success
  type: int
  sample: 2
nodes:
  description: Nodes of one replica (leader plus workers).
  returned: success
  type: int
  sample: 2
workers:
  description: Worker pods per replica, O(nodes) - 1 (the chart's C(multiNode.workers)).
  returned: success
  type: int
  sample: 1
gpus_per_node:
  description: GPUs per node, as given.
  returned: success
  type: int
  sample: 8
total_gpus:
  description: TP x PP.
  returned: success
  type: int
  sample: 16
interconnect:
  description: The interconnect, as given.
  returned: success
  type: str
  sample: ethernet
model:
  description: The model name from the table, or null when O(parameters_billion) was used.
  returned: success
  type: str
  sample: llama-3.1-405b
parameters_billion:
  description: Parameter count in billions.
  returned: success
  type: float
  sample: 405.9
precision:
  description: Precision the weights were sized at.
  returned: success
  type: str
  sample: bf16
gpu_memory_gb:
  description: Memory of one GPU in GB.
  returned: success
  type: float
  sample: 80
model_size_gb:
  description: Size of all weights in GB; also what each node downloads without shared storage.
  returned: success
  type: float
  sample: 811.8
weight_bytes_per_gpu:
  description: Bytes of weights on the fullest GPU (pipeline stages hold whole layers).
  returned: success
  type: int
  sample: 50737500000
weight_gb_per_gpu:
  description: RV(weight_bytes_per_gpu) in GB, rounded.
  returned: success
  type: float
  sample: 50.7
headroom_gb_per_gpu:
  description: GB of each GPU left after the weights, for KV cache, activations and the runtime.
  returned: success
  type: float
  sample: 29.3
headroom_fraction:
  description: The same as a fraction of the GPU's memory.
  returned: success
  type: float
  sample: 0.366
notes:
  description: Things to know about the plan (unused nodes, single node is enough, RDMA needed).
  returned: success
  type: list
  elements: str
  sample: []
explanation:
  description: A short human explanation of the plan and why.
  returned: success
  type: str
  sample: "Llama 3.1 405B at bf16 is 811.8 GB of weights; ... so it needs 2 node(s) of 8 GPUs (16 GPUs)."
rule:
  description: On failure, the id of the rule that refused the plan (for example C(does_not_fit)).
  returned: failure
  type: str
  sample: does_not_fit
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nimops.multinode.plugins.module_utils._errors import run_pure
from ansible_collections.nimops.multinode.plugins.module_utils._plan import PLAN_ARGSPEC, PLAN_CONSTRAINTS, plan_topology


def main():
    module = AnsibleModule(argument_spec=PLAN_ARGSPEC, supports_check_mode=True, **PLAN_CONSTRAINTS)
    run_pure(module, lambda params: plan_topology(**params))


if __name__ == "__main__":
    main()
