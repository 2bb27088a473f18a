# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE: this module_utils file is internal to nimops.multinode and may change without notice.
"""One run at a time per release: a coordination.k8s.io Lease in the release's namespace is the lock.

The run that holds it renews it (see plugins/plugin_utils/lease_renewer.py) and deletes it at the end; a run that
was killed stops renewing, and its lease is taken over once it has gone unrenewed for its duration. Writes carry the
resourceVersion they read, so two runs racing for a free or stale lease cannot both win.
"""

from __future__ import annotations

import time

from ansible_collections.nimops.multinode.plugins.module_utils import _k8s
from ansible_collections.nimops.multinode.plugins.module_utils._errors import NimOpsError
from ansible_collections.nimops.multinode.plugins.module_utils._helm_history import parse_time

LEASE_API = "coordination.k8s.io/v1"
RUN_ANNOTATION = "nimops.multinode/run-id"

try:
    from kubernetes.dynamic.exceptions import ConflictError, NotFoundError
except ImportError:  # the module reports the missing library first; these stand in so this file imports
    class ConflictError(Exception):
        pass

    class NotFoundError(Exception):
        pass


def lease_name(release):
    return "nimops-lock-" + release


def micro_time(now):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%06dZ" % int((now % 1) * 1e6)


def body(namespace, release, holder, run_id, ttl, now, acquired=None, resource_version=None):
    meta = {"name": lease_name(release), "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "nimops.multinode", "app.kubernetes.io/instance": release},
            "annotations": {RUN_ANNOTATION: run_id}}
    if resource_version:
        meta["resourceVersion"] = resource_version
    return {"apiVersion": LEASE_API, "kind": "Lease", "metadata": meta,
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": int(ttl),
                     "acquireTime": acquired or micro_time(now), "renewTime": micro_time(now)}}


def judge(lease, run_id, now):
    """("free" | "ours" | "expired" | "held", details) of a Lease object (or None)."""
    if not lease:
        return "free", {}
    meta, spec = lease.get("metadata") or {}, lease.get("spec") or {}
    if (meta.get("annotations") or {}).get(RUN_ANNOTATION) == run_id:
        return "ours", {}
    renewed = parse_time(spec.get("renewTime") or spec.get("acquireTime") or meta.get("creationTimestamp"))
    duration = int(spec.get("leaseDurationSeconds") or 0)
    details = {"holder": spec.get("holderIdentity") or "an unnamed holder", "renewed_ago": int(now - renewed),
               "expires_in": int(renewed + duration - now)}
    return ("expired" if details["expires_in"] <= 0 else "held"), details


def _refusal(namespace, release, details):
    return NimOpsError(
        "release_locked",
        "Release %s/%s is being changed by another run: %s (lease %s renewed %d s ago, expires in %d s unless "
        "renewed)" % (namespace, release, details["holder"], lease_name(release), details["renewed_ago"],
                      details["expires_in"]),
        "two runs on one release interleave their helm operations and leave it half-upgraded",
        "wait for that run to end and run again; a lease left by a killed run is taken over once it has not been "
        "renewed for its duration")


def _write(what, request):
    """A write that is not retried on 409 (a conflict means another run wrote first: ConflictError goes up)."""
    try:
        return request()
    except (ConflictError, NotFoundError):
        raise
    except Exception as exc:  # an API refusal (403, ...) or no answer: named, never a traceback
        raise _k8s.K8sError("k8s_api", "%s failed: %s" % (what, getattr(exc, "summary", lambda: str(exc))()),
                            "the lock of the release is a Lease in its namespace",
                            "grant create/update/delete on leases.coordination.k8s.io in the namespace, or set "
                            "nim_lock: false")


def acquire(client, namespace, release, holder, run_id, ttl, check_mode=False, now=None):
    """Take, renew or take over the lock. Returns {"state": ..., "msg": ..., ["taken_over_from": ...]}."""
    now = time.time() if now is None else now
    resource = client.resource("Lease", LEASE_API)
    lease = _k8s.get(client, LEASE_API, "Lease", lease_name(release), namespace)
    state, details = judge(lease, run_id, now)
    if state == "held":
        raise _refusal(namespace, release, details)
    result = {"state": state, "lease": lease_name(release)}
    if state == "expired":
        result["taken_over_from"] = details["holder"]
        result["msg"] = "took over the lock of %s/%s left by %s (not renewed for %d s, past its duration)" % (
            namespace, release, details["holder"], details["renewed_ago"])
    else:
        result["msg"] = "%s the lock of %s/%s" % ("holds" if state == "ours" else "took", namespace, release)
    if check_mode:
        return result
    acquired = ((lease or {}).get("spec") or {}).get("acquireTime") if state == "ours" else None
    version = ((lease or {}).get("metadata") or {}).get("resourceVersion")
    new = body(namespace, release, holder, run_id, ttl, now, acquired, version if lease else None)
    try:
        if lease is None:
            _write("create Lease", lambda: client.create(resource, new, namespace=namespace,
                                                         _request_timeout=_k8s.REQUEST_TIMEOUT))
        else:
            _write("update Lease", lambda: client.replace(resource, new, name=lease_name(release),
                                                          namespace=namespace, _request_timeout=_k8s.REQUEST_TIMEOUT))
    except NotFoundError:
        if lease is not None:  # the lease went away between our read and our write: start over
            return acquire(client, namespace, release, holder, run_id, ttl, check_mode)
        # no namespace (a teardown of a release that was never deployed): nothing there to protect
        return {"state": "no_namespace", "lease": lease_name(release),
                "msg": "namespace %s does not exist: no lock needed" % namespace}
    except ConflictError:
        # another run created or took it between our read and our write
        lease = _k8s.get(client, LEASE_API, "Lease", lease_name(release), namespace)
        state, details = judge(lease, run_id, time.time())
        if state != "ours":
            raise _refusal(namespace, release, details or {"holder": "another run", "renewed_ago": 0,
                                                           "expires_in": int(ttl)})
    return result


def renew(client, namespace, release, run_id, ttl):
    """Renew our lease; False when it is gone or no longer ours (the run released it, or lost it)."""
    lease = _k8s.get(client, LEASE_API, "Lease", lease_name(release), namespace)
    if judge(lease, run_id, time.time())[0] != "ours":
        return False
    spec = lease.get("spec") or {}
    new = body(namespace, release, spec.get("holderIdentity") or "", run_id, ttl, time.time(),
               spec.get("acquireTime"), lease["metadata"].get("resourceVersion"))
    try:
        _write("renew Lease", lambda: client.replace(client.resource("Lease", LEASE_API), new, name=lease_name(release),
                                                     namespace=namespace, _request_timeout=_k8s.REQUEST_TIMEOUT))
    except ConflictError:
        return judge(_k8s.get(client, LEASE_API, "Lease", lease_name(release), namespace), run_id,
                     time.time())[0] == "ours"
    return True


def release_lock(client, namespace, release, run_id, check_mode=False):
    """Delete our lease (only ours, and only the version we read). Returns whether one was released."""
    lease = _k8s.get(client, LEASE_API, "Lease", lease_name(release), namespace)
    if judge(lease, run_id, time.time())[0] != "ours":
        return False
    if not check_mode:
        try:
            _write("delete Lease", lambda: client.delete(
                client.resource("Lease", LEASE_API), name=lease_name(release), namespace=namespace,
                body={"preconditions": {"resourceVersion": lease["metadata"]["resourceVersion"]}},
                _request_timeout=_k8s.REQUEST_TIMEOUT))
        except (ConflictError, NotFoundError):
            return False
    return True
