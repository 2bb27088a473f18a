#!/usr/bin/env bash
# Writes the execution environment's build context (no image build, no registry access):
#   1. the helm binary at the pinned HELM_VERSION, built from the Go module proxy (cached),
#   2. the collection artifact (ansible-galaxy collection build),
# both staged under build/ee/ where meta/execution-environment.yml picks them up, then
#   3. ansible-builder create into the context directory (default build/ee/context).
# Build the image afterwards with: podman build -f <context>/Containerfile -t <tag> <context>
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
context=${1:-$root/build/ee/context}
stage=$root/build/ee
cache=${NIMOPS_CACHE:-$HOME/.cache/nimops}
# shellcheck source=/dev/null
. "$root/tests/simcluster/versions.env"
export PATH=$root/.venv/bin:$PATH

mkdir -p "$stage"
"$root/tests/simcluster/build.sh" helm >&2
install -m 0755 "$cache/bin/helm-$HELM_VERSION" "$stage/helm"
rm -f "$stage"/nimops-multinode-*.tar.gz
ansible-galaxy collection build --force --output-path "$stage" "$root" >&2
rm -rf "$context"
# The file name is fixed: by default ansible-builder names it after whichever container runtime it finds.
ansible-builder create -f "$root/awx/execution-environment.yml" -c "$context" --output-filename Containerfile >&2
echo "$context"
