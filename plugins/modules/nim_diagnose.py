#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: nim_diagnose
short_description: Troubleshoot a live multi-node NIM release and return findings with remediation
version_added: 0.1.0
description:
  - Runs the multi-node troubleshooting checks against a release - LWS CRD and controller present and Available,
    the LeaderWorkerSet reconciled, C(LWS_LEADER_ADDRESS) injected into every pod, crash-looping pods and their
    termination messages (JSON logging, Ray address, Ray join), image pulls and pull secrets, referenced
    secrets and keys, GPU scheduling, model cache PVC bound and ReadWriteMany, JSON logging disabled,
    pods Running but not Ready, NetworkPolicies that may block the Ray port.
  - Reads only; secret values are never read into the result (only secret and key names).
author:
  - nimops maintainers (@nimops)
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
attributes:
  check_mode:
    support: full
    description: Only reads.
  diff_mode:
    support: none
    description: Changes nothing.
options:
  name:
    description:
      - LeaderWorkerSet name. Defaults to the LeaderWorkerSet labelled C(app.kubernetes.io/instance=<release>)
        (Helm charts usually name it C(<release>-nim-llm)).
      - One of O(name) and O(release) is required.
    type: str
  namespace:
    description: Namespace of the release.
    type: str
    required: true
  release:
    description: Helm release name, to find the LeaderWorkerSet and the release's Service. Defaults to O(name).
    type: str
  controller_namespace:
    description: Namespace of the LWS controller.
    type: str
    default: lws-system
  ray_port:
    description: Ray head port the workers dial (C(multiNode.ray.port)).
    type: int
    default: 6379
"""

EXAMPLES = r"""
- name: Diagnose the release
  nimops.multinode.nim_diagnose:
    name: nim-llm
    namespace: nim
  register: diag

- name: Show findings
  ansible.builtin.debug:
    var: diag.findings
"""

RETURN = r"""
healthy:
  description: True when every group is ready and nothing is wrong.
  returned: always
  type: bool
findings:
  description: Each finding with code, severity (error/warning), summary, detail, objects, remediation.
  returned: always
  type: list
  elements: dict
status:
  description: Readiness (ready, progress, groups, endpoint) as lws_wait reports it.
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.nimops.multinode.plugins.module_utils import _diagnosis, _k8s
from ansible_collections.nimops.multinode.plugins.module_utils._errors import NimOpsError
from ansible_collections.nimops.multinode.plugins.module_utils._readiness import evaluate


def run(params):
    client = _k8s.connect(params)
    name = _k8s.resolve_lws_name(client, params["namespace"], params["name"], params["release"])
    snap = _k8s.snapshot(client, name, params["namespace"], params["controller_namespace"])
    # A diagnosis is asked for after the fact: grace periods are over, and old crashes still matter.
    snap["recent_seconds"] = 10 ** 9
    status = evaluate(snap, 10 ** 6, params["release"] or name)
    policies = _k8s.list_items(client, "networking.k8s.io/v1", "NetworkPolicy", params["namespace"])
    findings = _diagnosis.find_causes(snap, 10 ** 6) + _diagnosis.warnings(snap) + \
        _diagnosis.network_policy_findings(policies, snap["pods"], params["ray_port"])
    for f in findings:
        f["severity"] = "error" if f.pop("fatal") else "warning"
    # causes and concerns are reported once, as findings
    status.pop("causes", None)
    status.pop("concerns", None)
    return {"healthy": status["ready"] and not findings, "findings": findings, "status": status}


def main():
    argument_spec = _k8s.auth_argspec()
    argument_spec.update(
        name=dict(type="str"),
        namespace=dict(type="str", required=True),
        release=dict(type="str"),
        controller_namespace=dict(type="str", default="lws-system"),
        ray_port=dict(type="int", default=6379),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           required_one_of=[("name", "release")])
    if not _k8s.HAS_K8S:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=str(_k8s.K8S_IMPORT_ERROR))
    try:
        module.exit_json(changed=False, **run(module.params))
    except NimOpsError as exc:
        module.fail_json(**exc.to_result())


if __name__ == "__main__":
    main()
