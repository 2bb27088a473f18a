# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Waiting loop of nimops.multinode.ray_cluster_wait: runs `ray status` in the head container through the
engine's API (community.docker.docker_container_exec), prints progress, stops when every node joined.

The loop lives on the controller because only the controller can print progress while a task runs.
"""

from __future__ import annotations

import time

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.nimops.multinode.plugins.module_utils._docker_wait import explain
from ansible_collections.nimops.multinode.plugins.module_utils._ray_status import (
    RayStatusParseError, judge, parse_ray_status)

display = Display()
QUIET_SECONDS = 30
# A worker container replaced moments ago stays listed as alive until the head's health checks drop it
# (seconds to tens of seconds); only an excess lasting longer means a stale node or another cluster.
EXCESS_GRACE_SECONDS = 60


class ActionModule(ActionBase):
    _supports_check_mode = True
    _supports_async = False

    def _engine_args(self, args):
        return {"docker_host": args["docker_host"]} if args.get("docker_host") else {}

    def _head_logs(self, args, task_vars):
        return self._execute_module(module_name="nimops.multinode.docker_logs",
                                    module_args=dict(name=args["container"], tail=200, **self._engine_args(args)),
                                    task_vars=task_vars)

    @staticmethod
    def _stopped_cause(container, logs):
        if not logs.get("exists"):
            return "container %s does not exist" % container
        state = logs["state"]
        return "container %s is %s (exit code %s, restarts %s): %s" % (
            container, state["status"], state["exit_code"], state["restart_count"], explain(logs.get("lines", [])))

    def run(self, tmp=None, task_vars=None):
        super(ActionModule, self).run(tmp, task_vars)
        args = dict(self._task.args)
        for required in ("container", "expected_nodes"):
            if args.get(required) in (None, ""):
                return {"failed": True, "msg": "ray_cluster_wait needs %s" % required}
        expected = int(args["expected_nodes"])
        expected_gpus = int(args.get("expected_gpus") or 0)
        timeout = int(args.get("timeout", 600))
        interval = max(1, int(args.get("poll_interval", 5)))
        if self._play_context.check_mode:
            return {"changed": False, "skipped": True,
                    "msg": "check mode: not waiting for %d Ray nodes (nothing was started)" % expected}
        argv = ["ray", "status"] + (["--address", args["address"]] if args.get("address") else [])
        start = time.monotonic()
        last_line, last_print, message, stdout = None, 0.0, "no status yet", ""
        first_restarts = None
        excess_since = None
        # Bounded: at most one poll per interval until the timeout, plus the final one.
        for _poll in range(timeout // interval + 2):
            poll_start = time.monotonic()
            elapsed = int(poll_start - start)
            res = self._execute_module(
                module_name="community.docker.docker_container_exec",
                module_args=dict(container=args["container"], argv=argv, **self._engine_args(args)),
                task_vars=task_vars)
            if res.get("rc", 1) != 0:
                # No answer: is the head still up, or did it stop / restart since the wait began? Say why, from its log.
                logs = self._head_logs(args, task_vars)
                state = logs.get("state") or {}
                if first_restarts is None and state:
                    first_restarts = state["restart_count"]
                if not state.get("running") or state["restart_count"] > first_restarts:
                    return {"failed": True, "changed": False, "log_tail": logs.get("lines", [])[-40:],
                            "msg": "Ray head is down: %s" % self._stopped_cause(args["container"], logs)}
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
            now = time.monotonic()
            if message != last_line or now - last_print >= QUIET_SECONDS:
                display.display("ray_cluster_wait [%4ds] %s: %s" % (elapsed, args["container"], message))
                last_line, last_print = message, now
            if verdict == "ready":
                return {"changed": False, "msg": message, "alive": status["alive"], "nodes": status["nodes"],
                        "resources": status["resources"], "ray_status": stdout}
            if verdict != "too_many":
                excess_since = None
            elif excess_since is None:
                excess_since = poll_start
            elif poll_start - excess_since >= min(EXCESS_GRACE_SECONDS, timeout):
                return {"failed": True, "changed": False, "ray_status": stdout,
                        "msg": "%s, for %ds" % (message, poll_start - excess_since)}
            if time.monotonic() - start >= timeout:
                break
            time.sleep(max(0.0, interval - (time.monotonic() - poll_start)))
        return {"failed": True, "changed": False, "ray_status": stdout,
                "msg": "timed out after %ds waiting for %d Ray nodes: %s. Check the worker containers' logs, "
                       "that each worker's node IP is reachable from the head, and that the GCS port and the "
                       "worker port range are open between the hosts" % (timeout, expected, message)}
