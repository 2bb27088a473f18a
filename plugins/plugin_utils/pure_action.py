# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side runner for the modules whose work is pure logic (nim_plan, nim_values).

They contact nothing, so the controller runs them in the task's own process: the same argument spec, the same
result and the same refusals as the module, without starting a Python process and importing Ansible's module
runtime for them (about half a second a task, paid on every deploy and every re-run).
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.nimops.multinode.plugins.module_utils._errors import pure_result


class PureModuleAction(ActionBase):
    """Validates the task's arguments against ``argument_spec`` and returns ``pure_result(params, compute)``."""

    _supports_check_mode = True
    _supports_async = False
    argument_spec: dict = {}
    constraints: dict = {}

    def compute(self, params):
        raise NotImplementedError

    def run(self, tmp=None, task_vars=None):
        result = super(PureModuleAction, self).run(tmp, task_vars)
        _validation, params = self.validate_argument_spec(argument_spec=self.argument_spec, **self.constraints)
        result.update(pure_result(params, self.compute))
        return result
