#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: nim_manifest_check
short_description: Check the objects a nim-llm chart rendered against the multi-node plan, before installing
version_added: 0.1.0
description:
  - Reads the objects C(helm template --output-dir) wrote (for example through M(kubernetes.core.helm_template)
    with O(kubernetes.core.helm_template#module:output_dir)) and compares them with what
    M(nimops.multinode.nim_values) planned (its RV(nimops.multinode.nim_values#module:expected_objects)).
  - "Checked for every LeaderWorkerSet: C(size) is the planned nodes per group; the leader and worker pods ask
    for the planned GPUs per node, with requests equal to limits; every pod mounts the planned model cache (the
    NFS export, the existing claim, or a claim of the planned access mode that the chart creates); the pods
    pull with the image pull Secret and the leader reads the NGC (and Hugging Face) Secret by name; no
    credential is a literal environment value; C(NIM_JSONL_LOGGING) is off; no Service that is not headless has
    the LeaderWorkerSet's name (LWS would then create no headless Service and the workers could not resolve
    the leader)."
  - A difference fails with rule C(rendered_mismatch), saying what the plan says, what the chart rendered and
    what to change. The failure result carries C(rule), C(what), C(why) and C(fix).
  - Reads files on the controller only; it contacts nothing and changes nothing. Object contents are never
    returned (a chart may render Secrets).
author:
  - nimops maintainers (@nimops)
extends_documentation_fragment:
  - nimops.multinode.attributes
  - nimops.multinode.attributes.pure
attributes:
  diff_mode:
    support: none
    details: There is nothing to compare with; the check changes nothing.
options:
  manifest_dir:
    description: The folder C(helm template --output-dir) wrote the rendered objects to; every C(.yaml) file
      under it is read.
    type: path
    required: true
  expected:
    description:
      - What the plan needs the chart to render, as M(nimops.multinode.nim_values) returns it in
        RV(nimops.multinode.nim_values#module:expected_objects).
    type: dict
    required: true
    suboptions:
      chart:
        description: The chart's name and version, for messages.
        type: str
        default: the chart
      size:
        description: Pods per LeaderWorkerSet group (the planned nodes).
        type: int
        required: true
      gpus_per_node:
        description: C(nvidia.com/gpu) each leader and worker pod asks for.
        type: int
        required: true
      model_cache:
        description: The planned model cache - C(kind) (C(pvc), C(existing_claim), C(nfs), C(none)) and its
          C(access_mode), C(claim), or C(server) and C(path).
        type: dict
        default: {}
      secrets:
        description: Secret names by option - C(image_pull_secret), C(ngc_api_secret), C(hf_token_secret).
        type: dict
        default: {}
"""

EXAMPLES = r"""
- name: Render the release into a folder of this run
  kubernetes.core.helm_template:
    chart_ref: /tmp/nim-llm-2.0.0.tgz
    release_name: nim-llm
    release_namespace: nim
    release_values: "{{ values_result['values'] }}"
    output_dir: "{{ render_dir.path }}"

- name: Check the rendered objects against the plan
  nimops.multinode.nim_manifest_check:
    manifest_dir: "{{ render_dir.path }}"
    expected: "{{ values_result.expected_objects }}"
"""

RETURN = r"""
objects:
  description: The rendered objects checked, as C(kind/name).
  returned: success
  type: list
  elements: str
  sample: [Service/nim-llm-openai, LeaderWorkerSet/nim-llm]
kinds:
  description: Each kind rendered, once, for M(nimops.multinode.nim_preflight) to check that the cluster serves it
    and that the deploying identity may write it.
  returned: success
  type: list
  elements: dict
  contains:
    api_version:
      description: The object's C(apiVersion).
      type: str
    kind:
      description: The object's C(kind).
      type: str
lws_fields:
  description: A JSON pointer to every field the rendered LeaderWorkerSets set under C(/spec) (any list item as
    C(-)), without values, for M(nimops.multinode.nim_preflight) to check against the installed LeaderWorkerSet's
    schema.
  returned: success
  type: list
  elements: str
  sample: [/spec/leaderWorkerTemplate/size, /spec/startupPolicy]
rule:
  description: On failure, C(rendered_mismatch).
  returned: failure
  type: str
  sample: rendered_mismatch
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nimops.multinode.plugins.module_utils._errors import run_pure
from ansible_collections.nimops.multinode.plugins.module_utils._manifest_check import MANIFEST_CHECK_ARGSPEC, check_manifest_dir


def main():
    module = AnsibleModule(argument_spec=MANIFEST_CHECK_ARGSPEC, supports_check_mode=True)
    run_pure(module, check_manifest_dir)


if __name__ == "__main__":
    main()
