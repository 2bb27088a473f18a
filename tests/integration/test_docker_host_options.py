"""Host prerequisites of the bare-host replica, on the simulated hosts with a real engine: RDMA (devices,
CAP_IPC_LOCK, locked memory), the IPC namespace, the model cache directory's owner and room, the Ray ports (real
listeners and connections between the members, a real nftables rule blocking two of them) and the GPUs (read with
a stand-in nvidia-smi per host: the test bed has no GPUs).

The simulated hosts have no InfiniBand hardware. The RDMA device is a stand-in: a character device node with the
uverbs major/minor numbers (231:192) made in each host's private /var/lib/nimops, passed as
`<stand-in dir>:/dev/infiniband`; what is proven is that the devices, the capability and the limit reach every
container the way the engine applies them, and that hosts that cannot provide them are refused before anything
starts (one member refused stops the whole replica). The locked-memory limit is what this kernel lets root grant
(the hosts share the machine's kernel): a limit above the hard limit is refused when root cannot raise it, which
the test probes first.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from simhosts_fixtures import (H100, LEADER, N_HOSTS, NVIDIA_SMI_STAND_IN as SMI, TEST_SET, WORKER, SimHosts, hosts_up,
                               run_playbook, stand_in_nvidia_smi, tiny_vllm_deployment)
from simhosts_fixtures import sim_hosts, tiny_model_cache  # noqa: F401  pylint: disable=unused-import

NAME = "hostopt" + uuid.uuid4().hex[:6]
STAND_IN = "/var/lib/nimops/rdma-stand-in"  # inside each simulated host's own /var/lib/nimops
LEADER_ONLY = "/var/lib/nimops/rdma-leader-only"
BLOCKED = "/var/lib/nimops/model-cache-blocked"
# The simulated hosts' engine defaults (tests/simhosts/simhosts.py DEFAULT_ULIMITS, within this machine's hard
# limits): Podman drops its defaults for a container that names its own limits, so they are named too.
TEST_BED_ULIMITS = ["nofile:1024:1024", "nproc:4096:4096"]


def root_can_raise_memlock() -> bool:
    """Whether root may raise the locked-memory limit to unlimited here (the simulated hosts' kernel and caps)."""
    return subprocess.run(["/bin/sh", "-c", "ulimit -l unlimited"], capture_output=True, check=False).returncode == 0


def grantable_memlock_bytes() -> int:
    """A locked-memory limit the hosts can grant: the hard limit, or 64 MiB when it is unlimited."""
    hard = subprocess.run(["/bin/sh", "-c", "ulimit -H -l"], capture_output=True, text=True, check=True).stdout.strip()
    return 64 * 1024 * 1024 if hard == "unlimited" else int(hard) * 1024


def host_ipc_namespace() -> str:
    """The simulated hosts' IPC namespace: this machine's (a simulated host has its own network and mount
    namespaces only)."""
    return os.readlink("/proc/self/ns/ipc")


@pytest.fixture(scope="module")
def deployment(sim_hosts: SimHosts, tiny_model_cache: Path, tmp_path_factory) -> dict:  # noqa: F811
    d = tmp_path_factory.mktemp("hostopt")
    base = tiny_vllm_deployment(sim_hosts, NAME, tiny_model_cache)
    for host in (LEADER, WORKER):
        devdir = sim_hosts.host_path(host, STAND_IN)
        devdir.mkdir(parents=True, exist_ok=True)
        node = devdir / "uverbs0"
        if not node.exists():
            os.mknod(node, 0o600 | stat.S_IFCHR, os.makedev(231, 192))
    inv = {
        "no_devices": sim_hosts.inventory(d / "no_devices.yml", dict(base, nim_docker_interconnect="infiniband")),
        "unlimited": sim_hosts.inventory(d / "unlimited.yml", dict(
            base, nim_docker_interconnect="infiniband", nim_docker_rdma_devices=[f"{STAND_IN}:/dev/infiniband"])),
        "rdma": sim_hosts.inventory(d / "rdma.yml", dict(
            base, nim_docker_interconnect="roce", nim_docker_rdma_devices=[f"{STAND_IN}:/dev/infiniband"],
            nim_docker_memlock=grantable_memlock_bytes(), nim_docker_ulimits=TEST_BED_ULIMITS,
            nim_docker_ipc_mode="host")),
    }
    # the leader has the device, the worker not: the worker's refusal must stop the leader too
    sim_hosts.host_path(LEADER, LEADER_ONLY).mkdir(parents=True, exist_ok=True)
    inv["device_on_leader_only"] = sim_hosts.inventory(d / "device_on_leader_only.yml", dict(
        base, nim_docker_interconnect="infiniband", nim_docker_rdma_devices=[f"{LEADER_ONLY}:/dev/infiniband"],
        nim_docker_memlock=grantable_memlock_bytes(), nim_docker_ulimits=TEST_BED_ULIMITS))
    # the leader cannot make its model cache directory (a file holds the path there), the worker can
    inv["head_fails"] = sim_hosts.inventory(d / "head_fails.yml", dict(base, nim_docker_model_cache_dir=BLOCKED))
    inv["plain"] = sim_hosts.inventory(d / "plain.yml", base)
    inv["probe"] = sim_hosts.inventory(d / "probe.yml", dict(base, nim_docker_port_probe_timeout=1))
    inv["model_100t"] = sim_hosts.inventory(d / "model_100t.yml", dict(base, nim_docker_model_size="100t"))
    inv["model_fits"] = sim_hosts.inventory(d / "model_fits.yml", dict(base, nim_docker_model_size="1M"))
    inv["shm_too_big"] = sim_hosts.inventory(d / "shm_too_big.yml", dict(
        base, nim_docker_ipc_mode="host", nim_docker_shm_size="100t"))
    inv["gpus"] = sim_hosts.inventory(d / "gpus.yml", dict(base, nim_docker_gpus_per_node=1, nim_docker_nvidia_smi=SMI))
    inv["two_gpus"] = sim_hosts.inventory(d / "two_gpus.yml", dict(base, nim_docker_gpus_per_node=2, nim_docker_nvidia_smi=SMI))
    inv["rdma_default_ipc"] = sim_hosts.inventory(d / "rdma_default_ipc.yml", dict(
        yaml.safe_load(inv["rdma"].read_text())["nim_docker"]["vars"], nim_docker_ipc_mode=""))
    with sim_hosts.exclusive():
        yield {"inventory": inv, "hosts": sim_hosts, "cache": tiny_model_cache}
        run_playbook(inv["rdma"], "teardown-nim-docker.yml")
        for host in (LEADER, WORKER):
            node = sim_hosts.host_path(host, STAND_IN) / "uverbs0"
            node.unlink(missing_ok=True)
        sim_hosts.host_path(LEADER, LEADER_ONLY).rmdir()
        for host in (LEADER, WORKER):
            sim_hosts.host_path(host, SMI).unlink(missing_ok=True)


def replica_containers(hosts: SimHosts) -> dict:
    return {c.name: c for host in (LEADER, WORKER) for c in hosts.containers(host) if c.name.startswith(NAME + "-")}


def test_rdma_without_devices_is_refused_before_anything_starts(deployment):
    hosts = deployment["hosts"]
    r = run_playbook(deployment["inventory"]["no_devices"], "deploy-nim-docker.yml")
    assert r.rc != 0, r.out[-4000:]
    assert "[rdma_devices_missing]" in r.out and "has no /dev/infiniband" in r.out, r.out[-4000:]
    assert r.recap()[LEADER]["failed"] == 1 and r.recap()[WORKER]["failed"] == 1, r.recap()
    assert replica_containers(hosts) == {}


def test_one_member_refused_stops_the_whole_replica_before_anything_starts(deployment):
    hosts = deployment["hosts"]
    r = run_playbook(deployment["inventory"]["device_on_leader_only"], "deploy-nim-docker.yml")
    assert r.rc != 0, r.out[-4000:]
    assert f"[rdma_devices_missing] {WORKER} has no {LEADER_ONLY}" in r.out, r.out[-4000:]
    assert f"[replica_member_refused] {LEADER}: nothing is started, because {WORKER} of replica" in r.out, \
        r.out[-4000:]
    assert r.recap()[LEADER]["failed"] == 1 and r.recap()[WORKER]["failed"] == 1, r.recap()
    assert r.recap()[LEADER]["changed"] == 0, r.recap()
    assert replica_containers(hosts) == {}


def test_a_worker_whose_head_failed_in_the_run_is_refused_by_name(deployment):
    """The head's own task fails on the leader after the preflight passed everywhere: the worker stops with the
    cause instead of joining nothing (or failing on an undefined variable)."""
    hosts = deployment["hosts"]
    hosts.host_path(LEADER, BLOCKED).write_text("a file where the leader's model cache directory should be\n")
    try:
        r = run_playbook(deployment["inventory"]["head_fails"], "deploy-nim-docker.yml")
    finally:
        hosts.host_path(LEADER, BLOCKED).unlink()
        shutil.rmtree(hosts.host_path(WORKER, BLOCKED), ignore_errors=True)
    assert r.rc != 0, r.out[-4000:]
    assert f"[ray_head_not_started] The Ray head on {LEADER} was not started in this run" in r.out, r.out[-4000:]
    assert r.recap()[LEADER]["failed"] == 1 and r.recap()[WORKER]["failed"] == 1, r.recap()
    assert replica_containers(hosts) == {}


def test_a_member_whose_engine_is_down_stops_the_replica_before_anything_starts(deployment):
    hosts = deployment["hosts"]
    pids = json.loads((Path(hosts.info["hosts"][WORKER]["state_dir"]).parent / "pids.json").read_text())
    os.kill(pids[WORKER]["engine_pid"], signal.SIGTERM)
    try:
        r = run_playbook(deployment["inventory"]["plain"], "deploy-nim-docker.yml")
    finally:
        hosts_up(TEST_SET, N_HOSTS)  # starts the stopped engine again
    assert r.rc != 0, r.out[-4000:]
    assert "[docker_api] could not read" in r.out and "Fix: check that the Docker or Podman service runs" in r.out, \
        r.out[-4000:]
    assert f"[replica_member_refused] {LEADER}: nothing is started, because {WORKER}" in r.out, r.out[-4000:]
    assert r.recap()[LEADER]["failed"] == 1 and r.recap()[WORKER]["failed"] == 1, r.recap()
    assert replica_containers(hosts) == {}


def data_interface(host: str, ip: str) -> str:
    """The interface of a simulated host's network namespace that holds its address."""
    out = subprocess.run(["ip", "-n", host, "-o", "-4", "addr", "show"], capture_output=True, text=True, check=True)
    return next(line.split()[1] for line in out.stdout.splitlines() if f" {ip}/" in line)


def test_members_whose_mtu_differs_are_refused_before_anything_starts(deployment):
    hosts = deployment["hosts"]
    iface = data_interface(WORKER, hosts.ip(WORKER))
    link = subprocess.run(["ip", "-n", WORKER, "-o", "link", "show", "dev", iface], capture_output=True, text=True,
                          check=True).stdout.split()
    original = link[link.index("mtu") + 1]
    subprocess.run(["ip", "-n", WORKER, "link", "set", "dev", iface, "mtu", "1400"], check=True)
    try:
        r = run_playbook(deployment["inventory"]["plain"], "deploy-nim-docker.yml")
    finally:
        subprocess.run(["ip", "-n", WORKER, "link", "set", "dev", iface, "mtu", original], check=True)
    assert r.rc != 0, r.out[-4000:]
    assert "[mtu_mismatch] the data interfaces of replica replica1 differ in MTU" in r.out, r.out[-4000:]
    assert f"{WORKER} {iface} 1400" in r.out and f"{LEADER} " in r.out, r.out[-4000:]
    assert r.recap()[LEADER]["failed"] == 1 and r.recap()[WORKER]["failed"] == 1, r.recap()
    assert replica_containers(hosts) == {}


BLOCK_TABLE = "nimops_test_block"


def test_ray_ports_held_or_blocked_between_members_are_named_before_anything_starts(deployment):
    """Real sockets on both members: the worker's firewall drops the leader's connections to its object manager
    port and rejects them at the top of its worker port range, and a process on the leader holds a port of the
    leader's worker range. Every member names all three and nothing starts."""
    hosts = deployment["hosts"]
    leader_ip, worker_ip = hosts.ip(LEADER), hosts.ip(WORKER)
    rules = (f"add table inet {BLOCK_TABLE}\n"
             f"add chain inet {BLOCK_TABLE} input {{ type filter hook input priority -100; }}\n"
             f"add rule inet {BLOCK_TABLE} input ip saddr {leader_ip} tcp dport 8076 drop\n"
             f"add rule inet {BLOCK_TABLE} input ip saddr {leader_ip} tcp dport 10999 reject with tcp reset\n")
    subprocess.run(["nsenter", f"--net=/run/netns/{WORKER}", "nft", "-f", "-"], input=rules, text=True, check=True)
    holder = subprocess.Popen(  # pylint: disable=consider-using-with
        ["nsenter", f"--net=/run/netns/{LEADER}", "python3", "-c",
         "import socket, sys, time\ns = socket.socket()\ns.bind(('0.0.0.0', 10500))\ns.listen(1)\n"
         "print('ready', flush=True)\ntime.sleep(300)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        r = run_playbook(deployment["inventory"]["probe"], "deploy-nim-docker.yml")
    finally:
        holder.kill()
        holder.wait()
        subprocess.run(["nsenter", f"--net=/run/netns/{WORKER}", "nft", "delete", "table", "inet", BLOCK_TABLE],
                       check=True)
    assert r.rc != 0, r.out[-4000:]
    assert "[ray_ports] replica replica1 cannot form its Ray cluster" in r.out, r.out[-6000:]
    assert f"{LEADER} port 10500 is held by pid {holder.pid} (python3)" in r.out, r.out[-6000:]
    assert f"{LEADER} to {WORKER} ({worker_ip}) port 8076: no answer within 1s (dropped: a firewall?)" in r.out, \
        r.out[-6000:]
    assert f"{LEADER} to {WORKER} ({worker_ip}) port 10999: refused (nothing listens, or a firewall rejects)" \
        in r.out, r.out[-6000:]
    assert f"{WORKER} to {LEADER}" not in r.out, r.out[-6000:]  # the other direction is open
    assert r.recap()[LEADER]["failed"] == 1 and r.recap()[WORKER]["failed"] == 1, r.recap()
    assert replica_containers(hosts) == {}
    for host in (LEADER, WORKER):  # the listeners are gone: nothing of the probe holds a Ray port
        ss = subprocess.run(["ip", "netns", "exec", host, "ss", "-Htln"], capture_output=True, text=True,
                            check=True).stdout
        assert not [line for line in ss.splitlines() if any(f":{port} " in line for port in (6379, 8076, 8077, 10500))], ss


def test_a_member_with_fewer_gpus_than_asked_is_named_before_anything_starts(deployment):
    hosts = deployment["hosts"]
    stand_in_nvidia_smi(hosts, {LEADER: [H100, H100], WORKER: [H100]})
    r = run_playbook(deployment["inventory"]["two_gpus"], "deploy-nim-docker.yml")
    assert r.rc != 0, r.out[-4000:]
    assert f"[gpu_count] {WORKER} has 1 GPUs (1 x NVIDIA H100 80GB HBM3 (81559 MiB), driver 550.54.15), fewer " \
           "than the 2 asked for per member" in r.out, r.out[-4000:]
    assert f"[gpu_count] {LEADER}" not in r.out, r.out[-4000:]
    assert r.recap()[LEADER]["failed"] == 1 and r.recap()[WORKER]["failed"] == 1, r.recap()
    assert replica_containers(hosts) == {}


def test_members_whose_gpus_differ_are_refused_before_anything_starts(deployment):
    hosts = deployment["hosts"]
    other_driver = H100.replace("550.54.15", "535.161.08")
    stand_in_nvidia_smi(hosts, {LEADER: [H100, H100], WORKER: [other_driver, other_driver]})
    r = run_playbook(deployment["inventory"]["two_gpus"], "deploy-nim-docker.yml")
    assert r.rc != 0, r.out[-4000:]
    assert "[gpu_mismatch] the members of replica replica1 differ in their GPUs: " \
           f"{LEADER}: 2 x NVIDIA H100 80GB HBM3 (81559 MiB), driver 550.54.15; " \
           f"{WORKER}: 2 x NVIDIA H100 80GB HBM3 (81559 MiB), driver 535.161.08." in r.out, r.out[-4000:]
    assert r.recap()[LEADER]["failed"] == 1 and r.recap()[WORKER]["failed"] == 1, r.recap()
    assert replica_containers(hosts) == {}


def test_a_model_cache_too_small_for_the_model_is_named_and_one_that_fits_passes(deployment):
    """The cache directory's filesystem (here this machine's) is measured from its nearest existing directory. Too
    large a model is refused on each host, naming the filesystem; one that fits passes the preflight (check mode,
    so nothing starts either way)."""
    hosts = deployment["hosts"]
    r = run_playbook(deployment["inventory"]["model_100t"], "deploy-nim-docker.yml")
    assert r.rc != 0, r.out[-4000:]
    for host in (LEADER, WORKER):
        assert f"[cache_disk_full] {host}: the filesystem of {deployment['cache']} (mounted on /" in r.out, r.out[-4000:]
    held = subprocess.run(["du", "-sB1", str(deployment["cache"])], capture_output=True, text=True, check=True).stdout
    assert f"bytes free and the cache holds {held.split()[0]}, less than the model's 100t" in r.out, r.out[-4000:]
    assert replica_containers(hosts) == {}
    fits = run_playbook(deployment["inventory"]["model_fits"], "deploy-nim-docker.yml", check=True)
    assert fits.rc == 0, fits.out[-4000:]
    assert "cache_disk_full" not in fits.out
    assert replica_containers(hosts) == {}


def test_memlock_the_kernel_refuses_is_named_before_anything_starts(deployment):
    """Unlimited locked memory: refused with the cause where root cannot raise the limit (as on this test bed);
    elsewhere the preflight passes (checked in check mode, which starts nothing either way)."""
    hosts = deployment["hosts"]
    r = run_playbook(deployment["inventory"]["unlimited"], "deploy-nim-docker.yml", check=True)
    if root_can_raise_memlock():
        assert r.rc == 0 and "[memlock_limit]" not in r.out, r.out[-4000:]
    else:
        assert r.rc != 0, r.out[-4000:]
        assert "[memlock_limit]" in r.out and "cannot raise the locked-memory limit to unlimited" in r.out, \
            r.out[-4000:]
    assert replica_containers(hosts) == {}


def test_gpus_on_podman_are_refused_before_anything_starts(deployment):
    """Podman's Docker-compatible API accepts a GPU device request and ignores it (and takes no CDI names):
    a replica asking for GPUs there would start without them."""
    hosts = deployment["hosts"]
    stand_in_nvidia_smi(hosts, {LEADER: [H100], WORKER: [H100]})
    r = run_playbook(deployment["inventory"]["gpus"], "deploy-nim-docker.yml")
    assert r.rc != 0, r.out[-4000:]
    assert f"[gpu_attachment] {LEADER} runs podman 4." in r.out, r.out[-4000:]
    assert "ignores GPU device requests" in r.out and "Fix: run Docker Engine with the NVIDIA" in r.out, r.out[-4000:]
    assert r.recap()[LEADER]["failed"] == 1 and r.recap()[WORKER]["failed"] == 1, r.recap()
    assert replica_containers(hosts) == {}


def test_host_shm_smaller_than_asked_is_refused_with_the_host_ipc_namespace(deployment):
    hosts = deployment["hosts"]
    r = run_playbook(deployment["inventory"]["shm_too_big"], "deploy-nim-docker.yml", check=True)
    assert r.rc != 0, r.out[-4000:]
    assert "[shm_too_small]" in r.out and "less than the 100t of shared memory" in r.out, r.out[-4000:]
    assert replica_containers(hosts) == {}


def test_devices_capability_memlock_and_ipc_reach_every_container(deployment):
    hosts = deployment["hosts"]
    r = run_playbook(deployment["inventory"]["rdma"], "deploy-nim-docker.yml")
    assert r.rc == 0, r.out[-6000:]
    assert "2/2 Ray nodes alive" in r.out
    memlock = grantable_memlock_bytes()
    containers = replica_containers(hosts)
    assert set(containers) == {f"{NAME}-ray-head", f"{NAME}-ray-worker", f"{NAME}-server"}, set(containers)
    for name, c in containers.items():
        # What the container really got, seen from inside: Podman's inspect output lists no devices.
        # (Podman's inspect output lists no devices and calls the host IPC namespace "shareable".)
        seen = c.exec_run(["sh", "-c", "stat -c '%t:%T' /dev/infiniband/uverbs0 && ulimit -l && ulimit -n "
                                       "&& readlink /proc/self/ns/ipc"])
        assert seen.exit_code == 0, (name, seen.output.decode())
        assert seen.output.decode().split() == ["e7:c0", str(memlock // 1024), "1024", host_ipc_namespace()], \
            (name, seen.output.decode())
        c.reload()
        host_config = c.attrs["HostConfig"]
        assert {cap.removeprefix("CAP_") for cap in host_config.get("CapAdd") or []} >= {"IPC_LOCK"}, name
        env = dict(e.split("=", 1) for e in c.attrs["Config"]["Env"])
        if "-ray-" in name:
            assert env.get("NCCL_IB_DISABLE") == "0", (name, env.get("NCCL_IB_DISABLE"))
    cache = os.stat(deployment["cache"])
    assert (cache.st_uid, cache.st_gid, stat.S_IMODE(cache.st_mode)) == (1000, 1000, 0o775)

    again = run_playbook(deployment["inventory"]["rdma"], "deploy-nim-docker.yml")
    assert again.rc == 0 and again.changed() == {LEADER: 0, WORKER: 0}, again.out[-4000:]


def test_a_changed_host_option_recreates_the_containers(deployment):
    """The engines do not report these options alike, so the collection compares its own record of them (a
    label): dropping the IPC setting must still reach every container."""
    hosts = deployment["hosts"]
    r = run_playbook(deployment["inventory"]["rdma_default_ipc"], "deploy-nim-docker.yml")
    assert r.rc == 0, r.out[-6000:]
    assert r.changed()[LEADER] > 0 and r.changed()[WORKER] > 0, r.recap()
    for name, c in replica_containers(hosts).items():
        ipc = c.exec_run(["readlink", "/proc/self/ns/ipc"]).output.decode().strip()
        assert ipc.startswith("ipc:[") and ipc != host_ipc_namespace(), (name, ipc)
    again = run_playbook(deployment["inventory"]["rdma_default_ipc"], "deploy-nim-docker.yml")
    assert again.rc == 0 and again.changed() == {LEADER: 0, WORKER: 0}, again.out[-4000:]
