# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Renews a release's lock (module_utils/_lease.py) for as long as the ansible-playbook run that took it lives.

Started by the nim_release_lock action plugin in its own session, with its parameters on stdin (never in argv: they
may carry an API key). It stops when the run's process is gone (a killed run: the lease then runs out and a later
run takes it over), when the lease is no longer this run's (released at the end of the run, or taken over), or
after MAX_SECONDS at the latest.
"""

from __future__ import annotations

import json
import sys
import time

from ansible_collections.nimops.multinode.plugins.module_utils import _k8s, _lease

MAX_SECONDS = 24 * 3600


def process_start(pid):
    """Start time of a process (clock ticks since boot), or None when it is gone: a reused PID does not pass for it."""
    try:
        with open("/proc/%d/stat" % pid) as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError, ValueError):
        return None


def main():
    params = json.load(sys.stdin)
    client = _k8s.connect(params)
    interval = max(1.0, params["ttl"] / 3.0)
    deadline = time.monotonic() + MAX_SECONDS
    while time.monotonic() < deadline:
        time.sleep(interval)
        if process_start(params["run_pid"]) != params["run_start"]:
            return
        try:
            if not _lease.renew(client, params["namespace"], params["release"], params["run_id"], params["ttl"]):
                return
        except Exception:  # pylint: disable=broad-except
            # no answer this time: the lease has two more intervals of room before it runs out
            continue


if __name__ == "__main__":
    main()
