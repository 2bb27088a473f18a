# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import copy

import pytest

from ansible_collections.nimops.multinode.plugins.module_utils import _diagnosis as dg
from ansible_collections.nimops.multinode.plugins.module_utils import _readiness as rd
from ansible_collections.nimops.multinode.tests.unit.plugins.module_utils import k8s_objects as o


def snapshot(pods=None, lws="default", pvcs="default", events=(), secrets="default", crd="default",
             controller="default"):
    snap = dg.empty_snapshot("nim-llm", "nim", o.NOW)
    snap.update({
        "crd": o.crd() if crd == "default" else crd,
        "controller": o.controller() if controller == "default" else controller,
        "lws": o.lws(size=2, ready_replicas=0) if lws == "default" else lws,
        "pods": o.group_pods(size=2) if pods is None else pods,
        "pvcs": [o.pvc()] if pvcs == "default" else pvcs,
        "events": list(events),
        "secrets": {"ngc-api": ["NGC_API_KEY"], "nvcr-imagepull": [".dockerconfigjson"]}
        if secrets == "default" else secrets,
        # the headless Service LWS makes before the pods, and the chart's client Service
        "services": o.release_services(),
    })
    return snap


def codes(causes, fatal_only=True):
    return [(c["code"], c["fatal"]) for c in causes if c["fatal"] or not fatal_only]


def test_healthy_release_has_no_cause():
    assert dg.find_causes(snapshot(lws=o.lws(size=2)), waited=100) == []


@pytest.mark.parametrize("message,code", [
    ("ValueError: Unable to configure formatter 'json': No module named 'nim_llm_sdk.logging.json_formatter'",
     "json_logging_crash"),
    ("error: Missing argument --ray_address", "leader_address_not_injected"),
    ("ConnectionError: Failed to connect to GCS at address nim-llm-0.nim-llm.nim:6379 within 60 seconds",
     "ray_join_failed"),
    ("Segmentation fault", "crash_loop"),
    ("", "crash_loop"),
])
def test_crash_looping_worker_is_named_with_its_message(message, code):
    pods = o.group_pods(size=2)
    pods[1] = o.crash(pods[1], restarts=2, message=message)
    causes = dg.find_causes(snapshot(pods=pods), waited=5)
    assert causes[0]["code"] == code
    assert causes[0]["fatal"] is True
    assert causes[0]["objects"] == ["pod/nim-llm-0-1"]
    assert causes[0]["summary"].startswith("worker pod nim-llm-0-1 is crash-looping (restarts 2, exit code 1")
    if message:
        assert causes[0]["summary"].endswith(message)
        assert causes[0]["detail"] == message


def test_first_crash_is_fatal_before_backoff():
    # One restart with a non-zero exit is enough: the wait must stop within seconds of the first crash.
    pods = o.group_pods(size=2)
    pods[1] = o.crash(pods[1], restarts=1, message="fatal: bad config", waiting=None)
    assert codes(dg.find_causes(snapshot(pods=pods), waited=1)) == [("crash_loop", True)]


def test_clean_exit_restart_is_not_a_crash():
    pods = o.group_pods(size=2)
    pods[1] = o.crash(pods[1], restarts=1, exit_code=0, waiting=None)
    assert dg.find_causes(snapshot(pods=pods), waited=1) == []


def test_probe_kill_during_download_is_named():
    pods = o.group_pods(size=2)
    pods[0] = o.crash(pods[0], restarts=1, exit_code=137, waiting=None)
    events = [o.event("nim-llm-0", "Unhealthy", "Startup probe failed: HTTP probe failed with statuscode: 503"),
              o.event("nim-llm-0", "Killing", "Container nim-llm failed startup probe, will be restarted")]
    causes = dg.find_causes(snapshot(pods=pods, events=events), waited=1)
    assert codes(causes) == [("probe_restart_during_download", True)]
    assert "startupProbe.failureThreshold" in causes[0]["remediation"]


