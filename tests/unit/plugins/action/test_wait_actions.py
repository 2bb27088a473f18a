# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The waiting action plugins (lws_wait, ray_cluster_wait, docker_server_wait): the task's arguments checked
against the modules' argument specs, and the shared bounded loop with its progress lines, on a fake clock."""

from __future__ import annotations

from unittest.mock import MagicMock

import pytest
import yaml
from ansible.errors import AnsibleActionFail
from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC

from ansible_collections.nimops.multinode.plugins.action import docker_server_wait as docker_server_wait_action
from ansible_collections.nimops.multinode.plugins.action import lws_wait as lws_wait_action
from ansible_collections.nimops.multinode.plugins.action import ray_cluster_wait as ray_cluster_wait_action
from ansible_collections.nimops.multinode.plugins.module_utils._wait_args import (
    DOCKER_SERVER_WAIT_ARGSPEC, LWS_WAIT_INTERNAL, RAY_CLUSTER_WAIT_ARGSPEC, lws_wait_argspec)
from ansible_collections.nimops.multinode.plugins.modules import docker_server_wait, lws_wait, ray_cluster_wait
from ansible_collections.nimops.multinode.plugins.plugin_utils import wait_action

LWS_ARGS = {"namespace": "nim", "release": "nim-llm"}
RAY_ARGS = {"container": "nim-ray-head", "expected_nodes": 4}
SERVER_ARGS = {"container": "nim-server", "url": "http://10.0.0.5:8000/v1/health/ready"}

LWS_SUPPORTED = ("api_key, ca_cert, client_cert, client_key, context, controller_namespace, expected_size, host, impersonate_groups, "
                 "impersonate_user, kubeconfig, name, namespace, no_proxy, password, persist_config, poll_interval, "
                 "proxy, proxy_headers, ready_history, release, settle, timeout, username, validate_certs "
                 "(cert_file, key_file, ssl_ca_cert, verify_ssl)")
RAY_SUPPORTED = ("address, container, docker_host, env_file, expected_gpus, expected_nodes, member_addresses, "
                 "poll_interval, timeout")
SERVER_SUPPORTED = "api_key, container, docker_host, poll_interval, status_code, timeout, url"


class FakeClock:
    """time.monotonic and time.sleep of one run: sleeping moves the clock on, nothing waits."""

    def __init__(self):
        self.now = 5000.0
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


class Engine:
    """Answers _execute_module from a script: module name -> a list of results (the last one repeats)."""

    def __init__(self, clock, script, poll_seconds=0):
        self.clock, self.script, self.poll_seconds = clock, script, poll_seconds
        self.calls = []

    def __call__(self, module_name, module_args, task_vars):
        self.calls.append((module_name, dict(module_args)))
        answers = self.script[module_name]
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        self.clock.now += self.poll_seconds
        return dict(answer)

    def called(self, module_name):
        return [args for name, args in self.calls if name == module_name]


@pytest.fixture
def printed(monkeypatch):
    lines = []
    monkeypatch.setattr(wait_action.display, "display", lambda msg, *a, **kw: lines.append(msg))
    return lines


def make_action(plugin, args, check_mode=False, script=None, poll_seconds=0):
    task = MagicMock(args=dict(args), check_mode=check_mode, async_val=0, action=plugin.__name__)
    action = plugin.ActionModule(task, MagicMock(), MagicMock(check_mode=check_mode), loader=None, templar=None,
                                 shared_loader_obj=None)
    clock = FakeClock()
    action.clock, action.sleep = clock, clock.sleep
    action._execute_module = Engine(clock, script or {}, poll_seconds)
    return action


def run_action(plugin, args, check_mode=False, script=None, poll_seconds=0):
    action = make_action(plugin, args, check_mode, script, poll_seconds)
    return action.run(task_vars={}), action._execute_module, action.clock


# --- the task's arguments -------------------------------------------------------------------------------------

