# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE: this module_utils file is internal to nimops.multinode and may change without notice.
"""Which registry an image reference is pulled from, so that a registry's credential goes to that registry only."""

from __future__ import annotations

from ansible_collections.nimops.multinode.plugins.module_utils._errors import InputError

# Docker Hub's names; an engine sends a reference without a registry part there.
_DOCKER_HUB = ("docker.io", "index.docker.io", "registry-1.docker.io")


def registry_host(registry):
    """A registry as written by a user (C(nvcr.io), C(https://nvcr.io/), C(host:5000)) -> its host[:port], lower case."""
    host = str(registry or "").strip().lower()
    for scheme in ("https://", "http://"):
        if host.startswith(scheme):
            host = host[len(scheme):]
    host = host.split("/", 1)[0]
    return "docker.io" if host in _DOCKER_HUB else host


def image_registry(image):
    """The registry host[:port] an engine pulls ``image`` from (the distribution reference rules: the first path
    component is a registry when it holds a dot or a colon or is C(localhost), else the image is on Docker Hub)."""
    ref = str(image or "").strip()
    if not ref or any(c.isspace() for c in ref):
        raise InputError("image_reference", "the image reference %r is empty or holds whitespace" % ref,
                         "the engine cannot tell which registry to pull it from",
                         "give the image as [registry/]repository[:tag|@digest], e.g. nvcr.io/nim/meta/llama:1.0")
    first, sep, _rest = ref.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return registry_host(first)
    return "docker.io"


def pulled_from(image, registry):
    """True when ``image`` is pulled from ``registry`` (a login for that registry is the one its pull needs)."""
    return bool(registry_host(registry)) and image_registry(image) == registry_host(registry)
