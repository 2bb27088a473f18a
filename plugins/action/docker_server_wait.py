# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Waiting loop of nimops.multinode.docker_server_wait: probes the server's health endpoint from the host,
watches the server container, prints progress, and stops early with the cause when the container stops.

The argument checks, the loop and the progress lines are plugin_utils/wait_action.py's; this file polls and judges.
"""

from __future__ import annotations

from ansible_collections.nimops.multinode.plugins.module_utils._docker_wait import (
    container_state_summary, explain, judge_server)
from ansible_collections.nimops.multinode.plugins.module_utils._wait_args import DOCKER_SERVER_WAIT_ARGSPEC
from ansible_collections.nimops.multinode.plugins.plugin_utils.wait_action import WaitAction, WaitFailed


class ActionModule(WaitAction):
    argument_spec = DOCKER_SERVER_WAIT_ARGSPEC
    label = "docker_server_wait"

    def wait(self, params, task_vars):
        self.require_values(params, ("container", "url"))
        name, url = params["container"], params["url"]
        expected_status = params["status_code"]
        timeout = params["timeout"]
        engine = {"docker_host": params["docker_host"]} if params.get("docker_host") else {}
        if self._play_context.check_mode:
            return {"changed": False, "skipped": True, "msg": "check mode: not waiting for %s" % url}
        # The key also goes in url_password, a no_log option of uri (it sends nothing without a user name): the
        # module then masks the key wherever it appears in what it returns (its echoed headers, shown at -vvvv).
        auth = ({"headers": {"Authorization": "Bearer %s" % params["api_key"]}, "url_password": params["api_key"]}
                if params.get("api_key") else {})
        first_restarts = None
        message = "no probe yet"
        for elapsed, _poll_start in self.polls(timeout, params["poll_interval"]):
            info = self._execute_module(module_name="community.docker.docker_container_info",
                                        module_args=dict(name=name, **engine), task_vars=task_vars)
            if info.get("failed"):
                raise WaitFailed("cannot inspect %s: %s" % (name, info.get("msg")))
            state = container_state_summary(info["container"]) if info.get("exists") else None
            http_status, http_error = None, None
            if state and state["running"]:
                probe = self._execute_module(module_name="ansible.builtin.uri",
                                             module_args=dict(url=url, status_code=[expected_status], timeout=5,
                                                              **auth),
                                             task_vars=task_vars)
                http_status = probe.get("status") if probe.get("status", -1) > 0 else None
                http_error = None if http_status else probe.get("msg")
            verdict, message = judge_server(state, http_status, http_error, expected_status)
            if state is not None:
                first_restarts = state["restart_count"] if first_restarts is None else first_restarts
                if verdict != "ready" and state["restart_count"] > first_restarts:
                    verdict, message = "stopped", "the server container restarted %d time(s) while starting" % (
                        state["restart_count"] - first_restarts)
            self.progress(elapsed, message, subject=name)
            if verdict == "ready":
                return {"changed": False, "msg": message, "url": url, "elapsed": elapsed}
            if verdict == "stopped":
                # Enough lines to reach the root cause behind long tracebacks; only the last ones are returned.
                logs = self._execute_module(module_name="nimops.multinode.docker_logs",
                                            module_args=dict(name=name, tail=400, **engine), task_vars=task_vars)
                lines = logs.get("lines", [])
                raise WaitFailed("%s did not become healthy: %s. Cause from its log: %s" % (name, message, explain(lines)),
                                 {"log_tail": lines[-40:], "cause": explain(lines)})
        raise WaitFailed("timed out after %ds waiting for %s: %s" % (timeout, url, message))
