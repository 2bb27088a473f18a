# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Engine API connection options of the modules that talk to Docker or Podman themselves (module_utils
_docker_engine): community.docker's names, aliases, defaults and environment variables."""

from __future__ import annotations


class ModuleDocFragment:

    DOCUMENTATION = r"""
options:
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
