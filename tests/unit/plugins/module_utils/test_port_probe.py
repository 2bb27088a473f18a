# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The port probe on real loopback sockets: a listener that peers reach, a port already held (named with its
process), a port nobody listens on, and nothing left listening afterwards."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from ansible_collections.nimops.multinode.plugins.module_utils._port_probe import (
    describe_in_use, describe_unreachable, listen, port_holders, reach)


def free_ports(count: int) -> list:
    socks = [socket.socket() for _index in range(count)]
    for sock in socks:
        sock.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for sock in socks:
        sock.close()
    return ports


def in_background(func, *args) -> dict:
    out = {}
    thread = threading.Thread(target=lambda: out.update(result=func(*args)))
    thread.start()
    out["thread"] = thread
    return out


def assert_not_listening(port: int) -> None:
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, port


def test_peers_reach_every_listened_port_and_the_listener_ends_early():
    ports = free_ports(3)
    job = in_background(listen, "127.0.0.1", ports, 2, 20)
    for _peer in range(2):
        assert reach([{"host": "self", "address": "127.0.0.1", "ports": ports}], 2, 5) == []
    job["thread"].join(10)
    assert not job["thread"].is_alive(), "the listener did not end when every port had its connections"
    assert job["result"] == {"listened": sorted(ports), "in_use": {}, "short": {}}
    for port in ports:
        assert_not_listening(port)
    # closed with a reset: the ports bind again at once, without SO_REUSEADDR
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("0.0.0.0", port))


def test_a_held_port_is_named_with_its_process_and_not_listened():
    held, free = free_ports(2)
    holder = socket.socket()
    holder.bind(("127.0.0.1", held))
    holder.listen(1)
    try:
        result = listen("127.0.0.1", [held, free], 0, 1)
    finally:
        holder.close()
    assert result["listened"] == [free]
    comm = open("/proc/self/comm", encoding="utf-8").read().strip()
    assert result["in_use"] == {held: "pid %d (%s)" % (os.getpid(), comm)}


def test_a_port_short_of_connections_is_reported_after_the_deadline():
    port = free_ports(1)[0]
    assert listen("127.0.0.1", [port], 1, 0.3) == {"listened": [port], "in_use": {}, "short": {port: 0}}


def test_a_port_nobody_listens_on_is_named_refused_after_the_grace():
    port = free_ports(1)[0]
    assert reach([{"host": "peer-a", "address": "127.0.0.1", "ports": [port]}], 1, 0.5) == [
        {"host": "peer-a", "address": "127.0.0.1", "port": port,
         "reason": "refused (nothing listens, or a firewall rejects)"}]


def test_a_listener_that_starts_late_is_still_reached_within_the_grace():
    port = free_ports(1)[0]
    timer = threading.Timer(0.6, lambda: in_background(listen, "127.0.0.1", [port], 1, 10))
    timer.start()
    try:
        assert reach([{"host": "peer-a", "address": "127.0.0.1", "ports": [port]}], 1, 5) == []
    finally:
        timer.join()


def test_a_connection_that_gets_no_answer_is_named_as_dropped():
    """A full accept queue makes the kernel drop further SYNs, as a firewall's drop rule does."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = [socket.create_connection(("127.0.0.1", port), timeout=5)]  # the one the queue holds
    try:
        assert reach([{"host": "peer-c", "address": "127.0.0.1", "ports": [port]}], 0.5, 0) == [
            {"host": "peer-c", "address": "127.0.0.1", "port": port,
             "reason": "no answer within 0.5s (dropped: a firewall?)"}]
    finally:
        for sock in fillers + [server]:
            sock.close()


@pytest.mark.parametrize("table, line, port", [
    ("tcp", "   0: 00000000:18EB 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 999001 1", 6379),
    ("tcp6", "   0: 00000000000000000000000000000000:1F95 00000000000000000000000000000000:0000 0A 00000000:00000000 "
             "00:00000000 00000000     0        0 999002 1", 8085),
])
def test_holders_come_from_the_listen_table(tmp_path, table, line, port):
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / table).write_text("header\n" + line + "\n")
    (tmp_path / "77" / "fd").mkdir(parents=True)
    (tmp_path / "77" / "comm").write_text("redis-server\n")
    os.symlink("socket:[%s]" % line.split()[9], tmp_path / "77" / "fd" / "5")
    assert port_holders([port, 1], proc=str(tmp_path)) == {port: "pid 77 (redis-server)"}


def test_a_socket_of_no_visible_process_is_said_so(tmp_path):
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "tcp").write_text(
        "header\n   0: 00000000:18EB 00000000:0000 0A 0:0 00:0 0 0 0 424242 1\n")
    assert port_holders([6379], proc=str(tmp_path)) == {6379: "a process outside this host's view"}


def test_problems_are_told_per_holder_and_per_target_with_port_ranges():
    assert describe_in_use({6379: "pid 9 (redis-server)", 10001: "pid 9 (redis-server)", 8076: "pid 3 (nc)"}) == [
        "ports 6379, 10001 are held by pid 9 (redis-server)", "port 8076 is held by pid 3 (nc)"]
    dropped = "no answer within 3s (dropped: a firewall?)"
    failures = [{"host": "n2", "address": "10.0.0.12", "port": p, "reason": dropped} for p in [8076, *range(10002, 11000)]]
    failures.append({"host": "n2", "address": "10.0.0.12", "port": 8077, "reason": "refused (nothing listens, or a firewall rejects)"})
    failures.append({"host": "n1", "address": "10.0.0.11", "port": 6379, "reason": dropped})
    assert describe_unreachable(failures) == [
        "to n1 (10.0.0.11) port 6379: " + dropped,
        "to n2 (10.0.0.12) ports 8076, 10002-10999: " + dropped,
        "to n2 (10.0.0.12) port 8077: refused (nothing listens, or a firewall rejects)"]
