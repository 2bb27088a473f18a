# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE: this module_utils file is internal to nimops.multinode and may change without notice.
"""The one place the collection's own modules talk to the Kubernetes API.

Authentication and client construction are kubernetes.core's (same options, same K8S_AUTH_* environment);
this file only reads the objects diagnosis needs and applies Secrets. API errors become ``K8sError``.

Every request but the pod watch (which the server ends after its timeout) has a client-side timeout (a silently
dead API server must not hang a task), and transient failures
(no connection, 429, 5xx, 409 from a concurrent writer) are tried again a few times with a short backoff; past
that they become ``K8sError`` with rule ``k8s_unavailable``, which a waiting loop treats as one failed poll.
"""

from __future__ import annotations

import copy
import datetime
import time

from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.nimops.multinode.plugins.module_utils._diagnosis import empty_snapshot
from ansible_collections.nimops.multinode.plugins.module_utils._errors import NimOpsError
from ansible_collections.nimops.multinode.plugins.module_utils._lws_status import (
    CONTROLLER, CONTROLLER_SELECTOR, DEFAULT_CONTROLLER_NAMESPACE, LWS_NAME_LABEL)

try:
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
    from kubernetes.client.rest import ApiException
    from kubernetes.dynamic.exceptions import DynamicApiError, NotFoundError, ResourceNotFoundError
    HAS_K8S = True
    K8S_IMPORT_ERROR = None
except ImportError as exc:  # reported by the module through missing_required_lib
    HAS_K8S = False
    K8S_IMPORT_ERROR = exc

# Seconds one request may take (the API server answers a healthy request in well under a second).
REQUEST_TIMEOUT = 30
# Statuses worth another try: throttled, conflicting concurrent writer, server or gateway trouble.
TRANSIENT_STATUS = (409, 429, 500, 502, 503, 504)
RETRY_DELAYS = (1, 2, 4)

LWS_CRD = "leaderworkersets.leaderworkerset.x-k8s.io"
LWS_API = "leaderworkerset.x-k8s.io/v1"


class K8sError(NimOpsError):
    """The API refused or failed a request."""


def auth_argspec():
    return copy.deepcopy(AUTH_ARG_SPEC)


def connect(params):
    auth = dict((k, params.get(k)) for k in AUTH_ARG_SPEC if params.get(k) is not None)
    try:
        return get_api_client(**auth)
    except Exception as exc:  # kubernetes.core raises CoreException; config errors vary by client version
        raise K8sError("k8s_connect", "cannot build a Kubernetes API client: %s" % exc,
                       "every step of this collection talks to the cluster",
                       "set kubeconfig/context (or K8S_AUTH_KUBECONFIG) to a reachable cluster")


def _api_error(exc, what):
    status = getattr(exc, "status", "?")
    reason = getattr(exc, "summary", lambda: str(exc))()
    return K8sError("k8s_api", "%s failed (HTTP %s): %s" % (what, status, reason),
                    "the API server refused or did not answer", "check access rights and the API server")


def _transient(exc):
    """A failure another try may not see: no connection or a timeout, or a status in TRANSIENT_STATUS."""
    status = getattr(exc, "status", None)
    if status is not None:
        return status in TRANSIENT_STATUS
    # urllib3's errors (connection refused or reset, read timeout, ...) and the socket errors under them
    return isinstance(exc, OSError) or type(exc).__module__.startswith("urllib3")


def call(what, request, sleep=time.sleep):
    """``request()``, tried again on transient failures; other API errors become K8sError at once."""
    for attempt, delay in enumerate(RETRY_DELAYS + (None,)):
        try:
            return request()
        except (NotFoundError, ResourceNotFoundError):
            raise
        except Exception as exc:  # transient or not, API error or not: sorted out right below
            api = isinstance(exc, (DynamicApiError, ApiException))
            if not _transient(exc):
                if api:
                    raise _api_error(exc, what)
                raise
            if delay is None:
                raise K8sError("k8s_unavailable", "%s failed %d times: %s" % (what, attempt + 1, exc),
                               "the API server did not answer, throttled the requests, or failed them",
                               "check that the API server is up and reachable from here, then run again")
            sleep(delay)
    return None  # not reached: the last attempt returns or raises


