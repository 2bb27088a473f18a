#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: docker_logs
short_description: Read the last lines a container printed, and its state
version_added: 0.1.0
description:
  - Returns the tail of a container's log (stdout and stderr) and a short state summary, through the Docker
    Engine API (Docker Engine or Podman's Docker-compatible service).
  - Used to explain why a Ray node or an inference server stopped, without a C(docker) CLI on the host.
  - Reads only; never changes anything.
  - Talks to the engine with the Python standard library, so it needs no Python package on the host. The
    connection options are those of the community.docker modules, with the same environment variables.
author:
  - nimops.multinode contributors (@nimops)
extends_documentation_fragment:
  - nimops.multinode.attributes
  - nimops.multinode.attributes.read_only
  - nimops.multinode.docker_engine
options:
  name:
    description: Name or ID of the container.
    type: str
    required: true
  tail:
    description: How many lines from the end of the log to return.
    type: int
    default: 60
"""

EXAMPLES = r"""
- name: Explain why the server container stopped
  nimops.multinode.docker_logs:
    name: nim-server
    tail: 40
  register: server_logs
"""

RETURN = r"""
exists:
  description: Whether the container exists.
  type: bool
  returned: always
state:
  description: Status, exit code, restart count and error from the container's state.
  type: dict
  returned: when the container exists
  sample: {"status": "exited", "running": false, "exit_code": 1, "restart_count": 0, "error": ""}
lines:
  description: The last O(tail) log lines, oldest first.
  type: list
  elements: str
  returned: when the container exists
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nimops.multinode.plugins.module_utils._docker_engine import (
    DOCKER_LOGS_ARGSPEC, ENGINE_REQUIRED_TOGETHER, container_logs)
from ansible_collections.nimops.multinode.plugins.module_utils._errors import NimOpsError


def main():
    module = AnsibleModule(argument_spec=DOCKER_LOGS_ARGSPEC, supports_check_mode=True,
                           required_together=ENGINE_REQUIRED_TOGETHER)
    try:
        result = container_logs(module.params)
    except NimOpsError as exc:
        module.fail_json(**exc.to_result())
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
