# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bare-host containers' host options, and the refusal for malformed ones (also through the filters)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.nimops.multinode.plugins.filter.container_host_options import FilterModule as HostOptions
from ansible_collections.nimops.multinode.plugins.filter.container_options_problem import (
    FilterModule as OptionsProblem)
from ansible_collections.nimops.multinode.plugins.module_utils._errors import InputError
from ansible_collections.nimops.multinode.plugins.module_utils._host_options import (
    container_host_options, host_options_problem)

host_options_filter = HostOptions().filters()["container_host_options"]
options_problem_filter = OptionsProblem().filters()["container_options_problem"]


def test_gpus_only_give_one_nvidia_device_request_and_nothing_else():
    assert container_host_options(8) == {
        "device_requests": [{"driver": "nvidia", "count": 8, "capabilities": [["gpu"]]}],
        "devices": [], "capabilities": [], "ulimits": [], "ipc_mode": ""}


def test_no_gpus_request_no_device():
    assert container_host_options("0")["device_requests"] == []


def test_rdma_adds_devices_ipc_lock_and_the_memlock_limit_after_the_other_limits():
    options = container_host_options(8, "true", ["/dev/infiniband", "/opt/ib:/dev/infiniband"], "68719476736",
                                     ["nofile:65536:65536"], "host")
    assert options["devices"] == ["/dev/infiniband", "/opt/ib:/dev/infiniband"]
    assert options["capabilities"] == ["CAP_IPC_LOCK"]
    assert options["ulimits"] == ["nofile:65536:65536", "memlock:68719476736:68719476736"]
    assert options["ipc_mode"] == "host"


def test_rdma_off_ignores_the_rdma_devices_and_memlock():
    options = container_host_options(8, False, ["/dev/infiniband"], -1, ["stack:67108864"])
    assert (options["devices"], options["capabilities"], options["ulimits"]) == ([], [], ["stack:67108864"])


def test_unlimited_memlock_is_minus_one_on_both_limits():
    assert container_host_options(0, True, ["/dev/infiniband"])["ulimits"] == ["memlock:-1:-1"]


def test_well_formed_options_have_no_problem():
    assert host_options_problem(True, ["/dev/infiniband"], -1, ["nofile:1024", "stack:-1:-1"], "nim_docker_") == ""


@pytest.mark.parametrize("kwargs,named", [
    ({"memlock": -2}, "nim_docker_memlock -2 is not a byte count or -1"),
    ({"memlock": "lots"}, "nim_docker_memlock 'lots' is not a byte count"),
    ({"rdma_devices": ["dev/infiniband", "/dev/infiniband"]},
     "nim_docker_rdma_devices ['dev/infiniband'] are not absolute paths"),
    ({"rdma_devices": ["/a:/b:/c"]}, "nim_docker_rdma_devices ['/a:/b:/c']"),
    ({"ulimits": ["nofile=1024"]}, "nim_docker_ulimits entry 'nofile=1024' is not name:soft or name:soft:hard"),
    ({"ulimits": ["nofile:1024", "nofile:2048"]}, "nim_docker_ulimits names nofile twice"),
    ({"rdma": True, "ulimits": ["memlock:1024"]},
     "nim_docker_ulimits sets memlock, which nim_docker_memlock sets when RDMA is on"),
])
def test_each_malformed_option_is_named(kwargs, named):
    problem = host_options_problem(prefix="nim_docker_", **kwargs)
    assert problem.startswith("[container_options] ") and named in problem, problem
    assert "Why: " in problem and "Fix: " in problem


def test_memlock_among_the_limits_is_fine_without_rdma():
    assert host_options_problem(False, [], -1, ["memlock:1024"]) == ""


def test_every_problem_is_named_at_once():
    problem = host_options_problem(True, ["rel"], -5, ["bad"], "p_")
    assert "p_memlock" in problem and "p_rdma_devices" in problem and "p_ulimits entry 'bad'" in problem


def test_options_refuse_what_the_problem_names():
    with pytest.raises(InputError, match=r"^\[container_options\] ulimits entry 'x'"):
        container_host_options(8, False, [], -1, ["x"])


def test_the_filters_are_the_module_utils_functions():
    assert host_options_filter(2, True, ["/dev/infiniband"]) == container_host_options(2, True, ["/dev/infiniband"])
    assert options_problem_filter(True, [], -3, [], "docker_ray_cluster_").startswith(
        "[container_options] docker_ray_cluster_memlock -3")
    with pytest.raises(AnsibleFilterError, match=r"\[container_options\] memlock -9"):
        host_options_filter(2, True, ["/dev/infiniband"], -9)
