# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The chart contract: which nim-llm generation a chart is, and the values it accepts (both stand-in charts)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
import yaml

from ansible_collections.nimops.multinode.plugins.module_utils._chart_contract import (
    detect_generation, read_chart, schema_problems, unknown_keys)
from ansible_collections.nimops.multinode.plugins.module_utils._errors import InputError, ValuesRuleError
from ansible_collections.nimops.multinode.plugins.module_utils._values import build_values, build_values_for

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures"
RAY_CHART = FIXTURES / "nim-llm-testchart"
MPI_CHART = FIXTURES / "nim-llm-1x-standin"
IMAGE = {"repository": "nvcr.io/nim/meta/llama-3.1-405b-instruct", "tag": "1.3.0"}


def seed(**overrides):
    """The seed's 405B example (two 8-GPU nodes, TP=8, PP=2, RWX PVC)."""
    options = dict(image=dict(IMAGE), image_pull_secret="nvcr-imagepull", ngc_api_secret="ngc-api",
                   tensor_parallel_size=8, pipeline_parallel_size=2, nodes=2, gpus_per_node=8,
                   storage={"kind": "pvc", "size": "1000Gi", "storage_class": "nfs-rwx"})
    options.update(overrides)
    return {key: value for key, value in options.items() if value is not None}


def refused(options, rule):
    with pytest.raises(InputError) as err:
        build_values_for(options)
    assert err.value.rule == rule, str(err.value)
    return str(err.value)


def chart(values, schema=None, name="nim-llm", version="9.9.9"):
    return {"name": name, "version": version, "values": values, "schema": schema}


# ---------------------------------------------------------------------------------------------------------------
# Reading and detecting

def test_read_chart_from_folder_and_tgz_gives_the_same(tmp_path):
    folder = read_chart(str(MPI_CHART))
    tgz = tmp_path / "nim-llm-1.3.0-sim.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(MPI_CHART, arcname="nim-llm")
        # a subchart's values.yaml is not the chart's own
        data = b"multiNode: {ray: {port: 1}}\n"
        info = tarfile.TarInfo("nim-llm/charts/sub/values.yaml")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    assert read_chart(str(tgz)) == folder
    assert (folder["name"], folder["version"]) == ("nim-llm", "1.3.0-sim")
    assert folder["schema"]["properties"]["multiNode"]["properties"]["gpusPerNode"]["minimum"] == 1
    assert read_chart(str(RAY_CHART))["schema"]["properties"]["multiNode"]["properties"]["ray"]["properties"]["port"] \
        == {"type": "integer", "minimum": 1, "maximum": 65535}


def test_unreadable_chart_is_refused_with_the_rule(tmp_path):
    (tmp_path / "values.yaml").write_text("a: 1\n")
    with pytest.raises(InputError, match=r"\[chart_generation\] .* has no Chart.yaml and values.yaml"):
        read_chart(str(tmp_path))
    (tmp_path / "broken.tgz").write_bytes(b"not a tarball")
    with pytest.raises(InputError, match=r"\[chart_generation\] the chart at .*broken.tgz cannot be read"):
        read_chart(str(tmp_path / "broken.tgz"))


def test_generations_of_the_stand_ins():
    assert detect_generation(read_chart(str(RAY_CHART))) == "ray"
    assert detect_generation(read_chart(str(MPI_CHART))) == "mpi"


@pytest.mark.parametrize("values, found", [
    ({"image": {}}, "no multiNode section"),
    ({"multiNode": {"enabled": False, "workers": 1}}, "multiNode keys enabled, workers"),
    ({"multiNode": {"gpusPerNode": 1, "ray": {"port": 6379}}}, "multiNode keys gpusPerNode, ray"),
])
def test_unknown_generation_is_refused_saying_what_was_found(values, found):
    with pytest.raises(InputError) as err:
        detect_generation(chart(values, name="other-llm", version="0.1.0"))
    assert err.value.rule == "chart_generation"
    assert "other-llm 0.1.0 has {0}".format(found) in str(err.value)


# ---------------------------------------------------------------------------------------------------------------
# Unknown keys and the schema

DEFAULTS = {"model": {"name": "", "jsonLogging": True}, "resources": {"limits": {"nvidia.com/gpu": 1}},
            "gpuLimits": {"nvidia.com/gpu": 1},
            "podLabels": {}, "affinity": None, "env": [], "multiNode": {"workers": 1}}


@pytest.mark.parametrize("values, unknown", [
    ({"model": {"name": "x"}, "podLabels": {"any/label": "y"}, "affinity": {"nodeAffinity": {}}}, []),
    # Kubernetes objects passed through, and maps keyed by resource names
    ({"resources": {"limits": {"cpu": 4}, "requests": {"memory": "1Gi"}}}, []),
    ({"leader": {"resources": {"claims": []}}}, ["leader"]),
    ({"gpuLimits": {"nvidia.com/gpu": 2, "vendor.example/x": 1}}, []),
    ({"env": [{"name": "A", "value": "1"}]}, []),
    ({"model": {"profile": "tp8-pp2"}}, ["model.profile"]),
    ({"multiNode": {"workers": 2, "ray": {"port": 6379}}, "foo": 1}, ["multiNode.ray", "foo"]),
])
def test_unknown_keys(values, unknown):
    assert unknown_keys(values, DEFAULTS) == unknown


