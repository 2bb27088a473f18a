#!/usr/bin/env bash
# Debian packages the simulated hosts need (podman, sshd, debootstrap, iproute2), and any named as arguments
# (docker.io for Docker Engine hosts). Idempotent: installs only what is missing.
set -euo pipefail
exec "$(dirname "$0")/../../scripts/apt-install.sh" podman runc debootstrap openssh-server openssh-client iproute2 \
    util-linux tar python3-requests "$@"
