# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Waiting loop of nimops.multinode.docker_server_wait: probes the server's health endpoint from the host,
watches the server container, prints progress, and stops early with the cause when the container stops.

The loop lives on the controller because only the controller can print progress while a task runs.
"""

from __future__ import annotations

import time

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.nimops.multinode.plugins.module_utils._docker_wait import (
    container_state_summary, explain, judge_server)

display = Display()
QUIET_SECONDS = 30


class ActionModule(ActionBase):
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        super(ActionModule, self).run(tmp, task_vars)
        args = dict(self._task.args)
        for required in ("container", "url"):
            if not args.get(required):
                return {"failed": True, "msg": "docker_server_wait needs %s" % required}
        name, url = args["container"], args["url"]
        expected_status = int(args.get("status_code", 200))
        timeout = int(args.get("timeout", 900))
        interval = max(1, int(args.get("poll_interval", 5)))
        engine = {"docker_host": args["docker_host"]} if args.get("docker_host") else {}
        if self._play_context.check_mode:
            return {"changed": False, "skipped": True, "msg": "check mode: not waiting for %s" % url}
        start = time.monotonic()
        first_restarts = None
        last_line, last_print, message = None, 0.0, "no probe yet"
        # Bounded: at most one poll per interval until the timeout, plus the final one.
        for _poll in range(timeout // interval + 2):
            poll_start = time.monotonic()
            elapsed = int(poll_start - start)
            info = self._execute_module(module_name="community.docker.docker_container_info",
                                        module_args=dict(name=name, **engine), task_vars=task_vars)
            if info.get("failed"):
                return {"failed": True, "changed": False, "msg": "cannot inspect %s: %s" % (name, info.get("msg"))}
            state = container_state_summary(info["container"]) if info.get("exists") else None
            http_status, http_error = None, None
            if state and state["running"]:
                probe = self._execute_module(module_name="ansible.builtin.uri",
                                             module_args=dict(url=url, status_code=[expected_status], timeout=5),
                                             task_vars=task_vars)
                http_status = probe.get("status") if probe.get("status", -1) > 0 else None
                http_error = None if http_status else probe.get("msg")
            verdict, message = judge_server(state, http_status, http_error, expected_status)
            if state is not None:
                first_restarts = state["restart_count"] if first_restarts is None else first_restarts
                if verdict != "ready" and state["restart_count"] > first_restarts:
                    verdict, message = "stopped", "the server container restarted %d time(s) while starting" % (
                        state["restart_count"] - first_restarts)
            now = time.monotonic()
            if message != last_line or now - last_print >= QUIET_SECONDS:
                display.display("docker_server_wait [%4ds] %s: %s" % (elapsed, name, message))
                last_line, last_print = message, now
            if verdict == "ready":
                return {"changed": False, "msg": message, "url": url, "elapsed": elapsed}
            if verdict == "stopped":
                # Enough lines to reach the root cause behind long tracebacks; only the last ones are returned.
                logs = self._execute_module(module_name="nimops.multinode.docker_logs",
                                            module_args=dict(name=name, tail=400, **engine), task_vars=task_vars)
                lines = logs.get("lines", [])
                return {"failed": True, "changed": False, "log_tail": lines[-40:], "cause": explain(lines),
                        "msg": "%s did not become healthy: %s. Cause from its log: %s" % (name, message, explain(lines))}
            if time.monotonic() - start >= timeout:
                break
            time.sleep(max(0.0, interval - (time.monotonic() - poll_start)))
        return {"failed": True, "changed": False,
                "msg": "timed out after %ds waiting for %s: %s" % (timeout, url, message)}
