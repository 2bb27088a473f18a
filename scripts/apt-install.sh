#!/usr/bin/env bash
# Install the Debian packages that are missing: apt-install.sh [--no-install-recommends] NAME[=VERSION]...
# One apt run at a time: on a fresh machine the checks and the test beds' builds install packages in parallel,
# and a second apt-get fails on the dpkg lock instead of waiting for it.
set -euo pipefail
apt_opts=(-o DPkg::Lock::Timeout=600 -y -qq)
if [ "${1:-}" = --no-install-recommends ]; then
    apt_opts+=(--no-install-recommends)
    shift
fi
exec 9>/run/lock/nimops-apt.lock
flock 9
missing=()
for spec in "$@"; do
    name=${spec%%=*}
    want=${spec#"$name"}
    want=${want#=}
    have=$(dpkg-query -W -f='${Status} ${Version}' "$name" 2>/dev/null || true)
    if [[ $have == "install ok installed "* ]] && { [ -z "$want" ] || [ "${have##* }" = "$want" ]; }; then
        continue
    fi
    missing+=("$spec")
done
((${#missing[@]})) || exit 0
echo "[apt] installing ${missing[*]}"
apt-get -o DPkg::Lock::Timeout=600 update -qq
DEBIAN_FRONTEND=noninteractive apt-get install "${apt_opts[@]}" "${missing[@]}" >/dev/null
