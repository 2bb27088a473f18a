"""Fleet rollout on bare hosts: 2 replicas x 2 simulated hosts (real sshd, podman, Ray, vLLM CPU on each leader).

The hosts are a private set (NIMOPS_SIMHOSTS_SET=6: own bridge, 10.77.6.0/24, own state dir), so the
two-host suites keep theirs. The tests run in file order and share one fleet:
  link burn-in of each 2-host replica, then of all 4 hosts with one of them throttled (nothing deployed yet) ->
  first rollout from empty hosts deploys each replica in turn and puts it in the load balancer's membership
  file -> rolling upgrade (a changed --max-model-len) while a bounded client sends requests to the in-service
  replicas the whole time: 0 failed -> re-run changes nothing -> a host of the second replica loses its link
  while the first is being upgraded: the rollout stops naming that replica, the first keeps serving, the
  client still sees 0 failures -> link back, same rollout: the second replica's leader loses its link during
  that replica's own upgrade: the rollout stops with its summary naming the host, the replica stays drained,
  0 failures -> link back, re-run converges -> teardown.

The "load balancer" is the client itself: before each request it reads the membership file the rollout keeps
(playbooks/rollout-nim-docker.yml, nimops.multinode.fleet_drain, method file) and sends to the next backend in it.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
import yaml

from simhosts_fixtures import REPO, SimHosts, hosts_down, hosts_up, model_cache_dir, run_playbook, tiny_vllm_deployment

SET = "6"
N_HOSTS = 4
NAME = "fleet" + uuid.uuid4().hex[:5]
FAKE_NGC_KEY = "nvapi-FAKE-" + "0" * 58 + uuid.uuid4().hex[:6]
# The replicas serve with an API key: the load, the health gate and the server wait all carry it.
API_KEY = "FAKE-fleet-api-key-" + uuid.uuid4().hex
AUTH = {"Authorization": f"Bearer {API_KEY}"}
REPLICAS = {"replica_a": ["simhost6x1", "simhost6x2"], "replica_b": ["simhost6x3", "simhost6x4"]}
STATE: dict = {}


@pytest.fixture(scope="module")
def fleet_hosts() -> SimHosts:
    hosts, started = hosts_up(SET, N_HOSTS)
    try:
        yield hosts
    finally:
        hosts_down(SET, started)


def write_inventory(path: Path, hosts: SimHosts, cache: Path, members: Path, max_model_len: int) -> Path:
    inv = {"nim_docker": {
        "vars": {
            "ansible_user": "root",
            "ansible_ssh_private_key_file": hosts.info["ssh_key"],
            # A host that loses its link must be seen as unreachable within seconds, not a TCP timeout.
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
                                       "-o ConnectTimeout=5 -o ServerAliveInterval=3 -o ServerAliveCountMax=2",
            "ansible_python_interpreter": "/usr/bin/python3",
            **tiny_vllm_deployment(hosts, NAME, cache),
            # A 64 MiB KV cache (the default here is 1 GiB, touched at start): a server that is replaced frees its
            # memory in seconds (exiting with ~2 GiB took over a minute on this machine).
            "nim_docker_server_extra_args": ["--dtype", "float32", "--max-model-len", str(max_model_len),
                                             "--enforce-eager", "--kv-cache-memory-bytes", str(64 * 1024 * 1024)],
            # The model runs inside the engine process (no separate worker process busy-polling a core while it
            # serves) and its threads are not pinned (vLLM's auto binding puts every server's worker on CPU 0,
            # where the serving replica and the replica being started would share one core of the two).
            "nim_docker_server_env": {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_OMP_THREADS_BIND": "nobind"},
            "nim_fleet_drain_file": str(members),
            "nim_fleet_drain_grace_seconds": 5,
        },
        "children": {
            group: {"vars": {"nim_docker_replica_group": group},
                    "hosts": {h: {"ansible_host": hosts.ip(h)} for h in names}}
            for group, names in REPLICAS.items()
        },
    }}
    path.write_text(yaml.safe_dump(inv, sort_keys=False))
    return path


class BoundedClient(threading.Thread):
    """Sends completions, one at a time, to the backends listed in the membership file (round robin), until
    stopped, or until max_requests or max_seconds. Every answer other than a 200 with tokens is a failure."""

    # Bounds: the client must outlast the rollout it watches (a few minutes here; the test stops it), and still
    # end on its own if a rollout hangs. About 2 requests a second leaves the loaded 2-core machine's CPU to the
    # replica being started.
    def __init__(self, members: Path, max_requests: int = 3000, max_seconds: float = 900):
        super().__init__(daemon=True)
        self.members, self.max_requests, self.max_seconds = members, max_requests, max_seconds
        self.stop = threading.Event()
        self.ok: dict = {}
        self.failures: list = []
        self.backend_sets: set = set()
        self.sent = 0
        self.ended_by = ""
        self.in_flight = None  # the backend being asked ("choosing" while picking one), None between requests

    def run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self.stop.is_set() and self.sent < self.max_requests and time.monotonic() < deadline:
            self.in_flight = "choosing"  # from here until the answer, the request may go to any listed backend
            backends = sorted(line.strip() for line in self.members.read_text().splitlines()
                              if line.strip() and not line.startswith("#"))
            self.backend_sets.add(tuple(backends))
            if not backends:
                self.failures.append(("-", "no backend in service"))
                self.in_flight = None
                time.sleep(0.5)
                continue
            backend = backends[self.sent % len(backends)]
            self.sent += 1
            assert backend.startswith("10.77.6."), backend  # only the private simulated hosts are contacted
            self.in_flight = backend
            try:
                r = requests.post(f"http://{backend}/v1/completions", timeout=30, headers=AUTH,
                                  json={"model": "tiny", "prompt": "fleet", "max_tokens": 3, "temperature": 0})
                if r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 3:
                    self.ok[backend] = self.ok.get(backend, 0) + 1
                else:
                    self.failures.append((backend, f"{r.status_code} {r.text[:200]}"))
            except requests.RequestException as exc:
                self.failures.append((backend, repr(exc)[:200]))
            self.in_flight = None
            time.sleep(0.4)
        self.ended_by = "stop" if self.stop.is_set() else "bound"

    def finish(self) -> dict:
        self.stop.set()
        self.join(timeout=60)
        return {"ok": sum(self.ok.values()), "ok_per_backend": dict(self.ok), "failed": len(self.failures),
                "stopped_by_test": self.ended_by == "stop",
                "failures": self.failures[:5], "backend_sets": sorted(self.backend_sets)}


@pytest.fixture(scope="module")
def fleet(fleet_hosts: SimHosts, tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("fleet")
    cache = model_cache_dir()
    members = work / "lb" / "backends"
    dep = {"hosts": fleet_hosts, "cache": cache, "members": members, "work": work,
           "leaders": {g: fleet_hosts.ip(names[0]) + ":8000" for g, names in REPLICAS.items()}}
    dep["inventory"] = lambda max_model_len: write_inventory(work / f"inventory-{max_model_len}.yml", fleet_hosts,
                                                             cache, members, max_model_len)
    with fleet_hosts.exclusive():
        yield dep
        for host in ("simhost6x3", "simhost6x4"):
            set_link(fleet_hosts, host, up=True)
        play(dep["inventory"](128), "teardown-nim-docker.yml")


def private_collections_root() -> Path:
    """This checkout as nimops.multinode, through a link only these tests use (a shared link can be re-pointed
    at another checkout by a concurrent session)."""
    root = Path(tempfile.gettempdir()) / f"nimops-fleet-ac-{os.getuid()}-{os.getpid()}"
    link = root / "ansible_collections" / "nimops" / "multinode"
    if not link.is_symlink():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(REPO)
    return root


def play(inventory: Path, playbook: str = "rollout-nim-docker.yml", **kw):
    # Pipelining: one SSH round trip per task instead of several (the rollout runs a few hundred tasks).
    return run_playbook(inventory, playbook, env={"NGC_API_KEY": FAKE_NGC_KEY, "NIM_DOCKER_API_KEY": API_KEY,
                                                  "ANSIBLE_PIPELINING": "True",
                                                  "ANSIBLE_COLLECTIONS_PATH": str(private_collections_root())}, **kw)


def set_link(hosts: SimHosts, host: str, up: bool) -> None:
    """The bridge side of the host's veth (nimv<set>x<i>): down = the host drops off the network."""
    veth = "nimv" + SET + "x" + host.rsplit("x", 1)[1]
    subprocess.run(["ip", "link", "set", veth, "up" if up else "down"], check=True)


