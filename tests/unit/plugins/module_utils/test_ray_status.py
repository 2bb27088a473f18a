# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible_collections.nimops.multinode.plugins.module_utils._ray_status import (
    NODE_ADDRESSES_SCRIPT, RayStatusParseError, foreign_addresses, judge, parse_ray_status, with_env_file)

# Printed by Ray 2.60.0 on two simulated hosts (head 10.77.0.11, worker 10.77.0.12).
TWO_NODES = """======== Autoscaler status: 2026-11-27 12:11:21.512673 ========
Node status
---------------------------------------------------------------
Active:
 1 node_33185768e4fa86d8587bd64ee3412c00ddb0da2fcd5b891cfcd7f33e
 1 node_7db6715457a67130ddf35e4f103db4d073df108dbfd989a3921f36d1
Pending:
 (no pending nodes)
Recent failures:
 (no failures)

Resources
---------------------------------------------------------------
Total Usage:
 0.0/4.0 CPU
 0B/32.72GiB memory
 0B/14.02GiB object_store_memory

From request_resources:
 (none)
Pending Demands:
 (no resource demands)
"""

HEAD_ONLY = TWO_NODES.replace(" 1 node_7db6715457a67130ddf35e4f103db4d073df108dbfd989a3921f36d1\n", "")

# Older layout: "Usage:", node types with counts, an idle section, GPUs, pending nodes and a failure.
OLDER = """======== Autoscaler status: 2024-05-01 10:00:00.000000 ========
Node status
---------------------------------------------------------------
Active:
 2 ray.worker.gpu
 1 ray.head.default
Idle:
 1 node_aa11
Pending:
 10.0.0.9: ray.worker.gpu, launching
Recent failures:
 ray.worker.gpu: NodeTerminated (ip: 10.0.0.7)

Resources
---------------------------------------------------------------
Usage:
 2.0/64.0 CPU
 8.0/24.0 GPU
 0B/400.00GiB memory

Demands:
 {'GPU': 8.0}: 1+ pending tasks/actors
"""


def test_two_nodes_from_ray_2_60():
    assert parse_ray_status(TWO_NODES) == {
        "alive": 2,
        "nodes": ["node_33185768e4fa86d8587bd64ee3412c00ddb0da2fcd5b891cfcd7f33e",
                  "node_7db6715457a67130ddf35e4f103db4d073df108dbfd989a3921f36d1"],
        "pending": [], "failures": [],
        "resources": {"CPU": 4.0, "memory": 32.72, "object_store_memory": 14.02},
    }


def test_older_layout_counts_active_and_idle_and_keeps_pending_and_failures():
    assert parse_ray_status(OLDER) == {
        "alive": 4,
        "nodes": ["ray.worker.gpu", "ray.head.default", "node_aa11"],
        "pending": ["10.0.0.9: ray.worker.gpu, launching"],
        "failures": ["ray.worker.gpu: NodeTerminated (ip: 10.0.0.7)"],
        "resources": {"CPU": 64.0, "GPU": 24.0, "memory": 400.0},
    }


@pytest.mark.parametrize("text", [
    "",
    "ConnectionError: Could not find any running Ray instance. Please specify the one to connect to.",
    "Error: No such container: nim-ray-head",
])
def test_not_a_report_is_refused_with_its_first_line(text):
    with pytest.raises(RayStatusParseError) as err:
        parse_ray_status(text)
    assert (text.splitlines()[0][:40] if text else "(empty output)") in str(err.value)


@pytest.mark.parametrize("text,expected,gpus,verdict,message", [
    (TWO_NODES, 2, 0, "ready", "2/2 Ray nodes alive"),
    (HEAD_ONLY, 2, 0, "waiting", "1/2 Ray nodes alive (waiting for 1 more)"),
    (TWO_NODES, 1, 0, "too_many",
     "2/1 Ray nodes alive (more nodes than expected: a stale node or another cluster joined)"),
    (OLDER, 4, 24, "ready",
     "4/4 Ray nodes alive; pending: 10.0.0.9: ray.worker.gpu, launching; "
     "recent failures: ray.worker.gpu: NodeTerminated (ip: 10.0.0.7); 24/24 GPUs"),
    (OLDER, 4, 32, "waiting",
     "4/4 Ray nodes alive; pending: 10.0.0.9: ray.worker.gpu, launching; "
     "recent failures: ray.worker.gpu: NodeTerminated (ip: 10.0.0.7); 24/32 GPUs (nodes joined without all their GPUs)"),
])
def test_judge(text, expected, gpus, verdict, message):
    assert judge(parse_ray_status(text), expected, gpus) == (verdict, message)


@pytest.mark.parametrize("alive,members,expected", [
    (["10.0.0.11", "10.0.0.12"], ["10.0.0.12", "10.0.0.11"], []),
    (["10.0.0.11"], ["10.0.0.11", "10.0.0.12"], []),  # still joining: not foreign
    (["10.0.0.11", "10.0.0.99", "10.0.0.50"], ["10.0.0.11", "10.0.0.12"], ["10.0.0.50", "10.0.0.99"]),
])
def test_foreign_addresses_are_the_non_members(alive, members, expected):
    assert foreign_addresses(alive, members) == expected


def test_env_file_wrapper_keeps_secrets_out_of_the_arguments():
    argv = with_env_file(["ray", "status", "--address", "10.0.0.11:6379"], "/run/nimops/secrets.env")
    assert argv[:2] == ["/bin/sh", "-c"] and argv[3] == "/run/nimops/secrets.env"
    assert argv[4:] == ["ray", "status", "--address", "10.0.0.11:6379"]
    assert "RAY_AUTH_TOKEN" not in " ".join(argv)
    assert with_env_file(["ray", "status"], None) == ["ray", "status"]


def test_node_address_script_compiles_and_lists_alive_nodes_only():
    compile(NODE_ADDRESSES_SCRIPT, "<node addresses>", "exec")
    assert "n.state == 0" in NODE_ADDRESSES_SCRIPT and "node_manager_address" in NODE_ADDRESSES_SCRIPT
