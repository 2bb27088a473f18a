# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rendered objects against the plan: each difference the check names, and a faithful render that passes."""

from __future__ import annotations

import copy

import pytest
import yaml

from ansible_collections.nimops.multinode.plugins.module_utils._errors import InputError
from ansible_collections.nimops.multinode.plugins.module_utils._manifest_check import (
    check_manifest_dir, check_rendered, read_rendered, rendered_problems, rendered_shape)

EXPECTED = {"chart": "nim-llm 2.0.0-sim", "size": 2, "gpus_per_node": 8,
            "model_cache": {"kind": "pvc", "access_mode": "ReadWriteMany"},
            "secrets": {"image_pull_secret": "nvcr-imagepull", "ngc_api_secret": "ngc-api"}}


def pod(role, gpus=8, request=None, env=None, volumes=None, pull="nvcr-imagepull"):
    container = {
        "name": "nim-llm",
        "resources": {"limits": {"nvidia.com/gpu": gpus},
                      "requests": {"nvidia.com/gpu": gpus if request is None else request}},
        "env": env if env is not None else [
            {"name": "NIM_JSONL_LOGGING", "value": "0"},
            {"name": "NGC_API_KEY", "valueFrom": {"secretKeyRef": {"name": "ngc-api", "key": "NGC_API_KEY"}}}],
        "volumeMounts": [{"name": "model-store", "mountPath": "/model-store"}],
    }
    return {"metadata": {"labels": {"role": role}},
            "spec": {"imagePullSecrets": [{"name": pull}] if pull else [],
                     "containers": [container],
                     "volumes": volumes if volumes is not None else [
                         {"name": "model-store", "persistentVolumeClaim": {"claimName": "nim-llm-model-store"}}]}}


def rendered(size=2, leader=None, worker=None, service_name="nim-llm-openai", cluster_ip=None, access_mode="ReadWriteMany"):
    service = {"kind": "Service", "metadata": {"name": service_name}, "spec": {"ports": [{"port": 8000}]}}
    if cluster_ip:
        service["spec"]["clusterIP"] = cluster_ip
    return [
        {"kind": "PersistentVolumeClaim", "metadata": {"name": "nim-llm-model-store"},
         "spec": {"accessModes": [access_mode]}},
        service,
        {"kind": "LeaderWorkerSet", "metadata": {"name": "nim-llm"},
         "spec": {"leaderWorkerTemplate": {"size": size, "leaderTemplate": leader or pod("leader"),
                                           "workerTemplate": worker or pod("worker")}}},
    ]


def whats(objects, expected=None):
    return [what for what, _fix in rendered_problems(objects, expected or EXPECTED)]


def test_a_render_that_follows_the_plan_passes_and_lists_the_objects():
    found = check_rendered(rendered(), EXPECTED)
    assert found["objects"] == ["PersistentVolumeClaim/nim-llm-model-store", "Service/nim-llm-openai",
                                "LeaderWorkerSet/nim-llm"]
    assert found["kinds"] == [{"api_version": "", "kind": kind}
                              for kind in ("LeaderWorkerSet", "PersistentVolumeClaim", "Service")]