def max_model_len(backend: str) -> int:
    r = requests.get(f"http://{backend}/v1/models", timeout=30, headers=AUTH)
    assert r.status_code == 200, r.text
    return r.json()["data"][0]["max_model_len"]


def summary(out: str) -> str:
    """From the last rollout summary on (the task of the role nimops.multinode.nim_docker_deploy)."""
    return out[out.rfind("TASK [nimops.multinode.nim_docker_deploy : Rollout summary]"):]


def burn_in(fleet, inventory: Path, report_dir: Path, mib: int = 8):
    """burn_in_nim_docker.yml on ``inventory`` with a small payload; the reports it wrote, by replica group."""
    inv = yaml.safe_load(inventory.read_text())
    inv["nim_docker"]["vars"].update(nim_docker_burn_in_mib=mib, nim_docker_burn_in_report_dir=str(report_dir),
                                     nim_docker_burn_in_timeout=120)
    inventory.write_text(yaml.safe_dump(inv, sort_keys=False))
    report_dir.mkdir(parents=True, exist_ok=True)
    r = play(inventory, "burn_in_nim_docker.yml")
    return r, {p.stem: json.loads(p.read_text()) for p in report_dir.glob("*.json")}


def test_burn_in_of_each_two_host_replica_measures_both_directions_and_leaves_nothing(fleet):
    """Before anything is deployed: each replica's preflight and link burn-in (gloo, no GPUs), both replicas at once."""
    hosts = fleet["hosts"]
    r, reports = burn_in(fleet, fleet["inventory"](128), fleet["work"] / "burn-in-2")
    assert r.rc == 0, r.out[-6000:]
    assert all(n == 0 for n in r.changed().values()), r.changed()
    assert set(reports) == set(REPLICAS), reports
    for group, names in REPLICAS.items():
        report = reports[group]
        assert report["backend"] == "gloo" and report["hosts"] == names and report["mib"] == 8
        assert sorted((link["from"], link["to"]) for link in report["links"]) == sorted(
            [(names[0], names[1]), (names[1], names[0])])
        assert all(link["gbit_s"] > 0 for link in report["links"]) and report["all_reduce_bus_gbit_s"] > 0
        # each of two hosts is in every link: a link is named, no host
        assert report["slowest_host"] is None and report["slowest_link"] == report["links"][0]
    assert "link burn-in of replica_a:" in r.out and "slowest link: " in r.out
    for name in hosts.names:
        assert not [c.name for c in hosts.containers(name) if c.name.endswith("-burn-in")], name


