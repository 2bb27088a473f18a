# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE: this module_utils file is internal to nimops.multinode and may change without notice.
"""Why a multi-node NIM release is not coming up: named causes with remediation, from plain API objects.

The input is a snapshot dict (see ``empty_snapshot``); secrets appear only as names (and key names, when known).
Each cause carries ``fatal``: True means waiting longer cannot help, so the wait stops early.
Causes that are normal for a short while (a PVC binding, a pod being scheduled) become fatal after a grace period.
"""

from __future__ import annotations

import re

from ansible_collections.nimops.multinode.plugins.module_utils._lws_status import (
    CONTROLLER,
    CONTROLLER_SELECTOR,
    DEFAULT_CONTROLLER_NAMESPACE,
    LWS_NAME_LABEL,
    WORKER_INDEX_LABEL,
    condition,
    condition_true,
    is_headless,
    lws_shape,
    pod_summary,
    seconds_since,
)

GRACE = {
    "insufficient_gpu": 10,
    "insufficient_resources": 10,
    "unschedulable": 30,
    "pvc_missing": 5,
    "pvc_unbound": 30,
    "lws_controller_unavailable": 30,
    "lws_not_reconciled": 20,
    "lws_not_found": 10,
    "lws_crd_not_established": 30,
    "crash_loop": 30,  # only a crash known from LWS's group recreation alone, with no termination message seen
    "headless_service_missing": 20,  # counted from the group's oldest pod: LWS makes the Service before the pods
}

CRASH_CODES = ("crash_loop", "json_logging_crash", "leader_address_not_injected", "ray_join_failed",
               "probe_restart_during_download")
IMAGE_PULL_REASONS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")
AUTH_PATTERN = re.compile(r"unauthori[sz]ed|401|403|denied|authentication required|no basic auth credentials|"
                          r"authorization failed", re.IGNORECASE)
JSON_LOG_PATTERN = re.compile(r"json.{0,40}(format|log)|(format|log).{0,40}json", re.IGNORECASE)
RAY_ADDRESS_PATTERN = re.compile(r"--ray_address|ray[_ ]address|LWS_LEADER_ADDRESS", re.IGNORECASE)
# The scheduler's "0/4 nodes are available: 2 Insufficient nvidia.com/gpu, 4 Insufficient cpu, ..."
NODES_AVAILABLE_PATTERN = re.compile(r"(\d+)/(\d+) nodes are available")
INSUFFICIENT_PATTERN = re.compile(r"(\d+) Insufficient ([\w-]+(?:[./][\w-]+)*)")
RAY_JOIN_PATTERN = re.compile(r"(GCS|ray).{0,60}(connect|timed out|unreachable|refused)|6379", re.IGNORECASE)

