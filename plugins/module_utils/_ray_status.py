# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE: this module_utils file is internal to nimops.multinode and may change without notice.
"""Parse the text of `ray status` and decide whether a Ray cluster has all the nodes it should.

`ray status` prints an autoscaler report. The part that matters here:

    Node status
    ---------------------------------------------------------------
    Active:
     1 node_5c2f...
     1 node_9a41...
    Idle:                      (newer Ray versions list idle nodes apart)
     1 node_77e0...
    Pending:
     (no pending nodes)
    Recent failures:
     (no failures)

    Resources
    ---------------------------------------------------------------
    Total Usage:               (older Ray versions: "Usage:")
     0.0/4.0 CPU
     0B/32.72GiB memory

Each node line is "<count> <node type or node id>". Active and idle nodes are both alive.
"""

from __future__ import annotations

import re

_SECTION = re.compile(r"^(Active|Idle|Pending|Recent failures):\s*$")
_NODE_LINE = re.compile(r"^\s*(\d+)\s+(\S+)\s*$")
_USAGE_LINE = re.compile(r"^\s*([\d.]+)(\w*)/([\d.]+)(\w*)\s+(\S+)")
# Pending and failure lines look like " 10.0.0.5: ray.worker.default, launching" (no leading count).
_OTHER_LINE = re.compile(r"^\s+(\S.*)$")


class RayStatusParseError(ValueError):
    """The text is not a `ray status` report (for example an error message from the CLI)."""


def parse_ray_status(text):
    """Return {'alive': int, 'nodes': [ids], 'pending': [...], 'failures': [...], 'resources': {name: total}}.

    Raises RayStatusParseError when the text holds no "Node status" report.
    """
    if "Node status" not in text:
        first = next((line.strip() for line in text.splitlines() if line.strip()), "(empty output)")
        raise RayStatusParseError("not a `ray status` report: %s" % first[:300])
    alive, nodes, pending, failures, resources = 0, [], [], [], {}
    section = None
    in_usage = False
    for line in text.splitlines():
        stripped = line.strip()
        match = _SECTION.match(stripped)
        if match:
            section, in_usage = match.group(1), False
            continue
        if stripped in ("Resources", "Usage:", "Total Usage:"):
            # Ray 2.9+ prints "Total Usage:", older releases "Usage:".
            section, in_usage = None, stripped != "Resources"
            continue
        if stripped.endswith(":") and not line[:1].isspace():
            # Any other heading ("Pending Demands:", "From request_resources:", "Demands:") ends the section.
            section, in_usage = None, False
            continue
        if not stripped or stripped.startswith(("-", "=", "(no ")):
            continue
        if section in ("Active", "Idle"):
            node = _NODE_LINE.match(line)
            if node:
                alive += int(node.group(1))
                nodes.append(node.group(2))
        elif section == "Pending":
            other = _OTHER_LINE.match(line)
            if other:
                pending.append(other.group(1).strip())
        elif section == "Recent failures":
            other = _OTHER_LINE.match(line)
            if other:
                failures.append(other.group(1).strip())
        elif in_usage:
            usage = _USAGE_LINE.match(line)
            if usage:
                resources[usage.group(5)] = float(usage.group(3))
    return {"alive": alive, "nodes": nodes, "pending": pending, "failures": failures, "resources": resources}


def judge(status, expected_nodes, expected_gpus=None):
    """Decide on a parsed status: ('ready' | 'waiting' | 'too_many', one-line progress message).

    `expected_gpus`, when given, is the GPU total the cluster must show once every node joined
    (nodes that joined without their GPUs are a common mistake: no --gpus on the container).
    """
    alive = status["alive"]
    parts = ["%d/%d Ray nodes alive" % (alive, expected_nodes)]
    if status["pending"]:
        parts.append("pending: %s" % "; ".join(status["pending"]))
    if status["failures"]:
        parts.append("recent failures: %s" % "; ".join(status["failures"]))
    if alive > expected_nodes:
        return "too_many", "; ".join(parts) + " (more nodes than expected: a stale node or another cluster joined)"
    if alive < expected_nodes:
        return "waiting", "; ".join(parts) + " (waiting for %d more)" % (expected_nodes - alive)
    if expected_gpus:
        gpus = status["resources"].get("GPU", 0.0)
        parts.append("%g/%d GPUs" % (gpus, expected_gpus))
        if gpus < expected_gpus:
            return "waiting", "; ".join(parts) + " (nodes joined without all their GPUs)"
    return "ready", "; ".join(parts)


# Run in the head container once every node joined, with the GCS address as its argument: the addresses of the
# alive nodes, as JSON. GcsClient is the client `ray status` itself uses; state 0 is ALIVE (gcs.proto).
NODE_ADDRESSES_SCRIPT = (
    "import json, sys\n"
    "from ray._raylet import GcsClient\n"
    "nodes = GcsClient(address=sys.argv[1]).get_all_node_info().values()\n"
    "print(json.dumps(sorted({n.node_manager_address for n in nodes if n.state == 0})))\n"
)


def foreign_addresses(alive_addresses, member_addresses):
    """The alive nodes' addresses that belong to no member of the replica, sorted."""
    return sorted(set(alive_addresses) - set(member_addresses))


def with_env_file(argv, env_file):
    """`argv` run with the variables of a shell env file exported (secrets such as RAY_AUTH_TOKEN stay out of
    the command line and out of the exec's configured environment)."""
    if not env_file:
        return list(argv)
    return ["/bin/sh", "-c", 'set -a && . "$0" && set +a && exec "$@"', env_file] + list(argv)
