#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: nim_preflight
short_description: Whether a multi-node release can work on a cluster, read before anything changes
version_added: 0.1.0
description:
  - Reads the cluster once and returns one check per question, each C(PASS), C(WARN) or C(FAIL), with the object
    it is about and, for a C(WARN) or C(FAIL), the fix. The module itself does not fail on a C(FAIL) check, so the
    caller can show and save the whole report first (the role C(nimops.multinode.nim_deploy) then fails the play).
  - C(api) - the API server answers, and its version.
  - C(permissions) - one C(SelfSubjectAccessReview) per O(permissions) entry (and for creating the namespace when it
    does not exist), so an identity with restricted rights (an AWX service account) learns every verb it lacks at
    once.
  - C(kinds) - the API serves every kind the chart renders (O(rendered_kinds)); each rendered kind also adds the
    verbs Helm uses on it (get, list, create, update, patch, delete) to the C(permissions) reviews.
  - C(lws) - the LeaderWorkerSet API is served and its controller is Available (or the deploy installs it,
    O(lws_installed_by_deploy)).
  - C(lws_fields) - the installed LeaderWorkerSet's schema knows every field the rendered LeaderWorkerSets set
    (O(lws_fields)), since the API server drops unknown fields of a custom resource without an error, so a chart
    written for a newer LeaderWorkerSet (or a pod field newer than the installed one) would install and then
    behave otherwise than rendered. A C(WARN) when the deploy first upgrades an older installed LeaderWorkerSet to
    O(lws_pinned_version).
  - C(gpu_capacity) - enough places for the group's O(size) pods of O(gpus_per_node) GPUs each - a node counts
    once per pod it can take now - leaving out cordoned and not Ready nodes, nodes whose C(NoSchedule) or
    C(NoExecute) taints O(tolerations) does not tolerate, nodes that do not match O(node_selector), and the GPUs
    (and O(requests)) other pods already hold. The release's own pods (label C(app.kubernetes.io/instance)) do
    not count as holding anything, since an upgrade replaces them.
  - C(gpu_product) - the nodes the group can land on carry one C(nvidia.com/gpu.product), unless O(node_selector)
    pins it.
  - C(topology_domain) - with O(topology_key), one domain (a rack, a zone) can hold a whole group.
  - C(quota) - every C(ResourceQuota) of the namespace has room for the pods, GPUs, CPU, memory and claim the
    release adds.
  - C(limit_range) - no C(LimitRange) of the namespace caps a container or pod below what each pod asks.
  - C(storage_class) - the class a new model-cache claim gets exists (or a default class does) and, for a
    multi-node group, is not one whose volumes attach to a single node.
  - C(helm_state) - the release's last Helm record is not C(pending-*) (read from its record's labels only).
  - Reads only; no Secret's data is read (Helm's records are listed as metadata).
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
  namespace:
    description: Namespace of the release.
    type: str
    required: true
  release:
    description: Helm release name.
    type: str
    required: true
  size:
    description: Pods in one LeaderWorkerSet group (the plan's nodes).
    type: int
    required: true
  gpus_per_node:
    description: GPUs each pod asks for.
    type: int
    required: true
  node_selector:
    description: The pods' C(nodeSelector).
    type: dict
    default: {}
  tolerations:
    description: The pods' tolerations.
    type: list
    elements: dict
    default: []
  requests:
    description: The pods' other resource requests (C(cpu), C(memory)), counted against what nodes have free.
    type: dict
    default: {}
  topology_key:
    description: Node label whose values are domains one group must fit in (empty - not checked).
    type: str
    default: ""
  permissions:
    description: What the deploy does, one entry per verb and resource; each is asked with a SelfSubjectAccessReview.
    type: list
    elements: dict
    default: []
    suboptions:
      verb:
        description: Verb (C(get), C(create), ...).
        type: str
        required: true
      resource:
        description: Resource (plural, C(pods)).
        type: str
        required: true
      group:
        description: API group (empty for the core group).
        type: str
        default: ""
      subresource:
        description: Subresource (C(log)).
        type: str
        default: ""
      namespace:
        description: Namespace; empty for a cluster-wide resource.
        type: str
        default: ""
  rendered_kinds:
    description: The kinds the chart renders, as RV(nimops.multinode.nim_manifest_check#module:kinds) returns them.
    type: list
    elements: dict
    default: []
    suboptions:
      api_version:
        description: The object's C(apiVersion).
        type: str
        required: true
      kind:
        description: The object's C(kind).
        type: str
        required: true
  lws_fields:
    description: The field paths the rendered LeaderWorkerSets set, as
      RV(nimops.multinode.nim_manifest_check#module:lws_fields) returns them (no values).
    type: list
    elements: str
    default: []
  creates_claim:
    description: The deploy creates the model-cache claim O(claim_name) when it does not exist.
    type: bool
    default: false
  claim_name:
    description: Model-cache claim name.
    type: str
    default: ""
  claim_size:
    description: Size of a claim the deploy creates (C(200Gi)).
    type: str
    default: ""
  storage_class:
    description: Storage class of a claim the deploy creates (empty - the cluster's default class).
    type: str
    default: ""
  access_mode:
    description: Access mode of a claim the deploy creates.
    type: str
    default: ReadWriteMany
  lws_installed_by_deploy:
    description: The deploy installs LeaderWorkerSet when it is missing (so a missing one is no failure).
    type: bool
    default: false
  lws_pinned_version:
    description: The LeaderWorkerSet version the deploy installs (with O(lws_installed_by_deploy)); an older
      installed one is upgraded to it first, so fields only that one lacks are a C(WARN), not a C(FAIL).
    type: str
    default: ""
  lws_namespace:
    description: Namespace of the LeaderWorkerSet controller.
    type: str
    default: lws-system
  skip:
    description: Checks not to run - the deploy leaves C(helm_state) to its release lock and its recovery of a
      release an interrupted run left pending.
    type: list
    elements: str
    choices: [helm_state]
    default: []
  helm_stale_after:
    description: Helm's timeout (Go duration) - a C(pending-*) release older than this is one the deploy recovers
      rather than one a helm run still owns.
    type: str
    default: 10m0s
"""

EXAMPLES = r"""
- name: Can the 405B release work here?
  nimops.multinode.nim_preflight:
    namespace: nim
    release: llama-405b
    size: 2
    gpus_per_node: 8
    permissions:
      - {verb: create, resource: leaderworkersets, group: leaderworkerset.x-k8s.io, namespace: nim}
  register: preflight

- name: Fail on any FAIL
  ansible.builtin.assert:
    that: preflight.verdict != 'FAIL'
    fail_msg: "{{ preflight.table }}"
"""

RETURN = r"""
checks:
  description: One entry per check.
  returned: always
  type: list
  elements: dict
  contains:
    check:
      description: The check's name (C(gpu_capacity), ...).
      type: str
    status:
      description: C(PASS), C(WARN) or C(FAIL).
      type: str
    subject:
      description: What it is about (C(nodes), C(StorageClass/fast), C(release/llama-405b)).
      type: str
    message:
      description: What was found.
      type: str
    fix:
      description: What to do about a C(WARN) or C(FAIL).
      type: str
  sample:
    - {check: gpu_capacity, status: FAIL, subject: nodes, message: "the group needs 2 pod(s) of 8 nvidia.com/gpu ...",
       fix: "free GPUs on 1 more node(s) ..."}
verdict:
  description: C(FAIL) when any check fails, else C(WARN) when any warns, else C(PASS).
  returned: always
  type: str
  sample: PASS
table:
  description: The checks as aligned text lines, for the screen.
  returned: always
  type: list
  elements: str
api_version:
  description: The API server's Kubernetes version.
  returned: always
  type: str
  sample: v1.34.1
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.nimops.multinode.plugins.module_utils import _cluster_preflight, _k8s
from ansible_collections.nimops.multinode.plugins.module_utils._errors import NimOpsError
from ansible_collections.nimops.multinode.plugins.module_utils._helm_history import duration_seconds

PERMISSION = dict(verb=dict(type="str", required=True), resource=dict(type="str", required=True),
                  group=dict(type="str", default=""), subresource=dict(type="str", default=""),
                  namespace=dict(type="str", default=""))


def main():
    argument_spec = _k8s.auth_argspec()
    argument_spec.update(
        namespace=dict(type="str", required=True),
        release=dict(type="str", required=True),
        size=dict(type="int", required=True),
        gpus_per_node=dict(type="int", required=True),
        node_selector=dict(type="dict", default={}),
        tolerations=dict(type="list", elements="dict", default=[]),
        requests=dict(type="dict", default={}),
        topology_key=dict(type="str", default="", no_log=False),
        permissions=dict(type="list", elements="dict", default=[], options=PERMISSION),
        rendered_kinds=dict(type="list", elements="dict", default=[],
                            options=dict(api_version=dict(type="str", required=True),
                                         kind=dict(type="str", required=True))),
        lws_fields=dict(type="list", elements="str", default=[]),
        creates_claim=dict(type="bool", default=False),
        claim_name=dict(type="str", default=""),
        claim_size=dict(type="str", default=""),
        storage_class=dict(type="str", default=""),
        access_mode=dict(type="str", default="ReadWriteMany"),
        lws_installed_by_deploy=dict(type="bool", default=False),
        lws_pinned_version=dict(type="str", default=""),
        lws_namespace=dict(type="str", default="lws-system"),
        skip=dict(type="list", elements="str", choices=["helm_state"], default=[]),
        helm_stale_after=dict(type="str", default="10m0s"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    if not _k8s.HAS_K8S:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=str(_k8s.K8S_IMPORT_ERROR))
    if module.params["size"] < 1 or module.params["gpus_per_node"] < 1:
        module.fail_json(msg="size and gpus_per_node must be at least 1", rule="bad_input")
    want = dict(module.params)
    try:
        want["helm_stale_after"] = duration_seconds(want["helm_stale_after"])
    except ValueError as exc:
        module.fail_json(msg="helm_stale_after: %s" % exc, rule="bad_input")
    try:
        client = _k8s.connect(module.params)
        result = _cluster_preflight.run(client, want)
    except NimOpsError as exc:
        module.fail_json(**exc.to_result())
    module.exit_json(changed=False, table=_cluster_preflight.table(result["checks"]), **result)


if __name__ == "__main__":
    main()
