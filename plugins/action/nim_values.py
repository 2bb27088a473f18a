# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nimops.multinode.nim_values, run on the controller (it computes only; see plugin_utils/pure_action.py)."""

from __future__ import annotations

from ansible_collections.nimops.multinode.plugins.module_utils._values import VALUES_ARGSPEC, build_values_for
from ansible_collections.nimops.multinode.plugins.plugin_utils.pure_action import PureModuleAction


class ActionModule(PureModuleAction):
    argument_spec = VALUES_ARGSPEC

    def compute(self, params):
        return build_values_for(params)
