# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nim_chart sends the repository password to the repository's own origin only: two HTTP servers on loopback (two
ports, so two origins) record the headers they receive; one is the repository, the other the host an index entry
or a redirect points at."""

from __future__ import annotations

import base64
import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from ansible_collections.nimops.multinode.plugins.module_utils._chart import sends_credentials
from ansible_collections.nimops.multinode.plugins.module_utils._errors import InputError
from ansible_collections.nimops.multinode.plugins.modules import nim_chart

PASSWORD = "nvapi-FAKE-chart-credentials-0000"
CHART = b"fake chart archive bytes"
DIGEST = hashlib.sha256(CHART).hexdigest()
AUTH = "Basic " + base64.b64encode(("$oauthtoken:" + PASSWORD).encode()).decode()


class Server:
    """A loopback HTTP server answering from a dict path -> (status, headers, body); records what it received."""

    def __init__(self):
        self.routes, self.seen = {}, []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802  (http.server's name)
                owner.seen.append((self.path, self.headers.get("Authorization")))
                status, headers, body = owner.routes.get(self.path, (404, {}, b"not found"))
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers():
    repo, other = Server(), Server()
    yield repo, other
    repo.close()
    other.close()


def index(chart_url):
    return ("apiVersion: v1\nentries:\n  nim-llm:\n  - name: nim-llm\n    version: 2.0.0\n    digest: %s\n"
            "    urls: [%s]\n" % (DIGEST, chart_url)).encode()


def fetch(tmp_path, repo_url, allow_http=True, password=PASSWORD):
    params = dict(repo_url=repo_url, name="nim-llm", version="2.0.0", username="$oauthtoken", password=password,
                  dest=str(tmp_path), validate_certs=True, timeout=10, allow_http_credentials=allow_http)
    return nim_chart.run(SimpleNamespace(params=params))


def test_chart_on_another_host_gets_no_credentials(servers, tmp_path):
    repo, other = servers
    repo.routes["/index.yaml"] = (200, {}, index(other.url + "/charts/nim-llm-2.0.0.tgz"))
    other.routes["/charts/nim-llm-2.0.0.tgz"] = (200, {}, CHART)
    result = fetch(tmp_path, repo.url)
    assert result["downloaded"] is True and result["url"] == other.url + "/charts/nim-llm-2.0.0.tgz"
    assert repo.seen == [("/index.yaml", AUTH)]
    assert other.seen == [("/charts/nim-llm-2.0.0.tgz", None)]


def test_redirect_off_the_origin_drops_the_credentials(servers, tmp_path):
    repo, other = servers
    repo.routes["/index.yaml"] = (302, {"Location": other.url + "/mirror/index.yaml"}, b"")
    other.routes["/mirror/index.yaml"] = (200, {}, index("nim-llm-2.0.0.tgz"))
    repo.routes["/nim-llm-2.0.0.tgz"] = (307, {"Location": "/blobs/nim-llm.tgz"}, b"")  # same origin: keeps them
    repo.routes["/blobs/nim-llm.tgz"] = (200, {}, CHART)
    fetch(tmp_path, repo.url)
    assert other.seen == [("/mirror/index.yaml", None)]
    assert repo.seen == [("/index.yaml", AUTH), ("/nim-llm-2.0.0.tgz", AUTH), ("/blobs/nim-llm.tgz", AUTH)]


def test_redirect_loop_is_bounded(servers, tmp_path):
    repo, _other = servers
    repo.routes["/index.yaml"] = (302, {"Location": "/index.yaml"}, b"")
    with pytest.raises(InputError, match="more than 5 redirects"):
        fetch(tmp_path, repo.url)
    assert len(repo.seen) == 6


def test_password_over_plain_http_is_refused_unless_allowed(servers, tmp_path):
    repo, _other = servers
    with pytest.raises(InputError) as refused:
        fetch(tmp_path, repo.url, allow_http=False)
    assert refused.value.rule == "chart_repo_insecure_credentials"
    assert repo.seen == []  # refused before any request
    repo.routes["/index.yaml"] = (200, {}, index("nim-llm-2.0.0.tgz"))
    repo.routes["/nim-llm-2.0.0.tgz"] = (200, {}, CHART)
    assert fetch(tmp_path, repo.url, allow_http=False, password=None)["downloaded"] is True
    assert repo.seen == [("/index.yaml", None), ("/nim-llm-2.0.0.tgz", None)]


@pytest.mark.parametrize("url,expected", [
    ("https://helm.ngc.nvidia.com/nim/nim-llm-2.0.0.tgz", True),
    ("https://HELM.ngc.nvidia.com:443/nim/x.tgz", True),
    ("http://helm.ngc.nvidia.com/nim/x.tgz", False),
    ("https://helm.ngc.nvidia.com:8443/nim/x.tgz", False),
    ("https://helm.ngc.nvidia.com.example.net/nim/x.tgz", False),
    ("https://user@evil.example/helm.ngc.nvidia.com/x.tgz", False),
])
def test_credentials_follow_the_origin_only(url, expected):
    assert sends_credentials(url, "https://helm.ngc.nvidia.com/nim") is expected
