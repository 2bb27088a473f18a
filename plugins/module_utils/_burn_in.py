# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE: this module_utils file is internal to nimops.multinode and may change without notice.
"""The link burn-in's result (roles/docker_ray_cluster/files/link_burn_in.py) read and summed up: which link and which
host are the slowest, as a report and as lines for the screen."""

from __future__ import annotations

import json

from ansible_collections.nimops.multinode.plugins.module_utils._errors import InputError

MARKER = "BURN_IN_RESULT "


def parse_output(text):
    """The result the leader's container printed (its last BURN_IN_RESULT line)."""
    lines = [line[len(MARKER):] for line in (text or "").splitlines() if line.startswith(MARKER)]
    if not lines:
        raise InputError("burn_in_no_result", "the leader's burn-in printed no result",
                         "the burn-in did not finish on every member", "see the burn-in containers' output above")
    return json.loads(lines[-1])


def summary(result):
    """The result with ``slowest_link`` (the pair with the least bandwidth), ``slowest_host`` (the host whose links,
    in and out, have the least mean bandwidth; None with fewer than 3 hosts) and ``table`` (one line per link,
    slowest first)."""
    links = sorted(result.get("links") or [], key=lambda link: (link["gbit_s"], link["from"], link["to"]))
    if not links:
        return dict(result, slowest_link=None, slowest_host=None, table=[])
    per_host = {}
    for link in links:
        for host in (link["from"], link["to"]):
            per_host.setdefault(host, []).append(link["gbit_s"])
    means = dict((host, sum(rates) / len(rates)) for host, rates in per_host.items())
    # with two hosts each one is in every link: only a link can be named
    slowest_host = min(sorted(means), key=lambda host: means[host]) if len(means) > 2 else None
    width = max(len(link["from"]) + len(link["to"]) for link in links) + 4
    table = ["%-*s %10.3f Gbit/s" % (width, "%s -> %s" % (link["from"], link["to"]), link["gbit_s"])
             for link in links]
    table.append("all-reduce (%s, %d MiB): %.3f Gbit/s bus bandwidth" % (
        result.get("backend"), result.get("mib", 0), result.get("all_reduce_bus_gbit_s", 0)))
    table.append("slowest link: %s -> %s" % (links[0]["from"], links[0]["to"]) + (
        "; slowest host: %s (mean of its links %.3f Gbit/s)" % (slowest_host, means[slowest_host])
        if slowest_host else ""))
    return dict(result, links=links, slowest_link=links[0], slowest_host=slowest_host, table=table)


def burn_in_summary(text):
    """Filter: the leader's output in, the summed-up report out."""
    return summary(parse_output(text))
