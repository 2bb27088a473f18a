# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Waiting loop of nimops.multinode.ray_cluster_wait: runs `ray status` in the head container through the
engine's API (community.docker.docker_container_exec), prints progress, stops when every node joined.

The argument checks, the loop and the progress lines are plugin_utils/wait_action.py's; this file polls and judges.
"""

from __future__ import annotations

import json

from ansible_collections.nimops.multinode.plugins.module_utils._docker_wait import explain
from ansible_collections.nimops.multinode.plugins.module_utils._ray_status import (
    NODE_ADDRESSES_SCRIPT, RayStatusParseError, foreign_addresses, judge, parse_ray_status, with_env_file)
from ansible_collections.nimops.multinode.plugins.module_utils._wait_args import RAY_CLUSTER_WAIT_ARGSPEC
from ansible_collections.nimops.multinode.plugins.plugin_utils.wait_action import WaitAction, WaitFailed

# A worker container replaced moments ago stays listed as alive until the head's health checks drop it
# (seconds to tens of seconds); only an excess lasting longer means a stale node or another cluster.
EXCESS_GRACE_SECONDS = 60


class ActionModule(WaitAction):
    argument_spec = RAY_CLUSTER_WAIT_ARGSPEC
    label = "ray_cluster_wait"

    @staticmethod
    def _engine_args(params):
        return {"docker_host": params["docker_host"]} if params.get("docker_host") else {}

    def _head_logs(self, params, task_vars):
        return self._execute_module(module_name="nimops.multinode.docker_logs",
                                    module_args=dict(name=params["container"], tail=200, **self._engine_args(params)),
                                    task_vars=task_vars)

    @staticmethod
    def _stopped_cause(container, logs):
        if not logs.get("exists"):
            return "container %s does not exist" % container
        state = logs["state"]
        return "container %s is %s (exit code %s, restarts %s): %s" % (
            container, state["status"], state["exit_code"], state["restart_count"], explain(logs.get("lines", [])))

    def _check_members(self, params, task_vars):
        """Every alive node must be a member of the replica: a head that joined another cluster, or a node of
        another cluster that joined this head, is refused by name."""
        members = params["member_addresses"]
        if not members:
            return
        res = self._execute_module(
            module_name="community.docker.docker_container_exec",
            module_args=dict(container=params["container"],
                             argv=with_env_file(["python3", "-c", NODE_ADDRESSES_SCRIPT, params["address"]],
                                                params.get("env_file")),
                             **self._engine_args(params)),
            task_vars=task_vars)
        try:
            alive = json.loads(res.get("stdout", "").strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise WaitFailed("cannot list the Ray nodes' addresses in %s: %s" % (
                params["container"], explain((res.get("stderr", "") + "\n" + res.get("stdout", "")).splitlines())))
        foreign = foreign_addresses(alive, members)
        if foreign:
            raise WaitFailed("the Ray cluster of %s holds nodes outside the replica: %s (members: %s). Another "
                             "cluster's node joined it, or its head is another cluster's. Fix: stop the Ray "
                             "processes on %s, or give each replica its own GCS port and token" % (
                                 params["container"], ", ".join(foreign), ", ".join(members), ", ".join(foreign)),
                             {"node_addresses": alive})

    def wait(self, params, task_vars):
        self.require_values(params, ("container", "expected_nodes") + (("address",) if params["member_addresses"] else ()))
        container, expected = params["container"], params["expected_nodes"]
        expected_gpus = params["expected_gpus"] or 0
        timeout = params["timeout"]
        if self._play_context.check_mode:
            return {"changed": False, "skipped": True,
                    "msg": "check mode: not waiting for %d Ray nodes (nothing was started)" % expected}
        argv = with_env_file(["ray", "status"] + (["--address", params["address"]] if params.get("address") else []),
                             params.get("env_file"))
        message, stdout = "no status yet", ""
        first_restarts = None
        excess_since = None
        for elapsed, poll_start in self.polls(timeout, params["poll_interval"]):
            res = self._execute_module(
                module_name="community.docker.docker_container_exec",
                module_args=dict(container=container, argv=argv, **self._engine_args(params)),
                task_vars=task_vars)
            if res.get("rc", 1) != 0:
                # No answer: is the head still up, or did it stop / restart since the wait began? Say why, from its log.
                logs = self._head_logs(params, task_vars)
                state = logs.get("state") or {}
                if first_restarts is None and state:
                    first_restarts = state["restart_count"]
                if not state.get("running") or state["restart_count"] > first_restarts:
                    raise WaitFailed("Ray head is down: %s" % self._stopped_cause(container, logs),
                                     {"log_tail": logs.get("lines", [])[-40:]})
            stdout = res.get("stdout", "")
            verdict = "waiting"
            if res.get("rc", 1) != 0:
                message = "ray status not answering yet: %s" % explain((res.get("stderr", "") + "\n" + stdout).splitlines())
            else:
                try:
                    status = parse_ray_status(stdout)
                    verdict, message = judge(status, expected, expected_gpus)
                except RayStatusParseError as exc:
                    message = str(exc)
            self.progress(elapsed, message, subject=container)
            if verdict == "ready":
                self._check_members(params, task_vars)
                return {"changed": False, "msg": message, "alive": status["alive"], "nodes": status["nodes"],
                        "resources": status["resources"], "ray_status": stdout}
            if verdict != "too_many":
                excess_since = None
            elif excess_since is None:
                excess_since = poll_start
            elif poll_start - excess_since >= min(EXCESS_GRACE_SECONDS, timeout):
                raise WaitFailed("%s, for %ds" % (message, poll_start - excess_since), {"ray_status": stdout})
        raise WaitFailed("timed out after %ds waiting for %d Ray nodes: %s. Check the worker containers' logs, "
                         "that each worker's node IP is reachable from the head, and that the GCS port and the "
                         "worker port range are open between the hosts" % (timeout, expected, message),
                         {"ray_status": stdout})