REMEDIATION = {
    "lws_crd_missing": "Install LeaderWorkerSet first: run the nimops.multinode.lws_install role "
                       "(or playbooks/deploy-nim.yml with nim_install_lws: true).",
    "lws_crd_not_established": "The LeaderWorkerSet CRD is not Established: check it with "
                               "'kubectl get crd leaderworkersets.leaderworkerset.x-k8s.io -o yaml'.",
    "lws_controller_missing": "The LWS controller Deployment is missing: run the nimops.multinode.lws_install role.",
    "lws_controller_unavailable": "The LWS controller is not Available: check 'kubectl -n lws-system get pods' "
                                  "and its logs; without it no group is created or repaired.",
    "lws_not_reconciled": "The LWS controller never reconciled this LeaderWorkerSet: it is not running, or its "
                          "webhooks are unreachable. Check the controller pods and logs in lws-system.",
    "lws_not_found": "The release did not create a LeaderWorkerSet: set multiNode.enabled true and check "
                     "'helm get manifest' for the release.",
    "leader_address_not_injected": "The LWS pod webhook did not run, so LWS_LEADER_ADDRESS is missing and workers "
                                   "cannot find the Ray head. Check that lws-controller-manager is Available and "
                                   "the lws-mutating-webhook-configuration reaches it, then delete the pods.",
    "json_logging_crash": "Set model.jsonLogging: false (nim_json_logging: false): the NIM JSON log formatter does "
                          "not exist in vLLM Ray worker processes.",
    "ray_join_failed": "Workers cannot reach the Ray head: allow TCP to the Ray port (multiNode.ray.port, "
                       "default 6379) between pods (NetworkPolicy), check cluster DNS for the LWS headless service.",
    "crash_loop": "A container keeps exiting: read its termination message and 'kubectl logs --previous' of the pod.",
    "probe_restart_during_download": "Probes kill the pod while the model downloads: raise "
                                     "startupProbe.failureThreshold (or periodSeconds), or pre-fill the RWX model "
                                     "cache so startup is short.",
    "image_pull_auth": "The registry refused the credentials: recreate the image pull secret for nvcr.io with "
                       "user '$oauthtoken' and a valid NGC API key (nimops.multinode.nim_secrets role).",
    "image_pull_failed": "The image cannot be pulled: check image.repository/image.tag and that the node can "
                         "reach the registry.",
    "pull_secret_missing": "Create the image pull secret named in imagePullSecrets (nimops.multinode.nim_secrets "
                           "role), in the release namespace.",
    "secret_missing": "Create the referenced secret/key (nimops.multinode.nim_secrets role): NGC_API_KEY in the "
                      "NGC secret, HF_TOKEN in the HF token secret.",
    "insufficient_gpu": "Not enough free nvidia.com/gpu on any node for one pod: free GPUs, add nodes, or lower "
                        "GPUs per node (with TP/PP to match). Check 'kubectl describe nodes' allocatable GPUs.",
    "insufficient_resources": "No node has the CPU or memory (or other resource) one pod requests: lower the "
                              "requests (resources.requests in nim_extra_values) or add nodes with more "
                              "allocatable; 'kubectl describe nodes' shows what is allocatable and requested.",
    "unschedulable": "The scheduler cannot place the pod: read the message (taints, node selectors, resources).",
    "group_size_mismatch": "The chart rendered groups that do not hold the planned nodes, so the release would run "
                           "on fewer (or more) machines than the model needs. The chart generation maps "
                           "multiNode.workers differently (nim-llm 1.x counts the leader in it): check 'helm get "
                           "manifest', and pin a chart whose values interface the collection renders.",
    "headless_service_conflict": "LWS names its headless Service (the DNS name workers reach the leader at) after "
                                 "the LeaderWorkerSet and does not create it while another Service has that name. "
                                 "Rename or delete the other Service (a chart that names its client Service like "
                                 "its LeaderWorkerSet: set a different service name or fullnameOverride); the LWS "
                                 "controller then creates the headless one.",
    "headless_service_missing": "The LWS controller creates the headless Service the workers resolve the leader "
                                "by, named after the LeaderWorkerSet. Check that the controller is running and "
                                "reconciling (its logs in the LWS namespace) and that nothing deletes the Service.",
    "scheduling_gated": "The pod waits for its scheduling gates to be removed, usually by a queueing system (Kueue, "
                        "a gang scheduler) that admits the whole group once quota or capacity allows: check that "
                        "system's queue for this release (e.g. 'kubectl get workloads -n <namespace>').",
    "pvc_missing": "Create the model cache PVC (nimops.multinode.nim_storage role) or fix persistence.existingClaim.",
    "pvc_unbound": "The model cache PVC is not Bound: check its storage class provisioner and "
                   "'kubectl describe pvc'.",
    "pvc_wrong_access_mode": "Multi-node pods share the model cache across nodes: use a ReadWriteMany PVC "
                             "(or NFS). A ReadWriteOnce volume cannot attach to several nodes.",
    "json_logging_enabled": "model.jsonLogging must be false for multi-node (NIM_JSONL_LOGGING=0).",
    "network_policy_blocks_ray": "A NetworkPolicy selects the NIM pods but allows no ingress on the Ray port: "
                                 "add a rule allowing that port between the release's pods.",
    "group_recreated": "A pod of the group was deleted (by hand, an eviction or a node drain) and LWS recreates "
                       "the whole group; nothing to fix unless it keeps happening.",
    "not_ready": "A pod is Running but not Ready: the server is still starting or its readiness probe fails; "
                 "check the leader's logs ('kubectl logs <leader>').",
}


