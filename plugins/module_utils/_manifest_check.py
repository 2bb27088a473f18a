# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE: this module_utils file is internal to nimops.multinode and may change without notice.
"""The objects a chart rendered (``helm template``), checked against the plan before anything is installed.

Values say what was asked; only the rendered objects say what the chart made of it. A chart that reads
``multiNode.workers`` another way, drops the GPU request, mounts no shared cache or names a Service like its
LeaderWorkerSet installs cleanly and never serves. ``rendered_problems`` names each such difference; reading the
rendered files is the only I/O here.
"""

from __future__ import annotations

import os

try:
    import yaml
except ImportError:  # pragma: no cover - ansible-core requires PyYAML
    yaml = None

from ansible_collections.nimops.multinode.plugins.module_utils._errors import CREDENTIAL_ENV_NAMES, InputError
from ansible_collections.nimops.multinode.plugins.module_utils._lws_status import is_headless
from ansible_collections.nimops.multinode.plugins.module_utils._values import GPU_RESOURCE

JSON_LOGGING_ENV = "NIM_JSONL_LOGGING"
_TRUE_WORDS = ("1", "true", "yes", "on")


def read_rendered(folder):
    """Every object in the YAML files under ``folder`` (``helm template --output-dir``), in file order."""
    objects = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            if not name.endswith((".yaml", ".yml")):
                continue
            with open(os.path.join(root, name), encoding="utf-8") as handle:
                for document in yaml.safe_load_all(handle):
                    if isinstance(document, dict) and document.get("kind") == "List":
                        objects.extend(item for item in document.get("items") or [] if isinstance(item, dict))
                    elif isinstance(document, dict) and document.get("kind"):
                        objects.append(document)
    return objects


def _name(obj):
    return (obj.get("metadata") or {}).get("name", "")


def _quantity(value):
    """A GPU count as rendered (int or string); None when absent."""
    if value is None:
        return None
    try:
        return int(str(value))
    except ValueError:
        return str(value)


def _containers(pod_spec):
    return [c for c in (pod_spec.get("containers") or []) if isinstance(c, dict)]


def _gpu_problems(where, pod_spec, gpus_per_node):
    problems, total = [], 0
    for container in _containers(pod_spec):
        resources = container.get("resources") or {}
        limit = _quantity((resources.get("limits") or {}).get(GPU_RESOURCE))
        request = _quantity((resources.get("requests") or {}).get(GPU_RESOURCE))
        if limit is None and request is None:
            continue
        # Kubernetes sets an extended resource's request from its limit; a request without a limit is refused.
        if limit is not None and request is not None and request != limit:
            problems.append(("{0} container {1} requests {2} {3} but is limited to {4}".format(
                where, container.get("name"), request, GPU_RESOURCE, limit),
                "set resources.requests and resources.limits {0} alike (gpus_per_node renders both)".format(GPU_RESOURCE)))
        total += limit if isinstance(limit, int) else request if isinstance(request, int) else 0
    if total != gpus_per_node:
        problems.append(("{0} ask for {1} {2} per pod, the plan has gpus_per_node {3}".format(
            where, total, GPU_RESOURCE, gpus_per_node),
            "use a chart that applies resources.limits/requests {0} (rendered from gpus_per_node) to its pods".format(
                GPU_RESOURCE)))
    return problems


def _mounted(pod_spec, volume_name):
    return any(mount.get("name") == volume_name
               for container in _containers(pod_spec) for mount in container.get("volumeMounts") or [])


def _cache_volume_ok(volume, cache, claims):
    if cache["kind"] == "nfs":
        nfs = volume.get("nfs") or {}
        return nfs.get("server") == cache.get("server") and nfs.get("path") == cache.get("path")
    claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
    if not claim:
        return False
    if cache["kind"] == "existing_claim":
        return claim == cache.get("claim")
    # kind pvc: the chart creates the claim, with the planned access mode
    return cache.get("access_mode") in claims.get(claim, ())


