# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the waiting action plugins (lws_wait, ray_cluster_wait, docker_server_wait) share.

Each waits on the controller, because only the controller can print progress while a task runs. This base
validates the task's arguments against the module's argument spec (unknown options and values of the wrong type
are refused before anything runs), runs the bounded poll loop, prints the progress lines, and turns a typed
``WaitFailed`` into the task's failure in one place. A plugin keeps only what it polls and how it judges it.
"""

from __future__ import annotations

import time

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()

# Reprint an unchanged progress line at most this often, so long downloads still show signs of life.
QUIET_SECONDS = 30


class WaitFailed(Exception):
    """The wait ends in failure: ``msg``, plus the result that goes with it (the last poll's, a log tail, ...)."""

    def __init__(self, msg, result=None):
        super().__init__(msg)
        self.msg = msg
        self.result = result or {}

    def to_result(self):
        return dict(self.result, failed=True, changed=False, msg=self.msg)


class WaitAction(ActionBase):
    """Subclasses set ``argument_spec`` (the options a task may set), ``constraints`` (``required_one_of``, ...),
    ``label`` (the progress prefix) and implement ``wait(params, task_vars)``, which returns the result or raises
    ``WaitFailed``."""

    _supports_check_mode = True
    _supports_async = False
    argument_spec: dict = {}
    constraints: dict = {}
    label = ""
    # Seams for the unit tests.
    clock = staticmethod(time.monotonic)
    sleep = staticmethod(time.sleep)
    # The last progress line printed, and when (reset on every run).
    _last_line = None
    _last_print = 0.0

    def wait(self, params, task_vars):
        raise NotImplementedError

    def run(self, tmp=None, task_vars=None):
        result = super(WaitAction, self).run(tmp, task_vars)
        # Unknown options and values of the wrong type fail the task here (in check mode too), naming the
        # option and the valid ones, before anything is polled.
        _validation, params = self.validate_argument_spec(argument_spec=self.argument_spec, **self.constraints)
        self._last_line, self._last_print = None, 0.0
        try:
            result.update(self.wait(params, task_vars))
        except WaitFailed as exc:
            result.update(exc.to_result())
        return result

    def require_values(self, params, names):
        """An empty value (``container: ""``) passes the argument spec's ``required``; it cannot be waited on."""
        for name in names:
            if params.get(name) in (None, ""):
                raise WaitFailed("%s needs %s" % (self.label, name))

    def polls(self, timeout, poll_interval, stop_at_timeout=True):
        """Yields ``(elapsed, poll_start)`` at most once per interval (at least 1 s) until the timeout, plus the
        final poll: bounded by ``timeout // interval + 2`` polls. With ``stop_at_timeout`` the loop also ends as
        soon as a poll finishes after the timeout; without it the caller judges the timeout from ``elapsed``.
        The caller returns (or raises) from inside the loop when it is done; the loop ending means time ran out."""
        interval = max(1, poll_interval)
        start = self.clock()
        for _poll in range(timeout // interval + 2):
            poll_start = self.clock()
            yield int(poll_start - start), poll_start
            if stop_at_timeout and self.clock() - start >= timeout:
                return
            self.sleep(max(0.0, interval - (self.clock() - poll_start)))

    def progress(self, elapsed, message, subject=None):
        """Prints ``<label> [elapsed] [subject: ]message`` when the message changed, or every QUIET_SECONDS."""
        now = self.clock()
        if message != self._last_line or now - self._last_print >= QUIET_SECONDS:
            text = message if subject is None else "%s: %s" % (subject, message)
            display.display("%s [%4ds] %s" % (self.label, elapsed, text))
            self._last_line, self._last_print = message, now