@pytest.mark.parametrize("plugin,args,unknown,supported", [
    (lws_wait_action, dict(LWS_ARGS, timout=60), "timout", LWS_SUPPORTED),
    (lws_wait_action, dict(LWS_ARGS, elapsed=120), "elapsed", LWS_SUPPORTED),
    (lws_wait_action, dict(LWS_ARGS, resource_version="4711", settel=5), "resource_version, settel", LWS_SUPPORTED),
    (ray_cluster_wait_action, dict(RAY_ARGS, expected_gpu=32), "expected_gpu", RAY_SUPPORTED),
    (docker_server_wait_action, dict(SERVER_ARGS, status=200), "status", SERVER_SUPPORTED),
], ids=["lws-typo", "lws-internal-elapsed", "lws-internal-and-typo", "ray", "server"])
@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check"])
def test_unknown_option_is_refused_with_its_name_and_the_valid_ones(plugin, args, unknown, supported, check_mode):
    action = make_action(plugin, args, check_mode=check_mode)
    with pytest.raises(AnsibleActionFail) as refused:
        action.run(task_vars={})
    assert refused.value.message == "Unsupported parameters for (None) module: %s. Supported parameters include: %s." % (
        unknown, supported)
    assert action._execute_module.calls == []


@pytest.mark.parametrize("plugin,args,option", [
    (lws_wait_action, dict(LWS_ARGS, timeout="abc"), "timeout"),
    (lws_wait_action, dict(LWS_ARGS, poll_interval="2s"), "poll_interval"),
    (ray_cluster_wait_action, dict(RAY_ARGS, timeout="abc"), "timeout"),
    (ray_cluster_wait_action, dict(RAY_ARGS, expected_nodes="four"), "expected_nodes"),
    (docker_server_wait_action, dict(SERVER_ARGS, timeout="abc"), "timeout"),
    (docker_server_wait_action, dict(SERVER_ARGS, status_code="ok"), "status_code"),
])
def test_value_of_the_wrong_type_is_refused_cleanly(plugin, args, option):
    action = make_action(plugin, args)
    with pytest.raises(AnsibleActionFail) as refused:
        action.run(task_vars={})
    assert refused.value.message == (
        "argument '%s' is of type str and we were unable to convert to int: \"'%s'\" cannot be converted to an int"
        % (option, args[option]))
    assert action._execute_module.calls == []


@pytest.mark.parametrize("plugin,args,message", [
    (lws_wait_action, {"namespace": "nim"}, "one of the following is required: name, release"),
    (ray_cluster_wait_action, {"container": "nim-ray-head"}, "missing required arguments: expected_nodes"),
    (docker_server_wait_action, {"url": SERVER_ARGS["url"]}, "missing required arguments: container"),
])
def test_missing_option_is_refused(plugin, args, message):
    with pytest.raises(AnsibleActionFail, match="^%s$" % message):
        make_action(plugin, args).run(task_vars={})


@pytest.mark.parametrize("plugin,args,expected", [
    # templated values arrive as strings and are converted as the module would
    (ray_cluster_wait_action, dict(RAY_ARGS, expected_nodes="4", expected_gpus="32", timeout="900", poll_interval="5"),
     {"changed": False, "skipped": True, "msg": "check mode: not waiting for 4 Ray nodes (nothing was started)"}),
    (docker_server_wait_action, dict(SERVER_ARGS, status_code="200", docker_host="unix:///run/podman/podman.sock"),
     {"changed": False, "skipped": True, "msg": "check mode: not waiting for http://10.0.0.5:8000/v1/health/ready"}),
], ids=["ray", "server"])
def test_valid_call_passes_validation(plugin, args, expected):
    result, engine, _clock = run_action(plugin, args, check_mode=True)
    assert result == expected
    assert engine.calls == []


@pytest.mark.parametrize("plugin,args,message", [
    (ray_cluster_wait_action, dict(RAY_ARGS, container=""), "ray_cluster_wait needs container"),
    (docker_server_wait_action, dict(SERVER_ARGS, url=""), "docker_server_wait needs url"),
    (lws_wait_action, dict(LWS_ARGS, timeout=0), "timeout 0 is not a positive number of seconds. Fix: e.g. timeout: 1800."),
])
def test_value_that_cannot_be_waited_on_fails_the_task(plugin, args, message):
    result, engine, _clock = run_action(plugin, args)
    assert result == {"failed": True, "changed": False, "msg": message}
    assert engine.calls == []


