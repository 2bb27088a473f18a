# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_k8s.call: transient API failures are tried again with a backoff, others fail at once, as K8sError."""

from __future__ import annotations

import pytest
from kubernetes.client.rest import ApiException
from urllib3.exceptions import MaxRetryError

from ansible_collections.nimops.multinode.plugins.module_utils import _k8s


def failing(*errors, then="ok"):
    pending = list(errors)

    def request():
        if pending:
            raise pending.pop(0)
        return then
    return request


@pytest.mark.parametrize("error", [
    ApiException(status=503, reason="Service Unavailable"),
    ApiException(status=429, reason="Too Many Requests"),
    ApiException(status=409, reason="Conflict"),
    MaxRetryError(None, "/api/v1/pods", reason="connection refused"),
    ConnectionResetError("reset by peer"),
])
def test_a_transient_failure_is_tried_again(error):
    slept = []
    assert _k8s.call("list Pod", failing(error, error), sleep=slept.append) == "ok"
    assert slept == [1, 2]


def test_a_transient_failure_that_lasts_becomes_k8s_unavailable():
    slept = []
    error = ApiException(status=503, reason="Service Unavailable")
    with pytest.raises(_k8s.K8sError) as caught:
        _k8s.call("list Pod", failing(*[error] * 10), sleep=slept.append)
    assert caught.value.rule == "k8s_unavailable"
    assert caught.value.message.startswith("[k8s_unavailable] list Pod failed 4 times: ")
    assert slept == list(_k8s.RETRY_DELAYS)


def test_a_refusal_is_not_tried_again():
    slept = []
    with pytest.raises(_k8s.K8sError) as caught:
        _k8s.call("list Secret", failing(ApiException(status=403, reason="Forbidden")), sleep=slept.append)
    assert caught.value.rule == "k8s_api" and slept == []


def test_every_request_has_a_client_side_timeout():
    seen = []

    class Client:
        def resource(self, kind, api_version):
            return kind

        def get(self, resource, **params):
            seen.append(params)

            class Found:
                @staticmethod
                def to_dict():
                    return {"items": []}
            return Found()

    _k8s.get(Client(), "v1", "Pod", "p", "ns")
    _k8s.list_items(Client(), "v1", "Pod", "ns")
    assert [p["_request_timeout"] for p in seen] == [_k8s.REQUEST_TIMEOUT, _k8s.REQUEST_TIMEOUT]


class Deployments:
    """A client that holds some Deployments in lws-system and answers get-by-name and list-by-labels as the API
    does (404 for a missing name)."""

    def __init__(self, *deployments):
        self.items = list(deployments)

    def resource(self, kind, api_version):
        return kind

    def get(self, resource, name=None, namespace=None, label_selector=None, _request_timeout=None):
        from kubernetes.dynamic.exceptions import NotFoundError

        class Answer(dict):
            def to_dict(self):
                return dict(self)
        wanted = dict(pair.split("=") for pair in label_selector.split(",")) if label_selector else {}
        found = [d for d in self.items if d["metadata"]["namespace"] == namespace
                 and (name is None or d["metadata"]["name"] == name)
                 and all(d["metadata"].get("labels", {}).get(k) == v for k, v in wanted.items())]
        if name is not None:
            if not found:
                raise NotFoundError(ApiException(status=404, reason="Not Found"))
            return Answer(found[0])
        return Answer(items=found)


def deployment(name, namespace="lws-system", labels=None):
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels or {}}}


LWS_LABELS = {"app.kubernetes.io/name": "lws", "control-plane": "controller-manager"}


@pytest.mark.parametrize("deployments,expected", [
    ([deployment("lws-controller-manager", labels=LWS_LABELS)], "lws-controller-manager"),
    # installed with LWS's Helm chart under another release name
    ([deployment("other", labels={"app.kubernetes.io/name": "other"}),
      deployment("my-lws-controller-manager", labels=LWS_LABELS)], "my-lws-controller-manager"),
    ([deployment("my-lws-controller-manager", namespace="elsewhere", labels=LWS_LABELS)], None),
    ([deployment("something-else")], None),
])
def test_lws_controller_found_by_name_or_labels(deployments, expected):
    found = _k8s.find_controller(Deployments(*deployments), "lws-system")
    assert (found or {}).get("metadata", {}).get("name") == expected
