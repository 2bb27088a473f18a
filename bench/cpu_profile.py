# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a long run's CPU goes: runs a command and prints CPU-seconds by kind of process.

    python3 bench/cpu_profile.py [--interval S] [--out FILE.json] -- make test

The suites are CPU-bound on a 2-core machine, so their wall time follows the CPU they burn. Every interval the
profile reads /proc: each live process's own CPU since the last look goes to its kind (its command, e.g.
kube-apiserver, ansible-playbook, raylet, vllm). The machine's CPU that no live process accounts for belongs to
processes that lived and died between two looks (Ansible's module runs, kubectl, helm); it is shared out as
"<kind> (children)" in proportion to what each parent reaped in that interval, so the figures add up to the
machine's CPU. Only /proc is read; nothing is signalled.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter

TICK = os.sysconf("SC_CLK_TCK")
# A process's kind: the first of these found in its command line, else its command name.
KINDS = ("ansible-playbook", "ansible-test", "ansible-lint", "ansible-galaxy", "ansible-runner", "ansible-builder",
         "molecule", "pytest", "kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler", "kwok",
         "lws", "helm", "kubectl", "raylet", "gcs_server", "vllm", "ray", "podman", "conmon", "dockerd",
         "containerd", "sshd", "ssh", "go")


def _read(pid):
    """(start time, own ticks, reaped children's ticks, kind) of a live process, or None once it is gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as handle:
            stat = handle.read().decode("utf-8", "replace")
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            argv = handle.read().decode("utf-8", "replace").split("\0")
    except OSError:
        return None
    comm = stat[stat.index("(") + 1:stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2:].split()
    # fields[0] is stat field 3 (state): utime, stime, cutime, cstime are fields 14-17, starttime field 22
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    text = " ".join(argv[:3])
    kind = next((k for k in KINDS if k in text), comm)
    return int(fields[19]), utime + stime, cutime + cstime, kind


def _sample():
    found = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            info = _read(int(name))
            if info:
                found[int(name)] = info
    return found


def _machine_ticks():
    with open("/proc/stat", encoding="ascii") as handle:
        return sum(int(v) for v in handle.readline().split()[1:4])


def _account(before, after, machine, totals):
    """Adds one interval: live processes' own CPU by kind, the rest by the kind of the parents that reaped it."""
    seen, reaped = 0, Counter()
    for pid, (started, own, children, kind) in after.items():
        old = before.get(pid)
        same = old is not None and old[0] == started
        delta = own - old[1] if same else own
        totals[kind] += delta
        seen += delta
        if children - (old[2] if same else 0) > 0:
            reaped[kind + " (children)"] += children - (old[2] if same else 0)
    unseen = machine - seen
    if unseen > 0 and reaped:
        weight = float(sum(reaped.values()))
        for kind, ticks in reaped.items():
            totals[kind] += unseen * ticks / weight
    elif unseen > 0:
        totals["(ended unseen)"] += unseen


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--out", default="")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to profile after --")
    totals, start = Counter(), time.monotonic()
    machine_start = last_machine = _machine_ticks()
    before = _sample()
    child = subprocess.Popen(command)
    while child.poll() is None:
        time.sleep(args.interval)
        after, machine = _sample(), _machine_ticks()
        _account(before, after, machine - last_machine, totals)
        before, last_machine = after, machine
    machine = last_machine - machine_start
    wall = time.monotonic() - start
    seconds = dict((kind, round(ticks / TICK, 1)) for kind, ticks in totals.most_common() if ticks > 0)
    report = {"command": command, "rc": child.returncode, "wall_seconds": round(wall, 1),
              "machine_cpu_seconds": round(machine / TICK, 1),
              "attributed_cpu_seconds": round(sum(totals.values()) / TICK, 1),
              "by_kind": seconds}
    print("[cpu-profile] rc=%d wall %.0f s, machine CPU %.0f s (user+nice+system), attributed %.0f s"
          % (child.returncode, wall, report["machine_cpu_seconds"], report["attributed_cpu_seconds"]))
    for kind, value in list(seconds.items())[:30]:
        print("[cpu-profile] %8.1f s  %s" % (value, kind))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=1)
    return child.returncode


if __name__ == "__main__":
    sys.exit(main())
