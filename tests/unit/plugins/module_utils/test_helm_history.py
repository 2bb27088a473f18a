# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible_collections.nimops.multinode.plugins.module_utils._errors import NimOpsError
from ansible_collections.nimops.multinode.plugins.module_utils._helm_history import (
    duration_seconds, parse_time, plan_recovery)

T0 = "2026-11-29T16:00:00.123456789Z"
NOW = parse_time(T0)


def rev(n, status, updated=T0):
    return {"revision": n, "status": status, "updated": updated, "chart": "nim-llm-2.0.0"}


@pytest.mark.parametrize("text,seconds", [
    ("2026-11-29T16:00:00Z", 1795968000),
    ("2026-11-29T16:00:00.999999999Z", 1795968000),
    ("2026-11-29T17:00:00.5+01:00", 1795968000),
    ("2026-11-29T15:30:00-00:30", 1795968000),
    ("2026-11-29 16:00:00.123456789 +0000 UTC", 1795968000),
])
def test_parse_time(text, seconds):
    assert parse_time(text) == seconds


def test_parse_time_refuses_garbage():
    with pytest.raises(ValueError, match="unreadable Helm timestamp"):
        parse_time("yesterday")


@pytest.mark.parametrize("text,seconds", [("10m0s", 600), ("1h", 3600), ("90s", 90), ("1h2m3s", 3723), ("600", 600),
                                          ("2m", 120), ("1.5s", 1)])
def test_duration_seconds(text, seconds):
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "ten minutes", "5ms", "m"])
def test_duration_seconds_refuses(text):
    with pytest.raises(ValueError, match="unreadable duration"):
        duration_seconds(text)


@pytest.mark.parametrize("history", [[], [rev(1, "deployed")], [rev(1, "superseded"), rev(2, "failed")],
                                     [rev(1, "deployed"), rev(2, "uninstalled")]])
def test_finished_or_missing_release_is_left_alone(history):
    assert plan_recovery(history, NOW + 9999, 600)["action"] == "none"


def test_pending_upgrade_older_than_the_timeout_rolls_back_to_the_deployed_revision():
    history = [rev(1, "superseded"), rev(2, "deployed"), rev(3, "failed"), rev(4, "pending-upgrade")]
    plan = plan_recovery(history, NOW + 601, 600)
    assert plan["action"] == "rollback" and plan["to_revision"] == 2 and plan["age"] == 601
    assert plan["msg"] == ("revision 4 was left pending-upgrade 601 s ago (an interrupted helm run): rolled back to "
                           "revision 2, the last deployed")


def test_pending_rollback_without_a_deployed_revision_uses_the_newest_superseded():
    history = [rev(1, "superseded"), rev(2, "superseded"), rev(3, "pending-rollback")]
    assert plan_recovery(history, NOW + 700, 600)["to_revision"] == 2


@pytest.mark.parametrize("history", [[rev(1, "pending-install")], [rev(1, "failed"), rev(2, "pending-upgrade")]])
def test_never_deployed_release_is_uninstalled(history):
    plan = plan_recovery(history, NOW + 600, 600)
    assert plan["action"] == "uninstall"
    assert "no revision was ever deployed: the unfinished install is removed" in plan["msg"]


def test_young_pending_release_is_refused_naming_age_and_wait():
    with pytest.raises(NimOpsError) as info:
        plan_recovery([rev(1, "deployed"), rev(2, "pending-upgrade")], NOW + 12, 30)
    err = info.value
    assert err.rule == "release_pending"
    assert "has been pending-upgrade (revision 2) for 12 s, less than the helm timeout (30 s)" in err.message
    assert "re-run after 18 s" in err.message
