# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE: this module_utils file is internal to nimops.multinode and may change without notice.
"""Argument specs of the wait modules, written once: each action plugin validates its task against them.

lws_wait's module uses its spec too (each poll runs the module). ray_cluster_wait and docker_server_wait run on
the controller alone; their module files hold only the documentation, which the unit tests compare to these specs.
"""

from __future__ import annotations

import copy

from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC

# Options of the lws_wait module that its action plugin sets on every poll; a task may not set them.
LWS_WAIT_INTERNAL = ("elapsed", "resource_version")
LWS_WAIT_CONSTRAINTS = {"required_one_of": [("name", "release")]}

RAY_CLUSTER_WAIT_ARGSPEC = {
    "container": {"type": "str", "required": True},
    "expected_nodes": {"type": "int", "required": True},
    "expected_gpus": {"type": "int", "default": 0},
    "address": {"type": "str"},
    "env_file": {"type": "str"},
    "member_addresses": {"type": "list", "elements": "str", "default": []},
    "docker_host": {"type": "str"},
    "timeout": {"type": "int", "default": 600},
    "poll_interval": {"type": "int", "default": 2},
}

DOCKER_SERVER_WAIT_ARGSPEC = {
    "container": {"type": "str", "required": True},
    "url": {"type": "str", "required": True},
    "status_code": {"type": "int", "default": 200},
    "api_key": {"type": "str", "no_log": True},
    "docker_host": {"type": "str"},
    "timeout": {"type": "int", "default": 900},
    "poll_interval": {"type": "int", "default": 5},
}


def lws_wait_argspec(internal=True):
    """The lws_wait module's options (kubernetes.core's connection options included); without ``internal``, only
    those a task may set."""
    spec = copy.deepcopy(AUTH_ARG_SPEC)
    spec.update(
        name={"type": "str"},
        namespace={"type": "str", "required": True},
        release={"type": "str"},
        controller_namespace={"type": "str", "default": "lws-system"},
        timeout={"type": "int", "default": 1800},
        poll_interval={"type": "int", "default": 2},
        settle={"type": "int", "default": 10},
        ready_history={"type": "bool", "default": False},
        expected_size={"type": "int"},
        elapsed={"type": "int", "default": 0},
        resource_version={"type": "str"},
    )
    if not internal:
        for key in LWS_WAIT_INTERNAL:
            del spec[key]
    return spec