def empty_snapshot(name, namespace, now):
    return {"name": name, "namespace": namespace, "now": now, "crd": None, "controller": None, "lws": None,
            "pods": [], "pvcs": [], "events": [], "secrets": None, "services": [], "observed_pods": [],
            "resource_version": None, "controller_namespace": DEFAULT_CONTROLLER_NAMESPACE}


def _cause(code, summary, objects, fatal, detail=None):
    return {"code": code, "summary": summary, "detail": detail, "objects": objects, "fatal": bool(fatal),
            "remediation": REMEDIATION[code]}


def _grace_over(code, waited):
    return waited is not None and waited >= GRACE[code]


def _env_names(pod):
    names = set()
    for c in (pod.get("spec") or {}).get("containers") or []:
        for env in c.get("env") or []:
            names.add(env.get("name"))
    return names


def _env_value(pod, key):
    for c in (pod.get("spec") or {}).get("containers") or []:
        for env in c.get("env") or []:
            if env.get("name") == key and "value" in env:
                return env["value"]
    return None


def _secret_refs(pod):
    refs = []
    for c in (pod.get("spec") or {}).get("containers") or []:
        for env in c.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if ref and not ref.get("optional"):
                refs.append((ref.get("name"), ref.get("key")))
    return refs


def _pod_events(events, pod_name):
    return [e for e in events if (e.get("involvedObject") or {}).get("name") == pod_name]


def _probe_killed(events, pod_name):
    for e in _pod_events(events, pod_name):
        msg = e.get("message") or ""
        if e.get("reason") == "Killing" and re.search(r"failed (liveness|startup) probe", msg):
            return msg
        if e.get("reason") == "Unhealthy" and re.search(r"(Liveness|Startup) probe failed", msg):
            return msg
    return None


def _crash_code(message):
    if message and JSON_LOG_PATTERN.search(message):
        return "json_logging_crash"
    if message and RAY_ADDRESS_PATTERN.search(message):
        return "leader_address_not_injected"
    if message and RAY_JOIN_PATTERN.search(message):
        return "ray_join_failed"
    return "crash_loop"


def control_plane_causes(snap, waited):
    crd, ctrl, lws = snap["crd"], snap["controller"], snap["lws"]
    if crd is None:
        return [_cause("lws_crd_missing", "LeaderWorkerSet CRD leaderworkersets.leaderworkerset.x-k8s.io is "
                       "not installed", ["crd/leaderworkersets.leaderworkerset.x-k8s.io"], True)]
    causes = []
    if not condition_true(crd, "Established"):
        causes.append(_cause("lws_crd_not_established", "LeaderWorkerSet CRD is not Established",
                             ["crd/leaderworkersets.leaderworkerset.x-k8s.io"],
                             _grace_over("lws_crd_not_established", waited)))
    if ctrl is None:
        causes.append(_cause("lws_controller_missing", "LWS controller Deployment not found in %s (neither %s nor "
                             "one labelled %s)" % (snap["controller_namespace"], CONTROLLER, CONTROLLER_SELECTOR),
                             ["deployment/" + CONTROLLER], True))
    elif not condition_true(ctrl, "Available"):
        causes.append(_cause("lws_controller_unavailable", "LWS controller Deployment %s is not Available "
                             "(%s/%s replicas available)" % (ctrl["metadata"]["name"],
                                                             (ctrl.get("status") or {}).get("availableReplicas", 0),
                                                             (ctrl.get("spec") or {}).get("replicas", 1)),
                             ["deployment/" + ctrl["metadata"]["name"]],
                             _grace_over("lws_controller_unavailable", waited)))
    if lws is None:
        causes.append(_cause("lws_not_found", "LeaderWorkerSet %s/%s not found" % (snap["namespace"], snap["name"]),
                             ["leaderworkerset/" + snap["name"]], _grace_over("lws_not_found", waited)))
    elif not snap["pods"] and not (lws.get("status") or {}).get("conditions"):
        age = seconds_since(lws["metadata"].get("creationTimestamp"), snap["now"])
        causes.append(_cause("lws_not_reconciled", "LeaderWorkerSet %s has no status and no pods after %ds: the LWS "
                             "controller has not reconciled it" % (snap["name"], int(age or 0)),
                             ["leaderworkerset/" + snap["name"]],
                             age is not None and age >= GRACE["lws_not_reconciled"]))
    return causes


