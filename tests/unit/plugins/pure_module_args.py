# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Valid arguments of nim_plan and nim_values (the seed's 405B two-node example), shared by their module and
action-plugin tests."""

from __future__ import annotations

PLAN_ARGS = {"model": "llama-3.1-405b", "gpu_type": "h100-80gb", "gpus_per_node": 8, "nodes_available": 2}
VALUES_ARGS = {
    "image": {"repository": "nvcr.io/nim/meta/llama-3.1-405b-instruct", "tag": "1.13.1"},
    "image_pull_secret": "nvcr-imagepull",
    "ngc_api_secret": "ngc-api",
    "tensor_parallel_size": 8,
    "pipeline_parallel_size": 2,
    "nodes": 2,
    "gpus_per_node": 8,
    "storage": {"kind": "pvc", "size": "1000Gi", "storage_class": "nfs-rwx"},
}
