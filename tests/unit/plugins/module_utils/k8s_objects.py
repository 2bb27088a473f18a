# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Realistic API objects (as the Kubernetes API returns them, camelCase) for the readiness/diagnosis tests."""

from __future__ import annotations

import copy
import datetime

NOW = datetime.datetime(2026, 11, 27, 12, 0, 0, tzinfo=datetime.timezone.utc)


def ts(seconds_ago):
    return (NOW - datetime.timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def crd(established=True):
    return {"metadata": {"name": "leaderworkersets.leaderworkerset.x-k8s.io"},
            "status": {"conditions": [
                {"type": "NamesAccepted", "status": "True"},
                {"type": "Established", "status": "True" if established else "False"}]}}


def controller(available=True):
    return {"metadata": {"name": "lws-controller-manager", "namespace": "lws-system"},
            "spec": {"replicas": 1},
            "status": {"availableReplicas": 1 if available else 0,
                       "conditions": [{"type": "Available", "status": "True" if available else "False",
                                       "reason": "MinimumReplicasAvailable"}]}}


def lws(name="nim-llm", replicas=1, size=2, ready_replicas=None, available=None, age=60, conditions=True):
    ready = replicas if ready_replicas is None else ready_replicas
    avail = (ready == replicas) if available is None else available
    obj = {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
           "metadata": {"name": name, "namespace": "nim", "creationTimestamp": ts(age), "generation": 1},
           "spec": {"replicas": replicas, "startupPolicy": "LeaderCreated",
                    "leaderWorkerTemplate": {"size": size, "restartPolicy": "RecreateGroupOnPodRestart"}},
           "status": {"replicas": replicas, "readyReplicas": ready, "updatedReplicas": replicas}}
    if conditions:
        obj["status"]["conditions"] = [
            {"type": "Available", "status": "True" if avail else "False", "reason": "AllGroupsReady"},
            {"type": "Progressing", "status": "False" if avail else "True"}]
    return obj


def pod(name, group=0, worker=0, ready=True, phase="Running", lws_name="nim-llm", age=30, env=True,
        webhook=True, claim="nim-model-cache", pull_secret="nvcr-imagepull", json_logging="0"):
    labels = {"leaderworkerset.sigs.k8s.io/name": lws_name}
    if webhook:
        labels.update({"leaderworkerset.sigs.k8s.io/group-index": str(group),
                       "leaderworkerset.sigs.k8s.io/worker-index": str(worker)})
    container_env = [{"name": "NIM_JSONL_LOGGING", "value": json_logging},
                     {"name": "NGC_API_KEY", "valueFrom": {"secretKeyRef": {"name": "ngc-api", "key": "NGC_API_KEY"}}}]
    if env and webhook:
        container_env += [{"name": "LWS_LEADER_ADDRESS", "value": "%s-%d.%s.nim" % (lws_name, group, lws_name)},
                          {"name": "LWS_GROUP_SIZE", "value": "2"}, {"name": "LWS_WORKER_INDEX", "value": str(worker)}]
    obj = {"metadata": {"name": name, "namespace": "nim", "labels": labels, "creationTimestamp": ts(age)},
           "spec": {"nodeName": "gpu-node-%d" % worker if phase != "Pending" else None,
                    "containers": [{"name": "nim-llm", "image": "nvcr.io/nim/meta/llama-3.1-405b-instruct:1.0",
                                    "env": container_env}],
                    "imagePullSecrets": [{"name": pull_secret}] if pull_secret else [],
                    "volumes": [{"name": "model-store", "persistentVolumeClaim": {"claimName": claim}}] if claim else []},
           "status": {"phase": phase,
                      "conditions": [{"type": "PodScheduled", "status": "True"},
                                     {"type": "Ready", "status": "True" if ready else "False"}],
                      "containerStatuses": [{"name": "nim-llm", "ready": ready, "restartCount": 0,
                                             "state": {"running": {"startedAt": ts(age)}} if phase == "Running"
                                             else {"waiting": {"reason": "ContainerCreating"}}}]}}
    return obj


def group_pods(lws_name="nim-llm", replicas=1, size=2, **kw):
    pods = []
    for g in range(replicas):
        pods.append(pod("%s-%d" % (lws_name, g), group=g, worker=0, lws_name=lws_name, **kw))
        for w in range(1, size):
            pods.append(pod("%s-%d-%d" % (lws_name, g, w), group=g, worker=w, lws_name=lws_name, **kw))
    return pods


def crash(p, restarts=1, message="", exit_code=1, waiting="CrashLoopBackOff"):
    p = copy.deepcopy(p)
    cs = p["status"]["containerStatuses"][0]
    cs.update({"ready": False, "restartCount": restarts,
               "lastState": {"terminated": {"exitCode": exit_code, "reason": "Error", "message": message,
                                            "finishedAt": ts(2)}}})
    cs["state"] = {"waiting": {"reason": waiting, "message": "back-off 10s restarting failed container"}} \
        if waiting else {"running": {"startedAt": ts(1)}}
    p["status"]["conditions"][1]["status"] = "False"
    return p


def waiting(p, reason, message):
    p = copy.deepcopy(p)
    cs = p["status"]["containerStatuses"][0]
    cs.update({"ready": False, "state": {"waiting": {"reason": reason, "message": message}}})
    p["status"]["phase"] = "Pending"
    p["status"]["conditions"][1]["status"] = "False"
    return p


def unschedulable(p, message, since=20):
    p = copy.deepcopy(p)
    p["spec"]["nodeName"] = None
    p["status"] = {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
         "lastTransitionTime": ts(since)}]}
    return p


def gated(p, *gates):
    p = copy.deepcopy(p)
    p["spec"]["nodeName"] = None
    p["spec"]["schedulingGates"] = [{"name": g} for g in gates]
    p["status"] = {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated",
         "message": "Scheduling is blocked due to non-empty scheduling gates", "lastTransitionTime": ts(300)}]}
    return p


def pvc(name="nim-model-cache", modes=("ReadWriteMany",), phase="Bound", age=60, storage_class="kwok-volume"):
    return {"metadata": {"name": name, "namespace": "nim", "creationTimestamp": ts(age)},
            "spec": {"accessModes": list(modes), "storageClassName": storage_class,
                     "resources": {"requests": {"storage": "200Gi"}}},
            "status": {"phase": phase}}


def event(pod_name, reason, message):
    return {"involvedObject": {"kind": "Pod", "name": pod_name}, "reason": reason, "message": message,
            "type": "Warning"}


def service(name, selector, headless=False, port=8000, port_name="http", release="nim-llm"):
    return {"metadata": {"name": name, "namespace": "nim", "labels": {"app.kubernetes.io/instance": release}},
            "spec": {"clusterIP": "None" if headless else "10.96.0.20", "selector": selector,
                     "ports": [{"name": port_name, "port": port}]}}


def release_services(lws_name="nim-llm"):
    """The headless Service LWS creates under the LeaderWorkerSet's name, and the chart's client Service."""
    return [service(lws_name, {"leaderworkerset.sigs.k8s.io/name": lws_name}, headless=True),
            service(lws_name + "-openai", {"leaderworkerset.sigs.k8s.io/name": lws_name,
                                           "leaderworkerset.sigs.k8s.io/worker-index": "0"})]
