#!/usr/bin/env bash
# Creates the project venv idempotently. The venv lives in the cache, keyed by the hash of
# requirements.txt, and ./.venv points at it: a fresh clone on a machine that already built it is instant.
set -euo pipefail
cd "$(dirname "$0")/.."
link=${1:-.venv}
cache=${NIMOPS_CACHE:-$HOME/.cache/nimops}
key=$(sha256sum requirements.txt | cut -c1-12)
venv=$cache/venv-py$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')-$key
if [ ! -f "$venv/.complete" ]; then
  echo "[setup] creating $venv"
  rm -rf "$venv"
  mkdir -p "$cache"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet -r requirements.txt
  touch "$venv/.complete"
fi
if [ "$(readlink "$link" 2>/dev/null)" != "$venv" ]; then
  ln -sfn "$venv" "$link"
fi
