"""Simulated bare-metal hosts: network namespaces on a bridge, each with its own sshd and container engine.

Every host is a network namespace with one address on the bridge (10.77.0.0/24) plus a private mount
namespace in which /etc/nimops and /var/lib/nimops are that host's own directories, so files a role writes on
one host are not seen on another. Each host runs:
  - sshd listening on its address only (Ansible connects over SSH with a generated key), whose sessions get
    DOCKER_HOST pointing at the host's engine;
  - `podman system service` (Docker-compatible API) with its own storage and runtime directories, entered
    with nsenter (not `ip netns exec`, which remounts /sys and breaks cgroups), so `--network host`
    containers see the host's address. Images come read-only from a shared store built by build-image.sh.
  - or, with NIMOPS_SIMHOSTS_ENGINE=docker, Docker Engine (Debian's docker.io: dockerd with its own containerd),
    one data root, exec root and socket per host. Docker cannot read another engine's store: the test image is
    loaded into each host's data root once, which is kept (beside the image cache, keyed by it) across up/down.

Processes are started with setsid, their PIDs recorded in $STATE/pids.json, and stopped by PID.
Usage: [NIMOPS_SIMHOSTS_ENGINE=podman|docker] simhosts.py up [--hosts N] | down | status | inventory
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# NIMOPS_SIMHOSTS_SET=N (1-9) gives an independent set of hosts beside the default one (set 0): its own state
# dir, bridge, subnet 10.77.N.0/24, host and veth names (the benchmarks use one so they disturb no test).
SET = int(os.environ.get("NIMOPS_SIMHOSTS_SET", "0"))
STATE = Path(os.environ.get("NIMOPS_SIMHOSTS_STATE", "/run/nimops-simhosts" + (f"-{SET}" if SET else "")))
BRIDGE = f"nimopsbr{SET}"
NET_PREFIX = f"10.77.{SET}"
HOST_PREFIX = "simhost" if not SET else f"simhost{SET}x"
VETH_TAG = "" if not SET else f"{SET}x"
GATEWAY = f"{NET_PREFIX}.1"
FIRST_HOST_OCTET = 11
# Paths that are private per simulated host (bind-mounted inside the host's mount namespace).
PRIVATE_DIRS = ("/etc/nimops", "/var/lib/nimops")
DEFAULT_ULIMITS = ["nofile=1024:1024", "nproc=4096:4096"]
ENGINE = os.environ.get("NIMOPS_SIMHOSTS_ENGINE", "podman")
ENGINES = ("podman", "docker")


def host_name(i: int) -> str:
    return f"{HOST_PREFIX}{i}"


def host_ip(i: int) -> str:
    return f"{NET_PREFIX}.{FIRST_HOST_OCTET + i - 1}"


def run(argv: list[str], check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=check, text=True, capture_output=True, **kw)


def image_info() -> tuple[str, str]:
    image = run([str(HERE / "build-image.sh"), "--print-image"]).stdout.strip()
    store = run([str(HERE / "build-image.sh"), "--print-store"]).stdout.strip()
    return image, store


def load_pids() -> dict:
    f = STATE / "pids.json"
    return json.loads(f.read_text()) if f.exists() else {}


def save_pids(pids: dict) -> None:
    (STATE / "pids.json").write_text(json.dumps(pids, indent=2) + "\n")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie or a reused PID is not ours: compare the recorded command line's first word.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def stop_pid(pid: int, timeout: float = 15.0) -> None:
    if not alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.2)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)


def start_daemon(argv: list[str], log: Path, env: dict | None = None) -> int:
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env)
    return proc.pid


def wait_for(predicate, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise SystemExit(f"simhosts: timed out after {timeout:.0f}s waiting for {what}")


def tcp_open(ip: str, port: int) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=1):
            return True
    except OSError:
        return False


def link_exists(name: str, netns: str | None = None) -> bool:
    argv = ["ip"] + (["-n", netns] if netns else []) + ["link", "show", name]
    return run(argv, check=False).returncode == 0


def ensure_keys() -> None:
    ssh = STATE / "ssh"
    ssh.mkdir(parents=True, exist_ok=True, mode=0o700)
    for name in ("id_ed25519", "host_ed25519"):
        if not (ssh / name).exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"nimops-simhosts-{name}", "-f", str(ssh / name)])
    (ssh / "authorized_keys").write_text((ssh / "id_ed25519.pub").read_text())
    os.chmod(ssh / "authorized_keys", 0o600)


def ensure_bridge() -> None:
    if not link_exists(BRIDGE):
        run(["ip", "link", "add", BRIDGE, "type", "bridge"])
        run(["ip", "addr", "add", f"{GATEWAY}/24", "dev", BRIDGE])
    run(["ip", "link", "set", BRIDGE, "up"])


def ensure_netns(i: int) -> None:
    name, veth_root, veth_peer = host_name(i), f"nimv{VETH_TAG}{i}", f"nimp{VETH_TAG}{i}"
    if not Path(f"/run/netns/{name}").exists():
        run(["ip", "netns", "add", name])
    if not link_exists("eth0", name):
        if link_exists(veth_root):
            run(["ip", "link", "del", veth_root])
        run(["ip", "link", "add", veth_root, "type", "veth", "peer", "name", veth_peer])
        run(["ip", "link", "set", veth_peer, "netns", name])
        run(["ip", "-n", name, "link", "set", veth_peer, "name", "eth0"])
        run(["ip", "-n", name, "addr", "add", f"{host_ip(i)}/24", "dev", "eth0"])
    run(["ip", "link", "set", veth_root, "master", BRIDGE, "up"])
    run(["ip", "-n", name, "link", "set", "eth0", "up"])
    run(["ip", "-n", name, "link", "set", "lo", "up"])


def is_mountpoint(path: Path) -> bool:
    return run(["mountpoint", "-q", str(path)], check=False).returncode == 0


def ensure_mountns(i: int) -> Path:
    """A persistent private mount namespace for host i, with its own /etc/nimops and /var/lib/nimops, and its own
    network devices in /sys/class/net."""
    nsdir = STATE / "ns"
    nsdir.mkdir(parents=True, exist_ok=True)
    if not is_mountpoint(nsdir):
        # The namespace file must live on a privately propagated mount (unshare(1) requirement).
        run(["mount", "--bind", str(nsdir), str(nsdir)])
        run(["mount", "--make-private", str(nsdir)])
    nsfile = nsdir / f"{host_name(i)}.mnt"
    if nsfile.exists() and is_mountpoint(nsfile):
        return nsfile
    nsfile.touch()
    binds = []
    for target in PRIVATE_DIRS:
        Path(target).mkdir(parents=True, exist_ok=True)
        src = STATE / host_name(i) / "fs" / target.strip("/").replace("/", "-")
        src.mkdir(parents=True, exist_ok=True)
        binds.append(f"mount --bind {src} {target}")
    # The host's own network devices under /sys/class/net (a sysfs mounted from inside its network namespace shows
    # that namespace's devices), as on a real machine: Ansible's network facts read names and MTUs there. Only
    # the net directories are replaced: the engines need the machine's /sys/fs/cgroup.
    sysfs = STATE / host_name(i) / "sysfs"
    sysfs.mkdir(exist_ok=True)
    binds += [f"mount -t sysfs sysfs {sysfs}", f"mount --bind {sysfs}/class/net /sys/class/net",
              f"mount --bind {sysfs}/devices/virtual/net /sys/devices/virtual/net"]
    run(["nsenter", f"--net=/run/netns/{host_name(i)}", "unshare", f"--mount={nsfile}", "--propagation", "private",
         "sh", "-ec", "; ".join(binds)])
    return nsfile


def write_engine_config(i: int, store: str) -> dict:
    hdir = STATE / host_name(i)
    engine = hdir / "engine"
    for sub in ("root", "runroot", "tmp"):
        (engine / sub).mkdir(parents=True, exist_ok=True)
    ulimits = ", ".join(f'"{u}"' for u in DEFAULT_ULIMITS)
    (engine / "containers.conf").write_text(
        "# Generated by simhosts.py: one podman engine per simulated host.\n"
        "[containers]\n"
        f"default_ulimits = [{ulimits}]\n"
        "[engine]\n"
        'runtime = "runc"\n'
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
        f'events_logfile_path = "{engine}/events.log"\n'
        f'tmp_dir = "{engine}/tmp"\n'
        # Separate engines must not share the default shared-memory lock segment.
        'lock_type = "file"\n'
    )
    (engine / "storage.conf").write_text(
        "# Generated by simhosts.py.\n"
        "[storage]\n"
        'driver = "overlay"\n'
        f'graphroot = "{engine}/root"\n'
        f'runroot = "{engine}/runroot"\n'
        "[storage.options]\n"
        f'additionalimagestores = ["{store}"]\n'
    )
    env = dict(os.environ)
    env["CONTAINERS_CONF"] = str(engine / "containers.conf")
    env["CONTAINERS_STORAGE_CONF"] = str(engine / "storage.conf")
    return env


def engine_socket(i: int, engine: str) -> Path:
    return STATE / host_name(i) / "engine" / ("podman.sock" if engine == "podman" else "docker.sock")


def sshd_config(i: int, engine: str) -> Path:
    hdir, ssh = STATE / host_name(i), STATE / "ssh"
    cfg = hdir / "sshd_config"
    cfg.write_text(
        "# Generated by simhosts.py.\n"
        f"ListenAddress {host_ip(i)}:22\n"
        f"HostKey {ssh / 'host_ed25519'}\n"
        f"PidFile {hdir / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {ssh / 'authorized_keys'}\n"
        "PermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UsePAM no\n"
        "StrictModes no\n"
        "Subsystem sftp internal-sftp\n"
        # Sessions on this host talk to this host's engine.
        f"SetEnv DOCKER_HOST=unix://{engine_socket(i, engine)}\n"
    )
    return cfg


def engine_cmd(i: int, nsfile: Path) -> list[str]:
    return ["nsenter", f"--mount={nsfile}", f"--net=/run/netns/{host_name(i)}"]


def podman_local(i: int, env: dict, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    nsfile = STATE / "ns" / f"{host_name(i)}.mnt"
    return run(engine_cmd(i, nsfile) + ["podman", *args], check=check, env=env)


def docker_root(i: int, store: str) -> Path:
    """The host's Docker data root, kept beside the image cache it was loaded from (so keyed by the image)."""
    return Path(store).parent / "docker" / host_name(i)