def doc_options(module):
    options = yaml.safe_load(module.DOCUMENTATION)["options"]
    return {name: {k: v for k, v in opt.items() if k in ("type", "required", "default", "aliases")}
            for name, opt in options.items()}


def spec_options(spec):
    return {name: {k: v for k, v in opt.items() if k in ("type", "required", "default", "aliases")}
            for name, opt in spec.items()}


@pytest.mark.parametrize("module,spec", [
    (lws_wait, {k: v for k, v in lws_wait_argspec().items() if k not in AUTH_ARG_SPEC}),
    (ray_cluster_wait, RAY_CLUSTER_WAIT_ARGSPEC),
    (docker_server_wait, DOCKER_SERVER_WAIT_ARGSPEC),
], ids=["lws_wait", "ray_cluster_wait", "docker_server_wait"])
def test_documented_options_are_the_argument_spec(module, spec):
    assert doc_options(module) == spec_options(spec)


def test_lws_wait_internal_options_stay_in_the_module_spec():
    assert set(LWS_WAIT_INTERNAL) <= set(lws_wait_argspec())
    assert not set(LWS_WAIT_INTERNAL) & set(lws_wait_argspec(internal=False))


# --- lws_wait: the loop on the controller -----------------------------------------------------------------------

def lws_poll(ready=False, progress="nim-llm: 0/1 groups ready, 1/2 pods ready", resource_version="101", **kw):
    result = {"changed": False, "ready": ready, "groups": [], "progress": progress, "causes": [], "concerns": [],
              "endpoint": {"url": "http://nim-llm.nim.svc.cluster.local:8000"} if ready else None,
              "elapsed": 0, "ready_seconds": 0, "resource_version": resource_version, "warnings": [],
              "deprecations": []}
    result.update(kw)
    return result


def test_lws_wait_times_out_within_its_bound_and_reprints_an_unchanged_line_every_30s(printed):
    result, engine, clock = run_action(lws_wait_action, dict(LWS_ARGS, timeout=60, poll_interval=10),
                                       script={"nimops.multinode.lws_wait": [lws_poll()]})
    assert result["failed"] is True and result["changed"] is False
    assert result["msg"] == "timed out after 60s: nim-llm: 0/1 groups ready, 1/2 pods ready"
    polls = engine.called("nimops.multinode.lws_wait")
    assert [p["elapsed"] for p in polls] == [0, 10, 20, 30, 40, 50, 60]
    assert printed == ["lws_wait [   0s] nim-llm: 0/1 groups ready, 1/2 pods ready",
                       "lws_wait [  30s] nim-llm: 0/1 groups ready, 1/2 pods ready",
                       "lws_wait [  60s] timed out after 60s: nim-llm: 0/1 groups ready, 1/2 pods ready"]
    assert "warnings" not in result and "deprecations" not in result


def test_lws_wait_poll_count_is_bounded_even_if_the_clock_stands_still():
    action = make_action(lws_wait_action, dict(LWS_ARGS, timeout=60, poll_interval=10),
                         script={"nimops.multinode.lws_wait": [lws_poll()]})
    action.sleep = lambda seconds: None
    result = action.run(task_vars={})
    assert len(action._execute_module.calls) == 60 // 10 + 2
    assert result["msg"] == "timed out after 60s: nim-llm: 0/1 groups ready, 1/2 pods ready"


def test_lws_wait_gives_the_module_the_task_arguments_and_where_the_wait_stands():
    _result, engine, _clock = run_action(
        lws_wait_action, dict(LWS_ARGS, timeout="30", poll_interval=10, kubeconfig="/etc/fake-kubeconfig"),
        script={"nimops.multinode.lws_wait": [lws_poll(resource_version="101"), lws_poll(resource_version=None)]})
    polls = engine.called("nimops.multinode.lws_wait")
    # the task's own arguments, not the validated ones with defaults filled in
    assert polls[0] == dict(LWS_ARGS, timeout="30", poll_interval=10, kubeconfig="/etc/fake-kubeconfig", elapsed=0)
    assert polls[1]["resource_version"] == "101"
    assert polls[2]["resource_version"] == "101"  # a poll without a version keeps the last one


