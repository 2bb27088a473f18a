#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: ray_cluster_wait
short_description: Wait until a Ray cluster in containers has every node it should
version_added: 0.1.0
description:
  - Runs C(ray status) in the Ray head container through the Docker API (Docker Engine or Podman's
    Docker-compatible service) until the cluster shows O(expected_nodes) alive nodes, printing progress.
  - Stops early when the head container is not running, with the line from its log that says why.
  - Fails when more nodes than expected stay alive for a minute (a stale node or another cluster joined); a
    worker replaced moments ago stays listed until the head's health checks drop it, so a shorter excess waits.
  - With O(member_addresses), checks once every node joined that each alive node's address is one of them, and
    fails naming the others (this head joined another cluster, or another cluster's node joined this one).
  - Runs as an action plugin on the controller (so it can print progress); each poll runs
    M(community.docker.docker_container_exec) on the managed host.
author:
  - nimops.multinode contributors (@nimops)
extends_documentation_fragment:
  - nimops.multinode.attributes
attributes:
  check_mode:
    support: full
    details: In check mode nothing was started, so the module does not wait and returns C(skipped).
  diff_mode:
    support: none
  idempotent:
    support: full
    details: Reads only; C(changed) is always false.
options:
  container:
    description: Name of the Ray head container.
    type: str
    required: true
  expected_nodes:
    description: Number of Ray nodes (head plus workers) the cluster must show.
    type: int
    required: true
  expected_gpus:
    description: When above 0, the GPU total the cluster must also show (nodes that joined without GPUs do not count).
    type: int
    default: 0
  address:
    description: Ray GCS address (C(host:port)) passed to C(ray status --address); the local cluster when omitted.
    type: str
  env_file:
    description:
      - Path inside the container of a shell file of C(NAME=value) lines exported before each C(ray) command,
        such as the one holding C(RAY_AUTH_MODE) and C(RAY_AUTH_TOKEN). Its values never appear in arguments.
    type: str
  member_addresses:
    description: The node IP addresses of the replica's members; empty skips the check, which needs O(address).
    type: list
    elements: str
    default: []
  docker_host:
    description: Docker API endpoint on the managed host; C(DOCKER_HOST) or the default socket when omitted.
    type: str
  timeout:
    description: Seconds to wait in all.
    type: int
    default: 600
  poll_interval:
    description: Seconds between two polls (each is one short C(docker exec)).
    type: int
    default: 2
"""

EXAMPLES = r"""
- name: Wait for the head and three workers
  nimops.multinode.ray_cluster_wait:
    container: nim-ray-head
    expected_nodes: 4
    expected_gpus: 32
    env_file: /run/nimops/secrets.env
    member_addresses: [10.0.0.11, 10.0.0.12, 10.0.0.13, 10.0.0.14]
    timeout: 900
"""

RETURN = r"""
alive:
  description: Number of alive Ray nodes.
  type: int
  returned: success
nodes:
  description: The node names or IDs C(ray status) listed.
  type: list
  elements: str
  returned: success
resources:
  description: Cluster resource totals from C(ray status) (C(CPU), C(GPU), C(memory), ...).
  type: dict
  returned: success
ray_status:
  description: The last C(ray status) output.
  type: str
  returned: when the head answered
log_tail:
  description: Last lines of the head container's log when it was not running.
  type: list
  elements: str
  returned: when the head is down
"""
