# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE: this module_utils file is internal to nimops.multinode and may change without notice.
"""The host-level options of the bare-host path's containers (Ray head, Ray workers, server), derived once.

GPUs (a device request), RDMA (devices, CAP_IPC_LOCK and the locked-memory limit NCCL needs over InfiniBand or
RoCE), the other resource limits and the IPC namespace, in the shape community.docker.docker_container takes.
"""

from __future__ import annotations

import re

from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.nimops.multinode.plugins.module_utils._errors import InputError

_DEVICE_RE = re.compile(r"^/[^:]*(:/[^:]*)?$")
_ULIMIT_RE = re.compile(r"^([a-z]+):-?[0-9]+(:-?[0-9]+)?$")


def _problems(rdma, rdma_devices, memlock, ulimits, prefix):
    bad = []
    try:
        if int(memlock) < -1:
            raise ValueError
    except (TypeError, ValueError):
        bad.append("{0}memlock {1!r} is not a byte count or -1 (unlimited)".format(prefix, memlock))
    devices = [d for d in rdma_devices or () if not (isinstance(d, str) and _DEVICE_RE.match(d))]
    if devices:
        bad.append("{0}rdma_devices {1} are not absolute paths, each path or host_path:container_path".format(
            prefix, devices))
    names = []
    for limit in ulimits or ():
        match = _ULIMIT_RE.match(limit) if isinstance(limit, str) else None
        if not match:
            bad.append("{0}ulimits entry {1!r} is not name:soft or name:soft:hard".format(prefix, limit))
        elif match.group(1) in names:
            bad.append("{0}ulimits names {1} twice".format(prefix, match.group(1)))
        else:
            names.append(match.group(1))
    if boolean(rdma) and "memlock" in names:
        bad.append("{0}ulimits sets memlock, which {0}memlock sets when RDMA is on".format(prefix))
    return bad


def _refusal(bad):
    return InputError("container_options", "; ".join(bad),
                      "the engine would refuse the container, or start it without the limit NCCL needs",
                      "correct the options named")


def host_options_problem(rdma=False, rdma_devices=(), memlock=-1, ulimits=(), prefix=""):
    """The refusal for malformed options (``prefix`` names the caller's variables), or ''."""
    bad = _problems(rdma, rdma_devices, memlock, ulimits, prefix)
    return _refusal(bad).message if bad else ""


def container_host_options(gpus_per_node, rdma=False, rdma_devices=(), memlock=-1, ulimits=(), ipc_mode=""):
    """docker_container options: device_requests, devices, capabilities, ulimits, ipc_mode (empty = engine default).

    Raises InputError for options ``host_options_problem`` refuses (the roles check those first, naming them).
    """
    bad = _problems(rdma, rdma_devices, memlock, ulimits, "")
    if bad:
        raise _refusal(bad)
    gpus = int(gpus_per_node)
    rdma = boolean(rdma)
    memlock = int(memlock)
    return {
        "device_requests": [{"driver": "nvidia", "count": gpus, "capabilities": [["gpu"]]}] if gpus > 0 else [],
        "devices": list(rdma_devices) if rdma else [],
        "capabilities": ["CAP_IPC_LOCK"] if rdma else [],
        # soft = hard: NCCL pins its buffers up to the hard limit
        "ulimits": list(ulimits or ()) + (["memlock:%d:%d" % (memlock, memlock)] if rdma else []),
        "ipc_mode": ipc_mode or "",
    }
