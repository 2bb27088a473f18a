# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nimops.multinode.burn_in_summary: the link burn-in's output summed up (slowest link and host)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.nimops.multinode.plugins.module_utils._burn_in import burn_in_summary
from ansible_collections.nimops.multinode.plugins.module_utils._errors import InputError


def _summary(text):
    try:
        return burn_in_summary(text)
    except (InputError, ValueError) as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule:
    def filters(self):
        return {"burn_in_summary": _summary}
