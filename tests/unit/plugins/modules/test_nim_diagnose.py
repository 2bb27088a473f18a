# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nim_diagnose's result: every cause and concern once, as a finding; the readiness status without them."""

from __future__ import annotations

import pytest

from ansible_collections.nimops.multinode.plugins.module_utils import _diagnosis as dg
from ansible_collections.nimops.multinode.plugins.module_utils import _k8s
from ansible_collections.nimops.multinode.plugins.modules import nim_diagnose
from ansible_collections.nimops.multinode.tests.unit.plugins.module_utils import k8s_objects as o

PARAMS = {"name": "nim-llm", "namespace": "nim", "release": None, "controller_namespace": "lws-system",
          "ray_port": 6379}


def release_snapshot(pods):
    s = dg.empty_snapshot("nim-llm", "nim", o.NOW)
    s.update(crd=o.crd(), controller=o.controller(), lws=o.lws(size=2, ready_replicas=0), pods=pods,
             pvcs=[o.pvc()], secrets={"ngc-api": ["NGC_API_KEY"], "nvcr-imagepull": [".dockerconfigjson"]},
             services=o.release_services())
    return s


@pytest.fixture
def cluster(monkeypatch):
    """The API calls of nim_diagnose.run answered from a snapshot, without a cluster."""
    state = {}
    monkeypatch.setattr(_k8s, "connect", lambda params: "fake-client")
    monkeypatch.setattr(_k8s, "resolve_lws_name", lambda client, namespace, name, release: name)
    monkeypatch.setattr(_k8s, "snapshot", lambda client, name, namespace, controller_namespace: state["snap"])
    monkeypatch.setattr(_k8s, "list_items", lambda client, api_version, kind, namespace: [])
    return state


def not_ready_worker():
    pods = o.group_pods(size=2)
    pods[1] = o.pod("nim-llm-0-1", worker=1, ready=False)
    return pods


@pytest.mark.parametrize("pods,codes", [
    (not_ready_worker(), ["not_ready"]),
    (o.group_pods(size=2, json_logging="1"), ["json_logging_enabled", "json_logging_enabled"]),
], ids=["running-not-ready", "json-logging"])
def test_concerns_are_findings_not_status(cluster, pods, codes):
    cluster["snap"] = release_snapshot(pods)
    result = nim_diagnose.run(dict(PARAMS))
    assert [f["code"] for f in result["findings"]] == codes
    assert [f["severity"] for f in result["findings"]] == ["warning"] * len(codes)
    assert "concerns" not in result["status"]
    assert "causes" not in result["status"]
    assert result["healthy"] is False


def test_healthy_release_has_no_findings(cluster):
    cluster["snap"] = release_snapshot(o.group_pods(size=2))
    cluster["snap"]["lws"] = o.lws(size=2)
    result = nim_diagnose.run(dict(PARAMS))
    assert result["findings"] == []
    assert result["healthy"] is True
    assert result["status"]["ready"] is True
    assert result["status"]["endpoint"]["url"] == "http://nim-llm-openai.nim.svc.cluster.local:8000"
    assert "concerns" not in result["status"]
