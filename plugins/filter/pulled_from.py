# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nimops.multinode.pulled_from: whether an image comes from a registry, so its login goes there and nowhere else."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.nimops.multinode.plugins.module_utils._errors import NimOpsError
from ansible_collections.nimops.multinode.plugins.module_utils._image_ref import pulled_from


def _pulled_from(image, registry):
    try:
        return pulled_from(image, registry)
    except NimOpsError as exc:
        raise AnsibleFilterError(exc.message) from exc


class FilterModule:
    def filters(self):
        return {"pulled_from": _pulled_from}