@pytest.mark.parametrize("message,code", [
    ('failed to pull and unpack image "nvcr.io/nim/meta/llama-3.1-405b-instruct:1.0": 401 Unauthorized',
     "image_pull_auth"),
    ('pull access denied for nvcr.io/nim/x, repository does not exist or may require authorization',
     "image_pull_auth"),
    ('failed to resolve reference "nvcr.io/nim/meta/llama:nope": not found', "image_pull_failed"),
])
def test_image_pull_failures(message, code):
    pods = o.group_pods(size=2)
    pods[1] = o.waiting(pods[1], "ErrImagePull", message)
    causes = dg.find_causes(snapshot(pods=pods), waited=1)
    assert codes(causes) == [(code, True)]
    assert causes[0]["detail"] == message


def test_missing_pull_secret():
    causes = dg.find_causes(snapshot(secrets={"ngc-api": ["NGC_API_KEY"]}), waited=1)
    assert codes(causes) == [("pull_secret_missing", True)]
    assert causes[0]["summary"] == "image pull secret nvcr-imagepull named by the pods does not exist"


def test_missing_secret_key_blocks_container_start():
    pods = o.group_pods(size=2)
    pods[0] = o.waiting(pods[0], "CreateContainerConfigError", 'secret "ngc-api" not found')
    causes = dg.find_causes(snapshot(pods=pods), waited=1)
    assert codes(causes) == [("secret_missing", True)]
    assert causes[0]["summary"] == 'pod nim-llm-0 cannot start: secret "ngc-api" not found'


@pytest.mark.parametrize("since,fatal", [(3, False), (10, True), (60, True)])
def test_pending_for_gpus_after_grace(since, fatal):
    msg = "0/4 nodes are available: 4 Insufficient nvidia.com/gpu. preemption: 0/4 nodes are available: " \
          "4 No preemption victims found for incoming pod."
    pods = o.group_pods(size=2)
    pods[1] = o.unschedulable(pods[1], msg, since=since)
    causes = dg.find_causes(snapshot(pods=pods), waited=since)
    assert codes(causes, fatal_only=False) == [("insufficient_gpu", fatal)]
    assert causes[0]["detail"] == msg


@pytest.mark.parametrize("message,code,summary", [
    # some nodes still have free GPUs; every node lacks CPU and memory: those block the pod, not the GPUs
    ("0/4 nodes are available: 2 Insufficient nvidia.com/gpu, 4 Insufficient cpu, 4 Insufficient memory. "
     "preemption: 0/4 nodes are available: 4 No preemption victims found for incoming pod.",
     "insufficient_resources",
     "pod nim-llm-0-1 is Pending: no node has enough free cpu and memory (4/4 nodes lack cpu, 4/4 nodes lack "
     "memory, 2/4 nodes lack nvidia.com/gpu)"),
    ("0/4 nodes are available: 4 Insufficient nvidia.com/gpu.", "insufficient_gpu",
     "pod nim-llm-0-1 is Pending: no node has enough free nvidia.com/gpu (4/4 nodes lack nvidia.com/gpu)"),
    ("0/4 nodes are available: 4 Insufficient memory, 4 Insufficient nvidia.com/gpu.", "insufficient_resources",
     "pod nim-llm-0-1 is Pending: no node has enough free memory and nvidia.com/gpu (4/4 nodes lack memory, "
     "4/4 nodes lack nvidia.com/gpu)"),
])
def test_pending_pod_is_named_by_what_blocks_it(message, code, summary):
    pods = o.group_pods(size=2)
    pods[1] = o.unschedulable(pods[1], message, since=20)
    causes = dg.find_causes(snapshot(pods=pods), waited=20)
    assert codes(causes) == [(code, True)]
    assert causes[0]["summary"] == summary


