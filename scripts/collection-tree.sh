#!/usr/bin/env bash
# Places the collection where Ansible's tools expect it: <root>/ansible_collections/nimops/multinode (root:
# the first argument, default build), a copy of the working tree (git-tracked plus untracked files that are
# not ignored; not .venv or build/), with the collections it depends on (galaxy.yml) linked next to it from
# the venv's `ansible` package. Prints the collections root to use as ANSIBLE_COLLECTIONS_PATH.
# Callers that run at the same time as others (sanity, plan) pass their own root: the copy is replaced
# on every call.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
croot=$(realpath -m "${1:-build}")
dest=$croot/ansible_collections/nimops/multinode
python=$root/.venv/bin/python

rm -rf "$dest"
mkdir -p "$dest"
# NUL-separated so odd file names survive; tracked files deleted in the work tree are skipped.
git ls-files -z --cached --others --exclude-standard -- . ':!:.venv' ':!:build' \
  | while IFS= read -r -d '' f; do if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi; done \
  | xargs -0 -r cp -P --parents -t "$dest" --

site=$("$python" -c 'import ansible_collections, os; print(os.path.dirname(ansible_collections.__path__[0]))')
for ns in $("$python" -c 'import yaml; d = yaml.safe_load(open("galaxy.yml")).get("dependencies") or {}; print(" ".join(sorted({n.split(".")[0] for n in d})))'); do
  ln -sfn "$site/ansible_collections/$ns" "$croot/ansible_collections/$ns"
done
echo "$croot"