@pytest.mark.parametrize("ready_history,ready_seconds,elapsed_when_ready", [
    (False, 0, [0, 5, 10]),      # ready must hold for settle (10 s) while watched
    (False, 600, [0, 5, 10]),    # the API's record counts only with ready_history
    (True, 600, [0]),            # a re-run: pods Ready for 10 minutes have held
])
def test_lws_wait_ready_once_settled(ready_history, ready_seconds, elapsed_when_ready, printed):
    result, engine, _clock = run_action(
        lws_wait_action, dict(LWS_ARGS, poll_interval=5, settle=10, ready_history=ready_history),
        script={"nimops.multinode.lws_wait": [lws_poll(ready=True, progress="nim-llm: 1/1 groups ready, 2/2 pods ready",
                                                       ready_seconds=ready_seconds)]})
    assert [p["elapsed"] for p in engine.called("nimops.multinode.lws_wait")] == elapsed_when_ready
    assert result["msg"] == ("nim-llm: 1/1 groups ready, 2/2 pods ready; endpoint "
                             "http://nim-llm.nim.svc.cluster.local:8000")
    assert result["changed"] is False and "failed" not in result
    assert printed[-1] == "lws_wait [%4ds] %s" % (elapsed_when_ready[-1], result["msg"])


def test_lws_wait_module_failure_is_the_task_result():
    failure = {"failed": True, "msg": "[k8s_connect] cannot build a Kubernetes API client: no configuration"}
    result, engine, _clock = run_action(lws_wait_action, LWS_ARGS, script={"nimops.multinode.lws_wait": [failure]})
    assert result == failure
    assert len(engine.calls) == 1


# --- ray_cluster_wait ---------------------------------------------------------------------------------------------

HEAD_RUNNING = {"exists": True, "lines": ["Ray runtime started."],
                "state": {"status": "running", "running": True, "exit_code": 0, "restart_count": 0}}
HEAD_EXITED = {"exists": True,
               "lines": ["Traceback (most recent call last):", "ValueError: current platform cpu does not support ray."],
               "state": {"status": "exited", "running": False, "exit_code": 1, "restart_count": 0}}
NO_ANSWER = {"rc": 1, "stdout": "", "stderr": "ConnectionError: Could not find any running Ray instance."}


def test_ray_cluster_wait_stops_when_the_head_is_down():
    result, engine, _clock = run_action(ray_cluster_wait_action, RAY_ARGS, script={
        "community.docker.docker_container_exec": [NO_ANSWER], "nimops.multinode.docker_logs": [HEAD_EXITED]})
    assert result == {"failed": True, "changed": False, "log_tail": HEAD_EXITED["lines"],
                      "msg": "Ray head is down: container nim-ray-head is exited (exit code 1, restarts 0): "
                             "ValueError: current platform cpu does not support ray."}
    assert engine.called("nimops.multinode.docker_logs") == [{"name": "nim-ray-head", "tail": 200}]


TWO_ALIVE = {"rc": 0, "stderr": "", "stdout": "Node status\n-----\nActive:\n 1 node_aa\n 1 node_bb\nPending:\n"
                                              " (no pending nodes)\nRecent failures:\n (no failures)\n"}


@pytest.mark.parametrize("addresses,foreign", [('["10.0.0.11", "10.0.0.12"]', None),
                                               ('["10.0.0.11", "10.0.0.66"]', "10.0.0.66")])
