# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""credential_problem: the shape refusal of a credential, never the credential."""

from __future__ import annotations

import pytest

from ansible_collections.nimops.multinode.plugins.filter.credential_problem import FilterModule

problem = FilterModule().filters()["credential_problem"]
NGC = "nvapi-FAKE-not-a-key"
HF = "hf_FAKE_not_a_token"


@pytest.mark.parametrize("kind,value", [("ngc_api_key", NGC), ("hf_token", HF), ("image_pull", NGC)])
def test_a_well_shaped_credential_has_no_problem(kind, value):
    assert problem(value, kind) == ""


@pytest.mark.parametrize("kind,value,rule", [
    ("ngc_api_key", "", "secret_empty"),
    ("ngc_api_key", None, "secret_empty"),
    ("ngc_api_key", NGC + "\n", "secret_whitespace"),
    ("ngc_api_key", HF, "secret_prefix"),
    ("hf_token", NGC, "secret_prefix"),
])
def test_the_problem_names_the_rule_and_the_source_but_not_the_value(kind, value, rule):
    msg = problem(value, kind, True, "nim_secrets_ngc_api_key")
    assert msg.startswith("[%s] " % rule)
    assert "nim_secrets_ngc_api_key" in msg and "Fix: " in msg
    assert not value or value.strip() not in msg


def test_the_prefix_check_can_be_turned_off_for_legacy_keys():
    assert problem("FAKE-legacy-key-0000", "ngc_api_key", False) == ""


def test_an_unknown_kind_is_a_usage_error():
    with pytest.raises(ValueError, match="kind must be one of"):
        problem(NGC, "ssh_key")
