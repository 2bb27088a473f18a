# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nim_plan, nim_values and nim_manifest_check run on the controller: the same result and the same refusals as
their modules."""

from __future__ import annotations

import json
from pathlib import Path
from unittest.mock import MagicMock

import pytest
import yaml
from ansible.errors import AnsibleActionFail
from ansible.module_utils.testing import patch_module_args

from ansible_collections.nimops.multinode.plugins.action import nim_manifest_check as nim_manifest_check_action
from ansible_collections.nimops.multinode.plugins.action import nim_plan as nim_plan_action
from ansible_collections.nimops.multinode.plugins.action import nim_values as nim_values_action
from ansible_collections.nimops.multinode.plugins.module_utils._plan import PLAN_ARGSPEC
from ansible_collections.nimops.multinode.plugins.module_utils._values import VALUES_ARGSPEC
from ansible_collections.nimops.multinode.plugins.modules import nim_manifest_check, nim_plan, nim_values
from ansible_collections.nimops.multinode.tests.unit.plugins.pure_module_args import PLAN_ARGS, VALUES_ARGS

REPO = Path(__file__).resolve().parents[4]


def run_action(plugin, args, check_mode=False):
    task = MagicMock(args=dict(args), check_mode=check_mode, async_val=0, action=plugin.__name__)
    action = plugin.ActionModule(task, MagicMock(), MagicMock(check_mode=check_mode), loader=None, templar=None,
                                 shared_loader_obj=None)
    return action.run(task_vars={})


def run_module(module, args, capsys):
    with patch_module_args(dict(args)), pytest.raises(SystemExit):
        module.main()
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("module,plugin,args", [
    (nim_plan, nim_plan_action, PLAN_ARGS),
    (nim_values, nim_values_action, VALUES_ARGS),
    (nim_values, nim_values_action, dict(VALUES_ARGS, json_logging=True)),
    (nim_plan, nim_plan_action, dict(PLAN_ARGS, nodes_available=1)),
], ids=["plan", "values", "values-refused", "plan-refused"])
def test_action_gives_the_module_result(module, plugin, args, capsys):
    expected = run_module(module, args, capsys)
    got = run_action(plugin, args)
    assert {k: v for k, v in got.items() if k in expected} == expected
    assert got.get("failed", False) == expected.get("failed", False)


def test_action_result_is_the_same_in_check_mode():
    assert run_action(nim_values_action, VALUES_ARGS, check_mode=True) == run_action(nim_values_action, VALUES_ARGS)


@pytest.mark.parametrize("plugin,args,fragment", [
    (nim_plan_action, dict(PLAN_ARGS, parameters_billion=405), "mutually exclusive: model|parameters_billion"),
    (nim_plan_action, dict(PLAN_ARGS, precision="fp6"), "value of precision must be one of"),
    (nim_values_action, dict(VALUES_ARGS, nodez=2), "Unsupported parameters"),
    (nim_values_action, {k: v for k, v in VALUES_ARGS.items() if k != "nodes"}, "missing required arguments: nodes"),
])
def test_action_refuses_what_the_argument_spec_refuses(plugin, args, fragment):
    with pytest.raises(AnsibleActionFail, match=fragment.replace("|", r"\|")):
        run_action(plugin, args)


def test_action_echoes_no_credential():
    fake = "nvapi-FAKE-not-a-key"
    result = run_action(nim_values_action, dict(VALUES_ARGS, ngc_api_secret=fake))
    assert result["failed"] and result["rule"] == "secret_by_name"
    assert fake not in json.dumps(result)


def _module_task(path, module):
    tasks = yaml.safe_load((REPO / path).read_text())
    return next(t[module] for t in tasks if module in t)


def test_roles_pass_every_option_of_the_modules_on():
    """The roles name the options one by one; a new module option must reach them (and the unknown-key checks)."""
    release_vars = yaml.safe_load((REPO / "roles" / "nim_release" / "vars" / "main.yml").read_text())
    assert set(release_vars["_nim_release_values_options"]) == set(VALUES_ARGSPEC) - {"current_values", "chart_path"}
    deploy_vars = yaml.safe_load((REPO / "roles" / "nim_deploy" / "vars" / "main.yml").read_text())
    assert set(deploy_vars["_nim_deploy_plan_options"]) == set(PLAN_ARGSPEC)
    values_task = _module_task("roles/nim_release/tasks/validate.yml", "nimops.multinode.nim_values")
    assert set(values_task) == set(VALUES_ARGSPEC)
    plan_task = _module_task("roles/nim_deploy/tasks/plan_topology.yml", "nimops.multinode.nim_plan")
    assert set(plan_task) == set(PLAN_ARGSPEC)


@pytest.mark.parametrize("size,failed", [(2, False), (1, True)], ids=["as-planned", "rendered_mismatch"])
def test_manifest_check_action_gives_the_module_result(tmp_path, capsys, size, failed):
    lws = {"kind": "LeaderWorkerSet", "metadata": {"name": "nim-llm"}, "spec": {"leaderWorkerTemplate": {
        "size": size, "workerTemplate": {"spec": {"containers": [
            {"name": "nim-llm", "resources": {"limits": {"nvidia.com/gpu": 8}}}]}}}}}
    (tmp_path / "lws.yaml").write_text(yaml.safe_dump(lws))
    args = {"manifest_dir": str(tmp_path), "expected": {"size": 2, "gpus_per_node": 8, "model_cache": {"kind": "none"}}}
    expected = run_module(nim_manifest_check, args, capsys)
    got = run_action(nim_manifest_check_action, args)
    assert {k: v for k, v in got.items() if k in expected} == expected
    assert got.get("failed", False) is expected.get("failed", False) is failed
    assert got.get("rule") == ("rendered_mismatch" if failed else None)
