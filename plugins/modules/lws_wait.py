#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: lws_wait
short_description: Wait until every group of a LeaderWorkerSet is ready, or fail early with the named cause
version_added: 0.1.0
description:
  - C(helm --wait) does not see the pods a LeaderWorkerSet creates. This waits on the LeaderWorkerSet itself -
    condition C(Available), C(readyReplicas), and the leader and every worker pod of every group Ready.
  - Prints progress while waiting (what is ready, what is not, why).
  - Stops early, well before O(timeout), when a group cannot come up, naming the cause and the fix -
    crash-looping pod (with its termination message; JSON logging, missing Ray address, Ray join failures
    recognised), image pull failure or bad pull secret, Pending for lack of C(nvidia.com/gpu), PVC missing,
    unbound or not ReadWriteMany, LWS CRD or controller missing, controller not reconciling,
    C(LWS_LEADER_ADDRESS) not injected, probes restarting pods during the model download, a Service holding the
    LeaderWorkerSet's name (LWS then creates no headless Service and workers cannot resolve the leader), groups of
    another size than O(expected_size).
  - Returns the service endpoint of the release.
  - The waiting loop runs in the action plugin of the same name; each poll runs this module once.
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
  action:
    support: full
    description: The action plugin loops and prints progress.
options:
  name:
    description:
      - LeaderWorkerSet name. Defaults to the LeaderWorkerSet labelled C(app.kubernetes.io/instance=<release>)
        (Helm charts usually name it C(<release>-nim-llm)).
      - One of O(name) and O(release) is required.
    type: str
  namespace:
    description: Namespace of the LeaderWorkerSet.
    type: str
    required: true
  release:
    description: Helm release name, to find the LeaderWorkerSet and the release's Service. Defaults to O(name).
    type: str
  controller_namespace:
    description:
      - Namespace of the LWS controller Deployment, found by its name C(lws-controller-manager) or, when LWS was
        installed with its Helm chart under another release name, by its labels C(app.kubernetes.io/name=lws) and
        C(control-plane=controller-manager).
    type: str
    default: lws-system
  timeout:
    description: Seconds to wait before failing with what is still not ready.
    type: int
    default: 1800
  poll_interval:
    description: Seconds between polls; pods are watched in between, so a pod that crashes and is deleted at once is still seen.
    type: int
    default: 2
  settle:
    description:
      - Seconds every pod must stay Ready before the release counts as ready, so a pod that crashes right after
        turning Ready (a Ray worker losing its head) is not reported as success.
    type: int
    default: 10
  ready_history:
    description:
      - Count how long the pods have already been Ready, by the API's record (Ready condition transition time),
        toward O(settle), so a wait on a release that nothing just changed reports ready on its first poll.
      - Leave false right after an install or upgrade; the old pods are still Ready before the controller starts
        replacing them.
    type: bool
    default: false
  expected_size:
    description:
      - Pods per group the plan needs (its nodes). A LeaderWorkerSet whose groups have another size is never ready
        and fails the wait at once with C(group_size_mismatch) (a chart that maps C(multiNode.workers) otherwise).
    type: int
  elapsed:
    description:
      - Seconds already waited; set by the action plugin on each poll so grace periods count from the start.
      - Internal; a task that sets it is refused.
    type: int
    default: 0
  resource_version:
    description:
      - Pod list version the previous poll ended at; set by the action plugin so each poll's watch replays
        what happened since, and a pod that crashed and was deleted between two polls is still seen.
      - Internal; a task that sets it is refused.
    type: str
"""

EXAMPLES = r"""
- name: Wait for every group of the release
  nimops.multinode.lws_wait:
    name: nim-llm
    namespace: nim
    timeout: 2400
  register: nim_ready

- name: Show the endpoint
  ansible.builtin.debug:
    msg: "{{ nim_ready.endpoint.url }}"
"""

RETURN = r"""
ready:
  description: True when every leader and worker pod of every group is Ready and the LWS is Available.
  returned: always
  type: bool
groups:
  description: Per group, the leader and worker pods with their state.
  returned: always
  type: list
  elements: dict
progress:
  description: One line saying what is ready and what is waited on.
  returned: always
  type: str
  sample: "nim-llm: 0/1 groups ready, 1/2 pods ready; group 0 waiting on: nim-llm-0-1 Pending (ContainerCreating)"
causes:
  description: Named causes (code, summary, detail, objects, fatal, remediation) found in this poll.
  returned: always
  type: list
  elements: dict
ready_seconds:
  description: Seconds every pod has been Ready by the API (Ready condition transition time); 0 when not ready.
  returned: always
  type: int
concerns:
  description: Not yet failures (a pod Running but not Ready, JSON logging on); listed when the wait times out.
  returned: always
  type: list
  elements: dict
endpoint:
  description: Service, namespace, port and in-cluster URL of the OpenAI-compatible API.
  returned: when found
  type: dict
  sample: {service: nim-llm, namespace: nim, port: 8000, url: "http://nim-llm.nim.svc.cluster.local:8000"}
elapsed:
  description: Seconds waited (from the action plugin).
  returned: always
  type: int
resource_version:
  description: Pod list version this poll ended at, where the next poll's watch resumes.
  returned: when the LeaderWorkerSet CRD exists
  type: str
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.nimops.multinode.plugins.module_utils import _k8s
from ansible_collections.nimops.multinode.plugins.module_utils._errors import NimOpsError
from ansible_collections.nimops.multinode.plugins.module_utils._readiness import evaluate
from ansible_collections.nimops.multinode.plugins.module_utils._wait_args import LWS_WAIT_CONSTRAINTS, lws_wait_argspec


def main():
    module = AnsibleModule(argument_spec=lws_wait_argspec(), supports_check_mode=True, **LWS_WAIT_CONSTRAINTS)
    if not _k8s.HAS_K8S:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=str(_k8s.K8S_IMPORT_ERROR))
    p = module.params
    try:
        client = _k8s.connect(p)
        name = _k8s.resolve_lws_name(client, p["namespace"], p["name"], p["release"])
        snap = _k8s.snapshot(client, name, p["namespace"], p["controller_namespace"],
                             watch_seconds=p["poll_interval"], resource_version=p["resource_version"])
    except NimOpsError as exc:
        module.fail_json(**exc.to_result())
    result = evaluate(snap, p["elapsed"], p["release"] or name, p["expected_size"])
    if snap["resource_version"]:
        result["resource_version"] = snap["resource_version"]
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
