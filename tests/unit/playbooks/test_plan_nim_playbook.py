# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/plan_nim.yml run by ansible-playbook on a deploy vars file: check, real, idempotent check, idempotent;
and refusals.

The playbook contacts nothing, so it needs no test bed; it does need the collection importable, which
tests/unit/conftest.py arranges (ROOT holds ansible_collections/nimops/multinode -> the work tree).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
ROOT = REPO / "build" / "unit-collections"  # made by tests/unit/conftest.py
PLAYBOOK = REPO / "playbooks" / "plan_nim.yml"
BIN = Path(sys.executable).parent

# The seed's example as a deploy vars file: the planner picks TP/PP/nodes; the chart creates the RWX PVC.
SEED_VARS = {
    "nim_image": {"repository": "nvcr.io/nim/meta/llama-3.1-405b-instruct", "tag": "latest"},
    "nim_plan": {"model": "llama-3.1-405b", "gpu_type": "h100-80gb", "gpus_per_node": 8, "nodes_available": 2},
    "nim_storage": {"kind": "chart_pvc", "size": "1000Gi", "storage_class": "nfs-rwx"},
}
SEED_VALUES = {
    "image": {"repository": "nvcr.io/nim/meta/llama-3.1-405b-instruct", "tag": "latest"},
    "imagePullSecrets": [{"name": "nvcr-imagepull"}],
    "model": {"ngcAPISecret": "ngc-api", "jsonLogging": False},
    "multiNode": {"enabled": True, "workers": 1, "tensorParallelSize": 8, "pipelineParallelSize": 2,
                  "ray": {"port": 6379}},
    "resources": {"limits": {"nvidia.com/gpu": 8}, "requests": {"nvidia.com/gpu": 8}},
    "persistence": {"enabled": True, "size": "1000Gi", "accessMode": "ReadWriteMany", "storageClass": "nfs-rwx"},
}


def play(*args, extra=None):
    """Run the playbook on the seed's vars (updated with `extra`) with the JSON callback.

    Returns (rc, {task name: host result}, stats); no kubeconfig and no credential is given: planning needs none.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("NGC_API_KEY", "HF_TOKEN", "K8S_AUTH_KUBECONFIG")}
    env.update(ANSIBLE_COLLECTIONS_PATH=str(ROOT), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
               ANSIBLE_RETRY_FILES_ENABLED="false", PATH="{0}:{1}".format(BIN, os.environ.get("PATH", "")))
    seed = dict(SEED_VARS, **(extra or {}))
    proc = subprocess.run([str(BIN / "ansible-playbook"), str(PLAYBOOK), "-e", json.dumps(seed), *args],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    report = json.loads(proc.stdout)
    # included roles name their tasks "<role> : <name>"
    tasks = {task["task"]["name"].split(" : ")[-1]: task["hosts"]["localhost"] for task in report["plays"][0]["tasks"]}
    return proc.returncode, tasks, report["stats"]["localhost"]


def test_check_real_and_idempotent_runs(tmp_path):
    out = tmp_path / "values.yaml"
    extra = ["-e", "nim_values_output={0}".format(out)]

    rc, tasks, stats = play("--check", "--diff", *extra)
    assert rc == 0 and stats["changed"] == 1, "check mode reports the file it would write"
    assert not out.exists(), "check mode must not write"
    plan = tasks["Plan the topology"]
    assert (plan["tensor_parallel_size"], plan["pipeline_parallel_size"], plan["nodes"], plan["total_gpus"]) == \
        (8, 2, 2, 16)
    assert tasks["Render and check the values (nothing is changed yet)"]["values"] == SEED_VALUES
    summary = tasks["Show the plan and why"]["msg"][0]
    assert summary.startswith("TP=8, PP=2: 2 nodes (1 leader + 1 worker(s)), 16 GPUs, 50.7 GB of weights per GPU "
                              "(50737500000 bytes)")

    rc, tasks, stats = play(*extra)
    assert rc == 0 and stats["changed"] == 1
    assert yaml.safe_load(out.read_text()) == SEED_VALUES

    for mode in (["--check", "--diff"], []):
        rc, tasks, stats = play(*mode, *extra)
        assert rc == 0 and stats["changed"] == 0, "second run of {0} must change nothing".format(mode or "real")


PLAN = SEED_VARS["nim_plan"]


@pytest.mark.parametrize("extra,rule,fix", [
    ({"nim_storage": {"kind": "chart_pvc", "size": "200Gi"}}, "storage_size", "set storage.size to at least 757Gi"),
    ({"nim_plan": dict(PLAN, cross_node_parallelism="tensor", nodes=2)}, "multinode_tp_interconnect",
     "use cross_node_parallelism=pipeline (TP=8, PP=2), or declare interconnect infiniband/roce if the nodes have it"),
    ({"nim_plan": dict(PLAN, nodes_available=1)}, "does_not_fit", "make 2 node(s) available (1 more), use GPUs with "
                                                                  "more memory, a lower precision, or a smaller headroom"),
])
def test_refusals_stop_the_play(extra, rule, fix):
    rc, tasks, stats = play(extra=extra)
    assert rc == 2 and stats["failures"] == 1
    failed = [result for result in tasks.values() if result.get("failed")]
    assert len(failed) == 1
    assert failed[0]["rule"] == rule and failed[0]["fix"] == fix


@pytest.mark.parametrize("explicit,named", [
    ({"nim_nodes": 4}, "nim_nodes 4 (the plan says 2)"),
    ({"nim_tensor_parallel_size": 16, "nim_pipeline_parallel_size": 1},
     "nim_tensor_parallel_size 16 (the plan says 8), nim_pipeline_parallel_size 1 (the plan says 2)"),
])
def test_explicit_setting_that_contradicts_the_plan_is_refused(explicit, named):
    rc, tasks, stats = play(extra=explicit)
    assert rc == 2 and stats["failures"] == 1
    failed = [result for result in tasks.values() if result.get("failed")]
    assert failed[0]["msg"].startswith("[plan_conflict] " + named + ". Why: ")


def test_explicit_settings_that_agree_with_the_plan_pass():
    rc, tasks, stats = play(extra={"nim_nodes": 2, "nim_gpus_per_node": 8, "nim_interconnect": "ethernet"})
    assert rc == 0 and stats["failures"] == 0
    assert tasks["Render and check the values (nothing is changed yet)"]["values"] == SEED_VALUES
