# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE: this module_utils file is internal to nimops.multinode and may change without notice.
"""Read a container's state and the tail of its log from the Docker Engine API (Docker or Podman's
Docker-compatible service), with the Python standard library only.

community.docker's Python code is private to it (from 5.0.0 on), and its public modules do not return logs, so
docker_logs speaks the Engine API itself: two GET requests over the engine's Unix socket, or TCP with or without
TLS. The connection options and their environment variables are community.docker's (same names, same defaults),
so a task written for its modules works here too. Errors become ``EngineError``.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import struct
from urllib.parse import quote, urlencode, urlsplit

from ansible.module_utils.basic import env_fallback

from ansible_collections.nimops.multinode.plugins.module_utils._docker_wait import container_state_summary
from ansible_collections.nimops.multinode.plugins.module_utils._errors import NimOpsError

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"

# community.docker's connection options (doc fragment community.docker.docker.api_documentation), with the same
# names, aliases, defaults and environment variables.
ENGINE_ARGSPEC = {
    "docker_host": {"type": "str", "default": DEFAULT_DOCKER_HOST, "fallback": (env_fallback, ["DOCKER_HOST"]),
                    "aliases": ["docker_url"]},
    "tls_hostname": {"type": "str", "fallback": (env_fallback, ["DOCKER_TLS_HOSTNAME"])},
    "api_version": {"type": "str", "default": "auto", "fallback": (env_fallback, ["DOCKER_API_VERSION"]),
                    "aliases": ["docker_api_version"]},
    "timeout": {"type": "int", "default": 60, "fallback": (env_fallback, ["DOCKER_TIMEOUT"])},
    "ca_path": {"type": "path", "aliases": ["ca_cert", "tls_ca_cert", "cacert_path"]},
    "client_cert": {"type": "path", "aliases": ["tls_client_cert", "cert_path"]},
    "client_key": {"type": "path", "aliases": ["tls_client_key", "key_path"]},
    "tls": {"type": "bool", "default": False, "fallback": (env_fallback, ["DOCKER_TLS"])},
    "use_ssh_client": {"type": "bool", "default": False},
    "validate_certs": {"type": "bool", "default": False, "fallback": (env_fallback, ["DOCKER_TLS_VERIFY"]),
                       "aliases": ["tls_verify"]},
    "debug": {"type": "bool", "default": False},
}
ENGINE_REQUIRED_TOGETHER = [("client_cert", "client_key")]

DOCKER_LOGS_ARGSPEC = dict(
    {"name": {"type": "str", "required": True}, "tail": {"type": "int", "default": 60}},
    **ENGINE_ARGSPEC)

# Stream types of the Engine API's multiplexed log stream (stdin, stdout, stderr).
_STREAMS = (0, 1, 2)


class EngineError(NimOpsError):
    """The engine's API could not be reached, or refused a request."""


class _ApiRefused(Exception):
    """An HTTP error status from the engine (becomes an EngineError)."""

    def __init__(self, status, message):
        super().__init__("HTTP %s: %s" % (status, message))


def _address_error(docker_host, why, fix):
    return EngineError("docker_host", "docker_host %s cannot be used" % docker_host, why, fix)


def connection(params, environ=None):
    """Where and how to reach the engine, from the module's parameters (environment fallbacks applied) and, for
    the certificate paths, ``DOCKER_CERT_PATH``.

    Returns a dict: ``scheme`` (unix, http or https), ``path`` (the socket) or ``host`` and ``port``, ``prefix``
    (the API version path), ``timeout``, and for https ``verify``, ``ca_path``, ``client_cert``, ``client_key``
    and ``server_hostname``.
    """
    environ = os.environ if environ is None else environ
    docker_host = params["docker_host"] or DEFAULT_DOCKER_HOST
    use_tls = bool(params["tls"] or params["validate_certs"])
    version = params["api_version"] or "auto"
    settings = {"docker_host": docker_host, "timeout": params["timeout"],
                "prefix": "" if version == "auto" else "/v" + version.lstrip("v")}
    if docker_host.startswith("unix://"):
        if not docker_host[len("unix://"):]:
            raise _address_error(docker_host, "it names no socket", "set docker_host to unix:///path/to/engine.sock")
        settings.update(scheme="unix", path=docker_host[len("unix://"):])
        return settings
    scheme = next((s for s in ("tcp", "http", "https") if docker_host.startswith(s + "://")), None)
    if scheme is None:
        raise _address_error(docker_host, "only unix://, tcp://, http:// and https:// engine addresses are supported "
                             "(ssh:// and npipe:// are not)",
                             "run the task on the engine's host with its Unix socket, or use tcp:// with TLS")
    parsed = urlsplit(docker_host)
    try:
        port = parsed.port
    except ValueError as exc:
        raise _address_error(docker_host, "its port is not a number (%s)" % exc, "write it as tcp://host:2376")
    if not parsed.hostname:
        raise _address_error(docker_host, "it names no host", "write it as tcp://host:2376")
    https = scheme == "https" or (scheme == "tcp" and use_tls)
    settings.update(scheme="https" if https else "http", host=parsed.hostname,
                    port=port or (2376 if https else 2375), prefix=parsed.path.rstrip("/") + settings["prefix"])
    if https:
        cert_dir = environ.get("DOCKER_CERT_PATH")

        def from_cert_dir(value, name):
            return value or (os.path.join(cert_dir, name) if cert_dir else None)

        settings.update(verify=bool(params["validate_certs"]),
                        ca_path=from_cert_dir(params["ca_path"], "ca.pem"),
                        client_cert=from_cert_dir(params["client_cert"], "cert.pem"),
                        client_key=from_cert_dir(params["client_key"], "key.pem"),
                        server_hostname=params["tls_hostname"] or parsed.hostname)
    return settings


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self._socket_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class _TLSConnection(http.client.HTTPSConnection):
    """HTTPS whose certificate is checked against ``server_hostname`` (tls_hostname) rather than the address."""

    def __init__(self, host, port, timeout, context, server_hostname):
        super().__init__(host, port, timeout=timeout, context=context)
        self._server_hostname = server_hostname

    def connect(self):
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self._server_hostname)


