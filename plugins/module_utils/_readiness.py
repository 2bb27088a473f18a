# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE: this module_utils file is internal to nimops.multinode and may change without notice.
"""One poll of the LWS-aware wait (``evaluate``) and the decision the waiting loop takes on it (``decide``)."""

from __future__ import annotations

from ansible_collections.nimops.multinode.plugins.module_utils import _diagnosis, _lws_status


def evaluate(snap, elapsed, release, expected_size=None):
    """One poll: groups, progress, readiness, causes. With ``expected_size`` (the planned nodes per group), groups
    of another size are never ready."""
    result = {"ready": False, "groups": [], "progress": "", "causes": [], "concerns": [], "endpoint": None,
              "elapsed": elapsed, "ready_seconds": 0}
    lws = snap["lws"]
    if lws is not None:
        groups = _lws_status.group_readiness(lws, snap["pods"])
        result["groups"] = groups
        result["progress"] = _lws_status.progress_line(lws, groups)
        result["ready"] = _lws_status.lws_ready(lws, groups) and (
            not expected_size or _lws_status.lws_shape(lws)[1] == int(expected_size))
        if result["ready"]:
            result["ready_seconds"] = _lws_status.ready_seconds(snap["pods"], groups, snap["now"])
        leader = next((p for p in snap["pods"] if p["metadata"]["name"] == "%s-0" % snap["name"]), None)
        if leader is not None:
            result["endpoint"] = _lws_status.pick_endpoint(snap["services"], leader["metadata"].get("labels") or {},
                                                           release)
    else:
        result["progress"] = "%s: LeaderWorkerSet not found in %s" % (snap["name"], snap["namespace"])
    result["causes"] = _diagnosis.find_causes(snap, elapsed, expected_size)
    shape = [c["code"] for c in result["causes"] if c["code"] in _diagnosis.SHAPE_CODES]
    if shape and lws is not None:
        # Ready pods in groups of the wrong size, or without a headless Service, are not a ready release.
        result["ready"], result["ready_seconds"] = False, 0
        result["progress"] = _lws_status.progress_line(lws, result["groups"], shape)
    if not result["ready"]:
        if lws is not None:
            result["concerns"] = _diagnosis.warnings(snap)
    return result


def format_cause(cause):
    text = "[%s] %s" % (cause["code"], cause["summary"])
    if cause.get("detail") and cause["detail"] not in cause["summary"]:
        text += " (%s)" % cause["detail"].strip().splitlines()[-1][:300]
    return text + ". Fix: " + cause["remediation"]


def decide(result, elapsed, timeout, ready_for=0, settle=0):
    """('ready'|'failed'|'wait', message) for one poll result.

    A fatal cause wins even over a momentarily ready group (a pod that crashes right after turning Ready);
    ready counts only once it has held for ``settle`` seconds.
    """
    fatal = [c for c in result["causes"] if c["fatal"]]
    if result["ready"] and not fatal:
        endpoint = result.get("endpoint") or {}
        if ready_for >= settle:
            return "ready", "%s; endpoint %s" % (result["progress"], endpoint.get("url", "not found"))
        if elapsed < timeout:
            return "wait", "%s; holding for %ds before reporting ready" % (result["progress"], settle)
    if fatal:
        return "failed", "%s cannot become ready after %ds: %s%s" % (
            result["progress"].split(":")[0], elapsed, format_cause(fatal[0]),
            "" if len(fatal) == 1 else " (and %d more cause(s): %s)" % (
                len(fatal) - 1, ", ".join(sorted(set(c["code"] for c in fatal[1:])))))
    if elapsed >= timeout:
        pending = [format_cause(c) for c in result["causes"] + result.get("concerns", [])]
        return "failed", "timed out after %ds: %s%s" % (
            elapsed, result["progress"], ("; possible causes: " + "; ".join(pending)) if pending else "")
    return "wait", result["progress"]