def _pvc_causes(snap, pod, summary, multi_node):
    causes = []
    pvcs = {p["metadata"]["name"]: p for p in snap["pvcs"]}
    for vol in (pod.get("spec") or {}).get("volumes") or []:
        claim = (vol.get("persistentVolumeClaim") or {}).get("claimName")
        if not claim:
            continue
        pvc = pvcs.get(claim)
        if pvc is None:
            age = seconds_since(pod["metadata"].get("creationTimestamp"), snap["now"])
            causes.append(_cause("pvc_missing", "the pods mount PVC %s, which does not exist" % claim,
                                 ["pvc/" + claim],
                                 age is not None and age >= GRACE["pvc_missing"]))
            continue
        modes = (pvc.get("spec") or {}).get("accessModes") or []
        if multi_node and "ReadWriteMany" not in modes:
            causes.append(_cause("pvc_wrong_access_mode", "multi-node pods share PVC %s, which is %s, not "
                                 "ReadWriteMany" % (claim, "/".join(modes) or "without access modes"),
                                 ["pvc/" + claim], True))
        phase = (pvc.get("status") or {}).get("phase")
        if phase != "Bound":
            age = seconds_since(pvc["metadata"].get("creationTimestamp"), snap["now"])
            causes.append(_cause("pvc_unbound", "PVC %s is %s (storage class %s) after %ds" % (
                claim, phase or "Pending", (pvc.get("spec") or {}).get("storageClassName") or "default",
                int(age or 0)), ["pvc/" + claim], age is not None and age >= GRACE["pvc_unbound"]))
    return causes


def _pull_causes(snap, pod, summary):
    causes = []
    reason = summary["waiting_reason"]
    secrets = snap["secrets"]
    pull_names = [s.get("name") for s in (pod.get("spec") or {}).get("imagePullSecrets") or []]
    if secrets is not None:
        for name in pull_names:
            if name not in secrets:
                causes.append(_cause("pull_secret_missing", "image pull secret %s named by the pods does not exist" %
                                     name, ["secret/" + name], True))
    if reason in IMAGE_PULL_REASONS:
        # ImagePullBackOff only says "Back-off pulling image"; the registry's answer is in the Failed events
        pulled = [e.get("message") or "" for e in _pod_events(snap["events"], summary["name"])
                  if e.get("reason") in ("Failed", "ErrImagePull")]
        message = next((m for m in [summary["waiting_message"] or ""] + pulled[::-1] if AUTH_PATTERN.search(m)),
                       summary["waiting_message"] or "")
        code = "image_pull_auth" if AUTH_PATTERN.search(message) else "image_pull_failed"
        causes.append(_cause(code, "pod %s cannot pull its image (%s)" % (summary["name"], reason),
                             ["pod/" + summary["name"]], True, detail=message or None))
    if secrets is not None:
        for ref in _secret_refs(pod):
            # key names are known only when the snapshot has them (the cluster reads Secrets as metadata only)
            if ref[0] not in secrets or (secrets[ref[0]] is not None and ref[1] not in secrets[ref[0]]):
                what = "secret %s" % ref[0] if ref[0] not in secrets else "key %s in secret %s" % (ref[1], ref[0])
                causes.append(_cause("secret_missing", "%s, referenced by the pods' environment, does not exist" %
                                     what, ["secret/" + ref[0]], True))
    if reason == "CreateContainerConfigError":
        text = "pod %s cannot start: %s" % (summary["name"], summary["waiting_message"] or reason)
        causes.append(_cause("secret_missing", text, ["pod/" + summary["name"]], True,
                             detail=summary["waiting_message"]))
    return causes