def _cache_problems(where, pod_spec, cache, claims):
    if not cache or cache.get("kind") in (None, "none"):
        return []
    if cache["kind"] not in ("nfs", "existing_claim", "pvc"):
        raise InputError("storage_options", "model_cache kind '{0}' is unknown".format(cache["kind"]),
                         "the planned cache decides which volume every pod must mount",
                         "pass expected_objects as nimops.multinode.nim_values returns it")
    for volume in pod_spec.get("volumes") or []:
        if _cache_volume_ok(volume, cache, claims) and _mounted(pod_spec, volume.get("name")):
            return []
    if cache["kind"] == "nfs":
        wanted = "the NFS export {0}:{1}".format(cache.get("server"), cache.get("path"))
    elif cache["kind"] == "existing_claim":
        wanted = "the claim {0}".format(cache.get("claim"))
    else:
        wanted = "a {0} claim the chart creates".format(cache.get("access_mode"))
    return [("{0} mount no model cache from {1}".format(where, wanted),
             "use a chart that mounts persistence.* / nfs.* (rendered from storage) on every pod: the workers read "
             "the model the leader downloads")]


def _env(pod_spec):
    for container in _containers(pod_spec):
        for entry in container.get("env") or []:
            if isinstance(entry, dict):
                yield container, entry


def _secret_refs(pod_spec):
    names = set()
    for container in _containers(pod_spec):
        for entry in container.get("envFrom") or []:
            names.add(((entry or {}).get("secretRef") or {}).get("name"))
    for _container, entry in _env(pod_spec):
        names.add(((entry.get("valueFrom") or {}).get("secretKeyRef") or {}).get("name"))
    return names


def _secret_problems(where, role, pod_spec, secrets):
    problems = []
    pulled_with = set((ref or {}).get("name") for ref in pod_spec.get("imagePullSecrets") or [])
    if secrets.get("image_pull_secret") and secrets["image_pull_secret"] not in pulled_with:
        problems.append(("{0} do not pull with the Secret {1}".format(where, secrets["image_pull_secret"]),
                         "use a chart that applies imagePullSecrets (rendered from image_pull_secret)"))
    # the leader downloads the model; workers may get the keys or not, depending on the generation
    if role == "leader":
        referenced = _secret_refs(pod_spec)
        for option, key in (("ngc_api_secret", "model.ngcAPISecret"), ("hf_token_secret", "model.hfTokenSecret")):
            if secrets.get(option) and secrets[option] not in referenced:
                problems.append(("{0} do not read the Secret {1}".format(where, secrets[option]),
                                 "use a chart that reads {0} (rendered from {1})".format(key, option)))
    for container, entry in _env(pod_spec):
        if entry.get("name") in CREDENTIAL_ENV_NAMES and entry.get("value"):
            # the value is never repeated: it is a credential
            problems.append(("{0} container {1} carries {2} as a literal value".format(
                where, container.get("name"), entry["name"]),
                "reference the key through a Secret (ngc_api_secret / hf_token_secret), never in env or extra_values"))
    return problems


def _logging_problems(where, pod_spec):
    return [("{0} container {1} has {2}={3}".format(where, container.get("name"), JSON_LOGGING_ENV, entry.get("value")),
             "use a chart that honours model.jsonLogging false: the JSON log formatter crashes Ray workers")
            for container, entry in _env(pod_spec)
            if entry.get("name") == JSON_LOGGING_ENV and str(entry.get("value", "")).lower() in _TRUE_WORDS]


def _templates(lws):
    template = ((lws.get("spec") or {}).get("leaderWorkerTemplate")) or {}
    worker = template.get("workerTemplate") or {}
    # without a leaderTemplate, LWS runs the leader from the workerTemplate
    return (("leader", template.get("leaderTemplate") or worker), ("worker", worker))