def test_ray_cluster_wait_checks_that_every_node_is_a_member(addresses, foreign):
    args = dict(RAY_ARGS, expected_nodes=2, env_file="/run/nimops/secrets.env", address="10.0.0.11:6379",
                member_addresses=["10.0.0.11", "10.0.0.12"])
    result, engine, _clock = run_action(ray_cluster_wait_action, args, script={
        "community.docker.docker_container_exec": [TWO_ALIVE, {"rc": 0, "stdout": addresses + "\n", "stderr": ""}]})
    execs = engine.called("community.docker.docker_container_exec")
    # Both commands source the env file (the Ray token); neither carries a secret in its arguments.
    assert [e["argv"][3] for e in execs] == ["/run/nimops/secrets.env"] * 2
    assert execs[0]["argv"][4:] == ["ray", "status", "--address", "10.0.0.11:6379"]
    assert execs[1]["argv"][4:6] == ["python3", "-c"] and execs[1]["argv"][7] == "10.0.0.11:6379"
    if foreign is None:
        assert "failed" not in result and result["alive"] == 2, result
    else:
        assert result["failed"] is True and result["node_addresses"] == ["10.0.0.11", foreign]
        assert result["msg"].startswith("the Ray cluster of nim-ray-head holds nodes outside the replica: " + foreign)


def test_ray_cluster_wait_times_out_within_its_bound(printed):
    result, engine, _clock = run_action(
        ray_cluster_wait_action, dict(RAY_ARGS, timeout=20, docker_host="unix:///run/fake.sock"),
        script={"community.docker.docker_container_exec": [NO_ANSWER], "nimops.multinode.docker_logs": [HEAD_RUNNING]})
    waiting = "ray status not answering yet: ConnectionError: Could not find any running Ray instance."
    assert result == {"failed": True, "changed": False, "ray_status": "",
                      "msg": "timed out after 20s waiting for 4 Ray nodes: %s. Check the worker containers' logs, "
                             "that each worker's node IP is reachable from the head, and that the GCS port and the "
                             "worker port range are open between the hosts" % waiting}
    execs = engine.called("community.docker.docker_container_exec")
    assert len(execs) == 11 <= 20 // 2 + 2  # polled every 2 s (the default)
    assert execs[0] == {"container": "nim-ray-head", "argv": ["ray", "status"], "docker_host": "unix:///run/fake.sock"}
    assert printed == ["ray_cluster_wait [   0s] nim-ray-head: " + waiting]


# --- docker_server_wait -------------------------------------------------------------------------------------------

def server_info(running=True, restarts=0, status="running", exit_code=0):
    return {"exists": True, "container": {"State": {"Status": status, "Running": running, "ExitCode": exit_code},
                                          "RestartCount": restarts}}


def test_docker_server_wait_ready():
    result, engine, _clock = run_action(docker_server_wait_action, SERVER_ARGS, script={
        "community.docker.docker_container_info": [server_info()], "ansible.builtin.uri": [{"status": 200}]})
    assert result == {"changed": False, "msg": "health endpoint answered 200", "url": SERVER_ARGS["url"], "elapsed": 0}
    assert engine.called("ansible.builtin.uri") == [{"url": SERVER_ARGS["url"], "status_code": [200], "timeout": 5}]


def test_docker_server_wait_sends_the_api_key_and_never_returns_it():
    key = "FAKE-api-key-0123456789abcdef"
    result, engine, _clock = run_action(docker_server_wait_action, dict(SERVER_ARGS, api_key=key), script={
        "community.docker.docker_container_info": [server_info()], "ansible.builtin.uri": [{"status": 200}]})
    probe = engine.called("ansible.builtin.uri")[0]
    assert probe["headers"] == {"Authorization": "Bearer " + key}
    # also as uri's no_log url_password (no user name: no basic auth), so that uri masks it in what it returns
    assert probe["url_password"] == key and "url_username" not in probe and not probe.get("force_basic_auth")
    assert key not in repr(result)


def test_docker_server_wait_stopped_server_names_the_cause_from_its_log():
    logs = {"exists": True, "lines": ["INFO starting", "ValueError: current platform cpu does not support ray."]}
    result, engine, _clock = run_action(docker_server_wait_action, SERVER_ARGS, script={
        "community.docker.docker_container_info": [server_info(running=False, status="exited", exit_code=1)],
        "nimops.multinode.docker_logs": [logs]})
    cause = "ValueError: current platform cpu does not support ray."
    assert result == {"failed": True, "changed": False, "log_tail": logs["lines"], "cause": cause,
                      "msg": "nim-server did not become healthy: the server container is exited (exit code 1, "
                             "restarts 0). Cause from its log: " + cause}
    assert engine.called("nimops.multinode.docker_logs") == [{"name": "nim-server", "tail": 400}]