def _schedule_causes(snap, pod, summary):
    cond = condition(pod, "PodScheduled")
    gates = [g.get("name") for g in (pod.get("spec") or {}).get("schedulingGates") or []]
    if gates or (cond or {}).get("reason") == "SchedulingGated":
        # Held back from the scheduler until something (a queue admitting the whole group) lifts the gates: a
        # state to name, not a failure; the group may be admitted later.
        return [_cause("scheduling_gated", "pod %s is held back from scheduling by %s" % (
            summary["name"], ", ".join(gates) if gates else "scheduling gates"), ["pod/" + summary["name"]], False)]
    if not cond or cond.get("status") != "False" or cond.get("reason") != "Unschedulable":
        return []
    message = cond.get("message") or ""
    since = seconds_since(cond.get("lastTransitionTime"), snap["now"])
    lacking = {resource: int(count) for count, resource in INSUFFICIENT_PATTERN.findall(message)}
    if lacking:
        # Name what actually blocks: a resource every node lacks, not merely the one the release is about.
        nodes = NODES_AVAILABLE_PATTERN.search(message)
        total = int(nodes.group(2)) if nodes else max(lacking.values())
        everywhere = [r for r, n in sorted(lacking.items()) if n >= total] or sorted(lacking)
        code = "insufficient_gpu" if everywhere == ["nvidia.com/gpu"] else "insufficient_resources"
        by_count = sorted(lacking.items(), key=lambda item: -item[1])
        counts = ", ".join("%d/%d nodes lack %s" % (n, total, r) for r, n in by_count)
        return [_cause(code, "pod %s is Pending: no node has enough free %s (%s)" % (
            summary["name"], " and ".join(everywhere), counts), ["pod/" + summary["name"]],
            since is not None and since >= GRACE[code], detail=message)]
    if "PersistentVolumeClaim" in message:
        return []  # reported by the PVC checks with the claim's name
    return [_cause("unschedulable", "pod %s is Pending: %s" % (summary["name"], message),
                   ["pod/" + summary["name"]], since is not None and since >= GRACE["unschedulable"], detail=message)]


def _crash_causes(snap, pod, summary):
    last = summary["last_terminated"] or summary["terminated"] or {}
    crashed = summary["waiting_reason"] == "CrashLoopBackOff" or (
        last and int(last.get("exitCode") or 0) != 0 and (summary["restarts"] >= 1 or summary["phase"] == "Failed"))
    if not crashed:
        return []
    if summary["waiting_reason"] != "CrashLoopBackOff":
        # restart history from long before this wait is not this rollout's failure
        age = seconds_since(last.get("finishedAt"), snap["now"])
        if age is not None and age > snap.get("recent_seconds", 60):
            return []
    killed_by_probe = _probe_killed(snap["events"], summary["name"])
    message = (last.get("message") or "").strip()
    if killed_by_probe:
        return [_cause("probe_restart_during_download", "pod %s was restarted %d time(s) by a failing probe" %
                       (summary["name"], summary["restarts"]), ["pod/" + summary["name"]], True,
                       detail=killed_by_probe)]
    code = _crash_code(message)
    text = "%s pod %s is crash-looping (restarts %d, exit code %s%s)" % (
        summary["role"], summary["name"], summary["restarts"], last.get("exitCode", "?"),
        ", reason " + last["reason"] if last.get("reason") else "")
    if message:
        text += ": " + message.splitlines()[-1][:300]
    return [_cause(code, text, ["pod/" + summary["name"]], True, detail=message or None)]


RECREATE_MESSAGE = re.compile(r"Worker pod (\S+) failed")


def _crash_evidence(snap, pod_name, waited):
    """LWS logs the same RecreateGroup event for a restarted and for a deleted pod (a person, an eviction, a
    drain). A crash leaves a trace: a version of the pod with restarts, seen while waiting, or a Warning event
    (BackOff, Failed) on the pod from this wait."""
    versions = [p for p in (snap.get("observed_pods") or []) + snap["pods"] if p["metadata"]["name"] == pod_name]
    if any(pod_summary(p)["restarts"] for p in versions):
        return True
    for e in snap["events"]:
        obj = e.get("involvedObject") or {}
        if obj.get("kind") == "Pod" and obj.get("name") == pod_name and e.get("type") == "Warning":
            age = seconds_since(e.get("lastTimestamp") or e.get("eventTime"), snap["now"])
            if waited is None or age is None or age <= waited + 5:
                return True
    return False


