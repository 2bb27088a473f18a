# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nimops.multinode.nim_manifest_check, run on the controller (it reads files only; see plugin_utils/pure_action.py)."""

from __future__ import annotations

from ansible_collections.nimops.multinode.plugins.module_utils._manifest_check import MANIFEST_CHECK_ARGSPEC, check_manifest_dir
from ansible_collections.nimops.multinode.plugins.plugin_utils.pure_action import PureModuleAction


class ActionModule(PureModuleAction):
    argument_spec = MANIFEST_CHECK_ARGSPEC

    def compute(self, params):
        return check_manifest_dir(params)
