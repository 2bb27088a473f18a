# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nim_plan and nim_values as modules: argument spec, check mode, and the one place refusals become failures."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.nimops.multinode.plugins.modules import nim_plan, nim_values
from ansible_collections.nimops.multinode.tests.unit.plugins.pure_module_args import PLAN_ARGS, VALUES_ARGS


def run(module, args, capsys, check_mode=False):
    args = dict(args, _ansible_check_mode=check_mode)
    with patch_module_args(args), pytest.raises(SystemExit) as exited:
        module.main()
    return exited.value.code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("module,args", [(nim_plan, PLAN_ARGS), (nim_values, VALUES_ARGS)], ids=["nim_plan", "nim_values"])
def test_check_mode_gives_the_same_result_and_changes_nothing(module, args, capsys):
    rc, normal = run(module, args, capsys)
    rc_check, checked = run(module, args, capsys, check_mode=True)
    assert rc == rc_check == 0
    assert normal["changed"] is False and checked["changed"] is False
    normal.pop("invocation", None)
    checked.pop("invocation", None)
    assert normal == checked


def test_nim_values_module_result(capsys):
    rc, result = run(nim_values, VALUES_ARGS, capsys)
    assert rc == 0
    assert result["values"]["multiNode"] == {"enabled": True, "workers": 1, "tensorParallelSize": 8,
                                             "pipelineParallelSize": 2, "ray": {"port": 6379}}
    assert result["values"]["persistence"] == {"enabled": True, "size": "1000Gi", "accessMode": "ReadWriteMany",
                                               "storageClass": "nfs-rwx"}
    assert result["notes"] == []
    assert result["diff"]["before"] == {}


def test_refusal_becomes_failure_with_rule(capsys):
    rc, result = run(nim_values, dict(VALUES_ARGS, json_logging=True), capsys)
    assert rc == 1
    assert result["failed"] is True
    assert result["rule"] == "json_logging"
    assert result["msg"].startswith("[json_logging] json_logging is true for a 2-node release. Why: ")
    assert result["fix"] == "set json_logging=false (the default)"


def test_plan_refusal_becomes_failure_with_details(capsys):
    rc, result = run(nim_plan, dict(PLAN_ARGS, nodes_available=1), capsys)
    assert rc == 1
    assert result["rule"] == "does_not_fit"
    assert result["details"] == {"needed_nodes": 2, "short_bytes_per_gpu": 37475000000}


@pytest.mark.parametrize("args,fragment", [
    (dict(PLAN_ARGS, parameters_billion=405), "mutually exclusive: model|parameters_billion"),
    (dict(PLAN_ARGS, gpu_memory_gb=80), "mutually exclusive: gpu_type|gpu_memory_gb"),
    ({"parameters_billion": 405, "gpu_type": "h100-80gb", "gpus_per_node": 8, "nodes_available": 2},
     "missing parameter(s) required by 'parameters_billion': precision"),
    (dict(PLAN_ARGS, precision="fp6"), "value of precision must be one of"),
])
def test_plan_argument_spec(args, fragment, capsys):
    rc, result = run(nim_plan, args, capsys)
    assert rc == 1
    assert fragment in result["msg"]


def test_secret_names_are_not_hidden_and_no_credential_is_echoed(capsys):
    fake = "nvapi-FAKE-0000000000000000000000000000000000000000000000000000000000000000"
    rc, result = run(nim_values, dict(VALUES_ARGS, ngc_api_secret=fake), capsys)
    assert rc == 1 and result["rule"] == "secret_by_name"
    assert fake not in json.dumps(result)
    assert result["invocation"]["module_args"]["ngc_api_secret"] == "<redacted>"


def test_deployed_credentials_are_not_echoed(capsys):
    fake = "hf_FAKE0000000000000000000000000000000"
    deployed = {"env": [{"name": "HF_TOKEN", "value": "FAKE-plain-token"}], "model": {"hfToken": fake}}
    rc, result = run(nim_values, dict(VALUES_ARGS, current_values=deployed), capsys)
    assert rc == 0
    text = json.dumps(result)
    assert fake not in text and "FAKE-plain-token" not in text
    assert result["invocation"]["module_args"]["current_values"] == {
        "env": [{"name": "HF_TOKEN", "value": "<redacted>"}], "model": {"hfToken": "<redacted>"}}
