#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: nim_release_recover
short_description: Repair a Helm release an interrupted run left pending, or roll a release back to a revision
version_added: 0.2.0
description:
  - Reads the release's history (C(helm history)). When its last operation is still C(pending-install),
    C(pending-upgrade) or C(pending-rollback) and older than O(stale_after) seconds (no helm run can still own it),
    rolls the release back to its last deployed revision, or uninstalls an install that never deployed, and says so.
    Younger than that it fails with rule C(release_pending), naming the age and when a re-run will recover it.
  - With O(rollback_to), rolls the release back to that revision (after an upgrade whose pods never became ready).
  - A release that is not installed, or whose last operation finished, is left alone (changed=false).
author:
  - nimops maintainers (@nimops)
extends_documentation_fragment:
  - kubernetes.core.helm_common_options
attributes:
  check_mode:
    support: full
    description: Reports the repair it would make and changes nothing.
  diff_mode:
    support: none
    description: Nothing to show as a diff.
options:
  release:
    description: Release name.
    type: str
    required: true
  namespace:
    description: Release namespace.
    type: str
    required: true
  stale_after:
    description:
      - Age after which a pending operation is taken as abandoned, as a Go duration (V(10m0s)) or seconds; use the
        helm timeout of the runs that may operate on the release.
    type: str
    default: 10m0s
  rollback_to:
    description: Roll back to this revision instead of repairing a pending one.
    type: int
"""

EXAMPLES = r"""
- name: Recover a release an interrupted run left pending-upgrade
  nimops.multinode.nim_release_recover:
    release: llama-405b
    namespace: nim
    stale_after: 10m0s
"""

RETURN = r"""
action:
  description: C(none), C(rollback) or C(uninstall).
  returned: always
  type: str
status:
  description: Status of the release's last revision before any repair.
  returned: always
  type: str
to_revision:
  description: The revision rolled back to.
  returned: when action is rollback
  type: int
msg:
  description: What was found and done.
  returned: always
  type: str
"""

import json
import time

from ansible_collections.kubernetes.core.plugins.module_utils.helm import AnsibleHelmModule
from ansible_collections.kubernetes.core.plugins.module_utils.helm_args_common import (
    HELM_AUTH_ARG_SPEC, HELM_AUTH_MUTUALLY_EXCLUSIVE)
from ansible_collections.nimops.multinode.plugins.module_utils._errors import NimOpsError
from ansible_collections.nimops.multinode.plugins.module_utils._helm_history import duration_seconds, plan_recovery


def history(helm, release, namespace):
    cmd = [helm.get_helm_binary(), "history", release, "--namespace", namespace, "--output", "json", "--max", "50"]
    rc, out, err = helm.run_helm_command(cmd, fails_on_error=False)
    if rc != 0:
        if "not found" in err:
            return []
        helm.fail_json(msg="helm history %s failed (rc %d): %s" % (release, rc, err.strip()), rule="helm_failed")
    return json.loads(out or "[]")


def run(helm):
    p = helm.params
    if p["rollback_to"] is not None:
        plan = {"action": "rollback", "to_revision": p["rollback_to"], "status": "as requested",
                "msg": "rolled back to revision %d" % p["rollback_to"]}
    else:
        try:
            stale_after = duration_seconds(p["stale_after"])
        except ValueError as exc:
            helm.fail_json(msg="stale_after: %s" % exc, rule="bad_input")
        plan = plan_recovery(history(helm, p["release"], p["namespace"]), time.time(), stale_after)
    if plan["action"] == "none":
        return dict(changed=False, action="none", status=plan["status"],
                    msg="%s: %s, nothing to repair" % (p["release"], plan["status"]))
    if helm.check_mode:
        return dict(plan, changed=True, msg="check mode, nothing done: " + plan["msg"])
    base = [helm.get_helm_binary()]
    if plan["action"] == "rollback":
        cmd = base + ["rollback", p["release"], str(plan["to_revision"]), "--namespace", p["namespace"]]
    else:
        cmd = base + ["uninstall", p["release"], "--namespace", p["namespace"], "--wait"]
    helm.run_helm_command(cmd)
    return dict(plan, changed=True)


def main():
    argument_spec = dict(HELM_AUTH_ARG_SPEC)
    argument_spec.update(
        release=dict(type="str", required=True),
        namespace=dict(type="str", required=True),
        stale_after=dict(type="str", default="10m0s"),
        rollback_to=dict(type="int"),
    )
    helm = AnsibleHelmModule(argument_spec=argument_spec, mutually_exclusive=HELM_AUTH_MUTUALLY_EXCLUSIVE,
                             supports_check_mode=True)
    try:
        helm.exit_json(**run(helm))
    except NimOpsError as exc:
        helm.fail_json(**exc.to_result())


if __name__ == "__main__":
    main()
