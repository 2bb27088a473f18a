"""Make the working tree the collection nimops.multinode for the unit tests.

A directory holding ansible_collections/nimops/multinode -> <repository> is given to Ansible's collection loader,
so nothing is copied.
"""

from __future__ import annotations

import os
from pathlib import Path

from ansible.plugins.loader import init_plugin_loader

REPO = Path(__file__).resolve().parents[2]
ROOT = REPO / "build" / "unit-collections"
LINK = ROOT / "ansible_collections" / "nimops" / "multinode"

if not LINK.is_symlink():
    LINK.parent.mkdir(parents=True, exist_ok=True)
    try:
        LINK.symlink_to(os.path.relpath(REPO, LINK.parent), target_is_directory=True)
    except FileExistsError:  # another test run created it in the meantime
        pass
# Ansible's own collection loader, as in a playbook run: imports by collection name and the roles' FQCN filters
# (rendered by Templar in the role tests) both resolve to the working tree.
init_plugin_loader([str(ROOT)])
