"""The chart contract on the simulated cluster: the seed's 405B example against the MPI-based (1.x) stand-in chart
is refused before anything changes; given only nodes and GPUs, that chart's rendered Service clash is refused
before anything changes (rendered_mismatch), and with the check turned off it renders a group of the planned size
with one rank per GPU that the wait never calls ready. A copy of the Ray-based stand-in that miscounts the group
(size = workers) is refused from its rendered objects."""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path

import pytest

from k8s_playbooks import cleanup_namespace, example_vars, lws_named, resource_versions, run_playbook, sim_overrides

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
MPI_CHART = FIXTURES / "nim-llm-1x-standin"
RAY_CHART = FIXTURES / "nim-llm-testchart"


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


def test_mpi_chart_clash_is_refused_from_the_rendered_objects_and_the_wait_names_it_too(sim_cluster, namespace):
    sim = sim_cluster
    extravars = mpi_chart_vars(sim, namespace, nim_wait_timeout=120)
    for key in ("nim_tensor_parallel_size", "nim_pipeline_parallel_size"):
        extravars.pop(key)
    r = run_playbook(sim, "deploy-nim.yml", extravars)
    assert r.rc != 0, r.out[-4000:]
    msg = r.failure_message()
    assert "[rendered_mismatch] nim-llm 1.3.0-sim rendered objects that differ from the plan: the Service " \
        "llama-405b-nim-llm has the LeaderWorkerSet's name and is not headless" in msg, msg
    assert "has size" not in msg and "nvidia.com/gpu" not in msg, msg
    assert resource_versions(sim, namespace) == {}

    # with the check off, the wait is the second line of defence: the group is never reported ready
    r = run_playbook(sim, "deploy-nim.yml", dict(extravars, nim_verify_rendered=False))
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


def miscounting_chart(folder: Path) -> Path:
    """The Ray-based stand-in with one line changed: its group size is multiNode.workers (the 1.x meaning) while its
    values.yaml still reads like 2.x, so the values pass every values check and only the render shows the fault."""
    chart = folder / "nim-llm"
    shutil.copytree(RAY_CHART, chart)
    lws = chart / "templates" / "leaderworkerset.yaml"
    text = lws.read_text()
    assert "size: {{ add1 (int .Values.multiNode.workers) }}" in text
    lws.write_text(text.replace("size: {{ add1 (int .Values.multiNode.workers) }}", "size: {{ int .Values.multiNode.workers }}"))
    meta = chart / "Chart.yaml"
    meta.write_text(re.sub(r"(?m)^version: .*$", "version: 2.0.0-miscount", meta.read_text()))
    return chart


def test_a_chart_that_renders_a_smaller_group_is_refused_before_anything_changes(sim_cluster, namespace, tmp_path):
    sim = sim_cluster
    # an existing namespace with the objects Kubernetes puts there: the snapshot must stay exactly as it is
    sim.kubectl("create", "namespace", namespace)
    before = resource_versions(sim, namespace)
    assert "Namespace/" + namespace in before
    extravars = mpi_chart_vars(sim, namespace)
    extravars["nim_chart"] = {"source": "path", "ref": str(miscounting_chart(tmp_path))}
    r = run_playbook(sim, "deploy-nim.yml", extravars)
    assert r.rc != 0, r.out[-4000:]
    msg = r.failure_message()
    assert "[rendered_mismatch] nim-llm 2.0.0-miscount rendered objects that differ from the plan: LeaderWorkerSet " \
        "llama-405b-nim-llm has size 1, the plan has 2 nodes per group" in msg, msg
    assert "Fix: use a chart whose LeaderWorkerSet size follows multiNode.workers" in msg, msg
    assert resource_versions(sim, namespace) == before
