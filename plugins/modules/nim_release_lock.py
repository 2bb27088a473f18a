#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: nim_release_lock
short_description: One run at a time per release - a Lease in the release's namespace as the lock
version_added: 0.2.0
description:
  - O(state=present) takes the lock of a release - a C(coordination.k8s.io/v1) Lease named C(nimops-lock-<release>)
    whose holder names the controller host, the user and the AWX job when there is one. While another run holds
    it, fails at once with rule C(release_locked), naming the holder and when the lease expires.
  - A lease that has not been renewed for its duration (a run that was killed) is taken over, with a warning naming
    the run that left it.
  - The action plugin renews the lease from the controller every third of O(ttl) for as long as the
    C(ansible-playbook) process that took it runs, so a long helm run or wait keeps it, and a killed run's lease
    runs out.
  - O(state=absent) deletes the lease if this run holds it; another run's lease is left alone.
  - The lease is bookkeeping of the run, gone again when the run ends; playbooks report the task as not changed.
author:
  - nimops maintainers (@nimops)
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
attributes:
  action:
    support: full
    description: The action plugin gives the run its identity and renews the lease from the controller.
  check_mode:
    support: full
    description: Fails the same way when another run holds the lock; takes nothing.
  diff_mode:
    support: none
    description: Nothing to show as a diff.
options:
  release:
    description: Release name.
    type: str
    required: true
  namespace:
    description: Release namespace (where the Lease lives).
    type: str
    required: true
  state:
    description: C(present) takes (or renews) the lock, C(absent) gives it back.
    type: str
    choices: [present, absent]
    default: present
  ttl:
    description: Seconds the lease stays valid without renewal; a killed run's lock is taken over after this.
    type: int
    default: 120
  job_id:
    description: AWX / Automation Controller job id, named in the holder identity.
    type: str
  run_id:
    description: Identity of this run; set by the action plugin (do not set it).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Take the release's lock
  nimops.multinode.nim_release_lock:
    release: llama-405b
    namespace: nim
    job_id: "{{ awx_job_id | default(omit) }}"
"""

RETURN = r"""
state:
  description: C(free) (taken), C(ours) (renewed), C(expired) (taken over) before this call, or C(no_namespace)
    (the namespace does not exist, so there is nothing to lock).
  returned: state is present
  type: str
taken_over_from:
  description: Holder of the expired lease that was taken over.
  returned: when a stale lease was taken over
  type: str
holder:
  description: This run's holder identity.
  returned: always
  type: str
msg:
  description: What happened.
  returned: always
  type: str
"""

import getpass
import socket

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.nimops.multinode.plugins.module_utils import _k8s, _lease
from ansible_collections.nimops.multinode.plugins.module_utils._errors import NimOpsError


def holder_identity(job_id):
    who = "%s@%s" % (getpass.getuser(), socket.gethostname())
    return who + (" (AWX job %s)" % job_id if job_id else "")


def run(module):
    p = module.params
    client = _k8s.connect(p)
    holder = holder_identity(p["job_id"])
    if p["state"] == "absent":
        released = _lease.release_lock(client, p["namespace"], p["release"], p["run_id"], module.check_mode)
        return dict(changed=released, holder=holder,
                    msg="released the lock of %s/%s" % (p["namespace"], p["release"]) if released
                    else "this run holds no lock of %s/%s" % (p["namespace"], p["release"]))
    result = _lease.acquire(client, p["namespace"], p["release"], holder, p["run_id"], p["ttl"], module.check_mode)
    if result.get("taken_over_from"):
        module.warn(result["msg"])
    return dict(result, changed=result["state"] in ("free", "expired"), holder=holder)


def main():
    argument_spec = _k8s.auth_argspec()
    argument_spec.update(
        release=dict(type="str", required=True),
        namespace=dict(type="str", required=True),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        ttl=dict(type="int", default=120),
        job_id=dict(type="str"),
        run_id=dict(type="str", required=True),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    if not _k8s.HAS_K8S:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=str(_k8s.K8S_IMPORT_ERROR))
    if module.params["ttl"] < 10:
        module.fail_json(msg="ttl %d is too short: at least 10 seconds" % module.params["ttl"], rule="bad_input")
    try:
        module.exit_json(**run(module))
    except NimOpsError as exc:
        module.fail_json(**exc.to_result())


if __name__ == "__main__":
    main()
