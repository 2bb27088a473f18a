# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible_collections.nimops.multinode.plugins.module_utils import _lease
from ansible_collections.nimops.multinode.plugins.module_utils._helm_history import parse_time

NOW = parse_time("2026-11-29T16:00:00Z")


def lease(run_id="host/1/99", renewed=NOW, duration=120, holder="ops@ctl (AWX job 7)"):
    return _lease.body("nim", "llama", holder, run_id, duration, renewed)


def test_body_is_a_lease_named_after_the_release():
    b = lease()
    assert b["kind"] == "Lease" and b["apiVersion"] == "coordination.k8s.io/v1"
    assert b["metadata"]["name"] == "nimops-lock-llama" and b["metadata"]["namespace"] == "nim"
    assert b["metadata"]["annotations"] == {_lease.RUN_ANNOTATION: "host/1/99"}
    assert b["spec"] == {"holderIdentity": "ops@ctl (AWX job 7)", "leaseDurationSeconds": 120,
                         "acquireTime": "2026-11-29T16:00:00.000000Z", "renewTime": "2026-11-29T16:00:00.000000Z"}


@pytest.mark.parametrize("obj,run_id,now,expected", [
    (None, "me", NOW, ("free", {})),
    (lease(run_id="me"), "me", NOW + 9999, ("ours", {})),
    (lease(), "me", NOW + 30, ("held", {"holder": "ops@ctl (AWX job 7)", "renewed_ago": 30, "expires_in": 90})),
    (lease(), "me", NOW + 120, ("expired", {"holder": "ops@ctl (AWX job 7)", "renewed_ago": 120, "expires_in": 0})),
])
def test_judge(obj, run_id, now, expected):
    assert _lease.judge(obj, run_id, now) == expected


def test_refusal_names_the_holder_and_the_expiry():
    err = _lease._refusal("nim", "llama", {"holder": "ops@ctl (AWX job 7)", "renewed_ago": 30, "expires_in": 90})
    assert err.rule == "release_locked"
    assert ("Release nim/llama is being changed by another run: ops@ctl (AWX job 7) (lease nimops-lock-llama "
            "renewed 30 s ago, expires in 90 s unless renewed)") in err.message