def _tls_context(settings):
    context = ssl.create_default_context(cafile=settings["ca_path"]) if settings["verify"] \
        else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if not settings["verify"]:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if settings["client_cert"] and settings["client_key"]:
        context.load_cert_chain(settings["client_cert"], settings["client_key"])
    return context


def _open(settings):
    if settings["scheme"] == "unix":
        return _UnixHTTPConnection(settings["path"], settings["timeout"])
    if settings["scheme"] == "http":
        return http.client.HTTPConnection(settings["host"], settings["port"], timeout=settings["timeout"])
    return _TLSConnection(settings["host"], settings["port"], settings["timeout"], _tls_context(settings),
                          settings["server_hostname"])


def _engine_message(body):
    """The engine's own error text ({"message": ...}), or the body."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        return json.loads(text).get("message") or text
    except (ValueError, AttributeError):
        return text


def get(settings, path, query=None):
    """``(status, body)`` of one GET request to the engine. OSError and http.client errors propagate."""
    conn = _open(settings)
    try:
        conn.request("GET", settings["prefix"] + path + ("?" + urlencode(query) if query else ""))
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _unanswered(what, settings, exc):
    """The refusal for a request the engine did not answer or refused."""
    return EngineError(
        "docker_api", "could not read %s from %s: %s" % (what, settings["docker_host"], exc),
        "the engine's API did not answer, or refused the request",
        "check that the Docker or Podman service runs on the host and that docker_host (or DOCKER_HOST) "
        "names its socket")


def demux(raw):
    """The bytes of the Engine API's multiplexed log stream (8-byte frame headers: stream, 0, 0, 0, big-endian
    length), stdout and stderr in the order they were written. Data that is not framed is returned as it is."""
    chunks, pos = [], 0
    while pos < len(raw):
        header = raw[pos:pos + 8]
        if len(header) < 8 or header[0] not in _STREAMS or header[1:4] != b"\0\0\0":
            chunks.append(raw[pos:])
            break
        size = struct.unpack(">I", header[4:])[0]
        chunks.append(raw[pos + 8:pos + 8 + size])
        pos += 8 + size
    return b"".join(chunks)


def log_lines(raw, tty, tail):
    """The last ``tail`` lines of a log body: a TTY container's log is raw, any other is multiplexed."""
    text = (raw if tty else demux(raw)).decode("utf-8", errors="replace")
    return text.splitlines()[-tail:]


def container_logs(params, environ=None):
    """``{"exists": False}``, or ``{"exists": True, "state": ..., "lines": [...]}`` for container ``params["name"]``."""
    name, tail = params["name"], params["tail"]
    settings = connection(params, environ)
    try:
        status, body = get(settings, "/containers/%s/json" % quote(name, safe=""))
        if status == 404:
            return {"exists": False}
        if status >= 400:
            raise _ApiRefused(status, _engine_message(body))
        container = json.loads(body)
        status, body = get(settings, "/containers/%s/logs" % quote(container["Id"], safe=""),
                           {"stdout": 1, "stderr": 1, "tail": str(tail), "timestamps": 0})
        if status >= 400:
            raise _ApiRefused(status, _engine_message(body))
    except (OSError, http.client.HTTPException, ValueError, KeyError, _ApiRefused) as exc:
        # OSError covers connection refused, a missing socket, timeouts and TLS errors (ssl.SSLError)
        raise _unanswered("the logs of container %s" % name, settings, exc)
    tty = bool((container.get("Config") or {}).get("Tty"))
    return {"exists": True, "state": container_state_summary(container), "lines": log_lines(body, tty, tail)}


# The NVIDIA Container Toolkit's OCI hook: Docker Engine registers its "nvidia" device driver (the one GPU device
# requests name) only when this is in dockerd's PATH.
NVIDIA_HOOK = "nvidia-container-runtime-hook"


def engine_identity(version, nvidia_hook):
    """What the engine is and whether it attaches GPUs by device request, from its ``GET /version`` answer and
    the path of the NVIDIA hook on the host ('' when absent).

    Podman's Docker-compatible API accepts device requests and ignores them, and takes no CDI device names (seen
    with Podman 4.3): its containers would start without GPUs.
    """
    names = [str(c.get("Name", "")) for c in version.get("Components") or []]
    engine = "podman" if any("podman" in name.lower() for name in names) else "docker"
    return {"engine": engine, "version": str(version.get("Version", "")),
            "api_version": str(version.get("ApiVersion", "")), "nvidia_hook": nvidia_hook,
            "gpu_device_requests": engine == "docker" and bool(nvidia_hook)}


def engine_info(params, which, environ=None):
    """``engine_identity`` of the engine at ``params``' address; ``which`` finds a program in PATH."""
    settings = connection(params, environ)
    try:
        status, body = get(settings, "/version")
        if status >= 400:
            raise _ApiRefused(status, _engine_message(body))
        version = json.loads(body)
    except (OSError, http.client.HTTPException, ValueError, _ApiRefused) as exc:
        raise _unanswered("the engine's version", settings, exc)
    return engine_identity(version, which(NVIDIA_HOOK) or "")
