# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE: this module_utils file is internal to nimops.multinode and may change without notice.
"""nim-llm Helm values for a multi-node release, and the multi-node rules they must obey.

``build_values`` renders values from a few high-level options for the chart's multi-node generation (Ray-based
2.x or MPI-based 1.x, see _chart_contract), deep-merges ``extra_values`` under them, then checks the merged result
against every rule, so a rule cannot be bypassed through ``extra_values``. With the chart given, keys its
values.yaml does not know and values its schema refuses are refused too (a chart ignores unknown keys silently).
Secrets are referenced by Secret name only; anything that looks like a secret value is refused without being
echoed.
"""

from __future__ import annotations

import copy
import math
import re

from ansible_collections.nimops.multinode.plugins.module_utils._chart_contract import (
    describe as describe_chart, detect_generation, read_chart, schema_problems, unknown_keys)
from ansible_collections.nimops.multinode.plugins.module_utils._common_args import TOPOLOGY_ARGSPEC
from ansible_collections.nimops.multinode.plugins.module_utils._errors import (
    CREDENTIAL_ENV_NAMES as _SECRET_ENV_NAMES, CREDENTIAL_RE as _SECRET_VALUE_RE, InputError, ValuesRuleError,
    NimOpsError, redact_credentials as redact)

GPU_RESOURCE = "nvidia.com/gpu"
RDMA_INTERCONNECTS = ("infiniband", "roce")
INTERCONNECTS = ("ethernet",) + RDMA_INTERCONNECTS
STORAGE_KINDS = ("pvc", "existing_claim", "nfs", "none")
ACCESS_MODES = ("ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod", "ReadOnlyMany")
SINGLE_NODE_MODES = ("ReadWriteOnce", "ReadWriteOncePod")
DEFAULT_RAY_PORT = 6379

# A Kubernetes object name (DNS-1123 subdomain).
# \Z, not $: "$" also matches before a trailing newline, which the API server refuses only after earlier writes.
_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")
_QUANTITY_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?\Z")
# Credentials in other shapes than a prefixed key: a bearer header, a command-line flag carrying a token, and
# literal values of environment entries named like a credential (those belong in a Secret, through valueFrom).
_BEARER_RE = re.compile(r"^\s*Bearer\s+\S{8,}", re.IGNORECASE)
_TOKEN_FLAG_RE = re.compile(r"--(?:hf[-_]token|api[-_]key|ngc[-_]api[-_]key|token|password)[= ]\S+", re.IGNORECASE)
_CREDENTIAL_NAME_RE = re.compile(r"(TOKEN|API_?KEY|SECRET|PASSWORD|PASSWD)$", re.IGNORECASE)
# Settings that hand a pod its node (host filesystem, network, process or IPC namespace, root, other API rights).
_PRIVILEGED_TRUE = ("privileged", "allowPrivilegeEscalation", "hostNetwork", "hostPID", "hostIPC")
_QUANTITY_FACTOR = {
    None: 1, "k": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12, "P": 10 ** 15, "E": 10 ** 18,
    "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60,
}
_PROFILE_TP_PP_RE = re.compile(r"(?:^|[-_])tp(\d+)[-_]pp(\d+)(?:$|[-_])")

# Where each rendered value comes from, for messages about extra_values that contradict it.
_OWNERS = (
    ("image.", "image"),
    ("imagePullSecrets", "image_pull_secret"),
    ("model.ngcAPISecret", "ngc_api_secret"),
    ("model.hfTokenSecret", "hf_token_secret"),
    ("model.modelPath", "model_path"),
    ("model.profile", "profile"),
    ("model.jsonLogging", "json_logging"),
    ("multiNode.enabled", "nodes"),
    ("multiNode.workers", "nodes"),
    ("multiNode.gpusPerNode", "gpus_per_node"),
    ("multiNode.tensorParallelSize", "tensor_parallel_size"),
    ("multiNode.pipelineParallelSize", "pipeline_parallel_size"),
    ("multiNode.ray.port", "ray_port"),
    ("resources.", "gpus_per_node"),
    ("persistence.", "storage"),
    ("nfs.", "storage"),
)


def _owner(path):
    for prefix, option in _OWNERS:
        if path == prefix or path.startswith(prefix):
            return option
    return "the matching option"


