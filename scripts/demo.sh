#!/usr/bin/env bash
# make demo: brings up the simulated GPU cluster (tests/simcluster: real control plane, KWOK GPU nodes, real
# LeaderWorkerSet controller, an authenticated Helm repository serving the nim-llm test chart), then deploys
# the seed's Llama 3.1 405B two-node example (TP=8, PP=2, 16 GPUs) with playbooks/deploy-nim.yml, printing
# progress and the final status (groups ready, endpoint), and says how to tear it down.
# Running it again converges (changed=0). Extra arguments go to ansible-playbook.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PWD/.venv/bin:$PATH
py=$PWD/.venv/bin/python
example=examples/kubernetes/llama-3.1-405b-2node.yml

echo "== 1/3 simulated GPU cluster"
"$py" tests/simcluster/simcluster.py up
status=$("$py" tests/simcluster/simcluster.py status --json)
field() { printf '%s' "$status" | "$py" -c 'import json, sys; d = json.load(sys.stdin); exec("print(d" + sys.argv[1] + ")")' "$1"; }
K8S_AUTH_KUBECONFIG=$(field '["kubeconfig"]')
helm_bin=$(field '["helm"]')
repo_url=$(field '["helm_repo"]["url"]')
creds=$(field '["helm_repo"]["credentials_file"]')
# The sim's repository password stands in for the NGC API key; it goes through the environment, never argv. The sim's
# repository is a mirror on plain HTTP on loopback, not NGC's: the collection sends a mirror only its own password
# (nim_chart.password, here read from the environment when the play runs) and over HTTP only when allowed.
NGC_API_KEY=$("$py" -c 'import json, sys; print(json.load(open(sys.argv[1]))["password"])' "$creds")
export K8S_AUTH_KUBECONFIG NGC_API_KEY

ANSIBLE_COLLECTIONS_PATH=$(scripts/collection-tree.sh)
export ANSIBLE_COLLECTIONS_PATH ANSIBLE_RETRY_FILES_ENABLED=false ANSIBLE_LOCALHOST_WARNING=false
export ANSIBLE_INVENTORY_UNPARSED_WARNING=false ANSIBLE_DEPRECATION_WARNINGS=false

echo "== 2/3 deploy $example (chart from the sim's authenticated repository)"
ansible-playbook playbooks/deploy-nim.yml -e "@$example" \
  -e "{\"nim_chart\": {\"source\": \"repo\", \"repo_url\": \"$repo_url\", \"version\": \"2.0.0-sim\",
        \"password\": \"{{ lookup('ansible.builtin.env', 'NGC_API_KEY') }}\", \"allow_http_credentials\": true},
       \"nim_helm_binary\": \"$helm_bin\"}" \
  "$@"

ns=$("$py" -c 'import yaml, sys; print(yaml.safe_load(open(sys.argv[1]))["nim_namespace"])' "$example")
release=$("$py" -c 'import yaml, sys; print(yaml.safe_load(open(sys.argv[1]))["nim_release"])' "$example")
echo "== 3/3 status"
kubectl --kubeconfig "$K8S_AUTH_KUBECONFIG" -n "$ns" get leaderworkersets,pods,services,pvc -o wide
cat <<TXT

Deployed. To look around:   export KUBECONFIG=$K8S_AUTH_KUBECONFIG
Diagnose the release:       K8S_AUTH_KUBECONFIG=\$KUBECONFIG ansible-playbook playbooks/diagnose-nim.yml -e nim_namespace=$ns -e nim_release=$release
Tear the release down:      K8S_AUTH_KUBECONFIG=\$KUBECONFIG ansible-playbook playbooks/teardown-nim.yml -e nim_namespace=$ns -e nim_release=$release -e nim_helm_binary=$helm_bin
                            (keeps the model cache PVC; add -e nim_delete_model_cache=true to remove it)
Stop the simulated cluster: make sim-down
TXT
