# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible_collections.nimops.multinode.plugins.module_utils import _lws_status as st
from ansible_collections.nimops.multinode.tests.unit.plugins.module_utils import k8s_objects as o


@pytest.mark.parametrize("replicas,size,expected", [
    (1, 2, [["nim-llm-0", "nim-llm-0-1"]]),
    (1, 4, [["nim-llm-0", "nim-llm-0-1", "nim-llm-0-2", "nim-llm-0-3"]]),
    (2, 2, [["nim-llm-0", "nim-llm-0-1"], ["nim-llm-1", "nim-llm-1-1"]]),
    (1, 1, [["nim-llm-0"]]),
])
def test_expected_pod_names(replicas, size, expected):
    assert st.expected_pod_names("nim-llm", replicas, size) == expected


def test_all_ready_is_ready():
    lws = o.lws(size=2)
    groups = st.group_readiness(lws, o.group_pods(size=2))
    assert [g["ready"] for g in groups] == [True]
    assert st.lws_ready(lws, groups) is True
    assert st.progress_line(lws, groups) == "nim-llm: 1/1 groups ready, 2/2 pods ready"


@pytest.mark.parametrize("mutate,reason", [
    (lambda lws, pods: pods.pop(), "worker pod missing"),
    (lambda lws, pods: pods[1]["status"]["conditions"][1].update(status="False"), "worker not Ready"),
    (lambda lws, pods: pods[0]["metadata"].update(deletionTimestamp=o.ts(1)), "leader terminating"),
    (lambda lws, pods: lws["status"].update(readyReplicas=0), "LWS readyReplicas behind"),
    (lambda lws, pods: lws["status"]["conditions"][0].update(status="False"), "LWS not Available"),
    (lambda lws, pods: lws["status"]["conditions"].append({"type": "UpdateInProgress", "status": "True"}),
     "rolling update in progress"),
    (lambda lws, pods: pods[1]["status"].update(phase="Pending"), "worker Pending though marked Ready"),
])
def test_never_ready_before_every_pod(mutate, reason):
    lws = o.lws(size=2)
    pods = o.group_pods(size=2)
    mutate(lws, pods)
    groups = st.group_readiness(lws, pods)
    assert st.lws_ready(lws, groups) is False, reason


def test_lws_available_but_a_worker_missing_is_not_ready():
    # The LWS status can lag behind pod deletion: pods decide, not only the condition.
    lws = o.lws(size=4)
    pods = o.group_pods(size=4)[:3]
    groups = st.group_readiness(lws, pods)
    assert groups[0]["workers"][2] == {"name": "nim-llm-0-3", "state": "missing", "ready": False}
    assert st.lws_ready(lws, groups) is False


def test_progress_names_what_is_waiting():
    lws = o.lws(size=2, ready_replicas=0)
    pods = [o.pod("nim-llm-0", ready=False), o.waiting(o.pod("nim-llm-0-1", worker=1), "ContainerCreating", "")]
    groups = st.group_readiness(lws, pods)
    assert st.progress_line(lws, groups) == (
        "nim-llm: 0/1 groups ready, 0/2 pods ready; group 0 waiting on: nim-llm-0 Running (not ready), "
        "nim-llm-0-1 Pending (ContainerCreating)")


def test_pod_summary_of_crashed_worker():
    p = o.crash(o.pod("nim-llm-0-1", worker=1), restarts=3, message="boom")
    s = st.pod_summary(p)
    assert (s["role"], s["group"], s["worker"], s["restarts"], s["waiting_reason"]) == \
        ("worker", 0, 1, 3, "CrashLoopBackOff")
    assert s["last_terminated"]["message"] == "boom"


@pytest.mark.parametrize("services,expected", [
    ([o.service("nim-llm-lws", {"leaderworkerset.sigs.k8s.io/name": "nim-llm"}, headless=True),
      o.service("nim-llm", {"leaderworkerset.sigs.k8s.io/name": "nim-llm",
                            "leaderworkerset.sigs.k8s.io/worker-index": "0"})],
     {"service": "nim-llm", "namespace": "nim", "port": 8000, "url": "http://nim-llm.nim.svc.cluster.local:8000"}),
    ([o.service("other", {"app": "other"})], None),
    ([o.service("nim-llm", {"leaderworkerset.sigs.k8s.io/name": "nim-llm"}, port=8080, port_name="api")],
     {"service": "nim-llm", "namespace": "nim", "port": 8080, "url": "http://nim-llm.nim.svc.cluster.local:8080"}),
    ([o.service("nim-llm", {"leaderworkerset.sigs.k8s.io/name": "nim-llm"}, release="another")], None),
])
def test_pick_endpoint(services, expected):
    leader_labels = o.pod("nim-llm-0")["metadata"]["labels"]
    assert st.pick_endpoint(services, leader_labels, release="nim-llm") == expected


@pytest.mark.parametrize("value,expected", [
    ("2026-11-27T11:59:30Z", 30.0),
    ("2026-11-27T12:00:10Z", 0.0),
    (None, None),
])
def test_seconds_since(value, expected):
    assert st.seconds_since(value, o.NOW) == expected
