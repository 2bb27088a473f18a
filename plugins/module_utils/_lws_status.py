# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE: this module_utils file is internal to nimops.multinode and may change without notice.
"""Readiness of a LeaderWorkerSet computed from plain API objects (dicts, camelCase as the API returns them).

A group is ready only when its leader pod and every worker pod exist, are Running, Ready and not being
deleted; the LWS is ready only when every group is, and the LWS itself agrees (condition Available, readyReplicas).
Nothing here talks to a cluster, so every rule is unit-tested with realistic objects.
"""

from __future__ import annotations

import datetime
import re

LWS_NAME_LABEL = "leaderworkerset.sigs.k8s.io/name"
# The LWS controller Deployment: its name in LWS's release manifests, and the labels those manifests and LWS's Helm
# chart both give it, whatever its name.
CONTROLLER = "lws-controller-manager"
CONTROLLER_SELECTOR = "app.kubernetes.io/name=lws,control-plane=controller-manager"
DEFAULT_CONTROLLER_NAMESPACE = "lws-system"
GROUP_INDEX_LABEL = "leaderworkerset.sigs.k8s.io/group-index"
WORKER_INDEX_LABEL = "leaderworkerset.sigs.k8s.io/worker-index"
SIZE_ANNOTATION = "leaderworkerset.sigs.k8s.io/size"


def parse_time(value):
    """RFC 3339 timestamp from the API → aware datetime (None stays None)."""
    if not value:
        return None
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)
    # Fractions of a second are dropped: some writers (KWOK, MicroTime fields) add them to RFC 3339 stamps.
    return datetime.datetime.strptime(re.sub(r"\.\d+", "", value.replace("Z", "+0000")), "%Y-%m-%dT%H:%M:%S%z")


def seconds_since(value, now):
    stamp = parse_time(value)
    if stamp is None:
        return None
    return max(0.0, (now - stamp).total_seconds())


