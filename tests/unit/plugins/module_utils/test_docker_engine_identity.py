# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which engine answers, and whether it attaches GPUs by device request (GET /version as each engine answers)."""

from __future__ import annotations

import pytest

from ansible_collections.nimops.multinode.plugins.module_utils._docker_engine import engine_identity

DOCKER = {"Version": "20.10.24+dfsg1", "ApiVersion": "1.41",
          "Components": [{"Name": "Engine", "Version": "20.10.24+dfsg1"}, {"Name": "containerd"},
                         {"Name": "runc"}, {"Name": "docker-init"}]}
PODMAN = {"Version": "4.3.1", "ApiVersion": "1.41",
          "Components": [{"Name": "Podman Engine", "Version": "4.3.1"}, {"Name": "Conmon"},
                         {"Name": "OCI Runtime (runc)"}]}


@pytest.mark.parametrize("version,hook,engine,attaches", [
    (DOCKER, "/usr/bin/nvidia-container-runtime-hook", "docker", True),
    (DOCKER, "", "docker", False),
    (PODMAN, "/usr/bin/nvidia-container-runtime-hook", "podman", False),  # the API ignores device requests
    (PODMAN, "", "podman", False),
    ({"Version": "17.03.0-ce", "ApiVersion": "1.26"}, "/usr/bin/nvidia-container-runtime-hook", "docker", True),
])
def test_engine_and_gpu_attachment(version, hook, engine, attaches):
    got = engine_identity(version, hook)
    assert (got["engine"], got["gpu_device_requests"], got["nvidia_hook"]) == (engine, attaches, hook)
    assert got["version"] == version["Version"] and got["api_version"] == version["ApiVersion"]
