# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""docker_logs reads the Engine API itself: the log stream and state parsing, the connection options, and the
module against a fake engine on a Unix socket."""

from __future__ import annotations

import json
import re
import shutil
import socketserver
import struct
import tempfile
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.nimops.multinode.plugins.module_utils import _docker_engine as engine
from ansible_collections.nimops.multinode.plugins.module_utils._docker_engine import (
    ENGINE_ARGSPEC, EngineError, connection, container_logs, demux, log_lines)
from ansible_collections.nimops.multinode.plugins.doc_fragments.docker_engine import (
    ModuleDocFragment as DockerEngineFragment)
from ansible_collections.nimops.multinode.plugins.modules import docker_engine_info, docker_logs

REPO = Path(__file__).resolve().parents[4]


def frame(stream, text):
    data = text.encode()
    return struct.pack(">BxxxI", stream, len(data)) + data


# --- the log stream ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw,expected", [
    (frame(1, "INFO starting\n") + frame(2, "ValueError: boom\n") + frame(1, "bye\n"),
     b"INFO starting\nValueError: boom\nbye\n"),
    (frame(1, "one line split ") + frame(1, "over two frames\n"), b"one line split over two frames\n"),
    (b"", b""),
    (frame(2, "truncated frame"), b"truncated frame"),
    (frame(1, "ok\n") + b"not a frame\n", b"ok\nnot a frame\n"),
    (b"plain text, no frames\n", b"plain text, no frames\n"),
], ids=["stdout-stderr-interleaved", "line-over-frames", "empty", "truncated", "trailing-unframed", "unframed"])
def test_demux(raw, expected):
    assert demux(raw) == expected


@pytest.mark.parametrize("raw,tty,tail,expected", [
    (frame(1, "a\nb\n") + frame(2, "c\n"), False, 2, ["b", "c"]),
    (frame(1, "a\nb\n") + frame(2, "c\n"), False, 60, ["a", "b", "c"]),
    (b"a\r\nb\r\nc", True, 2, ["b", "c"]),
    (frame(1, "caf\xe9 \u2713\n"), False, 5, ["caf\xe9 \u2713"]),
    (frame(1, "") + b"\xff\xfebad bytes\n", False, 5, ["\ufffd\ufffdbad bytes"]),
], ids=["tail", "fewer-than-tail", "tty-raw", "utf-8", "invalid-utf-8-replaced"])
def test_log_lines(raw, tty, tail, expected):
    assert log_lines(raw, tty, tail) == expected


# --- the connection options -------------------------------------------------------------------------------------

def params(**kw):
    p = {k: v.get("default") for k, v in ENGINE_ARGSPEC.items()}
    p.update(name="nim-server", tail=60)
    p.update(kw)
    return p


@pytest.mark.parametrize("options,environ,expected", [
    ({}, {}, {"scheme": "unix", "path": "/var/run/docker.sock", "prefix": "", "timeout": 60}),
    ({"docker_host": "unix:///run/user/0/podman/podman.sock", "api_version": "1.41", "timeout": 5}, {},
     {"scheme": "unix", "path": "/run/user/0/podman/podman.sock", "prefix": "/v1.41", "timeout": 5}),
    ({"docker_host": "tcp://10.0.0.5"}, {}, {"scheme": "http", "host": "10.0.0.5", "port": 2375, "prefix": ""}),
    ({"docker_host": "tcp://10.0.0.5:2376", "tls": True}, {},
     {"scheme": "https", "host": "10.0.0.5", "port": 2376, "verify": False, "ca_path": None, "client_cert": None,
      "client_key": None, "server_hostname": "10.0.0.5"}),
    ({"docker_host": "tcp://engine.example:2376", "validate_certs": True, "tls_hostname": "docker.example"},
     {"DOCKER_CERT_PATH": "/etc/fake-certs"},
     {"scheme": "https", "host": "engine.example", "port": 2376, "verify": True, "ca_path": "/etc/fake-certs/ca.pem",
      "client_cert": "/etc/fake-certs/cert.pem", "client_key": "/etc/fake-certs/key.pem",
      "server_hostname": "docker.example"}),
    ({"docker_host": "https://engine.example", "ca_path": "/etc/fake-ca.pem"}, {"DOCKER_CERT_PATH": "/etc/fake-certs"},
     {"scheme": "https", "port": 2376, "verify": False, "ca_path": "/etc/fake-ca.pem"}),
    ({"docker_host": "http://10.0.0.5:2375/engine", "api_version": "v1.44"}, {},
     {"scheme": "http", "host": "10.0.0.5", "port": 2375, "prefix": "/engine/v1.44"}),
], ids=["default-socket", "podman-socket-pinned-version", "tcp", "tls", "verify-cert-path", "https-own-ca",
        "http-path-prefix"])
def test_connection(options, environ, expected):
    settings = connection(params(**options), environ)
    assert {k: settings[k] for k in expected} == expected


@pytest.mark.parametrize("docker_host,message", [
    ("ssh://root@10.0.0.5", "[docker_host] docker_host ssh://root@10.0.0.5 cannot be used. Why: only unix://, tcp://, "
                            "http:// and https:// engine addresses are supported (ssh:// and npipe:// are not). Fix: "
                            "run the task on the engine's host with its Unix socket, or use tcp:// with TLS."),
    ("npipe:////./pipe/docker_engine", None),
    ("/var/run/docker.sock", None),
    ("unix://", "[docker_host] docker_host unix:// cannot be used. Why: it names no socket. Fix: set docker_host to "
                "unix:///path/to/engine.sock."),
    ("tcp://:2376", "[docker_host] docker_host tcp://:2376 cannot be used. Why: it names no host. Fix: write it as "
                    "tcp://host:2376."),
    ("tcp://10.0.0.5:docker", None),
])
def test_unusable_address_is_refused(docker_host, message):
    with pytest.raises(EngineError) as refused:
        connection(params(docker_host=docker_host), {})
    assert refused.value.rule == "docker_host"
    if message:
        assert refused.value.message == message


# --- against a fake engine --------------------------------------------------------------------------------------

RUNNING = {"Id": "c0ffee" * 10, "Name": "/nim-server", "Config": {"Tty": False},
           "State": {"Status": "running", "Running": True, "ExitCode": 0, "Error": "",
                     "StartedAt": "2026-11-27T12:00:01.5Z"}, "RestartCount": 0}
EXITED = dict(RUNNING, Id="dead" * 16, Name="/nim-ray-head", Config={"Tty": True},
              State={"Status": "exited", "Running": False, "ExitCode": 1, "Error": "", "StartedAt": ""}, RestartCount=3)


class FakeEngine(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """The endpoints docker_logs and docker_engine_info call, as Docker answers them (chunked log body, JSON
    errors)."""

    daemon_threads = True
    version = {"Version": "20.10.24+dfsg1", "ApiVersion": "1.41", "Components": [{"Name": "Engine"}]}

    def __init__(self, path, containers, logs):
        self.containers, self.logs, self.requests = containers, logs, []
        super().__init__(path, Handler)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def address_string(self):
        return "unix"

    def reply(self, status, body, content_type="application/json", chunked=False):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(body), 7):
                part = body[i:i + 7]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def do_GET(self):
        self.server.requests.append(self.path)
        if re.match(r"^(?:/v[\d.]+)?/version$", self.path):
            self.reply(200, json.dumps(self.server.version).encode())
            return
        match = re.match(r"^(?:/v[\d.]+)?/containers/([^/]+)/(json|logs)(?:\?(.*))?$", self.path)
        by_name = {c["Name"].lstrip("/"): c for c in self.server.containers}
        by_id = {c["Id"]: c for c in self.server.containers}
        container = by_name.get(match.group(1)) or by_id.get(match.group(1)) if match else None
        if container is None:
            self.reply(404, json.dumps({"message": "No such container: %s" % (match.group(1) if match else "")}).encode())
        elif match.group(2) == "json":
            self.reply(200, json.dumps(container).encode())
        elif container["Id"] in self.server.logs:
            self.reply(200, self.server.logs[container["Id"]], "application/vnd.docker.multiplexed-stream", chunked=True)
        else:
            self.reply(501, json.dumps({"message": "configured logging driver does not support reading"}).encode())


@pytest.fixture
def fake_engine():
    workdir = tempfile.mkdtemp(prefix="nimops-engine-", dir="/tmp")  # short: Unix socket paths are limited
    started = []

    def start(containers, logs):
        server = FakeEngine(workdir + "/engine.sock", containers, logs)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        return server, "unix://" + workdir + "/engine.sock"

    yield start
    for server in started:
        server.shutdown()
        server.server_close()
    shutil.rmtree(workdir)


SERVER_LOG = frame(1, "INFO 11-27 12:20:01 [api_server.py:1] vLLM API server\n") + \
    frame(2, "Traceback (most recent call last):\n") + frame(2, "ValueError: current platform cpu does not support ray.\n")


def test_container_logs_reads_state_and_tail(fake_engine):
    server, host = fake_engine([RUNNING], {RUNNING["Id"]: SERVER_LOG})
    result = container_logs(params(docker_host=host, tail=2), {})
    assert result == {"exists": True, "lines": ["Traceback (most recent call last):",
                                                "ValueError: current platform cpu does not support ray."],
                      "state": {"status": "running", "running": True, "restarting": False, "exit_code": 0,
                                "restart_count": 0, "error": "", "started_at": "2026-11-27T12:00:01.5Z"}}
    assert server.requests == ["/containers/nim-server/json",
                               "/containers/%s/logs?stdout=1&stderr=1&tail=2&timestamps=0" % RUNNING["Id"]]


def test_engine_info_reads_the_version_and_looks_for_the_nvidia_hook(fake_engine):
    server, host = fake_engine([], {})
    looked_for = []
    result = engine.engine_info(params(docker_host=host), lambda name: looked_for.append(name) or "/usr/bin/" + name,
                                {})
    assert result == {"engine": "docker", "version": "20.10.24+dfsg1", "api_version": "1.41",
                      "nvidia_hook": "/usr/bin/nvidia-container-runtime-hook", "gpu_device_requests": True}
    assert looked_for == ["nvidia-container-runtime-hook"] and server.requests == ["/version"]


def test_engine_info_names_an_engine_that_does_not_answer(tmp_path):
    with pytest.raises(engine.EngineError, match=r"^\[docker_api\] could not read the engine's version from unix://"):
        engine.engine_info(params(docker_host="unix://%s/none.sock" % tmp_path), lambda name: None, {})


def test_container_logs_of_a_tty_container_with_a_pinned_api_version(fake_engine):
    server, host = fake_engine([EXITED], {EXITED["Id"]: b"starting\r\nRuntimeError: CUDA out of memory\r\n"})
    result = container_logs(params(name="nim-ray-head", docker_host=host, api_version="1.41"), {})
    assert result["lines"] == ["starting", "RuntimeError: CUDA out of memory"]
    assert result["state"]["status"] == "exited" and result["state"]["restart_count"] == 3
    assert server.requests[0] == "/v1.41/containers/nim-ray-head/json"


def test_missing_container(fake_engine):
    _server, host = fake_engine([], {})
    assert container_logs(params(name="nim-gone", docker_host=host), {}) == {"exists": False}


def test_engine_refusing_the_logs_names_the_container_and_the_engine(fake_engine):
    _server, host = fake_engine([RUNNING], {})
    with pytest.raises(EngineError) as refused:
        container_logs(params(docker_host=host), {})
    assert refused.value.message == (
        "[docker_api] could not read the logs of container nim-server from %s: HTTP 501: configured logging driver "
        "does not support reading. Why: the engine's API did not answer, or refused the request. Fix: check that "
        "the Docker or Podman service runs on the host and that docker_host (or DOCKER_HOST) names its socket."
        % host)


def test_engine_not_running():
    with pytest.raises(EngineError) as refused:
        container_logs(params(docker_host="unix:///tmp/nimops-no-such-engine.sock"), {})
    assert refused.value.what.startswith("could not read the logs of container nim-server from "
                                         "unix:///tmp/nimops-no-such-engine.sock: [Errno 2] No such file or directory")


# --- the module -------------------------------------------------------------------------------------------------

def run_module(args, capsys, monkeypatch, environ=None):
    for name in ("DOCKER_HOST", "DOCKER_API_VERSION", "DOCKER_TIMEOUT", "DOCKER_TLS", "DOCKER_TLS_VERIFY",
                 "DOCKER_TLS_HOSTNAME", "DOCKER_CERT_PATH"):
        monkeypatch.delenv(name, raising=False)
    for name, value in (environ or {}).items():
        monkeypatch.setenv(name, value)
    with patch_module_args(dict(args)), pytest.raises(SystemExit) as exited:
        docker_logs.main()
    return exited.value.code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("check_mode", [False, True])
def test_module_result(fake_engine, capsys, monkeypatch, check_mode):
    _server, host = fake_engine([RUNNING], {RUNNING["Id"]: SERVER_LOG})
    rc, result = run_module({"name": "nim-server", "tail": 1, "docker_host": host, "_ansible_check_mode": check_mode},
                            capsys, monkeypatch)
    assert rc == 0
    assert result["changed"] is False and result["exists"] is True
    assert result["lines"] == ["ValueError: current platform cpu does not support ray."]
    assert result["state"]["running"] is True


def test_module_takes_the_engine_from_docker_host_in_the_environment(fake_engine, capsys, monkeypatch):
    _server, host = fake_engine([], {})
    rc, result = run_module({"name": "nim-server"}, capsys, monkeypatch, environ={"DOCKER_HOST": host})
    assert rc == 0
    assert {k: result[k] for k in ("changed", "exists")} == {"changed": False, "exists": False}
    assert "state" not in result and "lines" not in result


@pytest.mark.parametrize("args,message", [
    ({"name": "nim-server", "docker_host": "ssh://root@10.0.0.5"}, "[docker_host] docker_host ssh://root@10.0.0.5 "),
    ({"name": "nim-server", "docker_host": "unix:///tmp/nimops-no-such-engine.sock"},
     "[docker_api] could not read the logs of container nim-server from unix:///tmp/nimops-no-such-engine.sock: "),
    ({"name": "nim-server", "client_cert": "/etc/fake-cert.pem"}, "parameters are required together: client_cert, client_key"),
    ({"name": "nim-server", "taill": 5},
     "Unsupported parameters for (basic.py) module: taill. Supported parameters include: api_version, ca_path, "
     "client_cert, client_key, debug, docker_host, name, tail, timeout, tls, tls_hostname, use_ssh_client, "
     "validate_certs ("),
])
def test_module_failure(args, message, capsys, monkeypatch):
    rc, result = run_module(args, capsys, monkeypatch)
    assert rc == 1 and result["failed"] is True
    assert result["msg"].startswith(message)


@pytest.mark.parametrize("module,own", [(docker_logs, {"name", "tail"}), (docker_engine_info, set())])
def test_module_options_are_community_dockers_connection_options(module, own):
    """Tasks written for community.docker's modules (docker_host, tls, ...) keep working unchanged; the options
    come from the doc fragment both modules extend."""
    import yaml
    assert "nimops.multinode.docker_engine" in yaml.safe_load(module.DOCUMENTATION)["extends_documentation_fragment"]
    documented = dict(yaml.safe_load(module.DOCUMENTATION)["options"] or {},
                      **yaml.safe_load(DockerEngineFragment.DOCUMENTATION)["options"])
    assert set(documented) == own | set(ENGINE_ARGSPEC)
    for name, spec in ENGINE_ARGSPEC.items():
        assert documented[name]["type"] == spec["type"]
        assert documented[name].get("default") == spec.get("default")
        assert documented[name].get("aliases") == spec.get("aliases")


def test_no_plugin_depends_on_community_docker_private_code():
    """community.docker 5 made its module_utils, plugin_utils and doc fragments private: only its modules are used."""
    offenders = []
    for path in sorted((REPO / "plugins").rglob("*.py")):
        text = path.read_text()
        if "ansible_collections.community.docker" in text or re.search(r"^\s*-\s*community\.docker\.", text, re.M):
            offenders.append(str(path.relative_to(REPO)))
    assert offenders == []


def test_engine_helper_needs_only_the_standard_library():
    imports = re.findall(r"^(?:from|import) (\S+)", Path(engine.__file__).read_text(), re.M)
    assert sorted(set(i.split(".")[0] for i in imports)) == [
        "__future__", "ansible", "ansible_collections", "http", "json", "os", "socket", "ssl", "struct", "urllib"]
