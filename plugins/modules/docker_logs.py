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
    API (Docker Engine or Podman's Docker-compatible service).
  - Used to explain why a Ray node or an inference server stopped, without a C(docker) CLI on the host.
  - Reads only; never changes anything.
author:
  - nimops.multinode contributors (@nimops)
extends_documentation_fragment:
  - community.docker.docker.api_documentation
  - nimops.multinode.attributes
attributes:
  check_mode:
    support: full
    details: Reads only, so check mode returns the same result as a normal run.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: Never changes anything.
options:
  name:
    description: Name or ID of the container.
    type: str
    required: true
  tail:
    description: How many lines from the end of the log to return.
    type: int
    default: 60
requirements:
  - requests (Python library on the managed host)
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

import traceback

from ansible_collections.community.docker.plugins.module_utils.common_api import AnsibleDockerClient
from ansible_collections.nimops.multinode.plugins.module_utils._docker_wait import container_state_summary


def main():
    client = AnsibleDockerClient(
        argument_spec=dict(name=dict(type="str", required=True), tail=dict(type="int", default=60)),
        supports_check_mode=True,
    )
    name, tail = client.module.params["name"], client.module.params["tail"]
    try:
        container = client.get_container(name)
        if not container:
            client.module.exit_json(changed=False, exists=False)
        params = {"stdout": 1, "stderr": 1, "tail": str(tail), "timestamps": 0}
        res = client._get(client._url("/containers/{0}/logs", container["Id"]), params=params, stream=False)
        raw = client._get_result_tty(False, res, container.get("Config", {}).get("Tty", False))
        lines = raw.decode("utf-8", errors="replace").splitlines()[-tail:]
        client.module.exit_json(changed=False, exists=True, state=container_state_summary(container), lines=lines)
    except Exception as exc:  # pylint: disable=broad-except
        # Docker SDK and requests errors alike: one place, one message.
        client.fail("could not read the logs of container %s: %s" % (name, exc), exception=traceback.format_exc())


if __name__ == "__main__":
    main()