def test_a_key_the_schema_declares_is_known():
    schema = {"properties": {"model": {"properties": {"profile": {"type": "string"}}}}}
    assert unknown_keys({"model": {"profile": "x", "other": 1}}, DEFAULTS, schema) == ["model.other"]


def test_schema_problems_name_the_path():
    schema = read_chart(str(MPI_CHART))["schema"]
    problems = schema_problems({"multiNode": {"workers": 0, "gpusPerNode": "8"}, "image": {"pullPolicy": "Sometimes"}},
                               schema)
    assert problems == ["image.pullPolicy: 'Sometimes' is not one of ['Always', 'IfNotPresent', 'Never']",
                        "multiNode.gpusPerNode: '8' is not of type 'integer'",
                        "multiNode.workers: 0 is less than the minimum of 1"]
    assert schema_problems({"anything": 1}, None) == []


# ---------------------------------------------------------------------------------------------------------------
# Values for each generation

def test_seed_example_renders_for_the_ray_chart_as_without_a_chart():
    with_chart = build_values_for(dict(seed(), chart_path=str(RAY_CHART)))
    assert with_chart["chart_generation"] == "ray"
    assert with_chart["values"] == build_values(**seed())["values"]
    assert with_chart["values"]["multiNode"]["workers"] == 1


def test_seed_example_against_the_mpi_chart_is_refused_naming_the_options_it_ignores():
    msg = refused(dict(seed(), chart_path=str(MPI_CHART)), "chart_generation")
    assert "nim-llm 1.3.0-sim is an MPI-based (1.x) multi-node chart, which ignores tensor_parallel_size, " \
        "pipeline_parallel_size" in msg
    assert "Fix: remove tensor_parallel_size, pipeline_parallel_size (set nodes and gpus_per_node only)" in msg


@pytest.mark.parametrize("option, value", [
    ("profile", "tensorrt_llm-h100-fp8-tp8-pp2"), ("model_path", "hf://meta-llama/Llama-3.1-405B-Instruct"),
    ("ray_port", 6380),
])
def test_mpi_chart_refuses_each_option_it_ignores(option, value):
    options = seed(tensor_parallel_size=None, pipeline_parallel_size=None, **{option: value})
    if option == "model_path":
        options["hf_token_secret"] = "hf-token"
    msg = refused(dict(options, chart_path=str(MPI_CHART)), "chart_generation")
    assert "which ignores {0}".format(option) in msg


def test_mpi_chart_gets_workers_as_nodes_and_one_rank_per_gpu():
    result = build_values_for(dict(seed(tensor_parallel_size=None, pipeline_parallel_size=None),
                                   chart_path=str(MPI_CHART)))
    assert result["chart_generation"] == "mpi"
    assert result["values"]["multiNode"] == {"enabled": True, "workers": 2, "gpusPerNode": 8}
    assert result["values"]["model"] == {"ngcAPISecret": "ngc-api", "jsonLogging": False}
    assert "nim-llm 1.3.0-sim is MPI-based: 2 nodes x 8 GPUs run 16 MPI ranks." in result["notes"]


def test_mpi_workers_rule_in_extra_values_speaks_of_nodes():
    options = seed(tensor_parallel_size=None, pipeline_parallel_size=None, extra_values={"multiNode": {"workers": 1}})
    with pytest.raises(ValuesRuleError) as err:
        build_values_for(dict(options, chart_path=str(MPI_CHART)))
    assert err.value.rule == "workers"
    assert "extra_values sets multiNode.workers to 1 but nodes is 2" in str(err.value)


def test_unknown_chart_key_names_the_path_and_where_it_came_from():
    msg = refused(dict(seed(extra_values={"podLabels": {"team": "a"}, "multiNode": {"ray": {"address": "x"}},
                                          "frobnicate": True}), chart_path=str(RAY_CHART)), "unknown_chart_key")
    assert "nim-llm 2.0.0-sim's values.yaml does not declare multiNode.ray.address (set by extra_values), " \
        "frobnicate (set by extra_values)" in msg


def test_rendered_key_the_chart_lacks_names_its_option(tmp_path):
    values = yaml.safe_load((RAY_CHART / "values.yaml").read_text())
    del values["model"]["hfTokenSecret"]
    (tmp_path / "Chart.yaml").write_text("name: nim-llm\nversion: 2.1.0\n")
    (tmp_path / "values.yaml").write_text(yaml.safe_dump(values))
    msg = refused(dict(seed(hf_token_secret="hf-token"), chart_path=str(tmp_path)), "unknown_chart_key")
    assert "model.hfTokenSecret (set by hf_token_secret)" in msg


def test_values_the_schema_refuses_are_named_before_anything_changes():
    options = seed(tensor_parallel_size=None, pipeline_parallel_size=None,
                   extra_values={"image": {"pullPolicy": "Sometimes"}})
    msg = refused(dict(options, chart_path=str(MPI_CHART)), "chart_schema")
    assert "the values break nim-llm 1.3.0-sim's values.schema.json: image.pullPolicy: 'Sometimes' is not one of" in msg


def test_the_ray_based_stand_in_has_a_schema_of_its_own():
    msg = refused(dict(seed(extra_values={"service": {"type": "Headless"}}), chart_path=str(RAY_CHART)), "chart_schema")
    assert "the values break nim-llm 2.0.0-sim's values.schema.json: service.type: 'Headless' is not one of" in msg
    assert build_values_for(dict(seed(), chart_path=str(RAY_CHART)))["chart_generation"] == "ray"
