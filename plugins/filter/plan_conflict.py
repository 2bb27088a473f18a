# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nimops.multinode.plan_conflict: refuse explicit topology settings that contradict the plan."""

from __future__ import annotations

from ansible_collections.nimops.multinode.plugins.module_utils._plan import plan_conflict


class FilterModule:
    def filters(self):
        return {"plan_conflict": plan_conflict}
