#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: docker_engine_info
short_description: Say which container engine a host runs and whether it can attach GPUs
version_added: 0.1.0
description:
  - Reads the engine's version through the Docker Engine API (Docker Engine or Podman's Docker-compatible
    service) and looks for the NVIDIA Container Toolkit's hook (C(nvidia-container-runtime-hook)) in the host's
    PATH.
  - GPUs are attached by device request (the C(--gpus) API) only on Docker Engine with that hook. Podman's
    Docker-compatible API accepts device requests and ignores them, and takes no CDI device names, so a container
    created through it starts without GPUs.
  - Reads only; never changes anything.
author:
  - nimops.multinode contributors (@nimops)
extends_documentation_fragment:
  - nimops.multinode.attributes
  - nimops.multinode.attributes.read_only
  - nimops.multinode.docker_engine
options: {}
"""

EXAMPLES = r"""
- name: Read the engine before asking it for GPUs
  nimops.multinode.docker_engine_info:
  register: engine

- name: Refuse GPUs the engine cannot attach
  ansible.builtin.assert:
    that: engine.gpu_device_requests
    fail_msg: "{{ engine.engine }} {{ engine.version }} cannot attach GPUs by device request"
"""

RETURN = r"""
engine:
  description: C(docker) or C(podman).
  type: str
  returned: always
  sample: docker
version:
  description: The engine's version.
  type: str
  returned: always
  sample: 20.10.24
api_version:
  description: The Engine API version the engine speaks.
  type: str
  returned: always
  sample: "1.41"
nvidia_hook:
  description: Path of C(nvidia-container-runtime-hook) in the host's PATH, empty when absent.
  type: str
  returned: always
gpu_device_requests:
  description: Whether GPU device requests reach the containers (Docker Engine with the NVIDIA hook).
  type: bool
  returned: always
"""

import shutil

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nimops.multinode.plugins.module_utils._docker_engine import (
    ENGINE_ARGSPEC, ENGINE_REQUIRED_TOGETHER, engine_info)
from ansible_collections.nimops.multinode.plugins.module_utils._errors import NimOpsError


def main():
    module = AnsibleModule(argument_spec=ENGINE_ARGSPEC, supports_check_mode=True,
                           required_together=ENGINE_REQUIRED_TOGETHER)
    try:
        result = engine_info(module.params, shutil.which)
    except NimOpsError as exc:
        module.fail_json(**exc.to_result())
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
