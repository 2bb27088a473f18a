# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Waiting loop of nimops.multinode.lws_wait: polls the module, prints progress, stops on ready/cause/timeout.

The loop lives on the controller because only the controller can print progress while a task runs.
"""

from __future__ import annotations

import time

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.nimops.multinode.plugins.module_utils._readiness import decide

display = Display()

# Reprint an unchanged progress line at most this often, so long downloads still show signs of life.
QUIET_SECONDS = 30


class ActionModule(ActionBase):
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        super(ActionModule, self).run(tmp, task_vars)
        args = dict(self._task.args)
        timeout = int(args.get("timeout", 1800))
        interval = max(1, int(args.get("poll_interval", 2)))
        settle = max(0, int(args.get("settle", 10)))
        trust_history = boolean(args.get("ready_history", False), strict=False)
        if timeout <= 0:
            return {"failed": True, "changed": False,
                    "msg": "timeout %d is not a positive number of seconds. Fix: e.g. timeout: 1800." % timeout}
        ready_since = None
        start = time.monotonic()
        last_line, last_print = None, 0.0
        # Bounded: at most one poll per interval until the timeout, plus the final one.
        for _poll in range(timeout // interval + 2):
            poll_start = time.monotonic()
            elapsed = int(poll_start - start)
            args["elapsed"] = elapsed
            result = self._execute_module(module_name="nimops.multinode.lws_wait", module_args=args,
                                          task_vars=task_vars)
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
            if trust_history:
                ready_for = max(ready_for, int(result.get("ready_seconds") or 0))
            verdict, message = decide(result, elapsed, timeout, ready_for, settle)
            now = time.monotonic()
            if message != last_line or now - last_print >= QUIET_SECONDS:
                display.display("lws_wait [%4ds] %s" % (elapsed, message))
                last_line, last_print = message, now
            if verdict == "ready":
                result.update(changed=False, msg=message)
                return result
            if verdict == "failed":
                result.update(failed=True, changed=False, msg=message)
                return result
            time.sleep(max(0.0, interval - (time.monotonic() - poll_start)))
        result.update(failed=True, changed=False, msg="timed out after %ds: %s" % (timeout, result.get("progress")))
        return result
