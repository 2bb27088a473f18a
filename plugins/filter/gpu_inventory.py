# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nimops.multinode.gpu_inventory: a host's GPUs from nvidia-smi's CSV query, as compared across a replica."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.nimops.multinode.plugins.module_utils._errors import InputError
from ansible_collections.nimops.multinode.plugins.module_utils._gpu_inventory import gpu_inventory


def _gpu_inventory(stdout):
    try:
        return gpu_inventory(stdout)
    except InputError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule:
    def filters(self):
        return {"gpu_inventory": _gpu_inventory}
