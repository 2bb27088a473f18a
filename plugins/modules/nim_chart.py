#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: nim_chart
short_description: Fetch a pinned chart version from an authenticated Helm repository (NGC by default)
version_added: 0.1.0
description:
  - Reads the repository's C(index.yaml) with basic auth (NGC - user C($oauthtoken), password the NGC API key),
    finds the pinned version, downloads the C(.tgz) into a local cache and checks its digest.
  - The password stays in memory; it never appears in a command line, a file or the result. It is sent only to
    the repository's own origin (scheme, host and port of O(repo_url)); a chart URL in the index that points at
    another host, or a redirect that leaves the origin, is fetched without it.
  - A password for an C(http://) repository is refused unless O(allow_http_credentials) is set.
    Install the returned RV(path) with M(kubernetes.core.helm).
  - A cached file whose digest matches the index is not downloaded again.
  - Filling the cache is reported as RV(downloaded), not as a change; the cache is the controller's working
    state, not the managed system, and execution environments start each job with an empty one (AWX), so a
    re-run that changes nothing on the cluster still reports C(changed=false).
author:
  - nimops maintainers (@nimops)
attributes:
  check_mode:
    support: full
    description: >-
      Downloads in check mode too: the file goes only to the local chart cache, and helm needs it to tell
      what would change.
  diff_mode:
    support: none
    description: A cache file; nothing to compare.
options:
  repo_url:
    description: Helm repository URL (the folder that holds C(index.yaml)).
    type: str
    default: https://helm.ngc.nvidia.com/nim
  name:
    description: Chart name.
    type: str
    default: nim-llm
  version:
    description: Chart version, pinned.
    type: str
    required: true
  username:
    description: Repository user.
    type: str
    default: $oauthtoken
  password:
    description: Repository password (the NGC API key for NGC). Omit for a repository without auth.
    type: str
  allow_http_credentials:
    description: Send the password to an C(http://) repository (readable on the network; a trusted local mirror only).
    type: bool
    default: false
  dest:
    description: Cache folder for charts.
    type: path
    default: ~/.cache/nimops/charts
  validate_certs:
    description: Verify the repository's TLS certificate.
    type: bool
    default: true
  timeout:
    description: Seconds for each HTTP request.
    type: int
    default: 60
"""

EXAMPLES = r"""
- name: Fetch nim-llm from NGC
  nimops.multinode.nim_chart:
    version: "2.0.1"
    password: "{{ lookup('ansible.builtin.env', 'NGC_API_KEY') }}"
  register: chart
"""

RETURN = r"""
path:
  description: Local path of the chart archive.
  returned: success
  type: str
  sample: /root/.cache/nimops/charts/3f9a0c2e1b7d/nim-llm-2.0.1.tgz
digest:
  description: SHA-256 of the archive as the index lists it (empty when the index has none).
  returned: success
  type: str
url:
  description: Where the archive was downloaded from.
  returned: success
  type: str
downloaded:
  description: Whether the archive was fetched in this run (false when the cached copy matched).
  returned: success
  type: bool
"""

import os

from urllib.error import HTTPError

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.urls import open_url

from ansible_collections.nimops.multinode.plugins.module_utils import _chart
from ansible_collections.nimops.multinode.plugins.module_utils._errors import InputError, NimOpsError

try:
    import yaml
    HAS_YAML = True
except ImportError:
    HAS_YAML = False


def _get(module, url):
    """GET url, following redirects here so that the credentials go to the repository's origin only."""
    p = module.params
    for _hop in range(_chart.MAX_REDIRECTS + 1):
        auth = bool(p["password"]) and _chart.sends_credentials(url, p["repo_url"])
        try:
            resp = open_url(url, url_username=p["username"] if auth else None, url_password=p["password"] if auth else None,
                            force_basic_auth=auth, follow_redirects="none",
                            validate_certs=p["validate_certs"], timeout=p["timeout"])
            return resp.read()
        except HTTPError as exc:
            location = exc.headers.get("Location") if exc.headers else None
            if exc.code in _chart.REDIRECT_CODES and location:
                url = _chart.redirect_target(url, location)
                continue
            _fetch_failed(url, exc)
        except Exception as exc:  # urllib raises several types; the message names the URL
            _fetch_failed(url, exc)
    raise InputError("chart_fetch", "GET %s: more than %d redirects" % (url, _chart.MAX_REDIRECTS),
                     "the repository redirects in a loop", "check the repository URL")


def _fetch_failed(url, exc):
    code = getattr(exc, "code", None)
    why = "the repository refused the credentials" if code in (401, 403) else "the repository is unreachable"
    fix = "check the NGC API key (user $oauthtoken)" if code in (401, 403) else "check the URL and network"
    raise InputError("chart_fetch", "GET %s failed: %s" % (url, code or type(exc).__name__), why, fix)


def run(module):
    p = module.params
    _chart.check_credentials_transport(p["repo_url"], bool(p["password"]), p["allow_http_credentials"])
    index = yaml.safe_load(_get(module, p["repo_url"].rstrip("/") + "/index.yaml"))
    entry = _chart.chart_entry(index, p["name"], p["version"], p["repo_url"])
    url = _chart.chart_url(entry, p["repo_url"])
    digest = entry.get("digest") or ""
    path = _chart.cached_path(p["dest"], p["name"], p["version"], p["repo_url"])
    if not _chart.needs_download(path, digest):
        return dict(changed=False, downloaded=False, path=path, digest=digest, url=url)
    data = _get(module, url)
    _chart.verify(data, digest, p["name"], p["version"])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".part"
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)
    return dict(changed=False, downloaded=True, path=path, digest=digest, url=url)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            repo_url=dict(type="str", default=_chart.NGC_REPO),
            name=dict(type="str", default="nim-llm"),
            version=dict(type="str", required=True),
            username=dict(type="str", default="$oauthtoken"),
            password=dict(type="str", no_log=True),
            allow_http_credentials=dict(type="bool", default=False),
            dest=dict(type="path", default="~/.cache/nimops/charts"),
            validate_certs=dict(type="bool", default=True),
            timeout=dict(type="int", default=60),
        ),
        supports_check_mode=True,
    )
    if not HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"))
    try:
        module.exit_json(**run(module))
    except NimOpsError as exc:
        module.fail_json(**exc.to_result())


if __name__ == "__main__":
    main()
