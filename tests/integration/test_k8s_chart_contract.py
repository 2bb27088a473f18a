"""The chart contract on the simulated cluster: the seed's 405B example against the MPI-based (1.x) stand-in chart
is refused before anything changes; given only nodes and GPUs it renders a group of the planned size with one
rank per GPU, and the wait never calls that chart's group ready (its Service takes the LeaderWorkerSet's name)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from k8s_playbooks import cleanup_namespace, example_vars, lws_named, resource_versions, run_playbook, sim_overrides

MPI_CHART = Path(__file__).resolve().parents[1] / "fixtures" / "nim-llm-1x-standin"


@pytest.fixture
def namespace(sim_cluster):
    name = f"chart-{uuid.uuid4().hex[:8]}"
    yield name
    cleanup_namespace(sim_cluster, name)


def mpi_chart_vars(sim, namespace, **overrides):
    extravars = dict(example_vars("llama-3.1-405b-2node.yml"), **sim_overrides(sim, namespace))
    extravars["nim_chart"] = {"source": "path", "ref": str(MPI_CHART)}
    extravars.update(overrides)
    return extravars


def test_seed_example_against_the_mpi_chart_is_refused_before_any_change(sim_cluster, namespace):
    sim = sim_cluster
    r = run_playbook(sim, "deploy-nim.yml", mpi_chart_vars(sim, namespace))
    assert r.rc != 0, r.out[-4000:]
    msg = r.failure_message()
    assert "[chart_generation] nim-llm 1.3.0-sim is an MPI-based (1.x) multi-node chart, which ignores " \
        "tensor_parallel_size, pipeline_parallel_size" in msg, msg
    assert resource_versions(sim, namespace) == {}


def test_mpi_chart_gets_the_planned_group_and_is_never_reported_ready(sim_cluster, namespace):
    sim = sim_cluster
    extravars = mpi_chart_vars(sim, namespace, nim_wait_timeout=120)
    for key in ("nim_tensor_parallel_size", "nim_pipeline_parallel_size"):
        extravars.pop(key)
    r = run_playbook(sim, "deploy-nim.yml", extravars)
    assert r.rc != 0, r.out[-4000:]
    assert "nim-llm 1.3.0-sim is MPI-based: 2 nodes x 8 GPUs run 16 MPI ranks." in r.out
    msg = r.failure_message()
    assert "[headless_service_conflict]" in msg, msg
    assert "1/1 groups ready" not in r.out
    assert re.search(r"[01]/1 groups with all pods Ready but not serving \(headless_service_conflict\)", r.out)
    lws = lws_named(sim, namespace)
    template = lws["spec"]["leaderWorkerTemplate"]
    assert template["size"] == 2
    leader = template["leaderTemplate"]["spec"]["containers"][0]
    assert leader["args"][:3] == ["--allow-run-as-root", "-n", "16"]
    assert str(leader["resources"]["limits"]["nvidia.com/gpu"]) == "8"