def test_burn_in_across_four_hosts_names_the_throttled_one(fleet):
    """One group of the 4 hosts, the third sending at 40 Mbit/s (tc on its interface): every link from it is slower
    than every other link, and it is named the slowest host."""
    hosts = fleet["hosts"]
    slow = REPLICAS["replica_b"][0]
    inventory = hosts.inventory(fleet["work"] / "burn-in-4.yml",
                                tiny_vllm_deployment(hosts, NAME, fleet["cache"]), replica="burn_in_4")
    shape = ["ip", "netns", "exec", slow, "tc", "qdisc"]
    subprocess.run(shape + ["add", "dev", "eth0", "root", "tbf", "rate", "40mbit", "burst", "64kb", "latency",
                            "100ms"], check=True, capture_output=True)
    try:
        r, reports = burn_in(fleet, inventory, fleet["work"] / "burn-in-4")
    finally:
        subprocess.run(shape + ["del", "dev", "eth0", "root"], check=True, capture_output=True)
    assert r.rc == 0, r.out[-6000:]
    report = reports["burn_in_4"]
    assert report["hosts"] == hosts.names and len(report["links"]) == 12
    from_slow = [link["gbit_s"] for link in report["links"] if link["from"] == slow]
    others = [link["gbit_s"] for link in report["links"] if link["from"] != slow]
    assert len(from_slow) == 3 and max(from_slow) < min(others), report["links"]
    assert max(from_slow) < 0.045, from_slow  # the shaped rate, with headers and all
    assert report["slowest_host"] == slow and report["slowest_link"]["from"] == slow
    assert f"slowest host: {slow}" in r.out