def start_dockerd(i: int, nsfile: Path, store: str) -> int:
    engine = STATE / host_name(i) / "engine"
    (engine / "exec").mkdir(parents=True, exist_ok=True)
    root = docker_root(i, store)
    root.mkdir(parents=True, exist_ok=True)
    argv = ["dockerd", f"--data-root={root}", f"--exec-root={engine / 'exec'}", f"--pidfile={engine / 'docker.pid'}",
            f"--host=unix://{engine_socket(i, 'docker')}", "--storage-driver=overlay2",
            "--exec-opt=native.cgroupdriver=cgroupfs", f"--cgroup-parent=/nimops-{host_name(i)}",
            # host networking only: no bridge, no NAT rules in the host's namespace
            "--bridge=none", "--iptables=false", "--log-level=warn"]
    argv += [f"--default-ulimit={u}" for u in DEFAULT_ULIMITS]
    return start_daemon(engine_cmd(i, nsfile) + argv, STATE / host_name(i) / "dockerd.log")


def load_image_into_docker(i: int, image: str, store: str) -> None:
    """Docker reads no other engine's store: stream the image from the shared podman store, once per data root."""
    sock = f"unix://{engine_socket(i, 'docker')}"
    if run(["docker", "-H", sock, "image", "inspect", image], check=False).returncode == 0:
        return
    print(f"simhosts: loading {image} into {host_name(i)}'s Docker (once per data root)", flush=True)
    # the run root the store was built with (build-image.sh; podman records it in the store's database)
    runroot = "/run/nimops-img-" + image.rsplit(":", 1)[1]
    save = subprocess.Popen(["podman", "--root", store, "--runroot", runroot, "--storage-driver", "overlay",
                             "save", "--format", "docker-archive", image],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    load = subprocess.run(["docker", "-H", sock, "load"], stdin=save.stdout, capture_output=True, text=True,
                          check=False)
    save.stdout.close()
    save_err = save.communicate()[1].decode(errors="replace")
    if save.returncode != 0 or load.returncode != 0:
        raise SystemExit(f"simhosts: loading {image} into {host_name(i)}'s Docker failed: {save_err}"
                         f"{load.stdout}{load.stderr}")


def up(n: int, build_image: bool = True) -> None:
    if ENGINE not in ENGINES:
        raise SystemExit(f"simhosts: NIMOPS_SIMHOSTS_ENGINE must be one of {', '.join(ENGINES)}, not {ENGINE!r}")
    subprocess.run([str(HERE / "install-deps.sh")] + (["docker.io"] if ENGINE == "docker" else []), check=True)
    if build_image:
        subprocess.run([str(HERE / "build-image.sh")], check=True)
    image, store = image_info()
    Path(store).mkdir(parents=True, exist_ok=True)
    STATE.mkdir(parents=True, exist_ok=True)
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
    ensure_keys()
    ensure_bridge()
    pids = load_pids()
    for i in range(1, n + 1):
        name = host_name(i)
        (STATE / name).mkdir(exist_ok=True)
        ensure_netns(i)
        nsfile = ensure_mountns(i)
        env = write_engine_config(i, store)
        entry = pids.setdefault(name, {"ip": host_ip(i), "engine": ENGINE})
        if entry.get("engine", "podman") != ENGINE:
            raise SystemExit(f"simhosts: {name} runs {entry['engine']}; take the set down first to switch engines")
        sock = engine_socket(i, ENGINE)
        if not alive(entry.get("engine_pid", 0)):
            sock.unlink(missing_ok=True)
            if ENGINE == "podman":
                entry["engine_pid"] = start_daemon(
                    engine_cmd(i, nsfile) + ["podman", "system", "service", "--time=0", f"unix://{sock}"],
                    STATE / name / "podman.log", env=env)
            else:
                entry["engine_pid"] = start_dockerd(i, nsfile, store)
        if not alive(entry.get("sshd", 0)):
            entry["sshd"] = start_daemon(
                engine_cmd(i, nsfile) + ["/usr/sbin/sshd", "-D", "-e", "-f", str(sshd_config(i, ENGINE))],
                STATE / name / "sshd.log")
        entry["docker_host"] = f"unix://{sock}"
        save_pids(pids)
        wait_for(sock.exists, f"{name} engine socket {sock}", timeout=60.0)
        if ENGINE == "docker":
            load_image_into_docker(i, image, store)
        wait_for(lambda: tcp_open(host_ip(i), 22), f"{name} sshd on {host_ip(i)}:22")
        print(f"simhosts: {name} {host_ip(i)} sshd={entry['sshd']} {ENGINE}={entry['engine_pid']} image={image}")
    pids["_meta"] = {"image": image, "store": str(store), "hosts": n, "engine": ENGINE,
                     "ssh_key": str(STATE / "ssh" / "id_ed25519")}
    save_pids(pids)


def host_indexes(pids: dict) -> list[int]:
    return sorted(int(k[len(HOST_PREFIX):]) for k in pids if k.startswith(HOST_PREFIX))


def down() -> None:
    pids = load_pids()
    for i in host_indexes(pids):
        name, entry = host_name(i), pids[host_name(i)]
        nsfile = STATE / "ns" / f"{name}.mnt"
        env = write_engine_config(i, pids.get("_meta", {}).get("store", "/nonexistent"))
        if nsfile.exists() and is_mountpoint(nsfile):
            # Containers outlive the API service (conmon, containerd's shims): remove them while the engine runs.
            if entry.get("engine", "podman") == "podman":
                podman_local(i, env, "rm", "--all", "--force", "--time", "0", check=False)
            elif alive(entry.get("engine_pid", 0)):
                sock = f"unix://{engine_socket(i, 'docker')}"
                ids = run(["docker", "-H", sock, "ps", "--all", "--quiet"], check=False).stdout.split()
                if ids:
                    run(["docker", "-H", sock, "rm", "--force", *ids], check=False)
        for key in ("sshd", "engine_pid"):
            if entry.get(key):
                stop_pid(entry[key], timeout=30.0)
        # What outlives sshd's listener: SSH sessions held open by controllers' ControlPersist masters.
        if Path(f"/run/netns/{name}").exists():
            left = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, check=False)
            for pid in left.stdout.split():
                stop_pid(int(pid), timeout=5.0)
        if nsfile.exists() and is_mountpoint(nsfile):
            run(["umount", str(nsfile)], check=False)
        nsfile.unlink(missing_ok=True)
        if Path(f"/run/netns/{name}").exists():
            run(["ip", "netns", "del", name], check=False)
        if link_exists(f"nimv{VETH_TAG}{i}"):
            run(["ip", "link", "del", f"nimv{VETH_TAG}{i}"], check=False)
        # Container storage is disposable; nothing here is the model cache.
        shutil.rmtree(STATE / name / "engine", ignore_errors=True)
        print(f"simhosts: {name} down")
        del pids[name]
        save_pids(pids)
    if link_exists(BRIDGE):
        run(["ip", "link", "del", BRIDGE], check=False)
    nsdir = STATE / "ns"
    if nsdir.exists() and is_mountpoint(nsdir):
        run(["umount", str(nsdir)], check=False)
    pids.pop("_meta", None)
    save_pids(pids)


