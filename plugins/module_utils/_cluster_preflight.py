# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE: this module_utils file is internal to nimops.multinode and may change without notice.
"""Whether a release can work on a cluster, read before anything changes (nimops.multinode.nim_preflight).

``run`` reads the cluster once; the ``*_checks`` functions are pure: they turn what was read and what the release
needs into checks, each ``{check, status, subject, message, fix}`` with status PASS, WARN or FAIL. A FAIL names the
object and the fix; a WARN is something the deploy may still get past.
"""

from __future__ import annotations

import time

from ansible_collections.nimops.multinode.plugins.module_utils import _k8s
from ansible_collections.nimops.multinode.plugins.module_utils._helm_history import PENDING, parse_time
from ansible_collections.nimops.multinode.plugins.module_utils._lws_status import (
    DEFAULT_CONTROLLER_NAMESPACE, condition_true)

try:
    from kubernetes.utils import parse_quantity
except ImportError:  # the module reports the missing library (_k8s.HAS_K8S)
    parse_quantity = None

GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
DEFAULT_CLASS_ANNOTATIONS = ("storageclass.kubernetes.io/is-default-class",
                             "storageclass.beta.kubernetes.io/is-default-class")
# Provisioners whose volumes attach to one node at a time: a claim of theirs cannot be ReadWriteMany.
SINGLE_NODE_PROVISIONERS = (
    "ebs.csi.aws.com", "kubernetes.io/aws-ebs", "pd.csi.storage.gke.io", "kubernetes.io/gce-pd",
    "disk.csi.azure.com", "kubernetes.io/azure-disk", "rancher.io/local-path", "kubernetes.io/no-provisioner",
    "topolvm.io", "openebs.io/local", "csi.vsphere.vmware.com", "kubernetes.io/cinder", "cinder.csi.openstack.org",
    "rbd.csi.ceph.com", "kubernetes.io/rbd")
# Provisioners of shared file systems, which offer ReadWriteMany.
SHARED_PROVISIONERS = (
    "efs.csi.aws.com", "filestore.csi.storage.gke.io", "file.csi.azure.com", "kubernetes.io/azure-file",
    "nfs.csi.k8s.io", "cephfs.csi.ceph.com", "driver.longhorn.io", "csi.trident.netapp.io",
    "nfs-subdir-external-provisioner", "k8s-sigs.io/nfs-subdir-external-provisioner", "spectrumscale.csi.ibm.com",
    "lustre.csi.aws.com", "fsx.csi.aws.com", "csi.weka.io", "csi.vastdata.com")
STATUSES = ("PASS", "WARN", "FAIL")


def check(name, status, subject, message, fix=""):
    if status not in STATUSES:
        raise ValueError("unknown check status %r" % status)
    return {"check": name, "status": status, "subject": subject, "message": message, "fix": fix}


# ---------------------------------------------------------------- quantities

def quantity(value):
    """A Kubernetes quantity ('500m', '64Gi', 8) as a number (the client library's parser); None when absent."""
    if value is None or value == "":
        return None
    return float(parse_quantity(value))


def _show(value):
    return ("%d" % value) if float(value).is_integer() else ("%g" % value)


# ---------------------------------------------------------------- scheduling

