# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

from ansible_collections.nimops.multinode.plugins.module_utils import _diagnosis as dg
from ansible_collections.nimops.multinode.plugins.module_utils import _readiness as rd
from ansible_collections.nimops.multinode.tests.unit.plugins.module_utils import k8s_objects as o


def snap(lws, pods, **kw):
    s = dg.empty_snapshot("nim-llm", "nim", o.NOW)
    s.update(crd=o.crd(), controller=o.controller(), lws=lws, pods=pods, pvcs=[o.pvc()],
             secrets={"ngc-api": ["NGC_API_KEY"], "nvcr-imagepull": [".dockerconfigjson"]},
             services=o.release_services())
    s.update(kw)
    return s


def test_ready_with_endpoint():
    result = rd.evaluate(snap(o.lws(size=2), o.group_pods(size=2)), 30, "nim-llm")
    assert rd.decide(result, 30, 600) == (
        "ready", "nim-llm: 1/1 groups ready, 2/2 pods ready; endpoint http://nim-llm-openai.nim.svc.cluster.local:8000")
    assert result["causes"] == []


def test_crash_fails_early_with_message():
    pods = o.group_pods(size=2)
    pods[1] = o.crash(pods[1], restarts=1, message="Unable to configure formatter 'json'")
    result = rd.evaluate(snap(o.lws(size=2, ready_replicas=0), pods), 12, "nim-llm")
    verdict, msg = rd.decide(result, 12, 1800)
    assert verdict == "failed"
    assert msg.startswith("nim-llm cannot become ready after 12s: [json_logging_crash] worker pod nim-llm-0-1 is "
                          "crash-looping (restarts 1, exit code 1, reason Error): Unable to configure formatter "
                          "'json'. Fix: Set model.jsonLogging: false")


def test_waiting_then_timeout_names_what_is_missing():
    pods = o.group_pods(size=2)
    pods[0]["status"]["conditions"][1]["status"] = "False"
    result = rd.evaluate(snap(o.lws(size=2, ready_replicas=0), pods), 20, "nim-llm")
    assert rd.decide(result, 20, 600) == (
        "wait", "nim-llm: 0/1 groups ready, 1/2 pods ready; group 0 waiting on: nim-llm-0 Running (not ready)")
    verdict, msg = rd.decide(result, 600, 600)
    assert verdict == "failed"
    assert msg.startswith("timed out after 600s: nim-llm: 0/1 groups ready, 1/2 pods ready; group 0 waiting on: "
                          "nim-llm-0 Running (not ready); possible causes: [not_ready] pod nim-llm-0 is Running "
                          "but not Ready.")


def test_lws_missing_progress():
    result = rd.evaluate(snap(None, []), 1, "nim-llm")
    assert result["progress"] == "nim-llm: LeaderWorkerSet not found in nim"
    assert rd.decide(result, 1, 600)[0] == "wait"
    assert rd.decide(rd.evaluate(snap(None, []), 11, "nim-llm"), 11, 600)[0] == "failed"


def test_crash_right_after_ready_fails_instead_of_reporting_ready():
    pods = o.group_pods(size=2)
    crashed = o.crash(o.pod("nim-llm-0-1", worker=1), restarts=1, message="ray worker died", waiting=None)
    s = snap(o.lws(size=2), pods)
    s["observed_pods"] = [crashed]
    result = rd.evaluate(s, 3, "nim-llm")
    assert result["ready"] is True
    assert rd.decide(result, 3, 600, ready_for=3, settle=10)[0] == "failed"


def test_ready_must_hold_for_settle_seconds():
    result = rd.evaluate(snap(o.lws(size=2), o.group_pods(size=2)), 4, "nim-llm")
    assert rd.decide(result, 4, 600, ready_for=4, settle=10) == (
        "wait", "nim-llm: 1/1 groups ready, 2/2 pods ready; holding for 10s before reporting ready")
    assert rd.decide(result, 14, 600, ready_for=10, settle=10)[0] == "ready"


def test_ready_group_smaller_than_planned_is_never_ready():
    # A chart that counts the leader in multiNode.workers renders one pod per group for a two-node plan: every pod
    # is Ready and the LWS Available, yet the release does not have the machines the model needs.
    result = rd.evaluate(snap(o.lws(size=1), o.group_pods(size=1)), 30, "nim-llm", expected_size=2)
    assert result["ready"] is False
    verdict, msg = rd.decide(result, 30, 1800)
    assert verdict == "failed"
    assert msg.startswith("nim-llm cannot become ready after 30s: [group_size_mismatch] LeaderWorkerSet nim-llm has "
                          "groups of 1 pod(s) but the plan needs 2 nodes per group. Fix: ")
    assert result["progress"] == "nim-llm: 1/1 groups with all pods Ready but not serving (group_size_mismatch), " \
        "1/1 pods ready"
    assert rd.evaluate(snap(o.lws(size=2), o.group_pods(size=2)), 30, "nim-llm", expected_size=2)["ready"] is True


def test_ready_pods_without_a_headless_service_are_not_a_ready_release():
    # the chart's client Service holds the LeaderWorkerSet's name: LWS made no headless Service, DNS never resolves
    clash = [o.service("nim-llm", {"leaderworkerset.sigs.k8s.io/name": "nim-llm"})]
    result = rd.evaluate(snap(o.lws(size=2), o.group_pods(size=2), services=clash), 5, "nim-llm", expected_size=2)
    assert result["ready"] is False and result["ready_seconds"] == 0
    assert result["progress"] == "nim-llm: 1/1 groups with all pods Ready but not serving " \
        "(headless_service_conflict), 2/2 pods ready"
    assert "groups ready" not in result["progress"]
    assert rd.decide(result, 5, 1800)[1].startswith("nim-llm cannot become ready after 5s: [headless_service_conflict]")


def test_ready_pods_whose_headless_service_was_deleted_are_not_ready():
    headless_gone = [svc for svc in o.release_services() if svc["metadata"]["name"] != "nim-llm"]
    result = rd.evaluate(snap(o.lws(size=2), o.group_pods(size=2), services=headless_gone), 30, "nim-llm")
    assert result["ready"] is False
    assert result["progress"] == "nim-llm: 1/1 groups with all pods Ready but not serving " \
        "(headless_service_missing), 2/2 pods ready"
    assert rd.decide(result, 30, 1800)[1].startswith("nim-llm cannot become ready after 30s: [headless_service_missing]")