def test_first_rollout_deploys_each_replica_and_fills_membership(fleet):
    """From empty hosts: each replica is behind, so it is deployed, health-gated and put in service in turn."""
    r = play(fleet["inventory"](128))
    assert r.rc == 0, r.out[-6000:]
    s = summary(r.out)
    assert "rollout finished; 0 of 2 replicas failed" in s, s
    assert "replica_a (simhost6x1, simhost6x2): upgraded" in s and "replica_b (simhost6x3, simhost6x4): upgraded" in s
    assert all(r.changed()[h] > 0 for names in REPLICAS.values() for h in names), r.changed()
    assert sorted(fleet["members"].read_text().split()) == sorted(fleet["leaders"].values())
    assert all(max_model_len(b) == 128 for b in fleet["leaders"].values())
    STATE["first_rollout_seconds"] = round(r.seconds)
    print(f"\nfleet: first rollout (deploy one replica at a time) {r.seconds:.0f}s")


def ray_containers(hosts: SimHosts) -> dict:
    """Name -> (id, start time) of the Ray containers on every host."""
    found = {}
    for h in hosts.names:
        for c in hosts.containers(h):
            if c.name.startswith(f"{NAME}-ray-"):
                c.reload()  # the full inspect (a listing has no start time)
                found[f"{h}/{c.name}"] = (c.id, c.attrs["State"]["StartedAt"])
    return found


def test_rolling_upgrade_with_zero_failed_requests(fleet):
    ray_before = ray_containers(fleet["hosts"])
    assert len(ray_before) == N_HOSTS, ray_before
    client = BoundedClient(fleet["members"])
    client.start()
    time.sleep(5)
    r = play(fleet["inventory"](112))
    time.sleep(5)
    got = client.finish()
    print(f"\nrolling upgrade: {r.seconds:.0f}s; client: {got['ok']} ok, {got['failed']} failed, per backend "
          f"{got['ok_per_backend']}, membership seen {got['backend_sets']}")
    assert r.rc == 0, r.out[-6000:]
    s = summary(r.out)
    assert "rollout finished; 0 of 2 replicas failed" in s, s
    assert "replica_a (simhost6x1, simhost6x2): upgraded" in s and "replica_b (simhost6x3, simhost6x4): upgraded" in s
    assert got["failed"] == 0, got["failures"]
    assert got["stopped_by_test"], "the client hit its bound before the rollout ended"
    assert got["ok"] >= 50, got
    a, b = fleet["leaders"]["replica_a"], fleet["leaders"]["replica_b"]
    # One replica at a time: each was out of service alone, never both.
    assert (b,) in got["backend_sets"] and (a,) in got["backend_sets"], got["backend_sets"]
    assert () not in got["backend_sets"]
    assert got["ok_per_backend"].get(a, 0) > 0 and got["ok_per_backend"].get(b, 0) > 0
    assert max_model_len(a) == 112 and max_model_len(b) == 112
    assert sorted(fleet["members"].read_text().split()) == sorted([a, b])
    # Only the servers' flags changed: each replica replaced its server and left its Ray cluster running.
    assert r.out.count("behind: drain, upgrade (server only)") == 2, r.out[-6000:]
    assert ray_containers(fleet["hosts"]) == ray_before
    STATE["upgrade"] = {"seconds": round(r.seconds), **{k: got[k] for k in ("ok", "failed", "ok_per_backend")}}


def test_rerun_changes_nothing(fleet):
    r = play(fleet["inventory"](112))
    assert r.rc == 0, r.out[-6000:]
    assert set(r.changed().values()) == {0}, r.changed()
    assert "upgraded" not in summary(r.out)


def rollout_cutting_link(fleet, max_len: int, in_service: list, host: str):
    """Roll out max_len while the bounded client runs; cut host's link once the membership file lists exactly
    in_service and the client has no request in flight to a backend that left it (a request sent just before the
    drain is still answered by the drained replica; losing the host under it would fail it whatever the
    rollout does). Returns the play result, the client's counts and when the link was cut (None: never)."""
    client = BoundedClient(fleet["members"])
    client.start()
    proc_out = {}
    runner = threading.Thread(target=lambda: proc_out.update(r=play(fleet["inventory"](max_len))))
    runner.start()
    cut_at = None
    deadline = time.monotonic() + 600
    while runner.is_alive() and time.monotonic() < deadline:
        if fleet["members"].read_text().split() == in_service and client.in_flight in (None, *in_service):
            set_link(fleet["hosts"], host, up=False)
            cut_at = time.monotonic()
            break
        time.sleep(0.2)
    runner.join(timeout=1500)
    return proc_out["r"], client.finish(), cut_at


