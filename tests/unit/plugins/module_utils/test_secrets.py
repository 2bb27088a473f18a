# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import base64
import json

import pytest

from ansible_collections.nimops.multinode.plugins.module_utils import _secrets as sec
from ansible_collections.nimops.multinode.plugins.module_utils._errors import InputError

NGC = "nvapi-FAKE-0000000000000000000000000000000000000000000000000000000000000000"
NGC2 = "nvapi-FAKE-1111111111111111111111111111111111111111111111111111111111111111"
HF = "hf_FAKE0000000000000000000000000000000"


@pytest.mark.parametrize("kind,value,rule", [
    ("ngc_api_key", "", "secret_empty"),
    ("ngc_api_key", None, "secret_empty"),
    ("ngc_api_key", NGC + "\n", "secret_whitespace"),
    ("ngc_api_key", " " + NGC, "secret_whitespace"),
    ("ngc_api_key", "nvapi-FAKE 0000", "secret_whitespace"),
    ("ngc_api_key", HF, "secret_prefix"),
    ("hf_token", NGC, "secret_prefix"),
    ("image_pull", "FAKEKEY0000", "secret_prefix"),
])
def test_shape_refusals_never_echo_the_value(kind, value, rule):
    with pytest.raises(InputError) as err:
        sec.check_shape(kind, value, source="var nim_ngc_api_key")
    assert err.value.rule == rule
    assert "var nim_ngc_api_key" in err.value.message
    if value and value.strip():
        assert value.strip() not in err.value.message
        assert value.strip()[6:] not in json.dumps(err.value.to_result())


@pytest.mark.parametrize("kind,value", [("ngc_api_key", NGC), ("hf_token", HF), ("image_pull", NGC)])
def test_good_shapes_pass(kind, value):
    assert sec.check_shape(kind, value) is None


def test_legacy_key_without_prefix_allowed_when_asked():
    assert sec.check_shape("ngc_api_key", "FAKElegacyKey000", check_prefix=False) is None


def test_image_pull_data_is_nvcr_oauthtoken_dockerconfig():
    data = sec.desired_data("image_pull", NGC)
    cfg = json.loads(data[".dockerconfigjson"])
    assert cfg == {"auths": {"nvcr.io": {
        "username": "$oauthtoken", "password": NGC,
        "auth": base64.b64encode(("$oauthtoken:" + NGC).encode()).decode()}}}


def existing(kind, value, labels=None, extra=None):
    body = sec.manifest(kind, "s", "nim", sec.desired_data(kind, value), labels)
    if extra:
        body["data"].update({k: base64.b64encode(v.encode()).decode() for k, v in extra.items()})
    return body


@pytest.mark.parametrize("kind,current,wanted,changes", [
    ("ngc_api_key", None, NGC, ["create"]),
    ("ngc_api_key", NGC, NGC, []),
    ("ngc_api_key", NGC, NGC2, ["change value of NGC_API_KEY"]),
    ("hf_token", HF, HF, []),
    ("image_pull", NGC, NGC, []),
    ("image_pull", NGC, NGC2, ["change value of .dockerconfigjson"]),
])
def test_compare_without_revealing(kind, current, wanted, changes):
    prior = existing(kind, current) if current else None
    got, before, after = sec.compare(kind, prior, sec.desired_data(kind, wanted), None)
    assert got == changes
    text = json.dumps([got, before, after])
    for value in (NGC, NGC2, HF, base64.b64encode(NGC.encode()).decode()):
        assert value not in text
        assert value[6:20] not in text


def test_compare_dockerconfig_ignores_formatting():
    prior = existing("image_pull", NGC)
    reformatted = json.dumps(json.loads(base64.b64decode(prior["data"][".dockerconfigjson"])), indent=2)
    prior["data"][".dockerconfigjson"] = base64.b64encode(reformatted.encode()).decode()
    assert sec.compare("image_pull", prior, sec.desired_data("image_pull", NGC), None)[0] == []


def test_compare_type_labels_and_extra_keys():
    prior = existing("ngc_api_key", NGC, extra={"OLD": "x"})
    prior["type"] = "kubernetes.io/dockerconfigjson"
    prior["metadata"]["labels"] = {}
    got, before, after = sec.compare("ngc_api_key", prior, sec.desired_data("ngc_api_key", NGC), {"team": "a"})
    assert got == ["type kubernetes.io/dockerconfigjson -> Opaque (recreate)", "remove key OLD",
                   "label app.kubernetes.io/managed-by", "label team"]
    assert before["data"] == {"NGC_API_KEY": "<hidden>", "OLD": "<hidden>"}
    assert after == {"type": "Opaque", "labels": {"app.kubernetes.io/managed-by": "nimops.multinode", "team": "a"},
                     "data": {"NGC_API_KEY": "<hidden>"}}


def test_manifest_and_key_names():
    body = sec.manifest("hf_token", "hf-token", "nim", sec.desired_data("hf_token", HF), None)
    assert body["type"] == "Opaque"
    assert body["metadata"] == {"name": "hf-token", "namespace": "nim",
                                "labels": {"app.kubernetes.io/managed-by": "nimops.multinode"}}
    assert base64.b64decode(body["data"]["HF_TOKEN"]).decode() == HF
    assert sec.key_names(body) == ["HF_TOKEN"]


def _secret(labels=None, releases=None):
    meta = {"name": "ngc-api", "labels": labels if labels is not None else dict(sec.MANAGED_BY)}
    if releases is not None:
        meta["annotations"] = {sec.RELEASES: releases}
    return {"metadata": meta, "type": "Opaque", "data": {}}


@pytest.mark.parametrize("secret,release,expected", [
    (None, "a", (False, [], "absent")),
    (_secret(releases="a,b"), None, (True, [], "")),
    (_secret(releases="a"), "a", (True, [], "")),
    (_secret(releases=""), "a", (True, [], "")),
    (_secret(releases="a,b,c"), "a", (False, ["b", "c"], "still used by b, c")),
    (_secret(labels={}, releases="a"), "a", (False, [], "not created by nimops.multinode")),
])
def test_plan_removal_keeps_shared_and_foreign_secrets(secret, release, expected):
    assert sec.plan_removal(secret, release) == expected


def test_compare_records_the_release_once():
    data = sec.desired_data("ngc_api_key", "nvapi-FAKEkey0000")
    existing = sec.manifest("ngc_api_key", "ngc-api", "nim", data, {}, ["a"])
    assert existing["metadata"]["annotations"] == {sec.RELEASES: "a"}
    changes, before, after = sec.compare("ngc_api_key", existing, data, {}, ["b"])
    assert changes == ["used by a, b"] and before["releases"] == ["a"] and after["releases"] == ["a", "b"]
    again = sec.manifest("ngc_api_key", "ngc-api", "nim", data, {}, after["releases"])
    assert sec.compare("ngc_api_key", again, data, {}, ["b"])[0] == []
    assert sec.compare("ngc_api_key", again, data, {}, ["a"])[0] == []
