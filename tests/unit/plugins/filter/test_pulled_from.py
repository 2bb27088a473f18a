# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pulled_from: the registry a credential may go to, by the distribution reference rules."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.nimops.multinode.plugins.filter.pulled_from import FilterModule
from ansible_collections.nimops.multinode.plugins.filter.registry_host import FilterModule as RegistryHostFilters

pulled_from = FilterModule().filters()["pulled_from"]
registry_host = RegistryHostFilters().filters()["registry_host"]


@pytest.mark.parametrize("image,registry", [
    ("nvcr.io/nim/meta/llama-3.1-405b-instruct:1.3.0", "nvcr.io"),
    ("NVCR.IO/nim/meta/llama:1", "https://nvcr.io/"),
    ("nvcr.io/nvidia/tritonserver@sha256:" + "0" * 64, "nvcr.io"),
    ("127.0.0.1:5000/nim/tiny:1", "127.0.0.1:5000"),
    ("localhost/nim/tiny", "localhost"),
    ("vllm/vllm-openai:v0.11.0", "docker.io"),
    ("ubuntu", "index.docker.io"),
    ("docker.io/library/ubuntu:24.04", "registry-1.docker.io"),
])
def test_images_from_the_registry(image, registry):
    assert pulled_from(image, registry) is True


@pytest.mark.parametrize("image,registry", [
    # a mirror or another registry never gets nvcr.io's login
    ("mirror.example.com/nvcr.io/nim/meta/llama:1", "nvcr.io"),
    ("nvcr.io.mirror.example.com/nim/meta/llama:1", "nvcr.io"),
    ("127.0.0.1:5001/nim/tiny:1", "127.0.0.1:5000"),
    # no registry part: Docker Hub, even when the first component looks like a name
    ("nvidia/cuda:12.4.0-base-ubuntu22.04", "nvcr.io"),
    ("nvcr.io/nim/meta/llama:1", "docker.io"),
    ("nvcr.io/nim/meta/llama:1", ""),
])
def test_images_from_elsewhere(image, registry):
    assert pulled_from(image, registry) is False


@pytest.mark.parametrize("image", ["", None, "nvcr.io/nim/llama :1"])
def test_a_malformed_reference_is_refused_by_rule(image):
    with pytest.raises(AnsibleFilterError, match=r"\[image_reference\]"):
        pulled_from(image, "nvcr.io")


@pytest.mark.parametrize("written,host", [
    ("nvcr.io", "nvcr.io"),
    ("https://NVCR.io/", "nvcr.io"),
    ("http://127.0.0.1:5000/v2/", "127.0.0.1:5000"),
    ("index.docker.io", "docker.io"),
])
def test_registry_host_is_what_pulled_from_compares(written, host):
    assert registry_host(written) == host
    assert pulled_from(host + "/nim/tiny:1", written) is True
