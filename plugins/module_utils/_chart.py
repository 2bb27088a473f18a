# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE: this module_utils file is internal to nimops.multinode and may change without notice.
"""Pinned chart versions from an authenticated Helm repository (NGC), fetched in-process.

helm's own repository commands take the password as an argument, which would put the NGC key in the process
list; fetching the pinned .tgz here keeps it in memory, and helm then installs the local file.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from urllib.parse import urljoin, urlsplit

from ansible_collections.nimops.multinode.plugins.module_utils._errors import InputError

NGC_REPO = "https://helm.ngc.nvidia.com/nim"
REDIRECT_CODES = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 5
_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url):
    """(scheme, host, port) of a URL, the default port filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme)


def sends_credentials(url, repo_url):
    """Credentials go to the repository's own origin only: not to a chart URL on another host, and not along a
    redirect that leaves it (as Helm >= 3.5.2 does; CVE-2021-21303)."""
    return origin(url) == origin(repo_url)


def check_credentials_transport(repo_url, has_password, allow_http):
    """A password over plain HTTP is readable on the way; refused unless explicitly allowed."""
    if has_password and origin(repo_url)[0] != "https" and not allow_http:
        raise InputError("chart_repo_insecure_credentials",
                         "the chart repository %s is not https, and a password was given for it" % repo_url,
                         "basic auth over plain HTTP shows the password (the NGC API key) to anyone on the path",
                         "use the https URL, or set allow_http_credentials (nim_chart.allow_http_credentials) for "
                         "a repository on a trusted local network")


def redirect_target(url, location):
    """The absolute URL a redirect's Location header points to."""
    return urljoin(url, location)


def chart_entry(index, name, version, repo_url):
    """The index entry of name@version, or a refusal listing the versions the repository has."""
    entries = (index or {}).get("entries") or {}
    versions = entries.get(name) or []
    for entry in versions:
        if str(entry.get("version")) == str(version):
            return entry
    if not versions:
        raise InputError("chart_not_found", "chart %s is not in the repository %s" % (name, repo_url),
                         "the release needs that chart", "check the chart name and repository URL")
    known = ", ".join(sorted(str(e.get("version")) for e in versions)[-10:])
    raise InputError("chart_version_not_found", "chart %s has no version %s in %s (has: %s)" % (
        name, version, repo_url, known), "the chart version is pinned so every run installs the same chart",
        "set the chart version to one the repository serves")


def chart_url(entry, repo_url):
    urls = entry.get("urls") or []
    if not urls:
        raise InputError("chart_no_url", "the index entry of %s %s has no download URL" % (
            entry.get("name"), entry.get("version")), "helm indexes list where each chart is",
            "fix the repository index")
    url = urls[0]
    if "://" in url:
        return url
    return posixpath.join(repo_url.rstrip("/") + "/", url)


def cached_path(dest_dir, name, version, repo_url=""):
    """Per repository: a mirror may serve a different build under the same name and version."""
    repo_key = hashlib.sha256(repo_url.encode()).hexdigest()[:12] if repo_url else ""
    return os.path.join(dest_dir, repo_key, "%s-%s.tgz" % (name, version))


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def needs_download(path, expected_digest):
    """True when the cached file is missing or does not match the index digest."""
    if not os.path.exists(path):
        return True
    return bool(expected_digest) and sha256_file(path) != expected_digest


def verify(data, expected_digest, name, version):
    if expected_digest and hashlib.sha256(data).hexdigest() != expected_digest:
        raise InputError("chart_digest_mismatch", "downloaded %s-%s does not match the index digest" % (
            name, version), "a corrupt or substituted chart must not be installed",
            "retry; if it persists, check the repository or mirror")