@pytest.mark.parametrize("size,expected,causes", [
    (1, 2, [("group_size_mismatch", True)]),
    (2, 2, []),
    (2, None, []),
])
def test_groups_of_another_size_than_planned(size, expected, causes):
    snap = snapshot(lws=o.lws(size=size), pods=o.group_pods(size=size))
    found = dg.find_causes(snap, waited=1, expected_size=expected)
    assert codes(found) == causes
    if causes:
        assert found[0]["summary"] == "LeaderWorkerSet nim-llm has groups of 1 pod(s) but the plan needs 2 nodes " \
                                      "per group"


@pytest.mark.parametrize("services,size,causes", [
    # a chart that names its client Service like its LeaderWorkerSet: LWS never creates the headless one
    ([o.service("nim-llm", {"leaderworkerset.sigs.k8s.io/worker-index": "0"})], 2,
     [("headless_service_conflict", True)]),
    (o.release_services(), 2, []),
    ([], 2, [("headless_service_missing", True)]),  # the pods exist (30 s old), so LWS made the Service before them
    ([o.service("nim-llm", {"leaderworkerset.sigs.k8s.io/worker-index": "0"})], 1, []),  # no worker to resolve it
])
def test_service_holding_the_leaderworkersets_name(services, size, causes):
    snap = snapshot(lws=o.lws(size=size), pods=o.group_pods(size=size))
    snap["services"] = services
    found = dg.find_causes(snap, waited=1)
    assert codes(found) == causes
    if causes == [("headless_service_conflict", True)]:
        assert found[0]["summary"] == "Service nim/nim-llm (type ClusterIP) has the LeaderWorkerSet's name, so LWS " \
                                      "has no headless Service for it: the workers cannot resolve the leader at " \
                                      "nim-llm-0.nim-llm"
        assert found[0]["objects"] == ["service/nim-llm"]


def test_a_missing_headless_service_is_named_once_the_pods_are_older_than_the_grace():
    snap = snapshot(lws=o.lws(size=2), pods=o.group_pods(size=2, age=5))
    snap["services"] = []
    found = dg.find_causes(snap, waited=5)
    assert codes(found, fatal_only=False) == [("headless_service_missing", False)]
    assert found[0]["summary"] == "LeaderWorkerSet nim-llm has pods but no headless Service nim/nim-llm: the workers " \
                                  "cannot resolve the leader at nim-llm-0.nim-llm"
    snap["pods"] = []  # before the controller made the group, the Service is not looked for
    assert dg.find_causes(snap, waited=5) == []


def test_name_clash_is_never_reported_ready():
    """Every pod Ready and the LWS Available (as on a bed whose pods need no DNS): the clash still fails the wait."""
    snap = snapshot(lws=o.lws(size=2), pods=o.group_pods(size=2))
    snap["services"] = [o.service("nim-llm", {"leaderworkerset.sigs.k8s.io/worker-index": "0"})]
    result = rd.evaluate(snap, 30, "nim-llm")
    verdict, msg = rd.decide(result, 30, 1800, ready_for=60, settle=10)
    assert verdict == "failed" and "[headless_service_conflict]" in msg, msg


def test_gated_pods_are_a_named_state_not_a_failure():
    pods = [o.gated(p, "kueue.x-k8s.io/admission") for p in o.group_pods(size=2)]
    causes = dg.find_causes(snapshot(pods=pods), waited=300)
    assert codes(causes, fatal_only=False) == [("scheduling_gated", False), ("scheduling_gated", False)]
    assert causes[0]["summary"] == "pod nim-llm-0 is held back from scheduling by kueue.x-k8s.io/admission"
    result = rd.evaluate(snapshot(pods=pods), 300, "nim-llm")
    verdict, msg = rd.decide(result, 1800, 1800)
    assert verdict == "failed" and msg.startswith("timed out after 1800s: ") and "[scheduling_gated]" in msg, msg


