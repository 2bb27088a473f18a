# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import hashlib

import pytest

from ansible_collections.nimops.multinode.plugins.module_utils import _chart
from ansible_collections.nimops.multinode.plugins.module_utils._errors import InputError

INDEX = {"apiVersion": "v1", "entries": {"nim-llm": [
    {"name": "nim-llm", "version": "2.0.1", "digest": "ab", "urls": ["charts/nim-llm-2.0.1.tgz"]},
    {"name": "nim-llm", "version": "2.0.0", "urls": ["https://mirror.example/nim-llm-2.0.0.tgz"]}]}}


@pytest.mark.parametrize("version,url", [
    ("2.0.1", "https://helm.ngc.nvidia.com/nim/charts/nim-llm-2.0.1.tgz"),
    ("2.0.0", "https://mirror.example/nim-llm-2.0.0.tgz"),
])
def test_entry_and_url(version, url):
    entry = _chart.chart_entry(INDEX, "nim-llm", version, _chart.NGC_REPO)
    assert _chart.chart_url(entry, _chart.NGC_REPO) == url


@pytest.mark.parametrize("name,version,rule,text", [
    ("nim-llm", "9.9.9", "chart_version_not_found", "chart nim-llm has no version 9.9.9 in "
                                                    "https://helm.ngc.nvidia.com/nim (has: 2.0.0, 2.0.1)"),
    ("other", "1.0.0", "chart_not_found", "chart other is not in the repository https://helm.ngc.nvidia.com/nim"),
])
def test_refusals(name, version, rule, text):
    with pytest.raises(InputError) as err:
        _chart.chart_entry(INDEX, name, version, _chart.NGC_REPO)
    assert err.value.rule == rule
    assert err.value.what == text


def test_cache_and_digest(tmp_path):
    path = _chart.cached_path(str(tmp_path), "nim-llm", "2.0.1")
    assert path == str(tmp_path / "nim-llm-2.0.1.tgz")
    assert _chart.cached_path("/c", "nim-llm", "2.0.1", "https://a") != \
        _chart.cached_path("/c", "nim-llm", "2.0.1", "https://b")
    assert _chart.needs_download(path, "") is True
    (tmp_path / "nim-llm-2.0.1.tgz").write_bytes(b"chart")
    good = hashlib.sha256(b"chart").hexdigest()
    assert _chart.needs_download(path, good) is False
    assert _chart.needs_download(path, "0" * 64) is True
    assert _chart.verify(b"chart", good, "nim-llm", "2.0.1") is None
    with pytest.raises(InputError):
        _chart.verify(b"other", good, "nim-llm", "2.0.1")
