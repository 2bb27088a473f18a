# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE: this module_utils file is internal to nimops.multinode and may change without notice.
"""Argument specs shared between modules; each matches a doc fragment of the same name."""

from __future__ import annotations

# plugins/doc_fragments/topology.py
TOPOLOGY_ARGSPEC = {
    "gpus_per_node": {"type": "int", "required": True},
    "interconnect": {"type": "str", "choices": ["ethernet", "infiniband", "roce"], "default": "ethernet"},
}
