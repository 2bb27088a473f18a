#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: docker_server_wait
short_description: Wait until an inference server container answers its health endpoint
version_added: 0.1.0
description:
  - Probes O(url) from the managed host (M(ansible.builtin.uri)) while watching the server container through
    the Docker API (Docker Engine or Podman's Docker-compatible service), printing progress.
  - Stops early when the container exits or restarts, and reports the line from its log that names the cause
    (for example a vLLM build that cannot use the Ray executor).
  - Runs as an action plugin on the controller (so it can print progress).
author:
  - nimops.multinode contributors (@nimops)
extends_documentation_fragment:
  - nimops.multinode.attributes
attributes:
  check_mode:
    support: full
    details: In check mode nothing was started, so the module does not wait and returns C(skipped).
  diff_mode:
    support: none
  idempotent:
    support: full
    details: Reads only; C(changed) is always false.
options:
  container:
    description: Name of the server container.
    type: str
    required: true
  url:
    description: Health URL, for example C(http://10.0.0.5:8000/v1/health/ready) or C(.../v1/models).
    type: str
    required: true
  status_code:
    description: HTTP status that means healthy.
    type: int
    default: 200
  api_key:
    description:
      - Sent as an C(Authorization) header (C(Bearer ...)) with every probe, for a server started with an API key. Never shown.
    type: str
  docker_host:
    description: Docker API endpoint on the managed host; C(DOCKER_HOST) or the default socket when omitted.
    type: str
  timeout:
    description: Seconds to wait in all (model downloads can take long).
    type: int
    default: 900
  poll_interval:
    description: Seconds between two polls.
    type: int
    default: 5
"""

EXAMPLES = r"""
- name: Wait for the NIM server
  nimops.multinode.docker_server_wait:
    container: nim-server
    url: http://10.0.0.5:8000/v1/health/ready
    timeout: 1800
"""

RETURN = r"""
elapsed:
  description: Seconds until the endpoint answered.
  type: int
  returned: success
cause:
  description: The log line that names why the server stopped.
  type: str
  returned: when the container stopped
log_tail:
  description: Last lines of the server container's log.
  type: list
  elements: str
  returned: when the container stopped
"""