def test_unbound_pvc_is_reported_by_claim_not_by_scheduler():
    pods = [o.unschedulable(p, "0/4 nodes are available: pod has unbound immediate PersistentVolumeClaims.")
            for p in o.group_pods(size=2)]
    causes = dg.find_causes(snapshot(pods=pods, pvcs=[o.pvc(phase="Pending", age=45)]), waited=45)
    assert codes(causes) == [("pvc_unbound", True)]
    assert causes[0]["summary"] == "PVC nim-model-cache is Pending (storage class kwok-volume) after 45s"


def test_young_unbound_pvc_is_not_fatal_yet():
    causes = dg.find_causes(snapshot(pvcs=[o.pvc(phase="Pending", age=5)]), waited=5)
    assert codes(causes, fatal_only=False) == [("pvc_unbound", False)]


def test_rwo_pvc_for_multi_node_is_refused():
    causes = dg.find_causes(snapshot(pvcs=[o.pvc(modes=("ReadWriteOnce",))]), waited=1)
    assert codes(causes) == [("pvc_wrong_access_mode", True)]
    assert causes[0]["summary"] == "multi-node pods share PVC nim-model-cache, which is ReadWriteOnce, " \
                                   "not ReadWriteMany"


def test_missing_pvc():
    causes = dg.find_causes(snapshot(pvcs=[]), waited=40)
    assert codes(causes) == [("pvc_missing", True)]


def test_leader_address_not_injected_when_webhook_skipped():
    pods = [o.pod("nim-llm-0", webhook=False), o.pod("nim-llm-0-1", worker=1, env=False)]
    causes = dg.find_causes(snapshot(pods=pods), waited=1)
    assert codes(causes) == [("leader_address_not_injected", True), ("leader_address_not_injected", True)]


@pytest.mark.parametrize("crd,controller,lws,pods,waited,expected", [
    (None, "default", "default", None, 0, [("lws_crd_missing", True)]),
    ("default", None, "default", None, 0, [("lws_controller_missing", True)]),
    ("default", o.controller(available=False), "default", None, 5, [("lws_controller_unavailable", False)]),
    ("default", o.controller(available=False), "default", None, 40, [("lws_controller_unavailable", True)]),
    ("default", "default", None, [], 3, [("lws_not_found", False)]),
    ("default", "default", None, [], 12, [("lws_not_found", True)]),
    ("default", "default", o.lws(conditions=False, age=5), [], 5, [("lws_not_reconciled", False)]),
    ("default", "default", o.lws(conditions=False, age=25), [], 25, [("lws_not_reconciled", True)]),
])
def test_control_plane_causes(crd, controller, lws, pods, waited, expected):
    causes = dg.find_causes(snapshot(crd=crd, controller=controller, lws=lws, pods=pods), waited=waited)
    assert codes(causes, fatal_only=False) == expected


def test_fatal_causes_sort_first():
    pods = o.group_pods(size=2)
    pods[1] = o.crash(pods[1], restarts=1, message="x")
    causes = dg.find_causes(snapshot(pods=pods, pvcs=[o.pvc(phase="Pending", age=1)]), waited=1)
    assert codes(causes, fatal_only=False) == [("crash_loop", True), ("pvc_unbound", False)]


def test_warnings_json_logging_and_not_ready():
    pods = o.group_pods(size=2, json_logging="1")
    pods[0]["status"]["conditions"][1]["status"] = "False"
    events = [o.event("nim-llm-0", "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503")]
    found = dg.warnings(snapshot(pods=pods, events=events))
    assert [(f["code"], f["objects"]) for f in found] == [
        ("json_logging_enabled", ["pod/nim-llm-0"]), ("not_ready", ["pod/nim-llm-0"]),
        ("json_logging_enabled", ["pod/nim-llm-0-1"])]
    assert found[1]["detail"] == "Readiness probe failed: HTTP probe failed with statuscode: 503"