def status() -> int:
    pids = load_pids()
    rc = 0
    for i in host_indexes(pids):
        name, entry = host_name(i), pids[host_name(i)]
        engine = entry.get("engine", "podman")
        state = {k: ("up" if alive(entry.get(k, 0)) else "DOWN") for k in ("sshd", "engine_pid")}
        rc |= any(v != "up" for v in state.values())
        print(f"{name} {entry['ip']} sshd={entry.get('sshd')}:{state['sshd']} "
              f"{engine}={entry.get('engine_pid')}:{state['engine_pid']}")
        if state["engine_pid"] == "up":
            fmt = ["ps", "--all", "--format", "{{.Names}} {{.Status}}"]
            if engine == "podman":
                out = podman_local(i, write_engine_config(i, pids["_meta"]["store"]), *fmt, check=False).stdout
            else:
                out = run(["docker", "-H", f"unix://{engine_socket(i, 'docker')}", *fmt], check=False).stdout
            for line in out.splitlines():
                print(f"    {line}")
    if not host_indexes(pids):
        print("simhosts: no hosts")
    return rc


def inventory() -> None:
    """Connection variables for the running hosts, as JSON (the tests build their inventories from this)."""
    pids = load_pids()
    meta = pids.get("_meta", {})
    hosts = {host_name(i): {"ansible_host": pids[host_name(i)]["ip"],
                            "docker_host": pids[host_name(i)]["docker_host"],
                            "state_dir": str(STATE / host_name(i))}
             for i in host_indexes(pids)}
    print(json.dumps({"hosts": hosts, "ssh_key": meta.get("ssh_key"), "image": meta.get("image"),
                      "engine": meta.get("engine", "podman")}, indent=2))


def main() -> int:
    if os.geteuid() != 0:
        print("simhosts: must run as root (network namespaces, bridge, sshd)", file=sys.stderr)
        return 2
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("up")
    sp.add_argument("--hosts", type=int, default=2)
    sp.add_argument("--no-image", action="store_true", help="do not build the test image (engines start without it)")
    sub.add_parser("down")
    sub.add_parser("status")
    sub.add_parser("inventory")
    a = p.parse_args()
    if a.cmd == "up":
        up(a.hosts, build_image=not a.no_image)
    elif a.cmd == "down":
        down()
    elif a.cmd == "status":
        return status()
    else:
        inventory()
    return 0


if __name__ == "__main__":
    sys.exit(main())
