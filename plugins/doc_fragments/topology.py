# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options that describe the GPU nodes of a multi-node replica.

The matching argument spec is ``TOPOLOGY_ARGSPEC`` in ``plugins/module_utils/_common_args.py``;
keep the two in step.
"""

from __future__ import annotations


class ModuleDocFragment:

    DOCUMENTATION = r"""
options:
  gpus_per_node:
    description:
      - GPUs in each node (all nodes of a replica are identical). Every pod requests all of them.
      - The standard layout uses this as the tensor-parallel size.
    type: int
    required: true
  interconnect:
    description:
      - The network between the nodes.
      - Tensor parallelism across nodes (TP larger than O(gpus_per_node)) is allowed only with
        V(infiniband) or V(roce), which carry RDMA. On V(ethernet) only pipeline stages cross nodes.
    type: str
    choices: [ethernet, infiniband, roce]
    default: ethernet
"""
