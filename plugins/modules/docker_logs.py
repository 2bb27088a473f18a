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
  docker_host:
    description:
      - The engine's API, V(unix:///path/to/socket) or V(tcp://host:port) (V(https://) with O(tls) or
        O(validate_certs)). C(ssh://) and C(npipe://) addresses are not supported.
      - From E(DOCKER_HOST) when not set in the task.
    type: str
    default: unix:///var/run/docker.sock
    aliases: [docker_url]
  tls_hostname:
    description:
      - The name the engine's certificate must carry, when O(validate_certs) is true; the host of O(docker_host)
        when not set. From E(DOCKER_TLS_HOSTNAME) when not set in the task.
    type: str
  api_version:
    description:
      - Engine API version to use, for example V(1.41); V(auto) uses the engine's own.
      - From E(DOCKER_API_VERSION) when not set in the task.
    type: str
    default: auto
    aliases: [docker_api_version]
  timeout:
    description: Seconds to wait for an answer from the API. From E(DOCKER_TIMEOUT) when not set in the task.
    type: int
    default: 60
  ca_path:
    description:
      - CA certificate that signed the engine's certificate, with O(validate_certs).
      - C(ca.pem) in E(DOCKER_CERT_PATH) when not set and that variable is set.
    type: path
    aliases: [ca_cert, tls_ca_cert, cacert_path]
  client_cert:
    description:
      - Client certificate for TLS. C(cert.pem) in E(DOCKER_CERT_PATH) when not set and that variable is set.
    type: path
    aliases: [tls_client_cert, cert_path]
  client_key:
    description:
      - Key of O(client_cert). C(key.pem) in E(DOCKER_CERT_PATH) when not set and that variable is set.
    type: path
    aliases: [tls_client_key, key_path]
  tls:
    description:
      - Use TLS without verifying the engine's certificate (O(validate_certs) takes precedence).
      - From E(DOCKER_TLS) when not set in the task.
    type: bool
    default: false
  validate_certs:
    description:
      - Use TLS and verify the engine's certificate. From E(DOCKER_TLS_VERIFY) when not set in the task.
    type: bool
    default: false
    aliases: [tls_verify]
  use_ssh_client:
    description:
      - Accepted so that tasks written for the community.docker connection options run unchanged; has no
        effect, since C(ssh://) addresses are not supported.
    type: bool
    default: false
  debug:
    description: Accepted for the same reason as O(use_ssh_client); has no effect.
    type: bool
    default: false
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