def _recreate_causes(snap, waited):
    """LWS deletes a group as soon as one of its pods restarts; its event outlives the crashed pod."""
    causes = []
    for e in snap["events"]:
        if e.get("reason") != "RecreateGroup" or (e.get("involvedObject") or {}).get("kind") != "LeaderWorkerSet":
            continue
        when = e.get("lastTimestamp") or e.get("eventTime") or (e.get("metadata") or {}).get("creationTimestamp")
        age = seconds_since(when, snap["now"])
        if waited is not None and age is not None and age > waited + 5:
            continue  # from before this wait
        message = e.get("message") or e.get("note") or ""
        count = int(e.get("count") or 1)
        named = RECREATE_MESSAGE.search(message)
        if named and count == 1 and not _crash_evidence(snap, named.group(1), waited):
            # one recreation with no sign of a crash: a deleted pod; a real crash repeats and is caught then
            causes.append(_cause("group_recreated", "LWS is recreating a group: pod %s went away without a "
                                 "container restart" % named.group(1), ["leaderworkerset/" + snap["name"]], False))
            continue
        # the crashed pod went before its termination message was read: the wait watches for the next crash,
        # which shows it, and reports the recreations alone once the grace is over
        causes.append(_cause("crash_loop", "LWS recreated a group after a pod restart (%s, %d time(s))" % (
            message, count), ["leaderworkerset/" + snap["name"]],
            not named or _grace_over("crash_loop", waited)))
    return causes


def pod_causes(snap, waited=None):
    causes = []
    _replicas, size = lws_shape(snap["lws"])
    multi_node = size > 1
    for pod in snap.get("observed_pods") or []:
        # versions seen while watching, crashed and possibly gone by now
        causes.extend(_crash_causes(snap, pod, pod_summary(pod)))
    for pod in snap["pods"]:
        summary = pod_summary(pod)
        if summary["deleting"]:
            causes.extend(_crash_causes(snap, pod, summary))
            continue
        labels = pod["metadata"].get("labels") or {}
        if WORKER_INDEX_LABEL not in labels or "LWS_LEADER_ADDRESS" not in _env_names(pod):
            causes.append(_cause("leader_address_not_injected", "pod %s has no LWS_LEADER_ADDRESS (LWS pod webhook "
                                 "did not mutate it)" % summary["name"], ["pod/" + summary["name"]], True))
        causes.extend(_crash_causes(snap, pod, summary))
        causes.extend(_pull_causes(snap, pod, summary))
        causes.extend(_schedule_causes(snap, pod, summary))
        causes.extend(_pvc_causes(snap, pod, summary, multi_node))
    if any(c["code"] == "image_pull_auth" for c in causes):
        # one pod's back-off message hides what another pod's pull error says: the credentials
        causes = [c for c in causes if c["code"] != "image_pull_failed"]
    if not any(c["fatal"] and c["code"] != "crash_loop" for c in causes) and \
            not any(c["objects"][0].startswith("pod/") and c["code"] in CRASH_CODES for c in causes):
        causes.extend(_recreate_causes(snap, waited))
    return _dedupe(causes)


def _dedupe(causes):
    seen, out = set(), []
    for c in causes:
        key = (c["code"], tuple(c["objects"]))
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


# The causes shape_causes names: the LeaderWorkerSet cannot serve however Ready its pods are.
SHAPE_CODES = ("group_size_mismatch", "headless_service_conflict", "headless_service_missing")


