# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE: this module_utils file is internal to nimops.multinode and may change without notice.
"""A host's GPUs from ``nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader,nounits``,
reduced to what must be equal on every member of a replica: how many, which models, which driver."""

from __future__ import annotations

from ansible_collections.nimops.multinode.plugins.module_utils._errors import InputError

NVIDIA_SMI_QUERY = ["--query-gpu=name,driver_version,memory.total", "--format=csv,noheader,nounits"]


def gpu_inventory(stdout: str) -> dict:
    """{'count', 'models', 'drivers', 'text'}; ``text`` is the same for two hosts exactly when their GPUs are."""
    gpus = []
    for line in (stdout or "").splitlines():
        if not line.strip():
            continue
        fields = [f.strip() for f in line.rsplit(",", 2)]
        if len(fields) != 3 or not fields[2].isdigit():
            raise InputError("gpu_inventory", "unexpected nvidia-smi line %r" % line,
                             "the query prints one GPU per line as: name, driver version, memory in MiB",
                             "check that nvidia-smi (or nim_docker_nvidia_smi) answers that query on the host")
        gpus.append(tuple(fields))
    kinds = {}
    for name, _driver, memory in gpus:
        kinds[(name, memory)] = kinds.get((name, memory), 0) + 1
    drivers = sorted({driver for _name, driver, _memory in gpus})
    text = ", ".join("%d x %s (%s MiB)" % (n, name, memory) for (name, memory), n in sorted(kinds.items()))
    return {"count": len(gpus), "models": sorted({name for name, _d, _m in gpus}), "drivers": drivers,
            "text": "%s, driver %s" % (text, "/".join(drivers)) if gpus else "no GPUs"}