def test_the_shape_names_kinds_and_where_fields_are_set_never_their_values():
    objects = [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ssh"}, "data": {"key": "RkFLRQ=="}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "b"}},
        {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet", "metadata": {"name": "nim-llm"},
         "spec": {"startupPolicy": "LeaderCreated", "leaderWorkerTemplate": {
             "size": 2, "subGroupPolicy": {},
             "workerTemplate": {"metadata": {"labels": {"app.kubernetes.io/name": "nim-llm"}}, "spec": {
                 "containers": [{"name": "nim", "env": [{"name": "A", "value": "nvapi-FAKEvalue"}],
                                 "resources": {"limits": {"nvidia.com/gpu": 8}}}],
                 "volumes": []}}}}},
    ]
    shape = rendered_shape(objects)
    assert shape["kinds"] == [{"api_version": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet"},
                              {"api_version": "v1", "kind": "Secret"}, {"api_version": "v1", "kind": "Service"}]
    assert shape["lws_fields"] == [
        "/spec/leaderWorkerTemplate/size",
        "/spec/leaderWorkerTemplate/subGroupPolicy",
        "/spec/leaderWorkerTemplate/workerTemplate/metadata/labels/app.kubernetes.io~1name",
        "/spec/leaderWorkerTemplate/workerTemplate/spec/containers/-/env/-/name",
        "/spec/leaderWorkerTemplate/workerTemplate/spec/containers/-/env/-/value",
        "/spec/leaderWorkerTemplate/workerTemplate/spec/containers/-/name",
        "/spec/leaderWorkerTemplate/workerTemplate/spec/containers/-/resources/limits/nvidia.com~1gpu",
        "/spec/leaderWorkerTemplate/workerTemplate/spec/volumes",
        "/spec/startupPolicy"]
    assert "FAKE" not in repr(shape) and "RkFLRQ" not in repr(shape)


def test_a_group_of_another_size_is_a_mismatch_that_names_both_sizes():
    with pytest.raises(InputError) as exc:
        check_rendered(rendered(size=1), EXPECTED)
    assert exc.value.rule == "rendered_mismatch"
    assert "LeaderWorkerSet nim-llm has size 1, the plan has 2 nodes per group" in exc.value.what
    assert exc.value.what.startswith("nim-llm 2.0.0-sim rendered")
    assert "multiNode.workers" in exc.value.fix


def test_a_missing_size_is_lws_default_of_one():
    objects = rendered()
    del objects[2]["spec"]["leaderWorkerTemplate"]["size"]
    assert whats(objects) == ["LeaderWorkerSet nim-llm has size 1, the plan has 2 nodes per group"]


def test_gpus_per_pod_and_request_equal_to_limit_on_leader_and_worker():
    assert whats(rendered(worker=pod("worker", gpus=1))) == [
        "the worker pods of nim-llm ask for 1 nvidia.com/gpu per pod, the plan has gpus_per_node 8"]
    assert whats(rendered(leader=pod("leader", request=4))) == [
        "the leader pods of nim-llm container nim-llm requests 4 nvidia.com/gpu but is limited to 8"]
    no_gpu = pod("worker")
    no_gpu["spec"]["containers"][0]["resources"] = {}
    assert whats(rendered(worker=no_gpu)) == [
        "the worker pods of nim-llm ask for 0 nvidia.com/gpu per pod, the plan has gpus_per_node 8"]


def test_gpu_counts_rendered_as_strings_are_compared_as_numbers():
    assert whats(rendered(leader=pod("leader", gpus="8", request="8"))) == []


def test_without_a_leader_template_the_worker_template_is_checked_for_the_leader():
    objects = rendered(worker=pod("worker", gpus=2))
    del objects[2]["spec"]["leaderWorkerTemplate"]["leaderTemplate"]
    assert whats(objects) == [
        "the leader pods of nim-llm ask for 2 nvidia.com/gpu per pod, the plan has gpus_per_node 8",
        "the worker pods of nim-llm ask for 2 nvidia.com/gpu per pod, the plan has gpus_per_node 8"]


def test_the_model_cache_must_be_mounted_from_the_planned_source_on_every_pod():
    empty_dir = pod("worker", volumes=[{"name": "model-store", "emptyDir": {}}])
    assert whats(rendered(worker=empty_dir)) == [
        "the worker pods of nim-llm mount no model cache from a ReadWriteMany claim the chart creates"]
    assert whats(rendered(access_mode="ReadWriteOnce")) == [
        "the leader pods of nim-llm mount no model cache from a ReadWriteMany claim the chart creates",
        "the worker pods of nim-llm mount no model cache from a ReadWriteMany claim the chart creates"]
    unmounted = pod("leader")
    unmounted["spec"]["containers"][0]["volumeMounts"] = []
    assert whats(rendered(leader=unmounted))[0].startswith("the leader pods of nim-llm mount no model cache")


def test_nfs_and_existing_claim_caches_are_compared_by_server_path_and_claim():
    nfs = dict(EXPECTED, model_cache={"kind": "nfs", "server": "10.0.0.5", "path": "/exports/nim"})
    nfs_volume = [{"name": "model-store", "nfs": {"server": "10.0.0.5", "path": "/exports/nim"}}]
    assert whats(rendered(leader=pod("leader", volumes=nfs_volume), worker=pod("worker", volumes=nfs_volume)), nfs) == []
    other_path = [{"name": "model-store", "nfs": {"server": "10.0.0.5", "path": "/exports/other"}}]
    assert whats(rendered(leader=pod("leader", volumes=nfs_volume), worker=pod("worker", volumes=other_path)), nfs) == [
        "the worker pods of nim-llm mount no model cache from the NFS export 10.0.0.5:/exports/nim"]
    claim = dict(EXPECTED, model_cache={"kind": "existing_claim", "claim": "shared-cache"})
    assert whats(rendered(), claim) == [
        "the leader pods of nim-llm mount no model cache from the claim shared-cache",
        "the worker pods of nim-llm mount no model cache from the claim shared-cache"]


def test_no_planned_cache_checks_no_volume():
    none = dict(EXPECTED, model_cache={"kind": "none"})
    assert whats(rendered(worker=pod("worker", volumes=[])), none) == []


def test_an_unknown_cache_kind_is_refused():
    with pytest.raises(InputError) as exc:
        rendered_problems(rendered(), dict(EXPECTED, model_cache={"kind": "hostpath"}))
    assert exc.value.rule == "storage_options"


def test_secrets_are_referenced_by_name_and_never_literal():
    assert whats(rendered(worker=pod("worker", pull=None))) == [
        "the worker pods of nim-llm do not pull with the Secret nvcr-imagepull"]
    no_key = pod("leader", env=[{"name": "NIM_JSONL_LOGGING", "value": "0"}])
    assert whats(rendered(leader=no_key)) == ["the leader pods of nim-llm do not read the Secret ngc-api"]
    from_env = pod("leader", env=[{"name": "NIM_JSONL_LOGGING", "value": "0"}])
    from_env["spec"]["containers"][0]["envFrom"] = [{"secretRef": {"name": "ngc-api"}}]
    assert whats(rendered(leader=from_env)) == []
    literal = pod("worker", env=[{"name": "NGC_API_KEY", "value": "nvapi-FAKE-literal-0000"}])
    problems = whats(rendered(worker=literal))
    assert problems == ["the worker pods of nim-llm container nim-llm carries NGC_API_KEY as a literal value"]
    assert "nvapi-FAKE" not in str(problems)


def test_json_logging_on_is_a_mismatch():
    loud = pod("worker", env=[{"name": "NIM_JSONL_LOGGING", "value": "1"}])
    assert whats(rendered(worker=loud)) == ["the worker pods of nim-llm container nim-llm has NIM_JSONL_LOGGING=1"]


def test_a_service_named_like_the_leaderworkerset_must_be_headless():
    problems = whats(rendered(service_name="nim-llm"))
    assert len(problems) == 1 and "the Service nim-llm has the LeaderWorkerSet's name and is not headless" in problems[0]
    assert "headless_service_conflict" in problems[0]
    assert whats(rendered(service_name="nim-llm", cluster_ip="None")) == []


def test_every_difference_is_named_in_one_refusal():
    with pytest.raises(InputError) as exc:
        check_rendered(rendered(size=3, service_name="nim-llm", worker=pod("worker", gpus=4)), EXPECTED)
    assert "has size 3" in exc.value.what and "ask for 4" in exc.value.what and "not headless" in exc.value.what


def test_a_chart_without_a_leaderworkerset_is_named_with_what_it_rendered():
    assert whats([{"kind": "Deployment", "metadata": {"name": "nim-llm"}}]) == [
        "the chart rendered no LeaderWorkerSet (objects: Deployment/nim-llm)"]


def test_read_rendered_walks_the_output_folder_and_unpacks_lists(tmp_path):
    templates = tmp_path / "nim-llm" / "templates"
    templates.mkdir(parents=True)
    objects = rendered()
    (templates / "b.yaml").write_text(yaml.safe_dump_all([objects[0], None, objects[1]]))
    (templates / "a.yaml").write_text(yaml.safe_dump({"kind": "List", "items": [objects[2]]}))
    (templates / "NOTES.txt").write_text("not an object")
    assert [o["kind"] for o in read_rendered(str(tmp_path))] == ["LeaderWorkerSet", "PersistentVolumeClaim", "Service"]
    assert check_manifest_dir({"manifest_dir": str(tmp_path), "expected": copy.deepcopy(EXPECTED)})["objects"]