def test_docker_server_wait_restart_while_starting_stops_the_wait():
    result, _engine, _clock = run_action(docker_server_wait_action, SERVER_ARGS, script={
        "community.docker.docker_container_info": [server_info(), server_info(restarts=1)],
        "ansible.builtin.uri": [{"status": -1, "msg": "Connection refused"}],
        "nimops.multinode.docker_logs": [{"exists": True, "lines": ["RuntimeError: CUDA out of memory"]}]})
    assert result["msg"] == ("nim-server did not become healthy: the server container restarted 1 time(s) while "
                             "starting. Cause from its log: RuntimeError: CUDA out of memory")


def test_docker_server_wait_inspect_failure():
    result, _engine, _clock = run_action(docker_server_wait_action, SERVER_ARGS, script={
        "community.docker.docker_container_info": [{"failed": True, "msg": "Error connecting: socket not found"}]})
    assert result == {"failed": True, "changed": False, "msg": "cannot inspect nim-server: Error connecting: socket not found"}


def test_docker_server_wait_times_out_within_its_bound(printed):
    result, engine, clock = run_action(docker_server_wait_action, dict(SERVER_ARGS, timeout=10, poll_interval=0),
                                       script={"community.docker.docker_container_info": [server_info()],
                                               "ansible.builtin.uri": [{"status": 503}]}, poll_seconds=2)
    assert result == {"failed": True, "changed": False,
                      "msg": "timed out after 10s waiting for %s: server running, endpoint answered 503" % SERVER_ARGS["url"]}
    # each poll (inspect, then probe) takes 4 s, longer than the interval (0 counts as 1 s): polls at 0, 4 and 8 s;
    # the one at 8 s ends after the timeout
    assert len(engine.called("community.docker.docker_container_info")) == 3
    assert clock.slept == [0.0, 0.0]
    assert printed == ["docker_server_wait [   0s] nim-server: server running, endpoint answered 503"]


UNAVAILABLE = {"failed": True, "changed": False, "rule": "k8s_unavailable",
               "msg": "[k8s_unavailable] list Pod failed 4 times: connection refused. Why: ..."}


def test_lws_wait_rides_through_polls_the_api_server_does_not_answer(printed):
    ready = lws_poll(ready=True, progress="nim-llm: 1/1 groups ready, 2/2 pods ready")
    result, engine, _clock = run_action(
        lws_wait_action, dict(LWS_ARGS, poll_interval=5, settle=0, timeout=600),
        script={"nimops.multinode.lws_wait": [dict(UNAVAILABLE), dict(UNAVAILABLE), ready]})
    assert result.get("failed") is not True and result["ready"] is True
    assert [p["elapsed"] for p in engine.called("nimops.multinode.lws_wait")] == [0, 5, 10]
    assert printed[0].startswith("lws_wait [   0s] API server not answering, polling again: [k8s_unavailable]")


def test_lws_wait_fails_on_an_api_server_that_never_answers_with_its_last_error():
    result, engine, _clock = run_action(lws_wait_action, dict(LWS_ARGS, poll_interval=10, timeout=30),
                                        script={"nimops.multinode.lws_wait": [dict(UNAVAILABLE)]})
    assert result["failed"] is True
    # every poll inside the budget was tried; the one at the deadline ends the wait with the API's error
    assert [p["elapsed"] for p in engine.called("nimops.multinode.lws_wait")] == [0, 10, 20, 30]
    assert result["msg"] == UNAVAILABLE["msg"]


def test_lws_wait_stops_at_once_on_an_api_error_that_is_not_transient():
    refused = {"failed": True, "changed": False, "rule": "k8s_api", "msg": "[k8s_api] list Pod failed (HTTP 403)"}
    result, engine, _clock = run_action(lws_wait_action, dict(LWS_ARGS, poll_interval=10, timeout=600),
                                        script={"nimops.multinode.lws_wait": [refused]})
    assert result["failed"] is True and result["rule"] == "k8s_api"
    assert len(engine.called("nimops.multinode.lws_wait")) == 1
