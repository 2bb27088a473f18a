# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nimops.multinode.container_host_options: the host options of the bare-host path's containers, derived once."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.nimops.multinode.plugins.module_utils._errors import NimOpsError
from ansible_collections.nimops.multinode.plugins.module_utils._host_options import container_host_options


def _options(gpus_per_node, rdma=False, rdma_devices=(), memlock=-1, ulimits=(), ipc_mode=""):
    try:
        return container_host_options(gpus_per_node, rdma, rdma_devices, memlock, ulimits, ipc_mode)
    except NimOpsError as exc:
        raise AnsibleFilterError(exc.message) from exc


class FilterModule:
    def filters(self):
        return {"container_host_options": _options}
