# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""gpu_inventory: nvidia-smi's CSV query reduced to what two members of a replica must share."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.nimops.multinode.plugins.filter.gpu_inventory import FilterModule

gpu_inventory = FilterModule().filters()["gpu_inventory"]

H100 = "NVIDIA H100 80GB HBM3, 550.54.15, 81559"


def test_eight_equal_gpus_are_one_kind():
    assert gpu_inventory("\n".join([H100] * 8) + "\n") == {
        "count": 8, "models": ["NVIDIA H100 80GB HBM3"], "drivers": ["550.54.15"],
        "text": "8 x NVIDIA H100 80GB HBM3 (81559 MiB), driver 550.54.15"}


@pytest.mark.parametrize("other", [
    "\n".join([H100] * 7),                                                    # one GPU fewer (a fallen-off card)
    "\n".join([H100] * 7 + ["NVIDIA H100 PCIe, 550.54.15, 81559"]),           # another model
    "\n".join([H100.replace("550.54.15", "535.161.08")] * 8),                 # another driver
    "\n".join([H100] * 7 + [H100.replace("81559", "40960")]),                 # another memory size (a MIG slice)
])
def test_any_difference_changes_the_text(other):
    assert gpu_inventory(other)["text"] != gpu_inventory("\n".join([H100] * 8))["text"]


def test_mixed_models_are_each_counted():
    assert gpu_inventory("A100-SXM4-40GB, 535.1, 40960\nNVIDIA H100 80GB HBM3, 535.1, 81559\n")["text"] == \
        "1 x A100-SXM4-40GB (40960 MiB), 1 x NVIDIA H100 80GB HBM3 (81559 MiB), driver 535.1"


def test_no_output_is_no_gpus():
    assert gpu_inventory("") == {"count": 0, "models": [], "drivers": [], "text": "no GPUs"}


@pytest.mark.parametrize("line", ["No devices were found", "NVIDIA H100, 550.54.15, [N/A]"])
def test_a_line_that_is_not_the_query_is_refused_with_it(line):
    with pytest.raises(AnsibleFilterError, match="unexpected nvidia-smi line"):
        gpu_inventory(line)