def test_unreachable_host_stops_rollout_with_replica_named(fleet):
    a, b = fleet["leaders"]["replica_a"], fleet["leaders"]["replica_b"]
    b_before = max_model_len(b)
    # As soon as replica A is drained (being upgraded), replica B's worker host drops off the network.
    r, got, cut_at = rollout_cutting_link(fleet, 96, in_service=[b], host="simhost6x4")
    print(f"\nunreachable host: rollout stopped after {r.seconds:.0f}s; client: {got['ok']} ok, {got['failed']} "
          f"failed, per backend {got['ok_per_backend']}")
    assert cut_at is not None, "replica A was never drained alone"
    assert r.rc != 0, r.out[-6000:]
    s = summary(r.out)
    assert "failed replicas exceed nim_fleet_max_fail_percentage=0" in s, s
    assert "replica_a (simhost6x1, simhost6x2): upgraded" in s, s
    assert "replica_b (simhost6x3, simhost6x4): failed - unreachable before the upgrade: simhost6x4" in s, s
    assert "Rollout stopped: 1 of 2 replicas failed" in r.out
    # Replica A was upgraded and is back in service; replica B was never drained and still serves the old flags.
    assert sorted(fleet["members"].read_text().split()) == sorted([a, b])
    assert max_model_len(a) == 96 and max_model_len(b) == b_before
    assert got["failed"] == 0, got["failures"]
    assert got["stopped_by_test"], "the client hit its bound before the rollout ended"
    assert got["ok_per_backend"].get(a, 0) > 0
    STATE["unreachable"] = {"seconds": round(r.seconds), **{k: got[k] for k in ("ok", "failed", "ok_per_backend")}}


def test_host_lost_during_its_replicas_upgrade_stops_rollout_with_summary(fleet):
    """Link back, same rollout: replica A is current; replica B is drained for its upgrade, then its leader host
    drops off the network. The replica fails naming that host, stays drained, and the summary is printed."""
    hosts = fleet["hosts"]
    a = fleet["leaders"]["replica_a"]
    set_link(hosts, "simhost6x4", up=True)
    r, got, cut_at = rollout_cutting_link(fleet, 96, in_service=[a], host="simhost6x3")
    print(f"\nhost lost mid-upgrade: rollout stopped after {r.seconds:.0f}s; client: {got['ok']} ok, "
          f"{got['failed']} failed, per backend {got['ok_per_backend']}")
    assert cut_at is not None, "replica B was never drained"
    assert r.rc != 0, r.out[-6000:]
    s = summary(r.out)
    assert "rollout STOPPED: failed replicas exceed nim_fleet_max_fail_percentage=0; 1 of 2 replicas failed" in s, \
        r.out[-6000:]
    assert "replica_a (simhost6x1, simhost6x2): current" in s, s
    assert "replica_b (simhost6x3, simhost6x4): failed - simhost6x3 became unreachable (left out of the load " \
           "balancer)" in s, s
    assert "Rollout stopped: 1 of 2 replicas failed" in r.out
    # B stays out of the load balancer; A serves alone, without a failed request.
    assert fleet["members"].read_text().split() == [a]
    assert max_model_len(a) == 96
    assert got["failed"] == 0, got["failures"]
    assert got["stopped_by_test"], "the client hit its bound before the rollout ended"
    assert got["ok_per_backend"].get(a, 0) > 0
    STATE["lost_mid_upgrade"] = {"seconds": round(r.seconds), **{k: got[k] for k in ("ok", "failed")}}


def test_rerun_after_host_returns_converges(fleet):
    hosts = fleet["hosts"]
    set_link(hosts, "simhost6x3", up=True)
    r = play(fleet["inventory"](96))
    assert r.rc == 0, r.out[-6000:]
    s = summary(r.out)
    assert "replica_a (simhost6x1, simhost6x2): current" in s, s
    assert "replica_b (simhost6x3, simhost6x4): upgraded" in s, s
    assert all(max_model_len(b) == 96 for b in fleet["leaders"].values())
    r = play(fleet["inventory"](96))
    assert r.rc == 0 and set(r.changed().values()) == {0}, r.changed()
    (REPO / "build").mkdir(exist_ok=True)
    (REPO / "build" / "fleet-docker-metrics.json").write_text(json.dumps(STATE, indent=2) + "\n")
