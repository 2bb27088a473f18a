"""Make the working tree importable as ansible_collections.nimops.multinode for the unit tests.

`ansible_collections` is a namespace package (the `ansible` package ships one in site-packages), so a second
directory holding ansible_collections/nimops/multinode -> <repository> joins it without copying anything.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ROOT = REPO / "build" / "unit-collections"
LINK = ROOT / "ansible_collections" / "nimops" / "multinode"

if not LINK.is_symlink():
    LINK.parent.mkdir(parents=True, exist_ok=True)
    try:
        LINK.symlink_to(os.path.relpath(REPO, LINK.parent), target_is_directory=True)
    except FileExistsError:  # another test run created it in the meantime
        pass
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
