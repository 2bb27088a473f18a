# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ansible_collections.nimops.multinode.plugins.module_utils import _cluster_preflight as pf
from ansible_collections.nimops.multinode.plugins.module_utils._helm_history import parse_time

H100 = "NVIDIA-H100-80GB-HBM3"
A100 = "NVIDIA-A100-SXM4-80GB"


def node(name, gpus=8, product=H100, ready=True, cordoned=False, taints=(), labels=None, cpu="96"):
    return {"metadata": {"name": name, "labels": dict({pf.GPU_PRODUCT_LABEL: product}, **(labels or {}))},
            "spec": {"unschedulable": cordoned, "taints": list(taints)},
            "status": {"allocatable": {pf.GPU_RESOURCE: str(gpus), "cpu": cpu, "memory": "1Ti"},
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def pod(name, node_name, gpus=0, cpu=None, namespace="other", phase="Running", deleting=False, labels=None):
    requests = {}
    if gpus:
        requests[pf.GPU_RESOURCE] = gpus
    if cpu:
        requests["cpu"] = cpu
    meta = {"name": name, "namespace": namespace, "labels": labels or {}}
    if deleting:
        meta["deletionTimestamp"] = "2026-11-30T12:00:00Z"
    return {"metadata": meta, "spec": {"nodeName": node_name, "containers": [{"resources": {"requests": requests}}]},
            "status": {"phase": phase}}


def want(size=2, gpus=8, **extra):
    return dict({"size": size, "gpus_per_node": gpus, "node_selector": {}, "tolerations": [], "requests": {}},
                **extra)


def slots_by_node(nodes, pods=(), **extra):
    return dict((e["node"], (e["slots"], e["why"])) for e in pf.node_slots(nodes, list(pods), want(**extra)))


@pytest.mark.parametrize("text,value", [("8", 8), (8, 8), ("500m", 0.5), ("64Gi", 64 * 2 ** 30), ("1k", 1000),
                                        ("2Ti", 2 * 2 ** 40), (None, None), ("", None)])
def test_quantity(text, value):
    assert pf.quantity(text) == value


@pytest.mark.parametrize("tolerations,taint,expected", [
    ([], {"key": "gpu", "value": "yes", "effect": "NoSchedule"}, False),
    ([{"key": "gpu", "operator": "Equal", "value": "yes", "effect": "NoSchedule"}],
     {"key": "gpu", "value": "yes", "effect": "NoSchedule"}, True),
    ([{"key": "gpu", "value": "no"}], {"key": "gpu", "value": "yes", "effect": "NoSchedule"}, False),
    ([{"key": "gpu", "operator": "Exists"}], {"key": "gpu", "value": "yes", "effect": "NoExecute"}, True),
    ([{"operator": "Exists"}], {"key": "anything", "effect": "NoSchedule"}, True),
    ([{"key": "gpu", "operator": "Exists", "effect": "NoExecute"}], {"key": "gpu", "effect": "NoSchedule"}, False),
])
def test_tolerates_follows_the_schedulers_rule(tolerations, taint, expected):
    assert pf.tolerates(tolerations, taint) is expected


def test_each_reason_a_node_is_left_out_is_named():
    nodes = [node("free"), node("cordoned", cordoned=True), node("notready", ready=False),
             node("tainted", taints=[{"key": "maint", "value": "yes", "effect": "NoSchedule"}]),
             node("prefer", taints=[{"key": "soft", "effect": "PreferNoSchedule"}]),
             node("held"), node("small", gpus=4)]
    found = slots_by_node(nodes, [pod("other", "held", gpus=2)])
    assert found["free"] == (1, "")
    assert found["prefer"] == (1, "")  # a preference is no refusal
    assert found["cordoned"] == (0, "cordoned")
    assert found["notready"] == (0, "not Ready")
    assert found["tainted"] == (0, "taint maint=yes:NoSchedule not tolerated")
    assert found["held"] == (0, "nvidia.com/gpu free 6 of 8 asked")
    assert found["small"] == (0, "nvidia.com/gpu free 4 of 8 asked")


def test_a_tolerated_taint_and_a_matching_selector_keep_the_node():
    nodes = [node("a", taints=[{"key": "maint", "value": "yes", "effect": "NoSchedule"}], labels={"pool": "gpu"}),
             node("b", labels={"pool": "cpu"})]
    found = slots_by_node(nodes, tolerations=[{"key": "maint", "operator": "Exists"}], node_selector={"pool": "gpu"})
    assert found == {"a": (1, ""), "b": (0, "labels do not match nodeSelector pool=gpu")}


def test_the_releases_own_finished_and_terminating_pods_hold_nothing():
    nodes = [node("a"), node("b"), node("c"), node("d")]
    pods = [pod("mine-0", "a", gpus=8, namespace="nim"), pod("done", "b", gpus=8, phase="Succeeded"),
            pod("going", "c", gpus=8, deleting=True), pod("pending", None, gpus=8), pod("busy", "d", gpus=8)]
    found = dict((e["node"], e["slots"]) for e in pf.node_slots(nodes, pods, want(), own_pods=["mine-0"]))
    assert found == {"a": 1, "b": 1, "c": 1, "d": 0}


def test_a_node_with_room_for_two_pods_counts_twice_and_cpu_can_be_the_limit():
    assert slots_by_node([node("big", gpus=16)]) == {"big": (2, "")}
    assert slots_by_node([node("big", gpus=16, cpu="10")], requests={"cpu": "8"}) == {
        "big": (1, "")}
    assert slots_by_node([node("big", gpus=16, cpu="10")], [pod("x", "big", cpu="4")], requests={"cpu": "8"}) == {
        "big": (0, "cpu free 6 of 8 asked")}


def by_check(checks):
    return dict((c["check"], c) for c in checks)


def test_capacity_passes_and_fails_naming_every_blocked_node_and_the_fix():
    nodes = [node("a"), node("b", cordoned=True), node("c")]
    ok = by_check(pf.capacity_checks(pf.node_slots(nodes, [], want()), want()))
    assert ok["gpu_capacity"]["status"] == "PASS"
    assert ok["gpu_product"] == pf.check("gpu_product", "PASS", "nodes", "one GPU product: " + H100)
    bad = by_check(pf.capacity_checks(pf.node_slots(nodes, [pod("p", "c", gpus=1)], want(size=3)), want(size=3)))
    assert bad["gpu_capacity"]["status"] == "FAIL"
    assert "cluster has 1 place(s) free: b (cordoned); c (nvidia.com/gpu free 7 of 8 asked)" in bad[
        "gpu_capacity"]["message"]
    assert bad["gpu_capacity"]["fix"].startswith("free room for 2 more pod(s): uncordon nodes")


def test_more_gpus_per_pod_than_any_node_has_says_what_to_plan():
    nodes = [node("a"), node("b")]
    bad = by_check(pf.capacity_checks(pf.node_slots(nodes, [], want(gpus=16)), want(gpus=16)))
    assert bad["gpu_capacity"]["fix"] == "no node has 16 nvidia.com/gpu at all (the most is 8): plan at most 8 GPUs " \
                                         "per node"


def test_mixed_gpu_products_fail_unless_the_selector_pins_one():
    nodes = [node("a"), node("b"), node("c", product=A100)]
    mixed = by_check(pf.capacity_checks(pf.node_slots(nodes, [], want()), want()))["gpu_product"]
    assert mixed["status"] == "FAIL"
    assert "%s on 1 place(s), %s on 2 place(s)" % (A100, H100) in mixed["message"]
    assert mixed["fix"] == "pin one product with nodeSelector nvidia.com/gpu.product: %s (nim_extra_values)" % H100
    pinned = want(node_selector={pf.GPU_PRODUCT_LABEL: H100})
    assert by_check(pf.capacity_checks(pf.node_slots(nodes, [], pinned), pinned))["gpu_product"]["status"] == "PASS"
    # a node left out for another reason does not count as a place the group may land on
    nodes[2]["spec"]["unschedulable"] = True
    assert by_check(pf.capacity_checks(pf.node_slots(nodes, [], want()), want()))["gpu_product"]["status"] == "PASS"


def test_a_topology_domain_must_hold_a_whole_group():
    nodes = [node("a", labels={"rack": "r1"}), node("b", labels={"rack": "r1"}), node("c", labels={"rack": "r2"})]
    w = want(size=2, topology_key="rack")
    assert by_check(pf.capacity_checks(pf.node_slots(nodes, [], w), w))["topology_domain"]["status"] == "PASS"
    held = [pod("x", "b", gpus=8)]
    found = by_check(pf.capacity_checks(pf.node_slots(nodes, held, w), w))
    assert found["gpu_capacity"]["status"] == "PASS"  # two places, but in two racks
    assert found["topology_domain"]["status"] == "FAIL"
    assert found["topology_domain"]["message"] == "no single rack holds 2 pod(s) of 8 nvidia.com/gpu: r1 has 1, r2 has 1"


def test_permissions_name_every_missing_verb():
    reviews = [({"verb": "get", "resource": "pods", "namespace": "nim"}, True, ""),
               ({"verb": "create", "resource": "leaderworkersets", "group": "leaderworkerset.x-k8s.io",
                 "namespace": "nim"}, False, ""),
               ({"verb": "get", "resource": "pods", "subresource": "log", "namespace": "nim"}, False, ""),
               ({"verb": "create", "resource": "namespaces"}, False, "")]
    found = pf.permission_checks(reviews)[0]
    assert found["status"] == "FAIL"
    assert found["message"] == ("this identity may not: create leaderworkersets.leaderworkerset.x-k8s.io in nim; "
                                "get pods/log in nim; create namespaces (cluster-wide)")
    assert pf.permission_checks(reviews[:1])[0]["status"] == "PASS"


def quota(hard, used):
    return {"metadata": {"name": "gpu-quota"}, "status": {"hard": hard, "used": used}}


def test_quota_counts_what_the_release_adds_against_what_is_left():
    need = pf.quota_need(want(size=2, requests={"cpu": "4"}, creates_claim=True, claim_size="200Gi"), own_pods=0)
    assert need["requests.nvidia.com/gpu"] == 16 and need["requests.cpu"] == 8 and need["pods"] == 2
    assert need["requests.storage"] == 200 * 2 ** 30 and need["persistentvolumeclaims"] == 1
    short = pf.quota_checks([quota({"requests.nvidia.com/gpu": "24", "pods": "10"},
                                   {"requests.nvidia.com/gpu": "16", "pods": "2"})], need, "nim")[0]
    assert short["status"] == "FAIL"
    assert short["message"] == "ResourceQuota too small: gpu-quota: requests.nvidia.com/gpu needs 16, 8 left of 24"
    roomy = pf.quota_checks([quota({"requests.nvidia.com/gpu": "32"}, {"requests.nvidia.com/gpu": "16"})], need, "nim")
    assert roomy[0]["status"] == "PASS"
    assert pf.quota_checks([], need, "nim")[0]["status"] == "PASS"
    # an upgrade: the release's two pods already count in "used"
    assert pf.quota_need(want(size=2), own_pods=2)["requests.nvidia.com/gpu"] == 0


def limit_range(kind, maximum):
    return {"metadata": {"name": "caps"}, "spec": {"limits": [{"type": kind, "max": maximum}]}}


def test_a_limit_range_below_the_pods_requests_fails():
    w = want(requests={"cpu": "16", "memory": "64Gi"})
    assert pf.limit_range_checks([], w, "nim")[0]["status"] == "PASS"
    assert pf.limit_range_checks([limit_range("Container", {"cpu": "32", "nvidia.com/gpu": "8"})], w, "nim")[0][
        "status"] == "PASS"
    low = pf.limit_range_checks([limit_range("Container", {"nvidia.com/gpu": "4", "memory": "32Gi"})], w, "nim")[0]
    assert low["status"] == "FAIL"
    assert low["message"] == ("LimitRange below the pods' requests: caps: memory max 32Gi per container, a pod asks "
                              "64Gi; caps: nvidia.com/gpu max 4 per container, a pod asks 8")
    # a claim's limits are the storage class check's business
    assert pf.limit_range_checks([limit_range("PersistentVolumeClaim", {"storage": "1Gi"})], w, "nim")[0][
        "status"] == "PASS"


def storage_class(name, provisioner, default=False):
    annotations = {"storageclass.kubernetes.io/is-default-class": "true"} if default else {}
    return {"metadata": {"name": name, "annotations": annotations}, "provisioner": provisioner}


def test_storage_class_must_exist_and_be_able_to_share_a_volume():
    classes = [storage_class("gp3", "ebs.csi.aws.com", default=True), storage_class("efs", "efs.csi.aws.com"),
               storage_class("odd", "example.com/thing")]
    w = want(creates_claim=True)
    assert pf.storage_checks(classes, dict(w, storage_class="efs"))[0]["status"] == "PASS"
    default = pf.storage_checks(classes, w)[0]
    assert default["status"] == "FAIL" and default["subject"] == "StorageClass/gp3"
    assert "gp3 (ebs.csi.aws.com) attaches a volume to one node at a time" in default["message"]
    assert pf.storage_checks(classes, dict(w, storage_class="odd"))[0]["status"] == "WARN"
    assert pf.storage_checks(classes, dict(w, storage_class="none"))[0]["status"] == "FAIL"
    assert pf.storage_checks(classes[1:], w)[0]["message"].startswith("no storage class is named and the cluster")
    assert pf.storage_checks(classes, dict(w, size=1))[0]["status"] == "PASS"  # one pod needs no sharing
    assert pf.storage_checks(classes, want()) == []  # no claim to create


def lws_crd(served=("v1",)):
    return {"spec": {"versions": [{"name": v, "served": True} for v in served]}}


def lws_controller(available=True):
    return {"metadata": {"name": "lws-controller-manager", "namespace": "lws-system"},
            "spec": {"template": {"spec": {"containers": [
                {"image": "registry.k8s.io/lws/lws:v0.9.0"}]}}},
            "status": {"conditions": [{"type": "Available", "status": "True" if available else "False"}]}}


def test_lws_installed_missing_or_not_available():
    assert pf.lws_checks(lws_crd(), lws_controller(), False)[0]["message"] == "v0.9.0 installed and Available"
    assert pf.lws_checks(None, None, False)[0]["status"] == "FAIL"
    assert pf.lws_checks(None, None, True)[0]["status"] == "PASS"
    assert pf.lws_checks(lws_crd(("v1alpha1",)), lws_controller(), False)[0]["status"] == "FAIL"
    down = pf.lws_checks(lws_crd(), lws_controller(available=False), False)[0]
    assert down["status"] == "FAIL" and down["subject"] == "Deployment/lws-controller-manager"
    # the deploy re-applies what it pins: a warning, with what to look at if it stays so
    again = pf.lws_checks(lws_crd(), lws_controller(available=False), True)[0]
    assert again["status"] == "WARN" and again["fix"].startswith("the deploy re-applies the pinned LeaderWorkerSet")


# The LeaderWorkerSet release the collection pins, as shipped: its CRD's schema is the real one an API server prunes by.
LWS_MANIFESTS = Path(__file__).resolve().parents[4] / "roles" / "lws_install" / "files" / "lws-v0.9.0-manifests.yaml"


def pinned_lws_crd():
    return next(d for d in yaml.safe_load_all(LWS_MANIFESTS.read_text())
                if d and d.get("kind") == "CustomResourceDefinition"
                and d["metadata"]["name"] == "leaderworkersets.leaderworkerset.x-k8s.io")


def test_the_installed_lws_schema_knows_a_charts_fields_and_names_the_ones_it_would_drop():
    crd = pinned_lws_crd()
    known = ["/spec/startupPolicy", "/spec/leaderWorkerTemplate/size",
             "/spec/leaderWorkerTemplate/subGroupPolicy/subGroupSize",
             "/spec/leaderWorkerTemplate/workerTemplate/metadata/labels/app.kubernetes.io~1name",
             "/spec/leaderWorkerTemplate/workerTemplate/spec/containers/-/resources/limits/nvidia.com~1gpu",
             "/spec/leaderWorkerTemplate/workerTemplate/spec/containers/-/env/-/valueFrom/secretKeyRef/key",
             "/spec/leaderWorkerTemplate/leaderTemplate/spec/nodeSelector/nvidia.com~1gpu.product",
             "/spec/leaderWorkerTemplate/workerTemplate/spec/volumes"]
    found = pf.lws_field_checks(crd, known, "v0.9.0")[0]
    assert found["status"] == "PASS" and "all 8 field(s)" in found["message"]
    newer = known + ["/spec/leaderWorkerTemplate/futureGroupPolicy/mode",
                     "/spec/leaderWorkerTemplate/futureGroupPolicy/size",
                     "/spec/leaderWorkerTemplate/workerTemplate/spec/containers/-/futureProbe/path",
                     "/spec/leaderWorkerTemplate/workerTemplate/metadata/generateName"]
    found = pf.lws_field_checks(crd, newer, "v0.9.0")[0]
    assert found["status"] == "FAIL"
    assert found["message"].startswith(
        "the installed LeaderWorkerSet v0.9.0 does not know spec.leaderWorkerTemplate.futureGroupPolicy, "
        "spec.leaderWorkerTemplate.workerTemplate.metadata.generateName, "
        "spec.leaderWorkerTemplate.workerTemplate.spec.containers[].futureProbe: the API server would drop them")
    # the deploy installs the pinned release: the same one leaves the schema as it is, an older one is upgraded first
    assert pf.lws_field_checks(crd, newer, "v0.9.0", "v0.9.0")[0]["status"] == "FAIL"
    assert pf.lws_field_checks(crd, newer, "v0.10.1", "v0.9.0")[0]["status"] == "FAIL"
    upgraded = pf.lws_field_checks(crd, newer, "v0.8.2", "v0.9.0")[0]
    assert upgraded["status"] == "WARN" and upgraded["fix"].startswith("the deploy first upgrades LeaderWorkerSet to v0.9.0")
    assert pf.lws_field_checks(crd, newer, "unknown", "v0.9.0")[0]["status"] == "WARN"


def test_unknown_fields_follows_maps_lists_and_preserved_subtrees():
    schema = {"type": "object", "properties": {
        "spec": {"type": "object", "properties": {
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "items": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}}
    assert pf.unknown_fields(schema, ["/spec/labels/a~1b", "/spec/items/-/name", "/spec/free/x/y/-/z"]) == []
    assert pf.unknown_fields(schema, ["/spec/items/-/other", "/spec/nope/a", "/spec/nope/b"]) == [
        "/spec/items/-/other", "/spec/nope"]
    assert pf.pointer_text("/spec/items/-/a~1b~0c") == "spec.items[].a/b~c"


def test_rendered_kinds_add_helms_verbs_and_an_unserved_kind_fails():
    resources = [{"name": "configmaps", "group": "", "namespaced": True},
                 {"name": "clusterroles", "group": "rbac.authorization.k8s.io", "namespaced": False}]
    found = pf.kind_permissions(resources, "nim")
    assert {"verb": "create", "resource": "configmaps", "group": "", "namespace": "nim"} in found
    assert {"verb": "delete", "resource": "clusterroles", "group": "rbac.authorization.k8s.io",
            "namespace": ""} in found
    assert len(found) == 2 * len(pf.HELM_VERBS)
    fixed = [{"verb": "create", "resource": "configmaps", "namespace": "nim"}]
    merged = pf.merge_permissions(fixed, found)
    assert len(merged) == len(found) and merged[0] is fixed[0]
    kinds = [{"api_version": "v1", "kind": "Service"},
             {"api_version": "monitoring.coreos.com/v1", "kind": "ServiceMonitor"}]
    assert pf.kinds_checks(kinds, [])[0]["status"] == "PASS"
    failed = pf.kinds_checks(kinds, kinds[1:])[0]
    assert failed["status"] == "FAIL" and "ServiceMonitor (monitoring.coreos.com/v1)" in failed["message"]
    assert "Prometheus Operator" in failed["fix"]


def record(status, version, created="2026-11-30T12:00:00Z"):
    return {"metadata": {"labels": {"status": status, "version": str(version)}, "creationTimestamp": created}}


def test_helm_state_pending_is_a_failure_until_helms_timeout_has_passed():
    now = parse_time("2026-11-30T12:05:00Z")
    assert pf.helm_checks(None, "r", now, 600)[0]["status"] == "PASS"
    assert pf.helm_checks(record("deployed", 3), "r", now, 600)[0]["message"] == "revision 3 deployed"
    fresh = pf.helm_checks(record("pending-upgrade", 4), "r", now, 600)[0]
    assert fresh["status"] == "FAIL"
    assert fresh["message"] == "revision 4 is pending-upgrade since 300s: a helm run may still be changing it"
    assert pf.helm_checks(record("pending-install", 1), "r", now, 120)[0]["status"] == "WARN"


def test_verdict_and_table():
    checks = [pf.check("api", "PASS", "API server", "reachable"),
              pf.check("quota", "WARN", "nim", "could not be read", "grant read access")]
    assert pf.verdict(checks) == "WARN"
    assert pf.verdict(checks + [pf.check("lws", "FAIL", "LeaderWorkerSet", "missing", "install it")]) == "FAIL"
    assert pf.verdict(checks[:1]) == "PASS"
    assert pf.table(checks) == [
        "      CHECK  SUBJECT     RESULT",
        "PASS  api    API server  reachable",
        "WARN  quota  nim         could not be read",
        "                         fix: grant read access"]