def rendered_problems(objects, expected):
    """(what the chart rendered against the plan, which value to change) for every difference found."""
    lws_list = [o for o in objects if o.get("kind") == "LeaderWorkerSet"]
    if not lws_list:
        return [("the chart rendered no LeaderWorkerSet (objects: {0})".format(
            ", ".join("{0}/{1}".format(o.get("kind"), _name(o)) for o in objects) or "none"),
            "use a multi-node nim-llm chart: it renders a LeaderWorkerSet when multiNode.enabled is true (helm "
            "template renders without the cluster: a chart that asks whether the cluster serves the LWS API renders "
            "none; check such a chart by hand and turn this check off with nim_verify_rendered: false)")]
    claims = dict((_name(o), tuple((o.get("spec") or {}).get("accessModes") or ()))
                  for o in objects if o.get("kind") == "PersistentVolumeClaim")
    problems = []
    for lws in lws_list:
        name = _name(lws)
        size = ((lws.get("spec") or {}).get("leaderWorkerTemplate") or {}).get("size", 1)
        if size != expected["size"]:
            problems.append(("LeaderWorkerSet {0} has size {1}, the plan has {2} nodes per group".format(
                name, size, expected["size"]),
                "use a chart whose LeaderWorkerSet size follows multiNode.workers as its generation defines it "
                "(Ray-based 2.x: workers = nodes - 1; MPI-based 1.x: workers = nodes)"))
        for role, template in _templates(lws):
            pod_spec = template.get("spec") or {}
            where = "the {0} pods of {1}".format(role, name)
            problems += _gpu_problems(where, pod_spec, expected["gpus_per_node"])
            problems += _cache_problems(where, pod_spec, expected.get("model_cache"), claims)
            problems += _secret_problems(where, role, pod_spec, expected.get("secrets") or {})
            problems += _logging_problems(where, pod_spec)
    lws_names = set(_name(lws) for lws in lws_list)
    for service in objects:
        if service.get("kind") == "Service" and _name(service) in lws_names and not is_headless(service):
            problems.append((
                "the Service {0} has the LeaderWorkerSet's name and is not headless: LWS then creates no headless "
                "Service, the workers never resolve the leader (headless_service_conflict)".format(_name(service)),
                "use a chart version whose API Service is named differently from its LeaderWorkerSet"))
    return problems


def check_rendered(objects, expected):
    """Raise InputError(rendered_mismatch) naming every difference between the rendered objects and the plan."""
    problems = rendered_problems(objects, expected)
    if problems:
        raise InputError(
            "rendered_mismatch", "{0} rendered objects that differ from the plan: {1}".format(
                expected.get("chart") or "the chart", "; ".join(what for what, _fix in problems)),
            "the release would install cleanly and never serve as planned",
            "; ".join(sorted(set(fix for _what, fix in problems))))
    return dict(rendered_shape(objects), objects=["{0}/{1}".format(o.get("kind"), _name(o)) for o in objects])


def field_paths(value, pointer=""):
    """JSON pointers (RFC 6901) to every leaf set in ``value``, an empty map or list counting as a leaf and any list
    item as ``-``: where a field is set, never its value."""
    if isinstance(value, dict) and value:
        paths = set()
        for key, item in value.items():
            paths |= field_paths(item, "{0}/{1}".format(pointer, str(key).replace("~", "~0").replace("/", "~1")))
        return paths
    if isinstance(value, list) and value:
        paths = set()
        for item in value:
            paths |= field_paths(item, pointer + "/-")
        return paths
    return {pointer}


def rendered_shape(objects):
    """What the cluster must serve and allow for these objects, without their values (a chart may render
    Secrets): ``kinds`` (apiVersion and kind of each kind rendered) and ``lws_fields`` (a JSON pointer to every
    field the LeaderWorkerSets set under ``/spec``, for the installed LWS's schema to be checked against)."""
    kinds = sorted(set((o.get("apiVersion") or "", o.get("kind")) for o in objects))
    lws_fields = set()
    for lws in objects:
        if lws.get("kind") == "LeaderWorkerSet":
            lws_fields |= field_paths(lws.get("spec") or {}, "/spec")
    return {"kinds": [{"api_version": api_version, "kind": kind} for api_version, kind in kinds],
            "lws_fields": sorted(lws_fields)}


def check_manifest_dir(params):
    """check_rendered for a module's parameters: the objects are read from ``manifest_dir``."""
    return check_rendered(read_rendered(params["manifest_dir"]), params["expected"])


# The options of nimops.multinode.nim_manifest_check (its module and its controller-side action share them).
MANIFEST_CHECK_ARGSPEC = dict(
    manifest_dir=dict(type="path", required=True),
    expected=dict(type="dict", required=True, options=dict(
        chart=dict(type="str", default="the chart"),
        size=dict(type="int", required=True),
        gpus_per_node=dict(type="int", required=True),
        model_cache=dict(type="dict", default={}),
        secrets=dict(type="dict", default={}, no_log=False),
    )),
)
