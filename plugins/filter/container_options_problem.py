# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nimops.multinode.container_options_problem: what is wrong with the bare-host containers' host options."""

from __future__ import annotations

from ansible_collections.nimops.multinode.plugins.module_utils._host_options import host_options_problem


class FilterModule:
    def filters(self):
        return {"container_options_problem": host_options_problem}