def get(client, api_version, kind, name, namespace=None):
    """One object as a dict, or None when it (or its API) does not exist."""
    try:
        return call("get %s %s" % (kind, name), lambda: client.get(
            client.resource(kind, api_version), name=name, namespace=namespace,
            _request_timeout=REQUEST_TIMEOUT).to_dict())
    except (NotFoundError, ResourceNotFoundError):
        return None


def list_items(client, api_version, kind, namespace=None, label_selector=None, with_version=False,
               metadata_only=False):
    """The items (and, ``with_version``, the list's resourceVersion, where a watch can resume); ``metadata_only``
    reads names, labels and timestamps only (a Secret's data never leaves the API server)."""
    extra = {"header_params": dict(METADATA_ONLY)} if metadata_only else {}
    try:
        found = call("list %s" % kind, lambda: client.get(
            client.resource(kind, api_version), namespace=namespace, label_selector=label_selector,
            _request_timeout=REQUEST_TIMEOUT, **extra).to_dict())
    except (NotFoundError, ResourceNotFoundError):
        found = {}
    items = list(found.get("items") or [])
    if with_version:
        return items, (found.get("metadata") or {}).get("resourceVersion")
    return items


def resolve_lws_name(client, namespace, name=None, release=None):
    """The LWS to wait on: ``name`` as given, else the one labelled with the Helm release
    (charts name it <release>-<chart> unless the release name already contains the chart name)."""
    if name:
        return name
    found = list_items(client, LWS_API, "LeaderWorkerSet", namespace, "app.kubernetes.io/instance=%s" % release)
    if len(found) == 1:
        return found[0]["metadata"]["name"]
    if len(found) > 1:
        raise K8sError("lws_ambiguous", "release %s has %d LeaderWorkerSets (%s)" % (
            release, len(found), ", ".join(sorted(f["metadata"]["name"] for f in found))),
            "the wait needs one LeaderWorkerSet", "set the LeaderWorkerSet name explicitly")
    return release  # not created (yet): the diagnosis reports it under the release name


# A list of metadata only: the API server leaves the Secrets' data out of the response.
METADATA_ONLY = {"Accept": "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"}


def secret_names(client, namespace):
    """name -> None for every Secret in the namespace, read as metadata only (no data ever leaves the API server;
    so which keys a Secret holds is unknown here, and the kubelet's CreateContainerConfigError names a missing key)."""
    found = list_items(client, "v1", "Secret", namespace, metadata_only=True)
    return dict((s["metadata"]["name"], None) for s in found)


def watch_pods(client, namespace, label_selector, seconds, resource_version=None):
    """Every version of the pods seen during ``seconds`` (bounded by the server-side watch timeout).

    A crashed LWS pod is deleted within a second (RecreateGroupOnPodRestart); watching is what catches its
    termination message. Resuming from the previous poll's ``resource_version`` replays what happened between
    two polls; when the API server no longer has that version (410 Gone) the watch starts from now.
    """
    resource = client.resource("Pod", "v1")

    def watch(since):
        # bounded by the server-side timeout (the dynamic client's watch takes no client-side one)
        return list(client.client.watch(resource, namespace=namespace, label_selector=label_selector,
                                        resource_version=since, timeout=max(1, int(seconds))))

    def watch_from_previous():
        try:
            return watch(resource_version)
        except ApiException as exc:
            if exc.status != 410 or resource_version is None:
                raise
            return watch(None)

    stream = call("watch pods", watch_from_previous)
    seen = []
    for event in stream:
        raw = event.get("raw_object")
        if isinstance(raw, dict) and raw.get("kind") != "Status":
            seen.append(raw)
    return seen


def find_controller(client, namespace):
    """The LWS controller Deployment: by its release-manifest name, else by its labels (a Helm install names it
    after its release); None when neither finds one."""
    found = get(client, "apps/v1", "Deployment", CONTROLLER, namespace)
    if found is None:
        labelled = list_items(client, "apps/v1", "Deployment", namespace, CONTROLLER_SELECTOR)
        found = min(labelled, key=lambda d: d["metadata"]["name"]) if labelled else None
    return found