def quantity_bytes(quantity):
    """Kubernetes storage quantity ("200Gi", "1T") → bytes, or None when it is not one."""
    match = _QUANTITY_RE.match(str(quantity))
    if not match:
        return None
    return int(float(match.group(1)) * _QUANTITY_FACTOR[match.group(2)])


def _check_secret_name(option, name, required=False, why=""):
    if name is None or name == "":
        if required:
            raise InputError(
                "secret_by_name", "{0} is not set".format(option), why,
                "create the Secret (roles nim_secrets) and set {0} to its name".format(option))
        return
    if _SECRET_VALUE_RE.match(str(name)):
        # Deliberately not echoed: it looks like a credential.
        raise InputError(
            "secret_by_name", "{0} looks like a credential, not a Secret name".format(option),
            "values reference Kubernetes Secrets by name; a key or token in values would be stored in the "
            "Helm release in plain text",
            "put the credential in a Secret and set {0} to the Secret's name (e.g. ngc-api)".format(option))
    if len(str(name)) > 253 or not _NAME_RE.match(str(name)):
        raise InputError(
            "secret_by_name", "{0} is not a valid Kubernetes Secret name".format(option),
            "a Secret name is lower-case letters, digits, '-' and '.', at most 253 characters",
            "set {0} to the name of an existing Secret, e.g. ngc-api".format(option))


def _looks_like_credential(text):
    return bool(_SECRET_VALUE_RE.match(text) or _BEARER_RE.match(text) or _TOKEN_FLAG_RE.search(text))


def _find_embedded_secrets(value, path=""):
    """Paths in extra_values that carry credential values (never the values themselves)."""
    found = []
    if isinstance(value, dict):
        name = value.get("name")
        is_env_entry = "value" in value and isinstance(name, str) and (
            name in _SECRET_ENV_NAMES or bool(_CREDENTIAL_NAME_RE.search(name)))
        if is_env_entry:
            found.append(path + ".value" if path else "value")
        for key, item in value.items():
            sub = "{0}.{1}".format(path, key) if path else str(key)
            if key in _SECRET_ENV_NAMES and isinstance(item, str):
                found.append(sub)
            elif not (is_env_entry and key == "value"):
                found.extend(_find_embedded_secrets(item, sub))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_find_embedded_secrets(item, "{0}[{1}]".format(path, index)))
    elif isinstance(value, str) and _looks_like_credential(value):
        found.append(path)
    return found


def _find_privileged(value, path=""):
    """(path, setting) of every setting in extra_values that gives a pod its node or another identity."""
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            sub = "{0}.{1}".format(path, key) if path else str(key)
            if key in _PRIVILEGED_TRUE and item not in (False, None, "false", "False"):
                found.append((sub, "{0}: {1}".format(key, item)))
            elif key == "hostPath" and item not in (None, "", {}):
                found.append((sub, "a host path"))
            elif key == "runAsUser" and str(item) == "0":
                found.append((sub, "UID 0"))
            elif key == "serviceAccountName" and item:
                found.append((sub, "service account {0}".format(item)))
            elif key == "add" and path.endswith("capabilities") and isinstance(item, list) and \
                    {"ALL", "SYS_ADMIN"} & {str(cap).upper() for cap in item}:
                found.append((sub, "capabilities {0}".format(", ".join(map(str, item)))))
            else:
                found.extend(_find_privileged(item, sub))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_find_privileged(item, "{0}[{1}]".format(path, index)))
    return found


def _leaves(value, path=()):
    """(key tuple, value) of every non-dict leaf; an empty dict below the top is a leaf too.

    Tuples, not dotted strings, because keys such as nvidia.com/gpu contain dots.
    """
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from _leaves(item, path + (key,))
    elif path:
        yield path, value


def _dotted(path):
    return ".".join(str(key) for key in path)


def deep_merge(base, overlay):
    """base with overlay merged in: dicts recursively, anything else replaced by overlay."""
    out = copy.deepcopy(base)
    for key, item in overlay.items():
        if isinstance(item, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], item)
        else:
            out[key] = copy.deepcopy(item)
    return out


def _conflicts(extra, rendered):
    """(dotted path, extra value, rendered value) where extra_values sets a rendered key differently."""
    out = []
    for path, want in _leaves(rendered):
        node = extra
        for key in path:
            if not isinstance(node, dict) or key not in node:
                node = KeyError
                break
            node = node[key]
        if node is not KeyError and node != want:
            out.append((_dotted(path), node, want))
    return out


