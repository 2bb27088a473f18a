# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE: this module_utils file is internal to nimops.multinode and may change without notice.
"""What to do with a Helm release whose last operation never finished, decided from `helm history -o json`.

A helm run killed mid-operation (an AWX cancel, a lost controller) leaves the release `pending-install`,
`pending-upgrade` or `pending-rollback`, and Helm refuses every later operation on it. Once the pending record is
older than the helm timeout no helm run can still be working on it, so it is safe to repair: roll back to the last
revision that was deployed, or remove an install that never deployed. Younger than that it may be another run's.
"""

from __future__ import annotations

import calendar
import re

from ansible_collections.nimops.multinode.plugins.module_utils._errors import NimOpsError

PENDING = ("pending-install", "pending-upgrade", "pending-rollback")
# Helm writes RFC 3339 with nanoseconds: 2026-11-29T16:20:00.123456789Z or ...+01:00
_TIME = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.\d+)?\s*(Z|[+-]\d\d:?\d\d)?")


_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+(?:\.\d+)?)s)?$")


def duration_seconds(text):
    """Seconds of a Go duration as Helm takes it (10m0s, 1h, 90s) or of a plain number of seconds."""
    text = str(text).strip()
    if re.match(r"^\d+$", text):
        return int(text)
    m = _DURATION.match(text)
    if not text or not m:
        raise ValueError("unreadable duration %r (e.g. 10m0s, 90s, 600)" % text)
    hours, minutes, seconds = m.groups()
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + int(float(seconds or 0))


def parse_time(text):
    """Seconds since the epoch of a Helm timestamp (sub-second digits are dropped)."""
    m = _TIME.match(str(text or "").strip())
    if not m:
        raise ValueError("unreadable Helm timestamp %r" % text)
    seconds = calendar.timegm(tuple(int(x) for x in m.groups()[:6]) + (0, 0, 0))
    zone = m.group(7)
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        seconds -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return seconds


def last_good_revision(history, before):
    """The newest revision before `before` that was deployed (or, failing that, superseded), or None."""
    for wanted in ("deployed", "superseded"):
        found = [r["revision"] for r in history if r.get("status") == wanted and r["revision"] < before]
        if found:
            return max(found)
    return None


def plan_recovery(history, now, stale_after):
    """{"action": "none" | "rollback" | "uninstall", ...} for a release history; refuses a pending record that a
    running helm may still own."""
    if not history:
        return {"action": "none", "status": "not installed"}
    last = max(history, key=lambda r: r["revision"])
    status = last.get("status") or "unknown"
    if status not in PENDING:
        return {"action": "none", "status": status, "revision": last["revision"]}
    age = int(now - parse_time(last.get("updated")))
    if age < stale_after:
        raise NimOpsError(
            "release_pending",
            "The release has been %s (revision %d) for %d s, less than the helm timeout (%d s)" % (
                status, last["revision"], age, stale_after),
            "another helm run may still be working on it, and two at once corrupt the release",
            "wait for that run to end, or re-run after %d s: a pending release older than the helm timeout is "
            "recovered automatically" % (stale_after - age))
    good = last_good_revision(history, last["revision"])
    plan = {"status": status, "revision": last["revision"], "age": age}
    if good is None:
        plan.update(action="uninstall", msg="revision %d was left %s %d s ago (an interrupted helm run) and no revision was ever "
                    "deployed: the unfinished install is removed" % (last["revision"], status, age))
    else:
        plan.update(action="rollback", to_revision=good,
                    msg="revision %d was left %s %d s ago (an interrupted helm run): rolled back to revision %d, the "
                        "last deployed" % (last["revision"], status, age, good))
    return plan
