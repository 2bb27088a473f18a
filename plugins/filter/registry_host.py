# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nimops.multinode.registry_host: a registry as a user writes it, reduced to the host[:port] a login names."""

from __future__ import annotations

from ansible_collections.nimops.multinode.plugins.module_utils._image_ref import registry_host


class FilterModule:
    def filters(self):
        return {"registry_host": registry_host}
