#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: nim_values
short_description: Render and check nim-llm Helm values for a multi-node NIM release
version_added: 0.1.0
description:
  - Builds the values of the nim-llm Helm chart for a multi-node release (LeaderWorkerSet, Ray, vLLM)
    from a few high-level options, and refuses values that break a multi-node rule, before anything
    touches a cluster.
  - "Rules enforced (Ray-based chart generation): C(multiNode.enabled) is true; C(multiNode.workers) =
    O(nodes) - 1; the model profile comes from TP/PP B(or) from O(profile), exactly one of them;
    TP x PP = O(nodes) x O(gpus_per_node);
    C(model.jsonLogging) is false (the JSON log formatter crashes Ray workers); GPU limits and requests are
    O(gpus_per_node); the model cache is shared (ReadWriteMany PVC or NFS) unless independent downloads are
    accepted explicitly, with their cost stated; tensor parallelism across nodes needs an RDMA
    O(interconnect); an C(hf://) O(model_path) needs O(hf_token_secret); an nvcr.io image needs
    O(image_pull_secret); Secrets are referenced by name, never embedded."
  - O(extra_values) are deep-merged under the rendered values, so keys this module does not know reach the chart.
    Keys that contradict a rendered value or a rule are refused; with O(chart_path), so are keys the chart does
    not declare.
  - Every refusal says what is wrong, why, and how to fix it; the failure result carries C(rule), C(what),
    C(why) and C(fix).
  - Computes only; it contacts nothing and changes nothing. Compare with the deployed values
    through O(current_values).
author:
  - nimops maintainers (@nimops)
extends_documentation_fragment:
  - nimops.multinode.topology
  - nimops.multinode.attributes
  - nimops.multinode.attributes.pure
attributes:
  diff_mode:
    support: full
    details:
      - Returns RV(diff) (deployed against rendered values) in every mode. As the module changes nothing,
        Ansible does not print it; the role that applies the values does.
options:
  image:
    description: The NIM container image; the same image runs on the leader and on every worker.
    type: dict
    required: true
    suboptions:
      repository:
        description: Image repository, for example V(nvcr.io/nim/meta/llama-3.1-405b-instruct), or
          V(nvcr.io/nim/nim-llm) for model-free NIM.
        type: str
        required: true
      tag:
        description: Image tag. Pin a version; V(latest) is accepted with a note.
        type: str
        required: true
  image_pull_secret:
    description:
      - Name of the C(dockerconfigjson) Secret for the registry. Required for nvcr.io images.
    type: str
  ngc_api_secret:
    description: Name of the Secret holding the NGC API key under key C(NGC_API_KEY).
    type: str
    required: true
  hf_token_secret:
    description: Name of the Secret holding a Hugging Face token under key C(HF_TOKEN). Required with an
      C(hf://) O(model_path).
    type: str
  model_path:
    description: Model location for model-free NIM, for example V(hf://meta-llama/Llama-3.1-405B-Instruct).
    type: str
  profile:
    description:
      - Explicit NIM model profile (name or hash), instead of O(tensor_parallel_size) and
        O(pipeline_parallel_size). A name that contains C(tpN-ppM) is checked against the GPUs.
    type: str
  tensor_parallel_size:
    description: GPUs per tensor-parallel group. Set together with O(pipeline_parallel_size), not with O(profile).
    type: int
  pipeline_parallel_size:
    description: Pipeline stages (standard - the number of nodes).
    type: int
  nodes:
    description: Nodes per replica (one leader plus O(nodes) - 1 workers); at least 2.
    type: int
    required: true
  json_logging:
    description: JSON logging. Must stay false for multi-node; V(true) is refused with the reason.
    type: bool
    default: false
  storage:
    description: Where the model cache lives.
    type: dict
    required: true
    suboptions:
      kind:
        description:
          - V(pvc) lets the chart create a PVC; V(existing_claim) mounts a PVC you created (it survives
            uninstall, so the cache persists); V(nfs) mounts an NFS export directly; V(none) gives every pod
            its own download and needs O(allow_independent_downloads).
        type: str
        required: true
        choices: [pvc, existing_claim, nfs, none]
      size:
        description:
          - PVC size as a Kubernetes quantity, for example V(1000Gi). Required for kind V(pvc).
          - For kind V(existing_claim), the claim's size when known; with O(model_size_gb) it must hold the model.
        type: str
      storage_class:
        description: Storage class of the PVC (kind V(pvc)); it must provide the access mode.
        type: str
      access_mode:
        description: PVC access mode. Anything other than V(ReadWriteMany) needs O(allow_independent_downloads)
          (kind V(pvc)) or is refused (kind V(existing_claim)).
        type: str
        choices: [ReadWriteMany, ReadWriteOnce, ReadWriteOncePod, ReadOnlyMany]
        default: ReadWriteMany
      existing_claim:
        description: Name of the PVC (kind V(existing_claim)).
        type: str
      server:
        description: NFS server (kind V(nfs)).
        type: str
      path:
        description: Absolute path of the NFS export (kind V(nfs)).
        type: str
  allow_independent_downloads:
    description:
      - Accept that every node downloads the model on its own (no shared or only single-node storage).
        The notes state the cost, with O(model_size_gb) in GB.
    type: bool
    default: false
  model_size_gb:
    description:
      - Size of the model weights in GB (RV(nimops.multinode.nim_plan#module:model_size_gb)). Used to state the cost of
        independent downloads and to refuse a PVC smaller than the model.
    type: float
  ray_port:
    description: Port of the Ray head on the leader.
    type: int
    default: 6379
  extra_values:
    description:
      - Further chart values, deep-merged under the rendered ones and passed through untouched.
      - Refused when they contradict a rendered value or a rule, or hold credential values (prefixed keys, C(Bearer)
        headers, token flags such as C(--hf-token=), literal values of environment entries named like a credential).
      - Refused when they make pods privileged, mount host paths, use the host's network, PID or IPC namespace, run
        as UID 0, add C(ALL)/C(SYS_ADMIN) capabilities or set a C(serviceAccountName) (rule C(privileged_values)),
        unless O(allow_privileged_values=true).
    type: dict
    default: {}
  allow_privileged_values:
    description:
      - Let O(extra_values) make the pods privileged, mount host paths, use host namespaces, run as UID 0 or use
        another service account, for a cluster whose policy requires it.
    type: bool
    default: false
  current_values:
    description:
      - The values of the deployed release (for example from C(helm get values)), for RV(diff) and
        RV(changed_paths). Omitted means nothing is deployed. Credential-shaped strings are redacted.
    type: dict
  chart_path:
    description:
      - The chart to render for, a folder or C(.tgz) on the controller (for example
        RV(nimops.multinode.nim_chart#module:path)).
      - Its C(values.yaml) decides the multi-node generation (Ray-based 2.x - C(multiNode.workers) = O(nodes) - 1,
        TP/PP, C(multiNode.ray.port); MPI-based 1.x - C(multiNode.workers) = O(nodes), C(multiNode.gpusPerNode) =
        O(gpus_per_node), and O(tensor_parallel_size), O(pipeline_parallel_size), O(profile), O(model_path),
        O(hf_token_secret) and O(ray_port) refused by name, since that chart ignores them). Any other chart is
        refused (rule C(chart_generation)).
      - The final values are then checked against the chart - keys its C(values.yaml) does not declare are refused
        (C(unknown_chart_key)), and so are values its C(values.schema.json) refuses (C(chart_schema)).
      - Omitted, the values are rendered for the Ray-based generation and not checked against a chart.
    type: path
notes:
  - The storage class, the Secrets and the existing claim are not looked up here; the roles that deploy check
    them against the cluster.
seealso:
  - module: nimops.multinode.nim_plan
"""

EXAMPLES = r"""
- name: Plan, then render the seed's Llama 3.1 405B two-node values
  nimops.multinode.nim_plan:
    model: llama-3.1-405b
    gpu_type: h100-80gb
    gpus_per_node: 8
    nodes_available: 2
  register: plan

- name: Render values from the plan
  nimops.multinode.nim_values:
    image:
      repository: nvcr.io/nim/meta/llama-3.1-405b-instruct
      tag: latest
    image_pull_secret: nvcr-imagepull
    ngc_api_secret: ngc-api
    tensor_parallel_size: "{{ plan.tensor_parallel_size }}"
    pipeline_parallel_size: "{{ plan.pipeline_parallel_size }}"
    nodes: "{{ plan.nodes }}"
    gpus_per_node: "{{ plan.gpus_per_node }}"
    interconnect: "{{ plan.interconnect }}"
    model_size_gb: "{{ plan.model_size_gb }}"
    storage:
      kind: pvc
      size: 1000Gi
      storage_class: nfs-rwx
  register: nim

- name: Model-free NIM from Hugging Face on an existing RWX claim, with an explicit profile
  nimops.multinode.nim_values:
    image:
      repository: nvcr.io/nim/nim-llm
      tag: latest
    image_pull_secret: nvcr-imagepull
    ngc_api_secret: ngc-api
    hf_token_secret: hf-token
    model_path: hf://meta-llama/Llama-3.1-405B-Instruct
    profile: vllm-bf16-tp8-pp2
    nodes: 2
    gpus_per_node: 8
    storage:
      kind: existing_claim
      existing_claim: nim-model-cache
    extra_values:
      model:
        logLevel: INFO
    current_values: "{{ deployed_values | default({}) }}"
"""

RETURN = r"""
values:
  description:
    - The complete values to give the chart (rendered values over O(extra_values)).
    - In templates write C(result['values']); C(result.values) is the dictionary method.
  returned: success
  type: dict
  sample:
    image: {repository: nvcr.io/nim/meta/llama-3.1-405b-instruct, tag: latest}
    imagePullSecrets: [{name: nvcr-imagepull}]
    model: {ngcAPISecret: ngc-api, jsonLogging: false}
    multiNode: {enabled: true, workers: 1, tensorParallelSize: 8, pipelineParallelSize: 2, ray: {port: 6379}}
    resources: {limits: {nvidia.com/gpu: 8}, requests: {nvidia.com/gpu: 8}}
    persistence: {enabled: true, size: 1000Gi, accessMode: ReadWriteMany, storageClass: nfs-rwx}
notes:
  description: Things to know about the values (accepted costs, unpinned tag, what the deploy roles check).
  returned: success
  type: list
  elements: str
  sample: ["image.tag is 'latest': leader and workers may pull different builds; pin a version tag."]
changed_paths:
  description: Dotted paths of values that differ from O(current_values); empty when nothing would change.
  returned: success
  type: list
  elements: str
  sample: [multiNode.pipelineParallelSize, multiNode.workers]
diff:
  description: Deployed (O(current_values), redacted) and rendered values, in Ansible's diff format.
  returned: success
  type: dict
  contains:
    before:
      description: The deployed values.
      type: dict
    after:
      description: The rendered values.
      type: dict
    before_header:
      description: Label of RV(diff.before).
      type: str
    after_header:
      description: Label of RV(diff.after).
      type: str
chart_generation:
  description: The multi-node scheme the values were rendered for - C(ray) (nim-llm 2.x, also without O(chart_path))
    or C(mpi) (nim-llm 1.x).
  returned: success
  type: str
  sample: ray
expected_objects:
  description:
    - What the chart must render for this plan, the input of M(nimops.multinode.nim_manifest_check) - C(chart)
      (name and version), C(size) (pods per group), C(gpus_per_node), C(model_cache) (C(kind) and its C(claim),
      C(access_mode), or C(server) and C(path)) and C(secrets) (Secret names by option).
  returned: success
  type: dict
  sample: {chart: nim-llm 2.0.0, size: 2, gpus_per_node: 8, model_cache: {kind: pvc, access_mode: ReadWriteMany},
           secrets: {ngc_api_secret: ngc-api, image_pull_secret: ngc-secret}}
rule:
  description: On failure, the id of the rule that refused the values (for example C(json_logging)).
  returned: failure
  type: str
  sample: shared_storage
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nimops.multinode.plugins.module_utils._errors import run_pure
from ansible_collections.nimops.multinode.plugins.module_utils._values import VALUES_ARGSPEC, build_values_for


def main():
    module = AnsibleModule(argument_spec=VALUES_ARGSPEC, supports_check_mode=True)
    run_pure(module, build_values_for)


if __name__ == "__main__":
    main()
