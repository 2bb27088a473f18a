# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE: this module_utils file is internal to nimops.multinode and may change without notice.
"""Prove that TCP ports are free on a host and reachable from its peers, with real sockets and nothing left behind.

``listen`` binds every port that is free (on the wildcard address, as the services that will use them do) and
accepts until each port has seen the expected number of connections, or a deadline passes. ``reach`` connects from
this host to every target's ports at once. Both ends close with an RST (SO_LINGER 0), so no TIME_WAIT is left on a
port the services bind next. Ports that are already held are named with the process holding them, read from /proc.
"""

from __future__ import annotations

import errno
import os
import resource
import selectors
import socket
import struct
import time

from ansible_collections.nimops.multinode.plugins.module_utils._errors import NimOpsError

_LINGER_RST = struct.pack("ii", 1, 0)
_LISTEN_STATE = "0A"  # TCP_LISTEN in /proc/net/tcp
_SPARE_FDS = 64


def _family(address: str) -> int:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def _close_with_rst(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    except OSError:
        pass  # already reset by the peer
    sock.close()


def _raise_fd_limit(needed: int) -> int:
    """Raise the soft open-files limit towards the hard one; return how many descriptors may be used at once."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed + _SPARE_FDS
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
    return max(1, (soft if soft != resource.RLIM_INFINITY else want) - _SPARE_FDS)


def port_holders(ports, proc: str = "/proc") -> dict:
    """Which process listens on each of ``ports`` in this network namespace: {port: 'pid 12 (comm)'}; a port whose
    socket belongs to no visible process (another PID namespace) is 'a process outside this host's view'."""
    wanted = {int(p) for p in ports}
    inodes = {}
    for table in ("tcp", "tcp6"):
        try:
            with open(os.path.join(proc, "net", table), encoding="ascii") as handle:
                next(handle, None)
                for line in handle:
                    fields = line.split()
                    if len(fields) < 10 or fields[3] != _LISTEN_STATE:
                        continue
                    port = int(fields[1].rsplit(":", 1)[1], 16)
                    if port in wanted:
                        inodes.setdefault(fields[9], port)
        except OSError:
            continue
    holders = {port: "a process outside this host's view" for port in inodes.values()}
    if not inodes:
        return holders
    for pid in (p for p in os.listdir(proc) if p.isdigit()):
        fd_dir = os.path.join(proc, pid, "fd")
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue  # gone, or not ours to read
        for fd in fds:
            try:
                link = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue  # closed meanwhile
            inode = link[len("socket:["):-1] if link.startswith("socket:[") else None
            if inode in inodes:
                try:
                    with open(os.path.join(proc, pid, "comm"), encoding="utf-8") as handle:
                        comm = handle.read().strip()
                except OSError:
                    comm = "?"
                holders[inodes[inode]] = "pid %s (%s)" % (pid, comm)
    return holders


def listen(address: str, ports, expected: int, deadline: float, clock=time.monotonic) -> dict:
    """Bind each free port on the wildcard address of ``address``'s family and accept until every bound port has
    had ``expected`` connections or ``deadline`` seconds have passed.

    Returns {'listened': [ports bound], 'in_use': {port: holder}, 'short': {port: connections seen} for bound ports
    that saw fewer than expected}.
    """
    ports = sorted({int(p) for p in ports})
    _raise_fd_limit(len(ports))
    family = _family(address)
    wildcard = "::" if family == socket.AF_INET6 else "0.0.0.0"
    sel = selectors.DefaultSelector()
    counts, busy = {}, []
    try:
        for port in ports:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((wildcard, port))
                sock.listen(128)
            except OSError as exc:
                sock.close()
                if exc.errno != errno.EADDRINUSE:
                    raise NimOpsError("cannot listen on port %d: %s" % (port, exc.strerror or exc)) from exc
                busy.append(port)
                continue
            sock.setblocking(False)
            sel.register(sock, selectors.EVENT_READ, port)
            counts[port] = 0
        end = clock() + deadline
        waiting = {p for p in counts if counts[p] < expected}
        while waiting and clock() < end:
            for key, _events in sel.select(timeout=max(0.0, min(0.5, end - clock()))):
                try:
                    conn, _peer = key.fileobj.accept()
                except (BlockingIOError, ConnectionAbortedError):
                    continue
                _close_with_rst(conn)
                counts[key.data] += 1
                if counts[key.data] >= expected:
                    waiting.discard(key.data)
    finally:
        for key in list(sel.get_map().values()):
            key.fileobj.close()
        sel.close()
    return {"listened": sorted(counts), "in_use": port_holders(busy) if busy else {},
            "short": {p: n for p, n in sorted(counts.items()) if n < expected}}


def _reason(err: int) -> str:
    if err == errno.ECONNREFUSED:
        return "refused (nothing listens, or a firewall rejects)"
    if err in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "no route (%s)" % os.strerror(err)
    return os.strerror(err)


def reach(targets, timeout: float, refused_grace: float, clock=time.monotonic, sleep=time.sleep) -> list:
    """Connect to every (host, address, port) of ``targets`` ([{host, address, ports}]) at once.

    A refused connection is tried again until ``refused_grace`` seconds have passed (the peer's listener may still be
    starting); a connection that gets no answer within ``timeout`` seconds is given up (a firewall dropping it).
    Returns the failures as [{host, address, port, reason}], sorted.
    """
    pending = [(t["host"], t["address"], int(p)) for t in targets for p in t["ports"]]
    budget = _raise_fd_limit(len(pending))
    start = clock()
    failures = []
    retry_at = {}
    while pending:
        batch, pending = pending[:budget], pending[budget:]
        sel = selectors.DefaultSelector()
        for item in batch:
            wait = retry_at.pop(item, 0) - clock()
            if wait > 0:
                sleep(wait)
            sock = socket.socket(_family(item[1]), socket.SOCK_STREAM)
            sock.setblocking(False)
            err = sock.connect_ex((item[1], item[2]))
            if err not in (0, errno.EINPROGRESS):
                sock.close()
                failures.append((item, err))
                continue
            sel.register(sock, selectors.EVENT_WRITE, (item, clock()))
        while sel.get_map():
            for key, _events in sel.select(timeout=0.2):
                item, _began = key.data
                err = key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                sel.unregister(key.fileobj)
                _close_with_rst(key.fileobj)
                if err in (errno.ECONNRESET, errno.EPIPE):
                    err = 0  # reset after the handshake: the listener took it and closed
                if err == errno.ECONNREFUSED and clock() - start < refused_grace:
                    retry_at[item] = clock() + 0.25
                    pending.append(item)
                elif err:
                    failures.append((item, err))
            now = clock()
            for key in list(sel.get_map().values()):
                item, began = key.data
                if now - began >= timeout:
                    sel.unregister(key.fileobj)
                    _close_with_rst(key.fileobj)
                    failures.append((item, errno.ETIMEDOUT))
        sel.close()
    return sorted(
        ({"host": h, "address": a, "port": p,
          "reason": "no answer within %gs (dropped: a firewall?)" % timeout if err == errno.ETIMEDOUT else _reason(err)}
         for (h, a, p), err in failures), key=lambda f: (f["host"], f["port"]))


def _ranges(ports) -> str:
    """'8076, 10002-10999' for the sorted ports."""
    runs = []
    for port in sorted(set(ports)):
        if runs and port == runs[-1][1] + 1:
            runs[-1][1] = port
        else:
            runs.append([port, port])
    return ", ".join(str(a) if a == b else "%d-%d" % (a, b) for a, b in runs)


def describe_in_use(in_use: dict) -> list:
    """One line per holding process: 'ports 6379, 10001 are held by pid 42 (gcs_server)'."""
    by_holder = {}
    for port, holder in in_use.items():
        by_holder.setdefault(holder, []).append(port)
    lines = []
    for holder, ports in sorted(by_holder.items(), key=lambda kv: min(kv[1])):
        many = len(ports) > 1
        lines.append("port%s %s %s held by %s" % ("s" if many else "", _ranges(ports), "are" if many else "is", holder))
    return lines


def describe_unreachable(failures) -> list:
    """One line per target and reason: 'to node-2 (10.0.0.12) ports 8076, 10002-10999: no answer within 3s ...'."""
    grouped = {}
    for failure in failures:
        grouped.setdefault((failure["host"], failure["address"], failure["reason"]), []).append(failure["port"])
    return ["to %s (%s) port%s %s: %s" % (host, address, "s" if len(ports) > 1 else "", _ranges(ports), reason)
            for (host, address, reason), ports in sorted(grouped.items(), key=lambda kv: (kv[0][0], min(kv[1])))]