def snapshot(client, name, namespace, controller_namespace=DEFAULT_CONTROLLER_NAMESPACE, with_secrets=True,
             watch_seconds=0, resource_version=None):
    """Everything readiness and diagnosis look at, read once; with ``resource_version`` (where the previous
    snapshot's pod list ended), first every pod version since then, watched for ``watch_seconds``.
    ``snap["resource_version"]`` is where the next snapshot's watch resumes."""
    crd = get(client, "apiextensions.k8s.io/v1", "CustomResourceDefinition", LWS_CRD)
    observed = []
    if crd is not None and resource_version and watch_seconds > 0:
        observed = watch_pods(client, namespace, "%s=%s" % (LWS_NAME_LABEL, name), watch_seconds,
                              resource_version)
    snap = empty_snapshot(name, namespace, datetime.datetime.now(datetime.timezone.utc))
    snap["observed_pods"] = observed
    snap["controller_namespace"] = controller_namespace
    snap["crd"] = crd
    snap["controller"] = find_controller(client, controller_namespace)
    if snap["crd"] is None:
        return snap
    snap["lws"] = get(client, LWS_API, "LeaderWorkerSet", name, namespace)
    snap["pods"], snap["resource_version"] = list_items(client, "v1", "Pod", namespace,
                                                        "%s=%s" % (LWS_NAME_LABEL, name), with_version=True)
    snap["pvcs"] = list_items(client, "v1", "PersistentVolumeClaim", namespace)
    pod_names = set(p["metadata"]["name"] for p in snap["pods"])
    pod_names.add(name)  # LWS records group recreation on itself
    snap["events"] = [e for e in list_items(client, "v1", "Event", namespace)
                      if (e.get("involvedObject") or {}).get("name") in pod_names]
    snap["services"] = list_items(client, "v1", "Service", namespace)
    if with_secrets:
        snap["secrets"] = secret_names(client, namespace)
    return snap


def apply_secret(client, body, replace_type):
    """Create or update a Secret; a type change needs delete + create (the type is immutable)."""
    resource = client.resource("Secret", "v1")
    meta = body["metadata"]

    def write():
        # read, then write with the version read: a writer in between gets 409, and the whole write is tried again
        current = get(client, "v1", "Secret", meta["name"], meta["namespace"])
        if current is not None and replace_type:
            client.delete(resource, name=meta["name"], namespace=meta["namespace"], _request_timeout=REQUEST_TIMEOUT)
            current = None
        if current is None:
            client.create(resource, body, namespace=meta["namespace"], _request_timeout=REQUEST_TIMEOUT)
        else:
            update = copy.deepcopy(body)
            update["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            update["metadata"]["labels"] = dict(current["metadata"].get("labels") or {}, **meta["labels"])
            update["metadata"]["annotations"] = dict(current["metadata"].get("annotations") or {},
                                                     **(meta.get("annotations") or {}))
            client.replace(resource, update, name=meta["name"], namespace=meta["namespace"],
                           _request_timeout=REQUEST_TIMEOUT)

    call("write Secret %s/%s" % (meta["namespace"], meta["name"]), write)


def set_secret_annotation(client, name, namespace, key, value):
    """Merge-patch one annotation of a Secret (its data is neither read nor sent)."""
    call("annotate Secret %s/%s" % (namespace, name), lambda: client.patch(
        client.resource("Secret", "v1"), {"metadata": {"annotations": {key: value}}}, name=name,
        namespace=namespace, content_type="application/merge-patch+json", _request_timeout=REQUEST_TIMEOUT))


def delete_secret(client, name, namespace):
    try:
        call("delete Secret %s/%s" % (namespace, name), lambda: client.delete(
            client.resource("Secret", "v1"), name=name, namespace=namespace, _request_timeout=REQUEST_TIMEOUT))
    except NotFoundError:
        return