def tolerates(tolerations, taint):
    """Whether one of the pod's tolerations lets it onto a node with this taint (the scheduler's rule)."""
    for tol in tolerations or []:
        if tol.get("effect") and tol["effect"] != taint.get("effect"):
            continue
        if tol.get("operator", "Equal") == "Exists":
            if not tol.get("key") or tol["key"] == taint.get("key"):
                return True
        elif tol.get("key") == taint.get("key") and (tol.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def pod_asks(want):
    """resource -> amount each pod of the group asks: its requests, and gpus_per_node GPUs."""
    asked = dict((k, quantity(v)) for k, v in (want.get("requests") or {}).items() if quantity(v))
    asked[GPU_RESOURCE] = float(want["gpus_per_node"])
    return asked


def pod_requests(pod):
    """resource -> amount a running pod holds on its node (containers' requests; limits stand in for requests of
    extended resources, as the API server defaults them)."""
    total = {}
    for container in (pod.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        asked = dict(resources.get("limits") or {})
        asked.update(resources.get("requests") or {})
        for name, amount in asked.items():
            total[name] = total.get(name, 0.0) + (quantity(amount) or 0.0)
    return total


def _holds_resources(pod):
    """Bound, not finished and not being deleted (a terminating pod's room is free by the time the group comes)."""
    return ((pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
            and (pod.get("spec") or {}).get("nodeName") and not pod["metadata"].get("deletionTimestamp"))


def node_slots(nodes, pods, want, own_pods=()):
    """For every node: how many of the release's pods it can take now, and if none, why.

    ``want``: gpus_per_node, node_selector, tolerations, requests (the pod's other requests, e.g. cpu).
    Pods of the release itself (``own_pods``, names) are not counted as holding anything: an upgrade replaces them.
    """
    own = set(own_pods)
    held = {}
    for pod in pods:
        if _holds_resources(pod) and pod["metadata"]["name"] not in own:
            used = held.setdefault(pod["spec"]["nodeName"], {})
            for name, amount in pod_requests(pod).items():
                used[name] = used.get(name, 0.0) + amount
    asked = pod_asks(want)
    result = []
    for node in nodes:
        name = node["metadata"]["name"]
        labels = node["metadata"].get("labels") or {}
        spec = node.get("spec") or {}
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        entry = {"node": name, "product": labels.get(GPU_PRODUCT_LABEL, ""), "labels": labels, "slots": 0,
                 "why": ""}
        entry["allocatable_gpus"] = int(quantity(allocatable.get(GPU_RESOURCE)) or 0)
        untolerated = [t for t in spec.get("taints") or [] if t.get("effect") in ("NoSchedule", "NoExecute")
                       and not tolerates(want.get("tolerations"), t)]
        mismatch = sorted(k for k, v in (want.get("node_selector") or {}).items() if labels.get(k) != str(v))
        if mismatch:
            entry["why"] = "labels do not match nodeSelector %s" % ", ".join(
                "%s=%s" % (k, want["node_selector"][k]) for k in mismatch)
        elif spec.get("unschedulable"):
            entry["why"] = "cordoned"
        elif not condition_true(node, "Ready"):
            entry["why"] = "not Ready"
        elif untolerated:
            entry["why"] = "taint %s not tolerated" % ", ".join(
                "%s%s:%s" % (t.get("key"), "=" + t["value"] if t.get("value") else "", t.get("effect"))
                for t in untolerated)
        else:
            fits = []
            for resource, amount in sorted(asked.items()):
                free = (quantity(allocatable.get(resource)) or 0) - held.get(name, {}).get(resource, 0)
                fits.append((resource, int(free // amount) if amount else 0, free))
            entry["slots"] = max(0, min(places for _resource, places, _free in fits))
            if entry["slots"] == 0:
                entry["why"] = "; ".join("%s free %s of %s asked" % (r, _show(max(free, 0)), _show(asked[r]))
                                         for r, n, free in fits if n < 1)
        result.append(entry)
    return result


def _slot_total(entries):
    return sum(e["slots"] for e in entries)


def capacity_checks(slots, want):
    """[gpu_capacity], [gpu_product] and, with a topology key, [topology_domain]."""
    size, gpus = want["size"], want["gpus_per_node"]
    usable = [e for e in slots if e["slots"] > 0]
    shape = "%d pod(s) of %d %s" % (size, gpus, GPU_RESOURCE)
    out = []
    if _slot_total(usable) >= size:
        out.append(check("gpu_capacity", "PASS", "nodes", "%s fit: %d place(s) on %d node(s)" % (
            shape, _slot_total(usable), len(usable))))
    else:
        blocked = ["%s (%s)" % (e["node"], e["why"]) for e in slots if e["slots"] == 0]
        most = max([e["allocatable_gpus"] for e in slots] + [0])
        if most < gpus:
            fix = "no node has %d %s at all (the most is %d): plan at most %d GPUs per node" % (
                gpus, GPU_RESOURCE, most, most)
        else:
            fix = ("free room for %d more pod(s): uncordon nodes, tolerate or remove their taints, stop what holds "
                   "their GPUs, or plan fewer nodes" % (size - _slot_total(usable)))
        out.append(check(
            "gpu_capacity", "FAIL", "nodes",
            "the group needs %s, one per place, and the cluster has %d place(s) free: %s" % (
                shape, _slot_total(usable), "; ".join(blocked) or "no GPU nodes"), fix))
    products = {}
    for e in usable:
        products[e["product"]] = products.get(e["product"], 0) + e["slots"]
    pinned = GPU_PRODUCT_LABEL in (want.get("node_selector") or {})
    named = dict((p, n) for p, n in products.items() if p)
    if len(named) > 1 and not pinned:
        best = max(sorted(named), key=lambda p: named[p])
        out.append(check(
            "gpu_product", "FAIL", "nodes",
            "the nodes the group may land on carry different GPUs (%s): one group across them runs at the slowest "
            "GPU's speed, or fails to load where memory differs" % ", ".join(
                "%s on %d place(s)" % (p, n) for p, n in sorted(named.items())),
            "pin one product with nodeSelector %s: %s (nim_extra_values)" % (GPU_PRODUCT_LABEL, best)))
    elif named:
        out.append(check("gpu_product", "PASS", "nodes", "one GPU product: %s" % ", ".join(sorted(named))))
    key = want.get("topology_key")
    if key:
        domains = {}
        for e in usable:
            domain = e["labels"].get(key)
            if domain is not None:
                domains[domain] = domains.get(domain, 0) + e["slots"]
        fitting = sorted(d for d, n in domains.items() if n >= size)
        if fitting:
            out.append(check("topology_domain", "PASS", key, "%s can hold a whole group: %s" % (
                key, ", ".join(fitting))))
        else:
            out.append(check(
                "topology_domain", "FAIL", key,
                "no single %s holds %s: %s" % (key, shape, ", ".join(
                    "%s has %d" % (d, n) for d, n in sorted(domains.items())) or "no usable node carries the label"),
                "free GPUs inside one %s, or drop the exclusive topology" % key))
    return out


# ---------------------------------------------------------------- access, quota, storage, LWS, Helm

def permission_checks(reviews):
    """[permissions]: ``reviews`` is [(permission, allowed, reason)], one SelfSubjectAccessReview each."""
    missing = [(p, reason) for p, allowed, reason in reviews if not allowed]
    if not missing:
        return [check("permissions", "PASS", "access", "all %d permission(s) the deploy uses are granted" % len(
            reviews))]
    return [check(
        "permissions", "FAIL", "access",
        "this identity may not: %s" % "; ".join(describe_permission(p) for p, _reason in missing),
        "grant these verbs to the identity that runs the deploy (a Role in the namespace, a ClusterRole for "
        "cluster-wide resources), e.g. kubectl create role ... --verb=... --resource=...")]


def describe_permission(p):
    resource = p["resource"] + ("/" + p["subresource"] if p.get("subresource") else "")
    group = p.get("group") or ""
    where = (" in " + p["namespace"]) if p.get("namespace") else " (cluster-wide)"
    return "%s %s%s%s" % (p["verb"], resource, "." + group if group else "", where)


# What Helm does to the objects of a release: reads them, creates them, patches (or, forced, replaces) them on an
# upgrade, deletes them on uninstall or when an upgrade no longer renders them.
HELM_VERBS = ("get", "list", "create", "update", "patch", "delete")


def kind_permissions(resources, namespace):
    """The reviews for Helm's verbs on each rendered kind's ``resources`` entry ({name, group, namespaced})."""
    return [dict(verb=verb, resource=r["name"], group=r["group"], namespace=namespace if r["namespaced"] else "")
            for r in resources for verb in HELM_VERBS]


def merge_permissions(*lists):
    """The permissions of all lists, each once, in order."""
    seen, out = set(), []
    for p in (p for one in lists for p in one):
        key = tuple(p.get(k) or "" for k in ("verb", "resource", "group", "subresource", "namespace"))
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def kinds_checks(kinds, unserved):
    """[kinds]: the API serves every kind the chart renders (``unserved``: the {api_version, kind} it does not)."""
    if not unserved:
        return [check("kinds", "PASS", "chart", "the API serves all %d kind(s) the chart renders" % len(kinds))]
    return [check(
        "kinds", "FAIL", "chart",
        "the chart renders %s, which this cluster does not serve: Helm would stop with 'no matches for kind'" % (
            ", ".join("%s (%s)" % (k["kind"], k["api_version"]) for k in unserved)),
        "install what serves it (the CustomResourceDefinitions of the operator it belongs to, such as the "
        "Prometheus Operator for monitoring.coreos.com), or turn that part of the chart off in nim_values")]


def _pointer_parts(pointer):
    """The unescaped parts of a JSON pointer (RFC 6901: ~1 is /, ~0 is ~)."""
    return [part.replace("~1", "/").replace("~0", "~") for part in pointer.strip("/").split("/")]


def pointer_text(pointer):
    """/spec/a/-/b as spec.a[].b, for a message."""
    out = ""
    for part in _pointer_parts(pointer):
        out += "[]" if part == "-" else ("." if out else "") + part
    return out


def unknown_fields(schema, pointers):
    """The shortest pointers among ``pointers`` that the structural ``schema`` (a CRD version's openAPIV3Schema)
    does not know, so that the API server would drop them when storing the object."""
    unknown = set()
    for pointer in pointers:
        node, walked = schema, ""
        for escaped, part in zip(pointer.strip("/").split("/"), _pointer_parts(pointer)):
            if node.get("x-kubernetes-preserve-unknown-fields") or node.get("additionalProperties") is True:
                break
            if node.get("x-kubernetes-embedded-resource") and part in ("apiVersion", "kind", "metadata"):
                break  # the API server keeps these of an embedded object
            walked += "/" + escaped
            if node.get("type") == "array":
                node = node.get("items") or {}
            elif part in (node.get("properties") or {}):
                node = node["properties"][part]
            elif isinstance(node.get("additionalProperties"), dict):
                node = node["additionalProperties"]
            else:
                unknown.add(walked)
                break
    return sorted(unknown)


def lws_field_checks(crd, pointers, installed, upgraded_to=""):
    """[lws_fields]: the served v1 schema of the installed LeaderWorkerSet CRD (release ``installed``) knows every
    field the rendered LeaderWorkerSets set; a WARN when the deploy first upgrades it (``upgraded_to``, if older)."""
    versions = [v for v in (crd.get("spec") or {}).get("versions") or [] if v.get("name") == "v1"]
    schema = ((versions[0].get("schema") or {}).get("openAPIV3Schema") if versions else None) or {}
    missing = unknown_fields(schema, pointers) if schema else []
    if not missing:
        return [check("lws_fields", "PASS", "LeaderWorkerSet",
                      "the installed schema knows all %d field(s) the rendered groups set" % len(pointers))]
    found = check(
        "lws_fields", "FAIL", "LeaderWorkerSet",
        "the installed LeaderWorkerSet %s does not know %s: the API server would drop %s without an error, and the "
        "groups would run without it" % (installed, ", ".join(pointer_text(p) for p in missing),
                                         "it" if len(missing) == 1 else "them"),
        "upgrade LeaderWorkerSet to a release that has these fields, or use a chart version made for the installed "
        "LeaderWorkerSet")
    if upgraded_to and older_release(installed, upgraded_to):
        found.update(status="WARN", fix="the deploy first upgrades LeaderWorkerSet to %s (nim_install_lws); if that "
                     "one does not know them either, %s" % (upgraded_to, found["fix"]))
    return [found]


def quota_checks(quotas, need, namespace):
    """[quota]: every ResourceQuota of the namespace has room for what the release adds (``need``: quota key ->
    amount)."""
    short = []
    for q in quotas:
        status = q.get("status") or {}
        hard, used = status.get("hard") or (q.get("spec") or {}).get("hard") or {}, status.get("used") or {}
        for key, amount in sorted(need.items()):
            if key not in hard or not amount:
                continue
            room = (quantity(hard[key]) or 0) - (quantity(used.get(key)) or 0)
            if room < amount:
                short.append("%s: %s needs %s, %s left of %s" % (
                    q["metadata"]["name"], key, _show(amount), _show(max(room, 0)), hard[key]))
    if not quotas:
        return [check("quota", "PASS", namespace, "no ResourceQuota in the namespace")]
    if short:
        return [check("quota", "FAIL", namespace, "ResourceQuota too small: %s" % "; ".join(short),
                      "raise the quota's hard limits (kubectl edit resourcequota -n %s) or free what holds them"
                      % namespace)]
    return [check("quota", "PASS", namespace, "%d ResourceQuota(s) have room" % len(quotas))]


def limit_range_checks(ranges, want, namespace):
    """[limit_range]: no LimitRange of the namespace caps a container or pod below what each pod of the group asks
    (its admission would reject every pod, and the LeaderWorkerSet would keep retrying)."""
    asked = pod_asks(want)
    over = []
    for lr in ranges:
        for limit in (lr.get("spec") or {}).get("limits") or []:
            if limit.get("type") not in ("Container", "Pod"):
                continue
            for resource, cap in sorted((limit.get("max") or {}).items()):
                if resource in asked and asked[resource] > (quantity(cap) or 0):
                    shown = (want.get("requests") or {}).get(resource) if resource != GPU_RESOURCE else None
                    over.append("%s: %s max %s per %s, a pod asks %s" % (
                        lr["metadata"]["name"], resource, cap, limit["type"].lower(),
                        shown or _show(asked[resource])))
    if over:
        return [check("limit_range", "FAIL", namespace, "LimitRange below the pods' requests: %s" % "; ".join(over),
                      "raise the LimitRange's max (kubectl edit limitrange -n %s) or ask for less per pod" % namespace)]
    return [check("limit_range", "PASS", namespace, "%d LimitRange(s), none below the pods' requests" % len(ranges))]


def storage_checks(classes, want):
    """[storage_class]: the class a new claim gets exists and can be ReadWriteMany for a multi-node group."""
    if not want.get("creates_claim"):
        return []
    name = want.get("storage_class") or ""
    by_name = dict((c["metadata"]["name"], c) for c in classes)
    if name:
        chosen = by_name.get(name)
        if chosen is None:
            return [check("storage_class", "FAIL", "StorageClass/" + name, "StorageClass %s does not exist, so the "
                          "claim would stay Pending" % name,
                          "pick a ReadWriteMany class from 'kubectl get storageclass' (nim_storage.storage_class)")]
    else:
        defaults = [c for c in classes if any((c["metadata"].get("annotations") or {}).get(a) == "true"
                                              for a in DEFAULT_CLASS_ANNOTATIONS)]
        if not defaults:
            return [check("storage_class", "FAIL", "StorageClass", "no storage class is named and the cluster has no "
                          "default class, so the claim would stay Pending",
                          "set nim_storage.storage_class to a ReadWriteMany class")]
        chosen = defaults[0]
    name = chosen["metadata"]["name"]
    provisioner = chosen.get("provisioner", "")
    mode = want.get("access_mode") or "ReadWriteMany"
    if mode != "ReadWriteMany" or want["size"] < 2:
        return [check("storage_class", "PASS", "StorageClass/" + name, "%s (%s)" % (name, provisioner))]
    if provisioner in SINGLE_NODE_PROVISIONERS:
        return [check("storage_class", "FAIL", "StorageClass/" + name,
                      "%s (%s) attaches a volume to one node at a time: the %d pods of a group cannot share it "
                      "ReadWriteMany" % (name, provisioner, want["size"]),
                      "use a ReadWriteMany class (NFS, CephFS, EFS, Filestore, Azure Files) or nim_storage.kind: nfs")]
    if provisioner in SHARED_PROVISIONERS:
        return [check("storage_class", "PASS", "StorageClass/" + name, "%s (%s) offers ReadWriteMany" % (
            name, provisioner))]
    return [check("storage_class", "WARN", "StorageClass/" + name,
                  "%s uses provisioner %s, whose ReadWriteMany support is not known here" % (name, provisioner),
                  "make sure it offers ReadWriteMany; a claim it cannot serve stays Pending")]


def lws_checks(crd, controller, installed_by_deploy):
    """[lws]: LeaderWorkerSet's API is served and its controller Available; what the deploy installs or re-applies
    itself (installed_by_deploy) is a WARN, not a FAIL."""
    found = _lws_checks(crd, controller, installed_by_deploy)
    if installed_by_deploy and found[0]["status"] == "FAIL":
        found[0].update(status="WARN", fix="the deploy re-applies the pinned LeaderWorkerSet (nim_install_lws) and "
                        "waits for it; if it stays so, " + found[0]["fix"])
    return found


def _lws_checks(crd, controller, installed_by_deploy):
    if crd is None:
        if installed_by_deploy:
            return [check("lws", "PASS", "LeaderWorkerSet", "not installed yet; the deploy installs it")]
        return [check("lws", "FAIL", "LeaderWorkerSet", "the LeaderWorkerSet API is not installed",
                      "install LeaderWorkerSet (nim_install_lws: true, or its release manifests)")]
    versions = [v.get("name") for v in (crd.get("spec") or {}).get("versions") or [] if v.get("served")]
    if "v1" not in versions:
        return [check("lws", "FAIL", "LeaderWorkerSet", "the installed CRD serves %s, not v1" % versions,
                      "upgrade LeaderWorkerSet to a release that serves leaderworkerset.x-k8s.io/v1")]
    if controller is None:
        return [check("lws", "FAIL", "LeaderWorkerSet", "the CRD is installed but no controller Deployment was found, "
                      "so no group would ever be created",
                      "install the LeaderWorkerSet controller (nim_install_lws: true)")]
    version = lws_version(controller)
    if not condition_true(controller, "Available"):
        return [check("lws", "FAIL", "Deployment/%s" % controller["metadata"]["name"],
                      "the LeaderWorkerSet controller %s is not Available" % version,
                      "see kubectl -n %s get pods; a deploy would hang on a webhook that does not answer"
                      % controller["metadata"]["namespace"])]
    return [check("lws", "PASS", "LeaderWorkerSet", "%s installed and Available" % version)]


def lws_version(controller):
    """The LeaderWorkerSet release of a controller Deployment, from its image tag (``unknown`` when none says)."""
    images = [c.get("image", "") for c in controller["spec"]["template"]["spec"].get("containers") or []]
    return next((i.rsplit(":", 1)[-1] for i in images if "/lws" in i and ":" in i), "unknown")


def older_release(installed, pinned):
    """Whether ``installed`` (v0.8.1) is older than ``pinned``: the deploy then upgrades it; an unknown installed
    release is re-applied too."""
    def numbers(version):
        parts = version.lstrip("v").split("-")[0].split(".")
        return tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else None
    if not pinned or numbers(pinned) is None:
        return False
    return numbers(installed) is None or numbers(installed) < numbers(pinned)


def helm_checks(last, release, now, stale_after):
    """[helm_state]: the release's last Helm record (a Secret's labels and creation time) is not pending; ``now``
    and ``stale_after`` in seconds."""
    if last is None:
        return [check("helm_state", "PASS", "release/" + release, "not installed yet: the deploy installs it")]
    labels = last["metadata"].get("labels") or {}
    status = labels.get("status", "")
    if status not in PENDING:
        return [check("helm_state", "PASS", "release/" + release, "revision %s %s" % (labels.get("version"), status))]
    age = int(now - parse_time(last["metadata"]["creationTimestamp"]))
    if age > stale_after:
        return [check("helm_state", "WARN", "release/" + release,
                      "revision %s has been %s for %ds, longer than helm's timeout: no run still owns it" % (
                          labels.get("version"), status, age),
                      "the deploy recovers it first (rolls back to the last deployed revision)")]
    return [check("helm_state", "FAIL", "release/" + release,
                  "revision %s is %s since %ds: a helm run may still be changing it" % (
                      labels.get("version"), status, age),
                  "wait for that run to end (it holds the release for up to helm's timeout, %ds), then retry"
                  % stale_after)]


def verdict(checks):
    statuses = [c["status"] for c in checks]
    return "FAIL" if "FAIL" in statuses else ("WARN" if "WARN" in statuses else "PASS")


def table(checks):
    """The checks as aligned text lines: status, check, subject, message (and the fix under a FAIL or WARN)."""
    width_check = max([len(c["check"]) for c in checks] + [5])
    width_subject = max([len(c["subject"]) for c in checks] + [7])
    lines = ["%-4s  %-*s  %-*s  %s" % ("", width_check, "CHECK", width_subject, "SUBJECT", "RESULT")]
    for c in checks:
        lines.append("%-4s  %-*s  %-*s  %s" % (c["status"], width_check, c["check"], width_subject, c["subject"],
                                               c["message"]))
        if c["status"] != "PASS" and c["fix"]:
            lines.append("%s  fix: %s" % (" " * (8 + width_check + width_subject), c["fix"]))
    return lines


# ---------------------------------------------------------------- reading the cluster

def _review(client, permission):
    attributes = dict((k, permission[k]) for k in ("verb", "resource", "group", "subresource", "namespace")
                      if permission.get(k))
    body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attributes}}
    answer = _k8s.call("review access", lambda: client.create(
        client.resource("SelfSubjectAccessReview", "authorization.k8s.io/v1"), body,
        _request_timeout=_k8s.REQUEST_TIMEOUT).to_dict())
    status = answer.get("status") or {}
    return permission, bool(status.get("allowed")), status.get("reason", "")


def _discover(client, kinds):
    """([{name, group, namespaced}] of the kinds the API serves, [the kinds it does not]), from discovery."""
    resources, unserved = [], []
    for k in kinds:
        try:
            found = _k8s.call("discover %s" % k["kind"], lambda k=k: client.resource(k["kind"], k["api_version"]))
        except (_k8s.NotFoundError, _k8s.ResourceNotFoundError):
            unserved.append(k)
            continue
        resources.append({"name": found.name, "group": found.group or "", "namespaced": bool(found.namespaced)})
    return resources, unserved


def _readable(what, read, checks):
    """read() or None, with a WARN when the API refuses (a restricted identity may not list nodes)."""
    try:
        return read()
    except _k8s.K8sError as exc:
        checks.append(check(what, "WARN", what, "could not be read: %s" % exc.what,
                            "grant read access to run this check"))
        return None


def run(client, want, now=None):
    """Read the cluster and evaluate. ``want``: the module's options (see nimops.multinode.nim_preflight)."""
    now = now or time.time()
    namespace, release = want["namespace"], want["release"]
    checks = []
    version = _k8s.call("read the API server version", lambda: client.client.version)
    server = (version or {}).get("kubernetes") or {}
    api_version = server.get("gitVersion") or "%s.%s" % (server.get("major"), server.get("minor"))
    checks.append(check("api", "PASS", "API server", "reachable, Kubernetes %s" % api_version))

    kinds = [k for k in want.get("rendered_kinds") or []
             if (k["api_version"], k["kind"]) != (_k8s.LWS_API, "LeaderWorkerSet")]  # the [lws] check's subject
    resources, unserved = _discover(client, kinds)
    permissions = merge_permissions(want.get("permissions") or [], kind_permissions(resources, namespace))
    try:
        if _k8s.get(client, "v1", "Namespace", namespace) is None:
            permissions.append({"verb": "create", "resource": "namespaces"})  # the deploy creates it
    except _k8s.K8sError:
        pass  # not readable: the review of reading namespaces names that
    checks += permission_checks([_review(client, p) for p in permissions])
    if kinds:
        checks += kinds_checks(kinds, unserved)

    crd = _readable("lws", lambda: _k8s.get(client, "apiextensions.k8s.io/v1", "CustomResourceDefinition",
                                            _k8s.LWS_CRD), checks)
    controller = None if crd is None else _readable("lws", lambda: _k8s.find_controller(
        client, want.get("lws_namespace") or DEFAULT_CONTROLLER_NAMESPACE), checks)
    if not any(c["check"] == "lws" for c in checks):
        checks += lws_checks(crd, controller, want.get("lws_installed_by_deploy"))
    if crd is not None and want.get("lws_fields"):
        installed = lws_version(controller) if controller else "unknown"
        upgraded_to = want.get("lws_pinned_version") if want.get("lws_installed_by_deploy") else ""
        checks += lws_field_checks(crd, want["lws_fields"], installed, upgraded_to)

    nodes = _readable("gpu_capacity", lambda: _k8s.list_items(client, "v1", "Node"), checks)
    pods = None if nodes is None else _readable("gpu_capacity", lambda: _k8s.list_items(client, "v1", "Pod"), checks)
    # the release's own pods, by its LeaderWorkerSet (the label LWS puts on every pod) or by Helm's instance label
    lws_name = _k8s.resolve_lws_name(client, namespace, release=release) if crd is not None else release
    own = [p["metadata"]["name"] for p in pods or [] if p["metadata"].get("namespace") == namespace
           and _owned(p["metadata"].get("labels") or {}, lws_name, release)]
    if nodes is not None and pods is not None:
        checks += capacity_checks(node_slots(nodes, pods, want, own), want)

    if want.get("creates_claim") and want.get("claim_name"):
        # a claim that already exists is adopted: no new claim to place or to count against the quota
        claim = _readable("storage_class", lambda: _k8s.get(client, "v1", "PersistentVolumeClaim",
                                                            want["claim_name"], namespace), checks)
        want = dict(want, creates_claim=claim is None)

    quotas = _readable("quota", lambda: _k8s.list_items(client, "v1", "ResourceQuota", namespace), checks)
    if quotas is not None:
        checks += quota_checks(quotas, quota_need(want, len(own)), namespace)

    ranges = _readable("limit_range", lambda: _k8s.list_items(client, "v1", "LimitRange", namespace), checks)
    if ranges is not None:
        checks += limit_range_checks(ranges, want, namespace)

    if want.get("creates_claim"):
        classes = _readable("storage_class", lambda: _k8s.list_items(client, "storage.k8s.io/v1", "StorageClass"),
                            checks)
        if classes is not None:
            checks += storage_checks(classes, want)

    if "helm_state" not in (want.get("skip") or ()):
        records = _readable("helm_state", lambda: _k8s.list_items(
            client, "v1", "Secret", namespace, "owner=helm,name=%s" % release, metadata_only=True), checks)
        if records is not None:
            last = max(records, key=lambda s: int((s["metadata"].get("labels") or {}).get("version", "0")),
                       default=None)
            checks += helm_checks(last, release, now, want.get("helm_stale_after") or 600)
    return {"api_version": api_version, "checks": checks, "verdict": verdict(checks)}


def _owned(labels, lws_name, release):
    """A pod of the release: LWS's name label on every pod of its LeaderWorkerSet, or Helm's instance label."""
    return labels.get(_k8s.LWS_NAME_LABEL) == lws_name or labels.get("app.kubernetes.io/instance") == release


def quota_need(want, own_pods):
    """Quota key -> what the release adds; an upgrade's own running pods are already counted in ``used``."""
    new_pods = max(0, want["size"] - own_pods)
    need = {"pods": new_pods, "requests.nvidia.com/gpu": new_pods * want["gpus_per_node"],
            "limits.nvidia.com/gpu": new_pods * want["gpus_per_node"]}
    for resource in ("cpu", "memory"):
        amount = quantity((want.get("requests") or {}).get(resource))
        if amount:
            need["requests." + resource] = new_pods * amount
    if want.get("creates_claim") and want.get("claim_size"):
        need["persistentvolumeclaims"] = 1
        need["requests.storage"] = quantity(want["claim_size"])
    return need