def test_every_cause_has_a_remediation():
    assert all(dg.REMEDIATION[code] for code in list(dg.GRACE) + ["crash_loop", "image_pull_auth"])


@pytest.mark.parametrize("secrets,summary", [
    ({"nvcr-imagepull": [".dockerconfigjson"]}, "secret ngc-api, referenced by the pods' environment, does not exist"),
    ({"ngc-api": ["OTHER"], "nvcr-imagepull": [".dockerconfigjson"]},
     "key NGC_API_KEY in secret ngc-api, referenced by the pods' environment, does not exist"),
])
def test_env_secret_refs_checked(secrets, summary):
    causes = dg.find_causes(snapshot(secrets=secrets), waited=1)
    assert codes(causes) == [("secret_missing", True)]
    assert causes[0]["summary"] == summary


def policy(name, selector, ingress):
    return {"metadata": {"name": name}, "spec": {"podSelector": selector, "policyTypes": ["Ingress"],
                                                 "ingress": ingress}}


@pytest.mark.parametrize("pol,expected", [
    (policy("deny-all", {}, []), ["network_policy_blocks_ray"]),
    (policy("http-only", {}, [{"ports": [{"port": 8000}]}]), ["network_policy_blocks_ray"]),
    (policy("ray-ok", {}, [{"ports": [{"port": 8000}, {"port": 6379}]}]), []),
    (policy("all-ports", {}, [{"from": [{"podSelector": {}}]}]), []),
    (policy("other-app", {"matchLabels": {"app": "db"}}, []), []),
])
def test_network_policy_findings(pol, expected):
    found = dg.network_policy_findings([pol], o.group_pods(size=2), 6379)
    assert [f["code"] for f in found] == expected


def test_crash_seen_while_watching_is_reported_after_the_pod_is_gone():
    crashed = o.crash(o.pod("nim-llm-0-1", worker=1), restarts=1, message="boom", waiting=None)
    snap = snapshot(pods=[o.pod("nim-llm-0"), o.pod("nim-llm-0-1", worker=1, ready=False)])
    snap["observed_pods"] = [o.pod("nim-llm-0-1", worker=1), crashed]
    causes = dg.find_causes(snap, waited=4)
    assert codes(causes) == [("crash_loop", True)]
    assert causes[0]["summary"] == "worker pod nim-llm-0-1 is crash-looping (restarts 1, exit code 1, " \
                                   "reason Error): boom"


def test_crash_of_a_terminating_pod_counts():
    p = o.crash(o.pod("nim-llm-0-1", worker=1), restarts=1, message="boom", waiting=None)
    p["metadata"]["deletionTimestamp"] = o.ts(0)
    causes = dg.find_causes(snapshot(pods=[o.pod("nim-llm-0"), p]), waited=4)
    assert codes(causes) == [("crash_loop", True)]


def recreate_event(age):
    return {"involvedObject": {"kind": "LeaderWorkerSet", "name": "nim-llm"}, "reason": "RecreateGroup",
            "message": "Worker pod nim-llm-0-1 failed, deleted leader pod nim-llm-0 to recreate group 0",
            "lastTimestamp": o.ts(age), "count": 2}


@pytest.mark.parametrize("age,waited,expected", [
    # the crashed pod went unseen: the wait first watches for the next crash and its termination message
    (3, 10, [("crash_loop", False)]),
    (3, 40, [("crash_loop", True)]),
    (300, 10, []),  # an event from an earlier rollout is not this wait's cause
])
def test_group_recreation_event_is_crash_evidence(age, waited, expected):
    causes = dg.find_causes(snapshot(events=[recreate_event(age)]), waited=waited)
    assert codes(causes, fatal_only=False) == expected
    if expected:
        assert causes[0]["summary"] == "LWS recreated a group after a pod restart (Worker pod nim-llm-0-1 failed, " \
                                       "deleted leader pod nim-llm-0 to recreate group 0, 2 time(s))"


