# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a nim-llm chart accepts: its multi-node generation, the keys its values.yaml knows, its values schema.

nim-llm charts come in two multi-node generations that read the same values differently:
- ``ray`` (2.x, the seed's guide): the leader starts a Ray head and vLLM; ``multiNode.workers`` counts the worker
  pods (nodes - 1); TP/PP, ``multiNode.ray.port``, ``model.profile``/``modelPath``/``hfTokenSecret`` are read.
- ``mpi`` (1.x): the pods run MPI over SSH; ``multiNode.workers`` counts the nodes **including** the leader,
  ``multiNode.gpusPerNode`` sets the ranks per node (default 1); TP/PP, the Ray port and those model keys are
  ignored.
Reading the chart is the only I/O here (a folder or a .tgz on the controller); the rest is pure.
"""

from __future__ import annotations

import json
import os
import tarfile

try:
    import yaml
except ImportError:  # pragma: no cover - ansible-core requires PyYAML
    yaml = None

try:
    import jsonschema
except ImportError:  # pragma: no cover - declared in meta/ee-requirements.txt
    jsonschema = None

from ansible_collections.nimops.multinode.plugins.module_utils._errors import InputError

_CHART_FILES = ("Chart.yaml", "values.yaml", "values.schema.json")
# Bounds for a chart's own files: a chart this large is not a nim-llm chart.
_MAX_FILE_BYTES = 4 * 1024 * 1024


def _parse(name, text):
    if name.endswith(".json"):
        return json.loads(text)
    return yaml.safe_load(text) or {}


def _read_tgz(path):
    found = {}
    with tarfile.open(path, "r:gz") as tar:
        for member in tar.getmembers():
            parts = member.name.split("/")
            # <chart>/<file> only: the files of subcharts (<chart>/charts/...) are not this chart's
            if len(parts) == 2 and parts[1] in _CHART_FILES and member.isfile() and member.size <= _MAX_FILE_BYTES:
                found[parts[1]] = tar.extractfile(member).read().decode("utf-8")
    return found


def _read_folder(path):
    found = {}
    for name in _CHART_FILES:
        full = os.path.join(path, name)
        if os.path.isfile(full) and os.path.getsize(full) <= _MAX_FILE_BYTES:
            with open(full, encoding="utf-8") as handle:
                found[name] = handle.read()
    return found


def read_chart(path):
    """{name, version, values, schema} of the chart folder or .tgz at ``path``."""
    path = os.path.expanduser(path)
    try:
        found = _read_folder(path) if os.path.isdir(path) else _read_tgz(path)
        parsed = {name: _parse(name, text) for name, text in found.items()}
    except (OSError, tarfile.TarError, ValueError, yaml.YAMLError) as exc:
        raise InputError(
            "chart_generation", "the chart at {0} cannot be read: {1}".format(path, exc),
            "the chart's values.yaml decides how the values are rendered",
            "point the chart source at a nim-llm chart folder or .tgz")
    if "Chart.yaml" not in parsed or "values.yaml" not in parsed:
        raise InputError(
            "chart_generation", "{0} has no Chart.yaml and values.yaml at its top".format(path),
            "the chart's values.yaml decides how the values are rendered",
            "point the chart source at a nim-llm chart folder or .tgz")
    meta = parsed["Chart.yaml"]
    return {"name": str(meta.get("name", "")), "version": str(meta.get("version", "")),
            "values": parsed["values.yaml"], "schema": parsed.get("values.schema.json")}


def describe(chart):
    return "{0} {1}".format(chart.get("name") or "chart", chart.get("version") or "(no version)")


def detect_generation(chart):
    """``ray`` or ``mpi`` from the chart's values.yaml; an InputError naming what was found otherwise."""
    multi = (chart.get("values") or {}).get("multiNode")
    if isinstance(multi, dict):
        has_ray = isinstance(multi.get("ray"), dict) or "tensorParallelSize" in multi
        has_mpi = "gpusPerNode" in multi
        if has_ray and not has_mpi:
            return "ray"
        if has_mpi and not has_ray:
            return "mpi"
        found = "multiNode keys {0}".format(", ".join(sorted(multi)) or "(none)")
    else:
        found = "no multiNode section"
    raise InputError(
        "chart_generation", "{0} has {1}: neither the Ray-based (multiNode.ray, tensorParallelSize) nor the "
        "MPI-based (multiNode.gpusPerNode) multi-node scheme".format(describe(chart), found),
        "values for the wrong scheme install cleanly and give a group of the wrong size",
        "use a nim-llm chart with multi-node support (2.x, Ray-based, or 1.x, MPI-based)")


# Values that charts hand to Kubernetes as they are (toYaml): their keys are Kubernetes' fields, not the chart's.
_PASS_THROUGH_SUFFIXES = ("resources", "Resources", "affinity", "Affinity", "securityContext", "SecurityContext",
                          "annotations", "Annotations", "labels", "Labels", "nodeSelector", "NodeSelector")


def _free_form(default, key=""):
    """A default whose keys are free-form: empty or null, a Kubernetes object passed through, or keyed by names
    such as resource names or annotation keys (``nvidia.com/gpu``) rather than by the chart's own option names."""
    if not isinstance(default, dict) or str(key).endswith(_PASS_THROUGH_SUFFIXES):
        return True
    return not default or any("/" in str(name) or "." in str(name) for name in default)


def _schema_knows(schema, path):
    node = schema
    for key in path:
        if not isinstance(node, dict):
            return False
        props = node.get("properties") or {}
        if key not in props:
            return False
        node = props[key]
    return True


def unknown_keys(values, defaults, schema=None, path=()):
    """Dotted paths in ``values`` that neither the chart's values.yaml nor its schema declares."""
    out = []
    for key, value in (values or {}).items():
        here = path + (key,)
        node, name, known = defaults, "", True
        for part in here:
            if _free_form(node, name):
                break
            if part not in node:
                known = False
                break
            node, name = node[part], part
        if not known and not (schema and _schema_knows(schema, here)):
            out.append(".".join(str(part) for part in here))
        elif known and isinstance(value, dict) and not _free_form(node, name):
            out.extend(unknown_keys(value, defaults, schema, here))
    return out


def schema_problems(values, schema):
    """'path: message' for each place the values break the chart's values.schema.json."""
    if not schema:
        return []
    if jsonschema is None:
        raise InputError(
            "chart_schema", "the chart has values.schema.json but the jsonschema library is missing",
            "the values are checked against the chart's schema before anything changes",
            "install the Python package jsonschema on the controller (meta/ee-requirements.txt)")
    validator = jsonschema.validators.validator_for(schema)(schema)
    problems = []
    for error in sorted(validator.iter_errors(values), key=lambda e: list(e.absolute_path)):
        where = ".".join(str(part) for part in error.absolute_path) or "(top level)"
        problems.append("{0}: {1}".format(where, error.message))
    return problems