def _refuse_conflict(path, given, rendered, generation):
    if path == "model.jsonLogging":
        raise ValuesRuleError(
            "json_logging", "extra_values sets model.jsonLogging to {0}".format(given),
            "the NIM JSON log formatter does not exist in vLLM's Ray worker processes, so workers fail at start",
            "remove model.jsonLogging from extra_values; multi-node needs it false")
    if path == "multiNode.enabled":
        raise ValuesRuleError(
            "multinode_enabled", "extra_values sets multiNode.enabled to {0}".format(given),
            "without it the chart deploys independent single-node pods that never form a Ray cluster",
            "remove multiNode.enabled from extra_values")
    if path == "multiNode.workers":
        meaning = ("nodes - 1", "each replica is one leader plus its workers, so workers must be nodes - 1")
        if generation == "mpi":
            meaning = ("nodes", "the MPI-based chart counts the leader among its workers, so workers must be nodes")
        raise ValuesRuleError(
            "workers", "extra_values sets multiNode.workers to {0} but {1} is {2}".format(given, meaning[0], rendered),
            meaning[1], "remove multiNode.workers from extra_values and set nodes instead")
    if path.startswith("resources."):
        raise ValuesRuleError(
            "gpu_resources", "extra_values sets {0} to {1} but gpus_per_node is {2}".format(path, given, rendered),
            "every pod (leader and workers) must get all GPUs of its node, in limits and requests alike, "
            "or the tensor-parallel group cannot be placed",
            "remove {0} from extra_values and set gpus_per_node".format(path))
    raise InputError(
        "extra_values_conflict",
        "extra_values sets {0} to {1!r}, which contradicts the rendered {2!r}".format(path, given, rendered),
        "the high-level option is the one source of truth for this value",
        "remove {0} from extra_values and set {1}".format(path, _owner(path)))


