# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Attribute descriptions shared by every module of the collection.

Use ``extends_documentation_fragment: [nimops.multinode.attributes]`` and set only ``support``
(and ``details``) per attribute in the module, or add ``nimops.multinode.attributes.pure`` for
modules that compute a result and change nothing, ``nimops.multinode.attributes.read_only`` for modules
that read a system and report.
"""

from __future__ import annotations


class ModuleDocFragment:

    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check mode and return the changed status it predicts without modifying the target.
  diff_mode:
    description: Returns details on what has changed (or would change in check mode) when run in diff mode.
  idempotent:
    description:
      - Run twice in a row with the same arguments, the second run reports no change (C(changed=false)).
"""

    # For modules that only compute (planners, renderers): they never change anything.
    PURE = r"""
options: {}
attributes:
  check_mode:
    support: full
    details: The module changes nothing in any mode, so check mode returns the same result as a normal run.
  idempotent:
    support: full
    details: The result depends only on the arguments; C(changed) is always false.
  action:
    description: Indicates this has a corresponding action plugin, so some parts of the work run on the controller.
    support: full
    details: The whole module runs on the controller (an action plugin of the same name); it contacts nothing.
"""

    # For modules that read a system and report: they never change it.
    READ_ONLY = r"""
options: {}
attributes:
  check_mode:
    support: full
    details: Reads only, so check mode returns the same result as a normal run.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: Never changes anything.
"""
