# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The link burn-in's output summed up: the slowest link and the slowest host."""

from __future__ import annotations

import json

import pytest

from ansible_collections.nimops.multinode.plugins.module_utils._burn_in import burn_in_summary, summary
from ansible_collections.nimops.multinode.plugins.module_utils._errors import InputError


def result(rates):
    hosts = sorted(set(h for pair in rates for h in pair))
    return {"backend": "gloo", "mib": 8, "hosts": hosts, "all_reduce_bus_gbit_s": 1.5,
            "links": [{"from": a, "to": b, "gbit_s": rate} for (a, b), rate in rates.items()]}


def test_a_throttled_host_is_the_slowest_even_when_one_other_link_is_slower():
    rates = {(a, b): 9.0 for a in "wxyz" for b in "wxyz" if a != b}
    rates.update({("y", "w"): 0.04, ("y", "x"): 0.05, ("y", "z"): 0.05})  # y sends slowly to everyone
    rates[("w", "z")] = 0.03  # one bad link elsewhere
    found = summary(result(rates))
    assert found["slowest_link"] == {"from": "w", "to": "z", "gbit_s": 0.03}
    assert found["slowest_host"] == "y"
    assert [link["gbit_s"] for link in found["links"]][:4] == [0.03, 0.04, 0.05, 0.05]
    assert found["table"][0].split() == ["w", "->", "z", "0.030", "Gbit/s"]
    assert found["table"][-2] == "all-reduce (gloo, 8 MiB): 1.500 Gbit/s bus bandwidth"
    assert found["table"][-1].startswith("slowest link: w -> z; slowest host: y (mean of its links")


def test_the_result_line_is_found_among_other_output_and_its_absence_is_named():
    line = "BURN_IN_RESULT " + json.dumps(result({("a", "b"): 2.0, ("b", "a"): 1.0}))
    found = burn_in_summary("some warning\n" + line + "\n")
    assert found["slowest_link"]["from"] == "b" and len(found["links"]) == 2
    # two hosts share every link: no host can be named
    assert found["slowest_host"] is None and found["table"][-1] == "slowest link: b -> a"
    with pytest.raises(InputError, match=r"\[burn_in_no_result\]"):
        burn_in_summary("Traceback (most recent call last):\nRuntimeError: connect() timed out")


def test_no_links_no_verdict():
    assert summary({"links": []})["slowest_host"] is None
