# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nimops.multinode.nim_release_lock on the controller: names the run, runs the module, and keeps the lease renewed.

The run is the ansible-playbook process (each task runs in a worker forked from it), identified by host, PID and
start time; the same identity takes and gives back the lock in one run, and no other run can share it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from ansible.plugins.action import ActionBase
from ansible.utils.collection_loader import AnsibleCollectionConfig

from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.nimops.multinode.plugins.plugin_utils.lease_renewer import process_start

RENEWER = "ansible_collections.nimops.multinode.plugins.plugin_utils.lease_renewer"


def run_identity():
    pid = os.getppid()
    start = process_start(pid)
    return pid, start, "%s/%d/%s" % (socket.gethostname(), pid, start)


def start_renewer(args, run_id, run_pid, run_start):
    params = dict((k, v) for k, v in args.items() if k in AUTH_ARG_SPEC and v is not None)
    params.update(namespace=args["namespace"], release=args["release"], ttl=int(args.get("ttl") or 120),
                  run_id=run_id, run_pid=run_pid, run_start=run_start)
    # the renewer imports this collection and kubernetes.core the way Ansible found them
    parts = Path(__file__).parts
    here = str(Path(*parts[:len(parts) - 1 - parts[::-1].index("ansible_collections")]))
    roots = [here] + list(AnsibleCollectionConfig.collection_paths or [])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(roots + [os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-m", RENEWER], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True, env=env)
    proc.stdin.write(json.dumps(params).encode())
    proc.stdin.close()
    return proc.pid


class ActionModule(ActionBase):
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        run_pid, run_start, run_id = run_identity()
        args = dict(self._task.args, run_id=run_id)
        result.update(self._execute_module(module_name="nimops.multinode.nim_release_lock", module_args=args,
                                           task_vars=task_vars))
        if (args.get("state", "present") == "present" and not result.get("failed") and not self._task.check_mode
                and result.get("state") in ("free", "expired")):
            result["renewer_pid"] = start_renewer(args, run_id, run_pid, run_start)
        return result