def shape_causes(snap, expected_size=None):
    """The LeaderWorkerSet itself cannot give the planned release, and waiting does not change that: groups of
    another size than the planned nodes (a chart that maps multiNode.workers otherwise), or a Service that is not
    headless holding the LeaderWorkerSet's name, so the leader's DNS name never resolves for the workers."""
    lws = snap["lws"]
    _replicas, size = lws_shape(lws)
    name = lws["metadata"]["name"]
    causes = []
    if expected_size and size != int(expected_size):
        causes.append(_cause("group_size_mismatch", "LeaderWorkerSet %s has groups of %d pod(s) but the plan needs "
                             "%d nodes per group" % (name, size, int(expected_size)), ["leaderworkerset/" + name],
                             True))
    clash = next((svc for svc in snap["services"] if (svc.get("metadata") or {}).get("name") == name), None)
    if size > 1 and clash is not None and not is_headless(clash):
        causes.append(_cause("headless_service_conflict", "Service %s/%s (type %s) has the LeaderWorkerSet's name, "
                             "so LWS has no headless Service for it: the workers cannot resolve the leader at %s-0.%s"
                             % (snap["namespace"], name, (clash.get("spec") or {}).get("type", "ClusterIP"), name,
                                name), ["service/" + name], True))
    if size > 1 and clash is None and snap["pods"]:
        # The LWS controller creates the headless Service before the group's pods: pods without it mean it was
        # deleted, and the workers' DNS lookups of the leader fail until the controller makes it again.
        age = max(seconds_since(p["metadata"].get("creationTimestamp"), snap["now"]) or 0 for p in snap["pods"])
        summary = "LeaderWorkerSet %s has pods but no headless Service %s/%s: the workers cannot resolve the " \
            "leader at %s-0.%s" % (name, snap["namespace"], name, name, name)
        causes.append(_cause("headless_service_missing", summary, ["service/" + name],
                             age >= GRACE["headless_service_missing"]))
    return causes


def find_causes(snap, waited, expected_size=None):
    """All causes, the fatal ones first (in the order a human would fix them)."""
    causes = control_plane_causes(snap, waited)
    if snap["crd"] is not None and snap["lws"] is not None:
        causes.extend(shape_causes(snap, expected_size))
        causes.extend(pod_causes(snap, waited))
    return sorted(causes, key=lambda c: not c["fatal"])


def warnings(snap):
    """Findings that are not yet failures but will be (diagnose reports them)."""
    found = []
    _replicas, size = lws_shape(snap["lws"])
    for pod in snap["pods"]:
        if size > 1 and _env_value(pod, "NIM_JSONL_LOGGING") in ("1", "true", "True"):
            found.append(_cause("json_logging_enabled", "pod %s runs multi-node with NIM_JSONL_LOGGING=%s" %
                                (pod["metadata"]["name"], _env_value(pod, "NIM_JSONL_LOGGING")),
                                ["pod/" + pod["metadata"]["name"]], False))
        summary = pod_summary(pod)
        if summary["phase"] == "Running" and not summary["ready"] and not summary["deleting"]:
            events = [e.get("message") for e in _pod_events(snap["events"], summary["name"])
                      if e.get("reason") == "Unhealthy"]
            found.append(_cause("not_ready", "pod %s is Running but not Ready" % summary["name"],
                                ["pod/" + summary["name"]], False, detail=events[-1] if events else None))
    return found


def _selects(selector, labels):
    match = (selector or {}).get("matchLabels") or {}
    if (selector or {}).get("matchExpressions"):
        return True  # be conservative: report it, the remediation says what to check
    return all(labels.get(k) == v for k, v in match.items())


def _allows_port(policy, port):
    for rule in (policy.get("spec") or {}).get("ingress") or []:
        ports = rule.get("ports") or []
        if not ports or any(p.get("port") in (None, port, str(port)) for p in ports):
            return True
    return False


def network_policy_findings(policies, pods, ray_port=6379):
    found = []
    for pol in policies:
        spec = pol.get("spec") or {}
        types = spec.get("policyTypes") or ["Ingress"]
        if "Ingress" not in types:
            continue
        hit = [p["metadata"]["name"] for p in pods
               if _selects(spec.get("podSelector"), p["metadata"].get("labels") or {})]
        if hit and not _allows_port(pol, ray_port):
            found.append(_cause("network_policy_blocks_ray", "NetworkPolicy %s selects %s but allows no ingress on "
                                "Ray port %d" % (pol["metadata"]["name"], ", ".join(hit), ray_port),
                                ["networkpolicy/" + pol["metadata"]["name"]], False))
    return found


def lws_pods_selector(name):
    return "%s=%s" % (LWS_NAME_LABEL, name)
