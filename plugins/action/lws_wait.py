# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Waiting loop of nimops.multinode.lws_wait: polls the module, prints progress, stops on ready/cause/timeout.

The argument checks, the loop and the progress lines are plugin_utils/wait_action.py's; this file polls and judges.
"""

from __future__ import annotations

from ansible_collections.nimops.multinode.plugins.module_utils._readiness import decide
from ansible_collections.nimops.multinode.plugins.module_utils._wait_args import LWS_WAIT_CONSTRAINTS, lws_wait_argspec
from ansible_collections.nimops.multinode.plugins.plugin_utils.wait_action import WaitAction, WaitFailed


class ActionModule(WaitAction):
    argument_spec = lws_wait_argspec(internal=False)
    constraints = LWS_WAIT_CONSTRAINTS
    label = "lws_wait"

    def wait(self, params, task_vars):
        timeout = params["timeout"]
        settle = max(0, params["settle"])
        if timeout <= 0:
            raise WaitFailed("timeout %d is not a positive number of seconds. Fix: e.g. timeout: 1800." % timeout)
        # The module gets the task's own arguments (its defaults and environment apply where it runs), plus where
        # the wait stands.
        args = dict(self._task.args)
        ready_since = None
        result = {}
        for elapsed, poll_start in self.polls(timeout, params["poll_interval"], stop_at_timeout=False):
            args["elapsed"] = elapsed
            result = self._execute_module(module_name="nimops.multinode.lws_wait", module_args=args,
                                          task_vars=task_vars)
            if result.get("failed") and result.get("rule") == "k8s_unavailable" and elapsed < timeout:
                # the API server did not answer this poll (restarting, throttling): one failed poll, not the end
                self.progress(elapsed, "API server not answering, polling again: %s" % result.get("msg"))
                ready_since = None
                continue
            if result.get("failed"):
                return result
            # the next poll's watch resumes where this one ended: nothing between two polls goes unseen
            args["resource_version"] = result.get("resource_version") or args.get("resource_version")
            for key in ("warnings", "deprecations"):
                if not result.get(key):
                    result.pop(key, None)
            if result.get("ready") and ready_since is None:
                ready_since = poll_start
            elif not result.get("ready"):
                ready_since = None
            ready_for = int(poll_start - ready_since) if ready_since is not None else 0
            # Nothing changed (a re-run): pods Ready for a while have held; the API's record counts like a watched span.
            if params["ready_history"]:
                ready_for = max(ready_for, int(result.get("ready_seconds") or 0))
            verdict, message = decide(result, elapsed, timeout, ready_for, settle)
            self.progress(elapsed, message)
            if verdict == "ready":
                result.update(changed=False, msg=message)
                return result
            if verdict == "failed":
                raise WaitFailed(message, result)
        raise WaitFailed("timed out after %ds: %s" % (timeout, result.get("progress") or result.get("msg")), result)
