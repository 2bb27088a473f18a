#!/usr/bin/env bash
# make plan: what would be deployed, and why. Runs playbooks/plan_nim.yml on a deploy vars file (default: the
# seed's Llama 3.1 405B example with a plan, examples/kubernetes/llama-3.1-405b-planned.yml: two 8-GPU H100 nodes,
# Ethernet, ReadWriteMany PVC) and prints the plan (TP, PP, nodes, GPUs, weights per GPU, why) and the nim-llm
# values. Nothing is contacted or changed, and no credential is needed. Extra arguments go to ansible-playbook,
# e.g. `scripts/plan.sh -e '{"nim_plan": {"model": "llama-3.1-405b", "gpu_type": "h100-80gb", "gpus_per_node": 8,
# "nodes_available": 4, "nodes": 4}}'`; PLAN_VARS=other.yml plans another vars file.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PWD/.venv/bin:$PATH
ANSIBLE_COLLECTIONS_PATH=$(scripts/collection-tree.sh build/plan)
export ANSIBLE_COLLECTIONS_PATH
# Readable output: results as YAML, no retry files, no warnings about the implicit localhost inventory.
export ANSIBLE_CALLBACK_RESULT_FORMAT=yaml ANSIBLE_RETRY_FILES_ENABLED=false ANSIBLE_LOCALHOST_WARNING=false
export ANSIBLE_INVENTORY_UNPARSED_WARNING=false
exec ansible-playbook playbooks/plan_nim.yml -e "@${PLAN_VARS:-examples/kubernetes/llama-3.1-405b-planned.yml}" "$@"