def condition(obj, ctype):
    for cond in (obj or {}).get("status", {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return cond
    return None


def condition_true(obj, ctype):
    cond = condition(obj, ctype)
    return bool(cond) and cond.get("status") == "True"


def _container_statuses(pod):
    status = pod.get("status") or {}
    return list(status.get("initContainerStatuses") or []) + list(status.get("containerStatuses") or [])


def pod_summary(pod):
    """The facts about one pod that readiness and diagnosis need."""
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    status = pod.get("status") or {}
    statuses = _container_statuses(pod)
    waiting = next((s["state"]["waiting"] for s in statuses if (s.get("state") or {}).get("waiting")), {})
    terminated = next((s["state"]["terminated"] for s in statuses if (s.get("state") or {}).get("terminated")), {})
    last = next((s["lastState"]["terminated"] for s in statuses
                 if (s.get("lastState") or {}).get("terminated")), {})
    worker = labels.get(WORKER_INDEX_LABEL)
    group = labels.get(GROUP_INDEX_LABEL)
    return {
        "name": meta.get("name"),
        "group": int(group) if group is not None and str(group).isdigit() else None,
        "worker": int(worker) if worker is not None and str(worker).isdigit() else None,
        "role": "leader" if worker == "0" else ("worker" if worker is not None else "unknown"),
        "phase": status.get("phase", "Unknown"),
        "ready": condition_true(pod, "Ready"),
        "deleting": bool(meta.get("deletionTimestamp")),
        "node": (pod.get("spec") or {}).get("nodeName"),
        "restarts": sum(int(s.get("restartCount") or 0) for s in statuses),
        "waiting_reason": waiting.get("reason"),
        "waiting_message": waiting.get("message"),
        "terminated": terminated or None,
        "last_terminated": last or None,
        "created": meta.get("creationTimestamp"),
    }


def _pod_state_text(p):
    if p["deleting"]:
        return "terminating"
    if p["ready"]:
        return "Ready"
    if p["waiting_reason"]:
        return "%s (%s)" % (p["phase"], p["waiting_reason"])
    return p["phase"] + (" (not ready)" if p["phase"] == "Running" else "")


def lws_shape(lws):
    """(groups, size) declared by the LWS spec (defaults as the LWS API applies them)."""
    spec = (lws or {}).get("spec") or {}
    replicas = spec.get("replicas", 1)
    size = ((spec.get("leaderWorkerTemplate") or {}).get("size")) or 1
    return int(replicas), int(size)


def expected_pod_names(name, replicas, size):
    """Leader pods are <lws>-<group>; workers are <lws>-<group>-<index> (index 1..size-1)."""
    groups = []
    for g in range(replicas):
        groups.append(["%s-%d" % (name, g)] + ["%s-%d-%d" % (name, g, w) for w in range(1, size)])
    return groups


def group_readiness(lws, pods):
    """Per-group view: each expected pod with its state; a group is ready when all of its pods are."""
    name = lws["metadata"]["name"]
    replicas, size = lws_shape(lws)
    by_name = {p["metadata"]["name"]: pod_summary(p) for p in pods}
    groups = []
    for index, names in enumerate(expected_pod_names(name, replicas, size)):
        members = []
        for pod_name in names:
            summary = by_name.get(pod_name)
            if summary is None:
                members.append({"name": pod_name, "state": "missing", "ready": False})
            else:
                ready = summary["ready"] and summary["phase"] == "Running" and not summary["deleting"]
                members.append({"name": pod_name, "state": _pod_state_text(summary), "ready": ready,
                                "restarts": summary["restarts"], "node": summary["node"]})
        groups.append({
            "index": index,
            "ready": all(m["ready"] for m in members),
            "leader": members[0],
            "workers": members[1:],
        })
    return groups


def ready_seconds(pods, groups, now):
    """Seconds every expected pod has been Ready by the API's record (its Ready condition's lastTransitionTime);
    0 when any pod lacks one. A crash or restart resets the transition, so this proves an unbroken Ready span."""
    by_name = {p["metadata"]["name"]: p for p in pods}
    spans = []
    for g in groups:
        for member in [g["leader"]] + g["workers"]:
            cond = condition(by_name.get(member["name"]), "Ready")
            since = seconds_since((cond or {}).get("lastTransitionTime"), now) if member["ready"] else None
            if since is None:
                return 0
            spans.append(since)
    return int(min(spans)) if spans else 0


def lws_ready(lws, groups):
    """True only when every pod of every group is Ready and the LWS status agrees."""
    if not groups or not all(g["ready"] for g in groups):
        return False
    replicas, _size = lws_shape(lws)
    status = lws.get("status") or {}
    if int(status.get("readyReplicas") or 0) < replicas:
        return False
    if condition_true(lws, "UpdateInProgress"):
        return False
    return condition_true(lws, "Available")


def progress_line(lws, groups, blocked=()):
    """'<name>: 1/2 groups ready, 3/4 pods ready; group 1 waiting on: ...'. With ``blocked`` (codes of causes that keep
    the LeaderWorkerSet from serving), groups whose pods are all Ready are not called ready."""
    name = lws["metadata"]["name"]
    ready_groups = sum(1 for g in groups if g["ready"])
    total_pods = sum(1 + len(g["workers"]) for g in groups)
    ready_pods = sum(sum(1 for m in [g["leader"]] + g["workers"] if m["ready"]) for g in groups)
    if blocked:
        groups_text = "%d/%d groups with all pods Ready but not serving (%s)" % (
            ready_groups, len(groups), ", ".join(sorted(set(blocked))))
    else:
        groups_text = "%d/%d groups ready" % (ready_groups, len(groups))
    parts = ["%s: %s, %d/%d pods ready" % (name, groups_text, ready_pods, total_pods)]
    for g in groups:
        if g["ready"]:
            continue
        waiting = ["%s %s" % (m["name"], m["state"]) for m in [g["leader"]] + g["workers"] if not m["ready"]]
        parts.append("group %d waiting on: %s" % (g["index"], ", ".join(waiting)))
    return "; ".join(parts)


def is_headless(service):
    return (service.get("spec") or {}).get("clusterIP") == "None"


def pick_endpoint(services, leader_labels, release=None):
    """The client-facing Service of the release: not headless, selecting the leader pod; prefer port 8000/http."""
    candidates = []
    for svc in services:
        if is_headless(svc):
            continue
        spec = svc.get("spec") or {}
        selector = spec.get("selector") or {}
        if not selector or any(leader_labels.get(k) != v for k, v in selector.items()):
            continue
        instance = ((svc.get("metadata") or {}).get("labels") or {}).get("app.kubernetes.io/instance")
        if release and instance not in (None, release):
            continue
        candidates.append(svc)
    if not candidates:
        return None
    svc = sorted(candidates, key=lambda s: s["metadata"]["name"])[0]
    ports = (svc.get("spec") or {}).get("ports") or []
    port = next((p for p in ports if p.get("port") == 8000 or p.get("name") in ("http", "openai", "http-openai")),
                ports[0] if ports else None)
    meta = svc["metadata"]
    number = port.get("port") if port else 8000
    return {
        "service": meta["name"],
        "namespace": meta.get("namespace"),
        "port": number,
        "url": "http://%s.%s.svc.cluster.local:%s" % (meta["name"], meta.get("namespace"), number),
    }
