#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: port_listen
short_description: Listen briefly on TCP ports so that peers can prove they reach them
version_added: 0.1.0
description:
  - Binds each of O(ports) that is free on the wildcard address of O(address)'s family, accepts connections until
    every bound port has had O(expected) of them or O(deadline) seconds have passed, then closes everything.
  - Ports already held by a process are not bound; the result names the process holding each (from C(/proc)).
  - Run it with C(async) and C(poll) set to 0 on every host, then M(nimops.multinode.port_reach) from each peer, then
    C(ansible.builtin.async_status) to collect it.
  - Connections are closed with a reset, so no TIME_WAIT is left on a port that a service binds next. Nothing on the
    host is changed.
author:
  - nimops.multinode contributors (@nimops)
extends_documentation_fragment:
  - nimops.multinode.attributes
  - nimops.multinode.attributes.read_only
options:
  address:
    description: The host's address that peers will connect to (its family decides IPv4 or IPv6).
    type: str
    required: true
  ports:
    description: The TCP ports.
    type: list
    elements: int
    required: true
  expected:
    description: How many connections each port waits for (the number of peers); C(0) only checks the ports are free.
    type: int
    required: true
  deadline:
    description: Seconds to wait for the connections at most.
    type: float
    default: 15
"""

EXAMPLES = r"""
- name: Listen on the Ray ports while the peers connect
  nimops.multinode.port_listen:
    address: 10.0.0.11
    ports: [6379, 8076, 8077]
    expected: 1
  async: 60
  poll: 0
  register: listener
"""

RETURN = r"""
listened:
  description: The ports that were free and listened on.
  type: list
  elements: int
  returned: always
in_use:
  description: The ports already held, each with the process holding it.
  type: list
  elements: dict
  returned: always
  sample: [{"port": 6379, "holder": "pid 4242 (redis-server)"}]
problems:
  description: The held ports in words, one line per holding process.
  type: list
  elements: str
  returned: always
  sample: ["port 6379 is held by pid 4242 (redis-server)"]
short:
  description: Listened ports that saw fewer than O(expected) connections, with the number seen.
  type: list
  elements: dict
  returned: always
  sample: [{"port": 8076, "connections": 0}]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nimops.multinode.plugins.module_utils._errors import NimOpsError
from ansible_collections.nimops.multinode.plugins.module_utils._port_probe import describe_in_use, listen


def main():
    module = AnsibleModule(
        argument_spec={"address": {"type": "str", "required": True},
                       "ports": {"type": "list", "elements": "int", "required": True},
                       "expected": {"type": "int", "required": True},
                       "deadline": {"type": "float", "default": 15}},
        supports_check_mode=True)
    params = module.params
    if params["expected"] < 0 or params["deadline"] <= 0 or not all(0 < p < 65536 for p in params["ports"]):
        module.fail_json(msg="port_listen: ports must be in 1..65535, expected >= 0 and deadline > 0")
    try:
        result = listen(params["address"], params["ports"], params["expected"], params["deadline"])
    except NimOpsError as exc:
        module.fail_json(**exc.to_result())
    module.exit_json(changed=False, listened=result["listened"],
                     in_use=[{"port": p, "holder": h} for p, h in sorted(result["in_use"].items())],
                     problems=describe_in_use(result["in_use"]),
                     short=[{"port": p, "connections": n} for p, n in result["short"].items()])


if __name__ == "__main__":
    main()
