#!/usr/bin/env bash
# Debian packages the simulated hosts need (podman, sshd, debootstrap, iproute2). Idempotent: installs only what is missing.
set -euo pipefail
# One install at a time (apt holds the dpkg lock; a concurrent run would fail on it instead of waiting).
exec 9>/run/lock/nimops-simhosts-deps.lock
flock 9
pkgs=(podman runc debootstrap openssh-server openssh-client iproute2 util-linux tar python3-requests)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "simhosts: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
