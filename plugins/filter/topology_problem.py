# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nimops.multinode.topology_problem: the multi-node rules for a TP x PP split, for paths that render no values."""

from __future__ import annotations

from ansible_collections.nimops.multinode.plugins.module_utils._values import topology_problem


class FilterModule:
    def filters(self):
        return {"topology_problem": topology_problem}
