# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The wait's settle window counts from when the API says each pod turned Ready, so re-running against a release
that has been up for a while reports ready on the first poll instead of watching it for `settle` seconds again;
a pod that turned Ready moments ago still has to hold."""

from __future__ import annotations

import pytest

from ansible_collections.nimops.multinode.plugins.module_utils import _diagnosis as dg
from ansible_collections.nimops.multinode.plugins.module_utils import _readiness as rd
from ansible_collections.nimops.multinode.tests.unit.plugins.module_utils import k8s_objects as o


def snap_ready_since(*seconds_ago):
    pods = o.group_pods(size=len(seconds_ago))
    for pod, ago in zip(pods, seconds_ago):
        for cond in pod["status"]["conditions"]:
            if cond["type"] == "Ready" and ago is not None:
                cond["lastTransitionTime"] = o.ts(ago)
    s = dg.empty_snapshot("nim-llm", "nim", o.NOW)
    s.update(crd=o.crd(), controller=o.controller(), lws=o.lws(size=len(seconds_ago)), pods=pods, pvcs=[o.pvc()],
             secrets={"ngc-api": ["NGC_API_KEY"], "nvcr-imagepull": [".dockerconfigjson"]},
             services=o.release_services())
    return s


@pytest.mark.parametrize("ages,expected", [
    ((600, 300), 300),     # the youngest Ready pod decides
    ((45, 45, 12), 12),
    ((600, None), 0),      # a Ready condition without a transition time proves nothing
])
def test_ready_seconds_from_the_api(ages, expected):
    result = rd.evaluate(snap_ready_since(*ages), 1, "nim-llm")
    assert result["ready"] is True
    assert result["ready_seconds"] == expected


def test_long_ready_release_is_ready_on_the_first_poll():
    result = rd.evaluate(snap_ready_since(600, 300), 0, "nim-llm")
    verdict, _msg = rd.decide(result, 0, 1800, ready_for=max(0, result["ready_seconds"]), settle=10)
    assert verdict == "ready"


def test_freshly_ready_pod_must_still_hold():
    result = rd.evaluate(snap_ready_since(600, 3), 0, "nim-llm")
    verdict, msg = rd.decide(result, 0, 1800, ready_for=result["ready_seconds"], settle=10)
    assert verdict == "wait" and "holding for 10s" in msg


def test_not_ready_has_no_ready_seconds():
    s = snap_ready_since(600, 300)
    s["pods"][1]["status"]["conditions"][1]["status"] = "False"
    result = rd.evaluate(s, 0, "nim-llm")
    assert result["ready"] is False and result["ready_seconds"] == 0


@pytest.mark.parametrize("stamp", ["2026-11-27T11:50:00Z", "2026-11-27T11:50:00.987691Z",
                                   "2026-11-27T11:50:00.987691+0000", "2026-11-27T11:50:00+00:00"])
def test_ready_since_accepts_fractional_and_offset_stamps(stamp):
    s = snap_ready_since(600, 300)
    for pod in s["pods"]:
        pod["status"]["conditions"][1]["lastTransitionTime"] = stamp
    assert rd.evaluate(s, 0, "nim-llm")["ready_seconds"] == 600
