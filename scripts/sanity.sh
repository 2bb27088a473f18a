#!/usr/bin/env bash
# ansible-test sanity on a copy of the collection under build/ansible_collections/nimops/multinode
# (scripts/collection-tree.sh), for the controller's Python only, each test in the virtualenv that
# ansible-test pins for it (--venv), without containers.
# Extra arguments go to ansible-test, e.g. `scripts/sanity.sh --test pep8`.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PWD/.venv/bin:$PATH
pyver=$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')

# ansible-test seeds each sanity virtualenv with pip through a "get-pip" script that it downloads from
# ci-files.testing.ansible.com, which this network does not reach. Provide an equivalent: the same pip
# release, fetched from PyPI, installing the packages ansible-test asks for.
pip_version=$(python -c 'import types; from ansible_test._internal.python_requirements import get_venv_packages as g; print(g(types.SimpleNamespace(version="'"$pyver"'"))["pip"])')
cache=$HOME/.ansible/test/cache
bootstrap=$cache/get_pip_${pip_version//./_}.py
if [ ! -f "$bootstrap" ]; then
  mkdir -p "$cache"
  python -m pip download --quiet --no-deps --only-binary=:all: --dest "$cache" "pip==$pip_version"
  cat > "$bootstrap.tmp" <<PY
# Stand-in for get-pip.py $pip_version, written by nimops scripts/sanity.sh: installs the requested
# packages with the pip $pip_version wheel downloaded from PyPI next to this file.
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "pip-$pip_version-py3-none-any.whl"))
from pip._internal.cli.main import main  # noqa: E402

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(main(["install", "--upgrade", "--force-reinstall"] + args))
PY
  mv "$bootstrap.tmp" "$bootstrap"
fi

# The shellcheck sanity test is skipped (not failed) when shellcheck is missing: install the pinned
# Debian package instead of letting scripts go unchecked.
shellcheck_version=0.9.0-1
if ! command -v shellcheck >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    scripts/apt-install.sh --no-install-recommends "shellcheck=$shellcheck_version"
  else
    echo "[sanity] shellcheck is required: apt-get install shellcheck=$shellcheck_version" >&2
    exit 1
  fi
fi

# A tree of its own per run, so a demo, a plan or another sanity run replacing build/ cannot pull it away.
mkdir -p build
run_root=$(mktemp -d "$PWD/build/sanity.XXXXXX")
trap 'rm -rf "$run_root"' EXIT
collections=$(scripts/collection-tree.sh "$run_root")
cd "$collections/ansible_collections/nimops/multinode"
# Otherwise ansible-test finds the enclosing repository, where build/ is ignored, and sees no files.
git init --quiet .
ansible-test sanity --venv --python "$pyver" --color no "$@"
