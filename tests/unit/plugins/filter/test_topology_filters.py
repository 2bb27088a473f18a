# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""plan_conflict and topology_problem: the topology rules as filters, for the two public roles."""

from __future__ import annotations

import pytest

from ansible_collections.nimops.multinode.plugins.filter.plan_conflict import FilterModule as PlanConflict
from ansible_collections.nimops.multinode.plugins.filter.topology_problem import FilterModule as TopologyProblem

plan_conflict = PlanConflict().filters()["plan_conflict"]
topology_problem = TopologyProblem().filters()["topology_problem"]
PLAN = {"nodes": 2, "tensor_parallel_size": 8, "pipeline_parallel_size": 2, "gpus_per_node": 8,
        "interconnect": "ethernet", "model_size_gb": 811.8}


@pytest.mark.parametrize("planned,explicit", [
    ({}, {"nodes": 4}),  # nothing planned: nothing to contradict
    (PLAN, {}),
    (PLAN, {"nodes": 2, "gpus_per_node": "8", "interconnect": "Ethernet"}),  # the same, as strings and in any case
])
def test_settings_that_agree_with_the_plan(planned, explicit):
    assert plan_conflict(planned, explicit) == ""


def test_each_contradicting_setting_is_named_with_both_values():
    msg = plan_conflict(PLAN, {"nodes": 4, "tensor_parallel_size": 8, "interconnect": "roce"}, "nim_docker_")
    assert msg == ("[plan_conflict] nim_docker_nodes 4 (the plan says 2), nim_docker_interconnect roce (the plan says "
                   "ethernet). Why: an explicit setting and the plan would deploy different topologies, and one of them "
                   "would be ignored. Fix: remove nim_docker_nodes and nim_docker_interconnect and let the plan decide, "
                   "or give the plan the same constraint (nim_docker_plan.nodes, nim_docker_plan.gpus_per_node, "
                   "nim_docker_plan.interconnect).")


@pytest.mark.parametrize("tp,pp,nodes,gpus,interconnect,rule", [
    (8, 2, 2, 8, "ethernet", ""),
    (16, 1, 2, 8, "infiniband", ""),
    (8, 1, 2, 8, "ethernet", "[gpu_count]"),
    (16, 1, 2, 8, "ethernet", "[multinode_tp_interconnect]"),
    (4, 3, 2, 6, "ethernet", "[tp_layout]"),
    ("eight", 2, 2, 8, "ethernet", "[parallelism_choice]"),
])
def test_topology_problem_applies_the_values_rules(tp, pp, nodes, gpus, interconnect, rule):
    msg = topology_problem(tp, pp, nodes, gpus, interconnect)
    assert msg.startswith(rule) if rule else msg == ""
    if rule:
        assert ". Fix: " in msg
