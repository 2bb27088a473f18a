# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible_collections.nimops.multinode.plugins.module_utils._docker_wait import (
    container_state_summary, explain, judge_server, started_before)

RUNNING = {"State": {"Status": "running", "Running": True, "ExitCode": 0, "StartedAt": "2026-11-27T12:00:01.5Z"},
           "RestartCount": 0}
EXITED = {"State": {"Status": "exited", "Running": False, "ExitCode": 1, "Error": "",
                    "StartedAt": "2026-11-27T12:00:01.5Z"}, "RestartCount": 2}

# The tail of a vLLM CPU server started with the Ray executor (shape of the real failure).
RAY_ON_CPU = [
    "INFO 11-27 12:20:01 [api_server.py:1] vLLM API server version 0.32.0",
    "Traceback (most recent call last):",
    '  File "/opt/venv/lib/python3.11/site-packages/vllm/config/parallel.py", line 500, in __post_init__',
    "    raise ValueError(...)",
    "ValueError: current platform cpu does not support ray.",
]


def test_state_summary():
    assert container_state_summary(EXITED) == {
        "status": "exited", "running": False, "restarting": False, "exit_code": 1, "restart_count": 2,
        "error": "", "started_at": "2026-11-27T12:00:01.5Z"}
    assert container_state_summary(None)["status"] == "unknown"


# The real tail: the engine's traceback (with log prefixes), then the API server's wrapper error.
RAY_ON_CPU_WRAPPED = [
    "(EngineCore pid=346) ERROR 11-27 12:41:50 [core.py:1510]   File \"/opt/venv/lib/python3.11/site-packages/"
    "vllm/v1/executor/ray_utils.py\", line 574, in initialize_ray_cluster",
    "(EngineCore pid=346) ERROR 11-27 12:41:50 [core.py:1510] ValueError: current platform cpu does not support ray.",
    "Traceback (most recent call last):",
    '  File "/opt/venv/lib/python3.11/site-packages/vllm/v1/engine/utils.py", line 1431, in wait_for_engine_startup',
    "    raise RuntimeError(",
    "RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}",
]


@pytest.mark.parametrize("lines,cause", [
    (RAY_ON_CPU, "ValueError: current platform cpu does not support ray."),
    (RAY_ON_CPU_WRAPPED, "(EngineCore pid=346) ERROR 11-27 12:41:50 [core.py:1510] ValueError: current platform cpu "
                         "does not support ray."),
    (["starting", "ERROR 11-27 [core.py] EngineCore failed to start.", "shutting down"],
     "ERROR 11-27 [core.py] EngineCore failed to start."),
    (["loading", "could not open model directory /models/x", "bye"], "could not open model directory /models/x"),
    (["line one", "last words", ""], "last words"),
    ([], "(the container printed nothing)"),
])
def test_explain_picks_the_cause(lines, cause):
    assert explain(lines) == cause


@pytest.mark.parametrize("state,status,error,verdict,message", [
    (None, None, None, "stopped", "the server container does not exist"),
    (container_state_summary(EXITED), None, None, "stopped",
     "the server container is exited (exit code 1, restarts 2)"),
    (container_state_summary(RUNNING), 200, None, "ready", "health endpoint answered 200"),
    (container_state_summary(RUNNING), None, "Connection refused", "waiting",
     "server running, endpoint not answering yet (Connection refused)"),
    (container_state_summary(RUNNING), 503, None, "waiting", "server running, endpoint answered 503"),
])
def test_judge_server(state, status, error, verdict, message):
    assert judge_server(state, status, error) == (verdict, message)


@pytest.mark.parametrize("a,b,before", [
    ("2026-11-27T12:00:01.123456789Z", "2026-11-27T12:00:02Z", True),
    ("2026-11-27T12:00:02Z", "2026-11-27T12:00:01.999Z", False),
    ("2026-11-27T12:00:01.100Z", "2026-11-27T12:00:01.200000000Z", True),
    # Podman prints local time with an offset: 13:00+01:00 is 12:00Z.
    ("2026-11-27T13:00:00.5+01:00", "2026-11-27T12:00:01Z", True),
    ("0001-01-01T00:00:00Z", "2026-11-27T12:00:01Z", False),
    ("", "2026-11-27T12:00:01Z", False),
])
def test_started_before(a, b, before):
    assert started_before(a, b) is before