def test_old_restart_history_is_not_this_rollouts_crash():
    pods = o.group_pods(size=2)
    pods[1] = o.crash(pods[1], restarts=1, message="old", waiting=None)
    pods[1]["status"]["containerStatuses"][0]["lastState"]["terminated"]["finishedAt"] = o.ts(3600)
    assert dg.find_causes(snapshot(pods=pods), waited=5) == []
    snap = snapshot(pods=pods)
    snap["recent_seconds"] = 10 ** 9  # what nim_diagnose asks for
    assert codes(dg.find_causes(snap, waited=5)) == [("crash_loop", True)]


def test_pull_auth_named_from_events_and_preferred_over_backoff():
    pods = o.group_pods(size=2)
    pods[0] = o.waiting(pods[0], "ImagePullBackOff", 'Back-off pulling image "nvcr.io/nim/x:1"')
    pods[1] = o.waiting(pods[1], "ImagePullBackOff", 'Back-off pulling image "nvcr.io/nim/x:1"')
    events = [o.event("nim-llm-0-1", "Failed", 'Failed to pull image "nvcr.io/nim/x:1": 401 Unauthorized')]
    causes = dg.find_causes(snapshot(pods=pods, events=events), waited=3)
    assert codes(causes) == [("image_pull_auth", True)]
    assert causes[0]["detail"] == 'Failed to pull image "nvcr.io/nim/x:1": 401 Unauthorized'


def _deleted(pod):
    pod = copy.deepcopy(pod)
    pod["metadata"]["deletionTimestamp"] = o.ts(2)
    return pod


def _backoff_event(pod_name, age):
    return {"involvedObject": {"kind": "Pod", "name": pod_name}, "type": "Warning", "reason": "BackOff",
            "message": "Back-off restarting failed container", "lastTimestamp": o.ts(age)}


def _single(event):
    event["count"] = 1
    return event


@pytest.mark.parametrize("observed,events,expected", [
    # the worker was seen being deleted with no restart: LWS recreates the group, the wait goes on
    (lambda pods: [_deleted(pods[1])], [_single(recreate_event(3))], [("group_recreated", False)]),
    # nothing seen of the worker and no Warning on it: one recreation is not yet a crash
    (lambda pods: [], [_single(recreate_event(3))], [("group_recreated", False)]),
    # the worker was seen restarting before it went: a crash
    (lambda pods: [o.crash(pods[1], restarts=1, message="boom", waiting=None)], [_single(recreate_event(3))],
     [("crash_loop", True)]),
    # the pod is gone but its kubelet's BackOff warning from this wait remains: a crash, named once the next
    # crash shows its termination message
    (lambda pods: [], [_single(recreate_event(3)), _backoff_event("nim-llm-0-1", 4)], [("crash_loop", False)]),
    # a BackOff from long before this wait is not evidence
    (lambda pods: [], [_single(recreate_event(3)), _backoff_event("nim-llm-0-1", 600)],
     [("group_recreated", False)]),
    # recreated again and again: a crash loop, whatever was seen (fatal once the wait's grace is over)
    (lambda pods: [_deleted(pods[1])], [recreate_event(3)], [("crash_loop", False)]),
])
def test_group_recreation_tells_a_deleted_pod_from_a_crashed_one(observed, events, expected):
    pods = o.group_pods(size=2)
    snap = snapshot(pods=[pods[0]], events=events)
    snap["observed_pods"] = observed(pods)
    causes = dg.find_causes(snap, waited=10)
    assert [c for c in codes(causes, fatal_only=False) if c[0] in ("group_recreated", "crash_loop")] == expected
    if expected[0][0] == "group_recreated":
        recreated = [c for c in causes if c["code"] == "group_recreated"][0]
        assert recreated["summary"] == "LWS is recreating a group: pod nim-llm-0-1 went away without a " \
                                       "container restart"
        assert "LWS recreates the whole group" in recreated["remediation"]
