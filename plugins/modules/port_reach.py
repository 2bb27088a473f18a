#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: port_reach
short_description: Connect from this host to its peers' TCP ports and name each one it cannot reach
version_added: 0.1.0
description:
  - Opens a TCP connection from the host to every port of every target at once, and closes it with a reset.
  - A refused connection is tried again for O(refused_grace) seconds (the peer's listener may still be starting);
    one that gets no answer within O(timeout) seconds is reported as dropped.
  - Pairs with M(nimops.multinode.port_listen) on the targets. Nothing on the host is changed.
author:
  - nimops.multinode contributors (@nimops)
extends_documentation_fragment:
  - nimops.multinode.attributes
  - nimops.multinode.attributes.read_only
options:
  targets:
    description: The peers to reach.
    type: list
    elements: dict
    required: true
    suboptions:
      host:
        description: The peer's name, used in the result.
        type: str
        required: true
      address:
        description: The address to connect to.
        type: str
        required: true
      ports:
        description: The TCP ports to connect to.
        type: list
        elements: int
        required: true
  timeout:
    description: Seconds a connection may go unanswered.
    type: float
    default: 3
  refused_grace:
    description: Seconds during which a refused connection is tried again.
    type: float
    default: 5
"""

EXAMPLES = r"""
- name: Reach the other members' Ray ports
  nimops.multinode.port_reach:
    targets:
      - host: gpu-node-2
        address: 10.0.0.12
        ports: [8076, 8077]
  register: reach
"""

RETURN = r"""
blocked:
  description: Each target port that could not be reached, and why.
  type: list
  elements: dict
  returned: always
  sample: [{"host": "gpu-node-2", "address": "10.0.0.12", "port": 8076,
            "reason": "no answer within 3s (dropped: a firewall?)"}]
problems:
  description: The blocked ports in words, one line per target and reason, consecutive ports as ranges.
  type: list
  elements: str
  returned: always
  sample: ["to gpu-node-2 (10.0.0.12) ports 8076, 10002-10999: no answer within 3s (dropped: a firewall?)"]
reached:
  description: How many target ports were reached.
  type: int
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nimops.multinode.plugins.module_utils._port_probe import describe_unreachable, reach


def main():
    target = {"host": {"type": "str", "required": True},
              "address": {"type": "str", "required": True},
              "ports": {"type": "list", "elements": "int", "required": True}}
    module = AnsibleModule(
        argument_spec={"targets": {"type": "list", "elements": "dict", "required": True, "options": target},
                       "timeout": {"type": "float", "default": 3},
                       "refused_grace": {"type": "float", "default": 5}},
        supports_check_mode=True)
    params = module.params
    if params["timeout"] <= 0 or params["refused_grace"] < 0:
        module.fail_json(msg="port_reach: timeout must be > 0 and refused_grace >= 0")
    # Not "unreachable": Ansible reads a result key of that name as the host itself being unreachable.
    blocked = reach(params["targets"], params["timeout"], params["refused_grace"])
    total = sum(len(t["ports"]) for t in params["targets"])
    module.exit_json(changed=False, blocked=blocked, problems=describe_unreachable(blocked), reached=total - len(blocked))


if __name__ == "__main__":
    main()
