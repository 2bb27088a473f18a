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
