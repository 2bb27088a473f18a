# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nimops.multinode.credential_problem: what is wrong with a credential's shape, without ever showing it."""

from __future__ import annotations

from ansible_collections.nimops.multinode.plugins.module_utils._errors import NimOpsError
from ansible_collections.nimops.multinode.plugins.module_utils._secrets import KINDS, check_shape


def credential_problem(value, kind, check_prefix=True, source="the value"):
    """'' when ``value`` has the shape of a ``kind`` credential, else the refusal (rule, what, why, fix)."""
    if kind not in KINDS:
        raise ValueError("kind must be one of %s, not %r" % (", ".join(sorted(KINDS)), kind))
    try:
        # str() also decrypts a vaulted value; None stays None (an empty credential)
        check_shape(kind, None if value is None else str(value), check_prefix, source)
    except NimOpsError as exc:
        return exc.message
    return ""


class FilterModule:
    def filters(self):
        return {"credential_problem": credential_problem}
