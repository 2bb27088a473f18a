# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE: this module_utils file is internal to nimops.multinode and may change without notice.
"""Pure decisions for waiting on containers of a bare-Docker deployment: is the server up, still starting,
or gone for good, and which log line says why."""

from __future__ import annotations

import re
from datetime import datetime

# Lines that name a cause, most specific first. Python tracebacks end with "SomethingError: message".
_CAUSE_PATTERNS = (
    # Possibly behind a log prefix: "(EngineCore pid=26) ERROR 11-27 12:39:12 [core.py:1510] ValueError: ..."
    re.compile(r"(?:^|[\]\s])\s*(?:[\w.]+\.)?\w*(?:Error|Exception|Exit)\b\s*:\s*\S"),
    re.compile(r"\b(?:ERROR|FATAL|CRITICAL)\b"),
    re.compile(r"\b(?:does not support|not supported|unsupported|cannot|could not|failed)\b", re.IGNORECASE),
)
_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d|)$")
# Wrappers that point elsewhere ("See root cause above"): the root cause is an earlier line.
_WRAPPER = re.compile(r"See root cause above|The above exception was the direct cause", re.IGNORECASE)
# Noise that looks like an error but never is the cause.
_NOISE = re.compile(r"^\s*(?:Traceback \(most recent call last\)|File \"|\^+$|During handling of the above)")


def container_state_summary(container):
    """A small dict from a container's inspect data (Docker or Podman API)."""
    state = (container or {}).get("State") or {}
    return {
        "status": state.get("Status", "unknown"),
        "running": bool(state.get("Running")),
        "restarting": bool(state.get("Restarting")),
        "exit_code": state.get("ExitCode"),
        "restart_count": (container or {}).get("RestartCount", 0),
        "error": state.get("Error") or "",
        "started_at": state.get("StartedAt") or "",
    }


def explain(lines):
    """The log line that best names why a process stopped; the last non-empty line when none stands out."""
    lines = [line.rstrip() for line in lines if line and line.strip()]
    for pattern in _CAUSE_PATTERNS:
        for line in reversed(lines):
            if not _NOISE.match(line) and not _WRAPPER.search(line) and pattern.search(line):
                return line.strip()
    return lines[-1].strip() if lines else "(the container printed nothing)"


def judge_server(state, http_status, http_error, expected_status=200):
    """('ready' | 'waiting' | 'stopped', message) from the server container's state and one health probe.

    `state` is container_state_summary(...) or None when the container does not exist;
    `http_status` is the HTTP status code of the probe (or None when it could not connect).
    """
    if state is None:
        return "stopped", "the server container does not exist"
    if not state["running"]:
        return "stopped", "the server container is %s (exit code %s, restarts %s)" % (
            state["status"], state["exit_code"], state["restart_count"])
    if http_status == expected_status:
        return "ready", "health endpoint answered %s" % http_status
    if http_status is None:
        return "waiting", "server running, endpoint not answering yet (%s)" % (http_error or "no answer")
    return "waiting", "server running, endpoint answered %s" % http_status


def _parse_ts(ts):
    """Docker prints "2026-11-27T12:30:01.123456789Z", Podman "2026-11-27T12:30:01.123456789+01:00"."""
    ts = (ts or "").strip()
    match = _TS.match(ts)
    if not match or ts.startswith("0001-01-01"):
        return None
    base, frac, zone = match.groups()
    zone = "+00:00" if zone in ("Z", "") else zone
    return datetime.fromisoformat(base + "." + (frac or "0").ljust(6, "0")[:6] + zone)


def started_before(a, b):
    """True when the container start time `a` is earlier than `b` (timestamps as the engine API prints them).

    An empty or zero timestamp ("never started") makes the answer False.
    """
    ta, tb = _parse_ts(a), _parse_ts(b)
    if ta is None or tb is None:
        return False
    return ta < tb
