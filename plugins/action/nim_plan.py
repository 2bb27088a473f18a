# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nimops.multinode.nim_plan, run on the controller (it computes only; see plugin_utils/pure_action.py)."""

from __future__ import annotations

from ansible_collections.nimops.multinode.plugins.module_utils._plan import PLAN_ARGSPEC, PLAN_CONSTRAINTS, plan_topology
from ansible_collections.nimops.multinode.plugins.plugin_utils.pure_action import PureModuleAction


class ActionModule(PureModuleAction):
    argument_spec = PLAN_ARGSPEC
    constraints = PLAN_CONSTRAINTS

    def compute(self, params):
        return plan_topology(**params)