def _check_parallelism(tp, pp, profile, nodes, gpus_per_node, interconnect):
    has_tp_pp = tp is not None or pp is not None
    if has_tp_pp and profile:
        raise ValuesRuleError(
            "parallelism_choice", "both tensor_parallel_size/pipeline_parallel_size and profile are set",
            "the chart selects the model profile either from TP/PP or from an explicit profile, not both",
            "keep TP/PP (recommended) and drop profile, or keep profile and drop TP/PP")
    if not has_tp_pp and not profile:
        raise ValuesRuleError(
            "parallelism_choice", "neither tensor_parallel_size/pipeline_parallel_size nor profile is set",
            "the chart refuses to render without one of them",
            "set tensor_parallel_size={0} and pipeline_parallel_size={1} (GPUs per node, nodes; nim_plan "
            "proposes them), or set profile".format(gpus_per_node, nodes))
    if has_tp_pp and (tp is None or pp is None):
        missing = "pipeline_parallel_size" if pp is None else "tensor_parallel_size"
        raise ValuesRuleError(
            "parallelism_choice", "{0} is not set".format(missing),
            "TP and PP together decide how the model is split; one alone is ambiguous",
            "set both (standard: tensor_parallel_size={0}, pipeline_parallel_size={1})".format(gpus_per_node, nodes))
    source = "tensor_parallel_size x pipeline_parallel_size"
    if profile:
        match = _PROFILE_TP_PP_RE.search(profile)
        if not match:
            return  # a profile hash: NIM checks it against the GPUs at start
        tp, pp = int(match.group(1)), int(match.group(2))
        source = "profile {0} (tp{1}, pp{2})".format(profile, tp, pp)
    if tp < 1 or pp < 1:
        raise InputError(
            "parallelism_choice", "TP={0}, PP={1}".format(tp, pp), "both must be at least 1",
            "set tensor_parallel_size={0} and pipeline_parallel_size={1}".format(gpus_per_node, nodes))
    total = nodes * gpus_per_node
    if tp * pp != total:
        raise ValuesRuleError(
            "gpu_count", "{0} = {1} GPUs but {2} nodes x {3} GPUs = {4}".format(source, tp * pp, nodes, gpus_per_node, total),
            "Ray places one vLLM worker per GPU: too many never get scheduled, too few leave GPUs idle",
            "make TP x PP equal {0} (standard: TP={1}, PP={2}) or change nodes/gpus_per_node".format(total, gpus_per_node, nodes))
    if tp > gpus_per_node and tp % gpus_per_node:
        raise ValuesRuleError(
            "tp_layout", "TP={0} spans nodes but is not a multiple of {1} GPUs per node".format(tp, gpus_per_node),
            "a tensor-parallel group must cover whole nodes",
            "use TP={0} (one node) or a multiple of it".format(gpus_per_node))
    if tp < gpus_per_node and gpus_per_node % tp:
        raise ValuesRuleError(
            "tp_layout", "TP={0} does not divide {1} GPUs per node".format(tp, gpus_per_node),
            "tensor-parallel groups must not straddle a node boundary",
            "use TP={0} or a divisor of it".format(gpus_per_node))
    if tp > gpus_per_node and interconnect not in RDMA_INTERCONNECTS:
        raise ValuesRuleError(
            "multinode_tp_interconnect",
            "TP={0} is larger than {1} GPUs per node (multi-node tensor parallelism) on a {2} interconnect".format(
                tp, gpus_per_node, interconnect),
            "tensor parallelism exchanges activations on every layer and needs RDMA; over Ethernet it is far "
            "slower or times out",
            "use tensor_parallel_size={0}, pipeline_parallel_size={1}, or set interconnect to infiniband/roce "
            "if the nodes have it".format(gpus_per_node, total // gpus_per_node))


def topology_problem(tp, pp, nodes, gpus_per_node, interconnect="ethernet"):
    """The refusal the multi-node rules give for this split of TP x PP over nodes x GPUs per node, or ''.

    The same rules as the values (gpu_count, tp_layout, multinode_tp_interconnect), for callers that render no
    values, such as the bare-host path.
    """
    try:
        tp, pp, nodes, gpus_per_node = int(tp), int(pp), int(nodes), int(gpus_per_node)
    except (TypeError, ValueError):
        return ("[parallelism_choice] tensor_parallel_size {0}, pipeline_parallel_size {1}, nodes {2} and "
                "gpus_per_node {3} must be whole numbers. Why: they decide how the model is split. "
                "Fix: set them as integers.").format(tp, pp, nodes, gpus_per_node)
    try:
        _check_parallelism(tp, pp, None, nodes, gpus_per_node, interconnect)
    except NimOpsError as exc:
        return exc.message
    return ""


def _check_size_fits(size, size_bytes, model_size_gb):
    if model_size_gb and size_bytes and size_bytes < model_size_gb * 10 ** 9:
        raise ValuesRuleError(
            "storage_size", "storage.size {0} ({1:g} GB) is smaller than the {2:g} GB model".format(
                size, round(size_bytes / 10 ** 9, 1), model_size_gb),
            "the download fills the volume and the leader never starts",
            "set storage.size to at least {0}Gi".format(int(math.ceil(model_size_gb * 10 ** 9 / 2 ** 30))))


def _storage_values(storage, nodes, allow_independent, model_size_gb, notes):
    kind = storage.get("kind")
    copies = "{0} copies".format(nodes)
    if model_size_gb:
        copies = "{0} copies x {1:g} GB = {2:g} GB".format(nodes, model_size_gb, round(nodes * model_size_gb, 1))
    cost = "each of the {0} nodes downloads the model on its own ({1})".format(nodes, copies)

    if kind == "none":
        if not allow_independent:
            raise ValuesRuleError(
                "shared_storage", "storage kind is none for a {0}-node release".format(nodes),
                "without shared storage {0}".format(cost),
                "use a ReadWriteMany PVC (kind pvc or existing_claim) or NFS, or set "
                "allow_independent_downloads=true to accept the cost")
        notes.append("Independent downloads accepted: {0}.".format(cost))
        return {"persistence": {"enabled": False}}

    if kind == "nfs":
        server, path = storage.get("server"), storage.get("path")
        if not server or not path or not str(path).startswith("/"):
            raise InputError(
                "storage_options", "storage kind nfs needs server and an absolute path",
                "every pod mounts the same export", "set storage.server and storage.path (e.g. /exports/nim-models)")
        return {"nfs": {"enabled": True, "server": server, "path": path}}

    mode = storage.get("access_mode") or "ReadWriteMany"
    if mode not in ACCESS_MODES:
        raise InputError(
            "storage_options", "storage.access_mode '{0}' is unknown".format(mode),
            "the PVC access mode decides which nodes can mount the cache",
            "use one of {0}".format(", ".join(ACCESS_MODES)))
    if mode == "ReadOnlyMany":
        raise ValuesRuleError(
            "shared_storage", "storage.access_mode is ReadOnlyMany", "the leader writes the model into the cache",
            "use ReadWriteMany")
    persistence = {"enabled": True}
    if kind == "existing_claim":
        claim = storage.get("existing_claim")
        if not claim or not _NAME_RE.match(str(claim)):
            raise InputError(
                "storage_options", "storage kind existing_claim needs storage.existing_claim (a PVC name)",
                "the release mounts that claim on every pod", "set storage.existing_claim, e.g. nim-model-cache")
        if mode in SINGLE_NODE_MODES:
            raise ValuesRuleError(
                "shared_storage", "existing claim {0} is {1} for a {2}-node release".format(claim, mode, nodes),
                "one {0} claim can be mounted on one node only, so the workers would stay Pending".format(mode),
                "use a ReadWriteMany claim, NFS, or storage kind none with allow_independent_downloads")
        if storage.get("size"):
            # the claim's size is known when the collection creates it: hold it to the same rule as a chart PVC
            _check_size_fits(storage["size"], quantity_bytes(storage["size"]), model_size_gb)
        persistence["existingClaim"] = claim
        persistence["accessMode"] = mode
        notes.append("PVC {0} is kept on uninstall, so the model cache survives redeployments.".format(claim))
        return {"persistence": persistence}

    if kind != "pvc":
        raise InputError(
            "storage_options", "storage.kind '{0}' is unknown".format(kind),
            "the kind picks how the model cache is shared", "use one of {0}".format(", ".join(STORAGE_KINDS)))
    size = storage.get("size")
    size_bytes = quantity_bytes(size) if size else None
    if not size_bytes:
        raise InputError(
            "storage_options", "storage kind pvc needs storage.size as a Kubernetes quantity",
            "the chart creates the PVC with that size", "set storage.size, e.g. 1000Gi")
    _check_size_fits(size, size_bytes, model_size_gb)
    if mode in SINGLE_NODE_MODES:
        if not allow_independent:
            raise ValuesRuleError(
                "shared_storage", "storage.access_mode is {0} for a {1}-node release".format(mode, nodes),
                "workers on other nodes cannot mount the leader's volume, so {0}".format(cost),
                "use access_mode ReadWriteMany with an RWX storage class, or NFS, or set "
                "allow_independent_downloads=true to accept the cost")
        notes.append("Independent downloads accepted with {0} storage: {1}.".format(mode, cost))
    persistence.update({"size": size, "accessMode": mode})
    if storage.get("storage_class"):
        persistence["storageClass"] = storage["storage_class"]
    else:
        notes.append("No storage_class given: the cluster's default class must provide {0}.".format(mode))
    return {"persistence": persistence}


def _check_merged(values, nodes, gpus_per_node):
    """Rules on the merged values, so extra_values cannot add what the options were refused for."""
    model = values.get("model") or {}
    multi = values.get("multiNode") or {}
    if model.get("profile") and (multi.get("tensorParallelSize") or multi.get("pipelineParallelSize")):
        raise ValuesRuleError(
            "parallelism_choice", "the values set both model.profile and multiNode TP/PP (one through extra_values)",
            "the chart selects the model profile either from TP/PP or from an explicit profile, not both",
            "remove the extra one from extra_values")
    nfs_on = (values.get("nfs") or {}).get("enabled")
    if nfs_on and (values.get("persistence") or {}).get("enabled"):
        raise ValuesRuleError(
            "storage_options", "the values enable both persistence and nfs (one through extra_values)",
            "the model cache is mounted from one place", "choose the storage kind once, through storage.kind")
    for kind in ("limits", "requests"):
        got = ((values.get("resources") or {}).get(kind) or {}).get(GPU_RESOURCE)
        if got != gpus_per_node:
            raise ValuesRuleError(
                "gpu_resources", "resources.{0}.{1} is {2}, gpus_per_node is {3}".format(kind, GPU_RESOURCE, got, gpus_per_node),
                "every pod must get all GPUs of its node in limits and requests",
                "remove resources.{0} from extra_values".format(kind))


def _check_options(image, image_pull_secret, ngc_api_secret, hf_token_secret, model_path, nodes, gpus_per_node,
                   interconnect, json_logging, ray_port, storage, notes):
    """Checks of single options and their simple combinations, before anything is rendered."""
    repository, tag = image.get("repository"), image.get("tag")
    if not repository or not tag:
        raise InputError(
            "image", "image.repository and image.tag must both be set",
            "the same image runs on the leader and every worker, so it must be pinned",
            "set image.repository (e.g. nvcr.io/nim/meta/llama-3.1-405b-instruct) and image.tag")
    if str(tag) == "latest":
        notes.append("image.tag is 'latest': leader and workers may pull different builds; pin a version tag.")
    if nodes is None or nodes < 2:
        raise ValuesRuleError(
            "multinode_nodes", "nodes is {0}".format(nodes),
            "a multi-node release is one leader and at least one worker",
            "set nodes to 2 or more (nim_plan proposes it); a model that fits one node deploys single-node")
    if gpus_per_node is None or gpus_per_node < 1:
        raise InputError(
            "gpu_resources", "gpus_per_node is {0}".format(gpus_per_node),
            "every pod requests all GPUs of its node", "set gpus_per_node, e.g. 8")
    if interconnect not in INTERCONNECTS:
        raise InputError(
            "interconnect", "interconnect '{0}' is unknown".format(interconnect),
            "multi-node tensor parallelism is allowed only on RDMA",
            "use one of {0}".format(", ".join(INTERCONNECTS)))
    if json_logging:
        raise ValuesRuleError(
            "json_logging", "json_logging is true for a {0}-node release".format(nodes),
            "the NIM JSON log formatter does not exist in vLLM's Ray worker processes, so workers fail at start",
            "set json_logging=false (the default)")
    if not 1 <= int(ray_port) <= 65535:
        raise InputError("ray_port", "ray_port is {0}".format(ray_port), "it must be a TCP port",
                         "use 6379 (the default) or another free port")
    _check_secret_name("ngc_api_secret", ngc_api_secret, required=True,
                       why="NIM authenticates to NGC with the key in this Secret (key NGC_API_KEY)")
    _check_secret_name("hf_token_secret", hf_token_secret)
    _check_secret_name("image_pull_secret", image_pull_secret)
    if str(repository).startswith("nvcr.io/") and not image_pull_secret:
        raise ValuesRuleError(
            "image_pull_secret", "image {0} is on nvcr.io but image_pull_secret is not set".format(repository),
            "nvcr.io requires authentication, so every pod would fail with ImagePullBackOff",
            "create a dockerconfigjson Secret for nvcr.io (user $oauthtoken) and set image_pull_secret to its name")
    if model_path and str(model_path).startswith("hf://"):
        if not hf_token_secret:
            raise ValuesRuleError(
                "hf_token", "model_path {0} is a Hugging Face model but hf_token_secret is not set".format(model_path),
                "model-free NIM downloads from Hugging Face with HF_TOKEN; gated models fail without it",
                "create a Secret with key HF_TOKEN and set hf_token_secret to its name")
        if not str(repository).endswith("/nim-llm"):
            notes.append("model_path is hf://: model-free NIM normally runs the generic image nvcr.io/nim/nim-llm, "
                         "not {0}.".format(repository))
    if not storage or not storage.get("kind"):
        raise InputError(
            "storage_options", "storage.kind is not set",
            "multi-node needs a decision on where the model cache lives",
            "set storage.kind to pvc (ReadWriteMany), existing_claim, nfs, or none with allow_independent_downloads")


def _merge_extra(extra, rendered, nodes, gpus_per_node, allow_privileged_values, generation):
    """rendered over extra_values, refusing credentials, contradictions and rule breaks in extra_values."""
    embedded = _find_embedded_secrets(extra)
    if embedded:
        raise InputError(
            "secret_by_name", "extra_values holds credential values at {0}".format(", ".join(embedded)),
            "values are stored in the Helm release in plain text and shown in diffs",
            "remove them; reference Secrets by name (ngc_api_secret, hf_token_secret) instead")
    privileged = _find_privileged(extra)
    if privileged and not allow_privileged_values:
        raise InputError(
            "privileged_values", "extra_values would give the pods their node or another identity: {0}".format(
                ", ".join("{0} ({1})".format(where, what) for where, what in privileged)),
            "the pods hold the NGC key and the node's GPUs; these settings also give them the host's files, network, "
            "processes, root, or another service account's API rights",
            "remove them, or set allow_privileged_values=true (nim_allow_privileged_values) if the cluster's policy "
            "requires them")
    for path, given, want in _conflicts(extra, rendered):
        _refuse_conflict(path, given, want, generation)
    values = deep_merge(extra, rendered)
    _check_merged(values, nodes, gpus_per_node)
    return values


def _diff(current_values, values):
    before = redact(current_values or {})
    old, new = dict(_leaves(before)), dict(_leaves(values))
    changed_paths = sorted(
        _dotted(path) for path in set(old) | set(new) if old.get(path, KeyError) != new.get(path, KeyError))
    return changed_paths, {"before": before, "after": values,
                           "before_header": "deployed values", "after_header": "rendered values"}


def _refuse_ignored_by_mpi(chart, options):
    """The MPI-based chart does not read these options: refused by name rather than dropped."""
    # ray_port always has a value (its default); only another port was chosen on purpose
    ignored = [name for name, value in options
               if value not in (None, "") and not (name == "ray_port" and int(value) == DEFAULT_RAY_PORT)]
    if ignored:
        raise InputError(
            "chart_generation", "{0} is an MPI-based (1.x) multi-node chart, which ignores {1}".format(
                describe_chart(chart), ", ".join(ignored)),
            "it runs one MPI rank per GPU on nodes x gpus_per_node GPUs and picks the model profile by itself; "
            "the options would be dropped without effect",
            "remove {0} (set nodes and gpus_per_node only), or deploy a Ray-based nim-llm 2.x chart, "
            "which reads them".format(", ".join(ignored)))


def _check_chart(values, rendered, chart):
    """Keys the chart's values.yaml does not know, then the chart's own schema."""
    unknown = unknown_keys(values, chart.get("values") or {}, chart.get("schema"))
    if unknown:
        options = set(_dotted(path) for path, _value in _leaves(rendered))
        raise InputError(
            "unknown_chart_key", "{0}'s values.yaml does not declare {1}".format(describe_chart(chart), ", ".join(
                "{0} (set by {1})".format(path, _owner(path) if path in options else "extra_values")
                for path in unknown)),
            "a chart ignores values it does not know, so the setting would have no effect without a word",
            "remove them, or use a chart version whose values.yaml has them")
    problems = schema_problems(values, chart.get("schema"))
    if problems:
        raise InputError(
            "chart_schema", "the values break {0}'s values.schema.json: {1}".format(
                describe_chart(chart), "; ".join(problems)),
            "helm would refuse the release only after the namespace, Secrets and storage had changed",
            "correct the values named (extra_values or the option that renders them)")


def build_values(image=None, image_pull_secret=None, ngc_api_secret=None, hf_token_secret=None,
                 model_path=None, profile=None, tensor_parallel_size=None, pipeline_parallel_size=None,
                 nodes=None, gpus_per_node=None, interconnect="ethernet", json_logging=False, storage=None,
                 allow_independent_downloads=False, model_size_gb=None, ray_port=DEFAULT_RAY_PORT,
                 extra_values=None, current_values=None, allow_privileged_values=False, chart=None):
    """Render and check multi-node nim-llm values. Returns values, notes and the diff against current_values.

    ``chart`` ({name, version, values, schema}, see _chart_contract.read_chart) decides the multi-node generation
    and is checked against; without it the values are rendered for the Ray-based generation and not checked
    against a chart.
    """
    notes = []
    image = image or {}
    generation = detect_generation(chart) if chart else "ray"
    _check_options(image, image_pull_secret, ngc_api_secret, hf_token_secret, model_path, nodes, gpus_per_node,
                   interconnect, json_logging, ray_port, storage, notes)
    model = {"ngcAPISecret": ngc_api_secret, "jsonLogging": False}
    if generation == "mpi":
        _refuse_ignored_by_mpi(chart, (
            ("tensor_parallel_size", tensor_parallel_size), ("pipeline_parallel_size", pipeline_parallel_size),
            ("profile", profile), ("model_path", model_path), ("hf_token_secret", hf_token_secret),
            ("ray_port", ray_port)))
        multi = {"enabled": True, "workers": nodes, "gpusPerNode": gpus_per_node}
        notes.append("{0} is MPI-based: {1} nodes x {2} GPUs run {3} MPI ranks.".format(
            describe_chart(chart), nodes, gpus_per_node, nodes * gpus_per_node))
    else:
        _check_parallelism(tensor_parallel_size, pipeline_parallel_size, profile, nodes, gpus_per_node, interconnect)
        if (tensor_parallel_size or 0) > gpus_per_node:
            notes.append("Tensor parallelism spans nodes over {0}: make sure NCCL uses it "
                         "(NCCL_IB_DISABLE=0, NCCL_IB_HCA).".format(interconnect))
        if hf_token_secret:
            model["hfTokenSecret"] = hf_token_secret
        if model_path:
            model["modelPath"] = model_path
        multi = {"enabled": True, "workers": nodes - 1}
        if profile:
            model["profile"] = profile
        else:
            multi["tensorParallelSize"] = tensor_parallel_size
            multi["pipelineParallelSize"] = pipeline_parallel_size
        multi["ray"] = {"port": int(ray_port)}
    rendered = {"image": {"repository": image["repository"], "tag": str(image["tag"])}}
    if image_pull_secret:
        rendered["imagePullSecrets"] = [{"name": image_pull_secret}]
    rendered["model"] = model
    rendered["multiNode"] = multi
    rendered["resources"] = {"limits": {GPU_RESOURCE: gpus_per_node}, "requests": {GPU_RESOURCE: gpus_per_node}}
    rendered.update(_storage_values(storage, nodes, allow_independent_downloads, model_size_gb, notes))

    values = _merge_extra(extra_values or {}, rendered, nodes, gpus_per_node, allow_privileged_values, generation)
    if chart:
        _check_chart(values, rendered, chart)
    changed_paths, diff = _diff(current_values, values)
    return {"values": values, "notes": notes, "changed_paths": changed_paths, "diff": diff,
            "chart_generation": generation,
            "expected_objects": _expected_objects(chart, nodes, gpus_per_node, storage, {
                "image_pull_secret": image_pull_secret, "ngc_api_secret": ngc_api_secret,
                "hf_token_secret": hf_token_secret})}


def _expected_objects(chart, nodes, gpus_per_node, storage, secrets):
    """What the chart must render for this plan (see _manifest_check): one group of ``nodes`` pods, each with
    gpus_per_node GPUs, the planned model cache and the named Secrets."""
    cache = {"kind": storage["kind"]}
    if storage["kind"] == "nfs":
        cache.update(server=storage.get("server"), path=storage.get("path"))
    elif storage["kind"] == "existing_claim":
        cache["claim"] = storage.get("existing_claim")
    elif storage["kind"] == "pvc":
        cache["access_mode"] = storage.get("access_mode") or "ReadWriteMany"
    return {"chart": describe_chart(chart) if chart else "the chart", "size": nodes, "gpus_per_node": gpus_per_node,
            "model_cache": cache, "secrets": dict((k, v) for k, v in secrets.items() if v)}


def build_values_for(params):
    """build_values for a module's parameters: ``chart_path`` (a chart folder or .tgz) is read into ``chart``."""
    params = dict(params)
    chart_path = params.pop("chart_path", None)
    return build_values(chart=read_chart(chart_path) if chart_path else None, **params)


# The options of nimops.multinode.nim_values (its module and its controller-side action share them).
VALUES_ARGSPEC = dict(
    image=dict(type="dict", required=True, options=dict(
        repository=dict(type="str", required=True),
        tag=dict(type="str", required=True),
    )),
    image_pull_secret=dict(type="str", no_log=False),
    ngc_api_secret=dict(type="str", required=True, no_log=False),
    hf_token_secret=dict(type="str", no_log=False),
    model_path=dict(type="str"),
    profile=dict(type="str"),
    tensor_parallel_size=dict(type="int"),
    pipeline_parallel_size=dict(type="int"),
    nodes=dict(type="int", required=True),
    json_logging=dict(type="bool", default=False),
    storage=dict(type="dict", required=True, options=dict(
        kind=dict(type="str", required=True, choices=list(STORAGE_KINDS)),
        size=dict(type="str"),
        storage_class=dict(type="str"),
        access_mode=dict(type="str", choices=list(ACCESS_MODES), default="ReadWriteMany"),
        existing_claim=dict(type="str"),
        server=dict(type="str"),
        path=dict(type="str"),
    )),
    allow_independent_downloads=dict(type="bool", default=False),
    model_size_gb=dict(type="float"),
    ray_port=dict(type="int", default=6379),
    extra_values=dict(type="dict", default={}),
    allow_privileged_values=dict(type="bool", default=False),
    current_values=dict(type="dict"),
    chart_path=dict(type="path"),
    **TOPOLOGY_ARGSPEC
)
