#!/usr/bin/env bash
# Debian packages the simulated hosts need (podman, sshd, debootstrap, iproute2). Idempotent: installs only what is missing.
set -euo pipefail
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
