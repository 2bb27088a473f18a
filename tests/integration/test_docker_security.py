"""The bare-host replica reached from outside it: Ray refuses anyone without the replica's token, the inference API
anyone without its key, the opt-in firewall keeps non-members from reaching the ports at all, and a foreign Ray head
on the leader's GCS port stops the deploy before anything starts or joins it.

Real Ray, real vLLM (CPU) and real nftables on the simulated hosts: a replica of two hosts, and a third host of the
same set on the same bridge that is not a member (the outsider). The tests run in file order on one deployment.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests

from simhosts_fixtures import LEADER, OUTSIDER, RAY_STATUS, WORKER, SimHosts, run_playbook, tiny_vllm_deployment
from simhosts_fixtures import sim_hosts, tiny_model_cache  # noqa: F401  pylint: disable=unused-import

NAME = "sec" + uuid.uuid4().hex[:6]
API_KEY = "FAKE-api-key-" + uuid.uuid4().hex
NGC = "nvapi-FAKE-security-" + uuid.uuid4().hex
GCS, CLIENT, AGENT, API = 6379, 10001, 52365, 8000

# Run in a container on the outsider: three ways into a Ray cluster, each reported as data.
PROBE = r'''
import json, subprocess, sys, urllib.error, urllib.request
head = sys.argv[1]
out = {}
r = subprocess.run(["ray", "status", "--address", head + ":%d"], capture_output=True, text=True, timeout=120)
out["gcs"] = {"rc": r.returncode, "auth_error": "InvalidAuthToken" in r.stdout + r.stderr}
try:
    from ray.util.client import ray as client
    client.connect(head + ":%d", connection_retries=1)
    out["client"] = {"connected": True}
    client.disconnect()
except Exception as exc:
    out["client"] = {"connected": False, "error": "%%s: %%s" %% (type(exc).__name__, str(exc)[:200])}
job = urllib.request.Request("http://%%s:%d/api/job_agent/jobs/" %% head, method="POST",
                             data=b'{"entrypoint": "cat /run/nimops/secrets.env"}',
                             headers={"Content-Type": "application/json"})
try:
    with urllib.request.urlopen(job, timeout=5) as resp:
        out["job_agent"] = {"status": resp.status}
except urllib.error.HTTPError as exc:
    out["job_agent"] = {"status": exc.code}
except OSError as exc:
    out["job_agent"] = {"error": str(exc)}
print(json.dumps(out))
''' % (GCS, CLIENT, AGENT)


@pytest.fixture(scope="module")
def deployment(sim_hosts: SimHosts, tiny_model_cache: Path, tmp_path_factory) -> dict:  # noqa: F811
    base = tiny_vllm_deployment(sim_hosts, NAME, tiny_model_cache)
    d = tmp_path_factory.mktemp("security")
    bridge = sim_hosts.ip(LEADER).rsplit(".", 1)[0] + ".1"  # this machine, on the hosts' bridge
    inv = {"open": sim_hosts.inventory(d / "open.yml", base),
           "firewall": sim_hosts.inventory(d / "firewall.yml", dict(base, nim_docker_firewall=True,
                                                                    nim_docker_firewall_api_sources=[bridge + "/32"]))}
    assert OUTSIDER in sim_hosts.info["hosts"] and OUTSIDER not in sim_hosts.names
    with sim_hosts.exclusive():
        yield {"inventory": inv, "hosts": sim_hosts, "dir": d}
        run_playbook(inv["firewall"], "teardown-nim-docker.yml")


def play(dep: dict, which: str, playbook: str = "deploy-nim-docker.yml", **kw):
    return run_playbook(dep["inventory"][which], playbook,
                        env={"NGC_API_KEY": NGC, "NIM_DOCKER_API_KEY": API_KEY}, **kw)


def probe_from_outsider(hosts: SimHosts, env_file: Path | None = None) -> dict:
    """PROBE in a throw-away container on the outsider (host network: the outsider's own address)."""
    engine = hosts.engine(OUTSIDER)
    kwargs = {}
    if env_file:
        kwargs["volumes"] = {str(env_file): {"bind": "/probe.env", "mode": "ro"}}
        command = ["sh", "-c", 'set -a && . /probe.env && set +a && exec python3 -c "$0" "$1"', PROBE, hosts.ip(LEADER)]
    else:
        command = ["python3", "-c", PROBE, hosts.ip(LEADER)]
    out = engine.containers.run(hosts.info["image"], command, network_mode="host", remove=True,
                                stdout=True, stderr=False, **kwargs)
    return json.loads(out.decode().strip().splitlines()[-1])


def tcp(netns: str, ip: str, port: int) -> str:
    """'open', 'refused' or 'no answer' for a TCP connection from a network namespace."""
    code = ("import socket, sys\ns = socket.socket(); s.settimeout(3)\n"
            "try:\n    s.connect((sys.argv[1], int(sys.argv[2]))); print('open')\n"
            "except socket.timeout:\n    print('no answer')\n"
            "except ConnectionRefusedError:\n    print('refused')\n")
    r = subprocess.run(["nsenter", f"--net=/run/netns/{netns}", "python3", "-c", code, ip, str(port)],
                       capture_output=True, text=True, timeout=30, check=True)
    return r.stdout.strip()


def models(hosts: SimHosts, key: str | None) -> int:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.get(f"http://{hosts.ip(LEADER)}:{API}/v1/models", headers=headers, timeout=30).status_code


def test_deploy_with_token_and_key(deployment):
    hosts = deployment["hosts"]
    r = play(deployment, "open")
    assert r.rc == 0, r.out[-6000:]
    assert "2/2 Ray nodes alive" in r.out
    assert API_KEY not in r.out
    # One token for the replica, in each member's root-only env file (the value stays in the files).
    tokens = set()
    for host in (LEADER, WORKER):
        text = hosts.host_path(host, f"/etc/nimops/{NAME}.env").read_text()
        assert "RAY_AUTH_MODE=token" in text
        tokens |= {line for line in text.splitlines() if line.startswith("RAY_AUTH_TOKEN=")}
    assert len(tokens) == 1 and len(tokens.pop()) > len("RAY_AUTH_TOKEN=") + 32


def test_ray_refuses_a_client_without_the_token(deployment):
    hosts = deployment["hosts"]
    got = probe_from_outsider(hosts)
    assert got["gcs"] == {"rc": 1, "auth_error": True}, got
    assert got["client"]["connected"] is False, got
    # The job API of the dashboard agent (CVE-2023-48022 class) is not served at all: the images run no agent.
    assert "status" not in got["job_agent"] and "refused" in got["job_agent"]["error"].lower(), got
    # The control: with the replica's token, the same probe gets in (the refusals above are the token's doing).
    token_file = deployment["dir"] / "token.env"
    env_text = hosts.host_path(LEADER, f"/etc/nimops/{NAME}.env").read_text()
    token_file.write_text("".join(line + "\n" for line in env_text.splitlines() if line.startswith("RAY_AUTH_")))
    token_file.chmod(0o600)
    try:
        # A client's session server can fail to start on a freshly started, loaded head ("Initialization failure
        # from server"): that is past the token check, so try again, a bounded number of times.
        for _attempt in range(3):
            with_token = probe_from_outsider(hosts, token_file)
            if with_token["client"]["connected"] or "Initialization failure" not in with_token["client"]["error"]:
                break
    finally:
        token_file.unlink()
    assert with_token["gcs"]["rc"] == 0 and with_token["client"] == {"connected": True}, with_token


def test_ray_status_in_the_head_needs_the_token(deployment):
    head = deployment["hosts"].engine(LEADER).containers.get(f"{NAME}-ray-head")
    bare = head.exec_run(["ray", "status"])
    assert bare.exit_code != 0 and b"InvalidAuthToken" in bare.output, bare.output[-2000:]
    assert head.exec_run(RAY_STATUS).exit_code == 0


def test_api_needs_the_key(deployment):
    hosts = deployment["hosts"]
    assert models(hosts, None) == 401
    assert models(hosts, "FAKE-wrong-key-" + "0" * 16) == 401
    assert models(hosts, API_KEY) == 200
    # The key is in the server's own root-only file, not in its configuration or arguments.
    server = hosts.engine(LEADER).containers.get(f"{NAME}-server")
    assert API_KEY not in json.dumps(server.attrs)
    key_file = hosts.host_path(LEADER, f"/etc/nimops/{NAME}-server.env")
    assert oct(key_file.stat().st_mode & 0o777) == "0o600" and API_KEY in key_file.read_text()


def test_firewall_admits_members_only(deployment):
    hosts = deployment["hosts"]
    r = play(deployment, "firewall", diff=True)
    assert r.rc == 0, r.out[-6000:]
    leader = hosts.ip(LEADER)
    for port in (GCS, CLIENT, 8077, API):
        assert tcp(OUTSIDER, leader, port) == "no answer", port
        assert tcp(WORKER, leader, port) == "open", port
    # The declared API source (this machine) gets the API and nothing else.
    assert models(hosts, API_KEY) == 200
    with pytest.raises((socket.timeout, OSError)):
        socket.create_connection((leader, GCS), timeout=3).close()
    r = requests.post(f"http://{leader}:{API}/v1/completions", headers={"Authorization": f"Bearer {API_KEY}"},
                      json={"model": "tiny", "prompt": "firewall", "max_tokens": 3}, timeout=60)
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 3, r.text
    again = play(deployment, "firewall", diff=True)
    assert again.rc == 0 and again.changed() == {LEADER: 0, WORKER: 0}, again.out[-4000:]


def test_teardown_removes_the_firewall(deployment):
    hosts = deployment["hosts"]
    r = play(deployment, "firewall", "teardown-nim-docker.yml")
    assert r.rc == 0, r.out[-4000:]
    for host in (LEADER, WORKER):
        tables = subprocess.run(["nsenter", f"--net=/run/netns/{host}", "nft", "list", "tables"],
                                capture_output=True, text=True, check=True).stdout
        assert f"nimops_{NAME}" not in tables, tables
        assert not hosts.host_path(host, f"/etc/nimops/{NAME}.nft").exists()
    assert tcp(OUTSIDER, hosts.ip(LEADER), 22) == "open"


def test_foreign_ray_head_is_refused(deployment):
    """Another Ray cluster's head (no token) already holds the leader's GCS port: the deploy stops naming it, and
    no container of the replica starts, so no worker joins that cluster."""
    hosts = deployment["hosts"]
    foreign = hosts.engine(LEADER).containers.run(
        hosts.info["image"], ["ray", "start", "--block", "--head", f"--node-ip-address={hosts.ip(LEADER)}",
                              f"--port={GCS}", "--include-dashboard=false", "--disable-usage-stats"],
        name=f"{NAME}-foreign", network_mode="host", detach=True, environment={"RAY_AUTH_MODE": "disabled"})
    try:
        if not any(tcp(WORKER, hosts.ip(LEADER), GCS) == "open" or time.sleep(1) for _attempt in range(60)):
            pytest.fail("the foreign Ray head did not start listening")
        r = play(deployment, "open")
        assert r.rc != 0
        assert f"[ray_ports] replica replica1 cannot form its Ray cluster: {LEADER} port" in r.out, r.out[-6000:]
        assert f"{GCS}" in r.out.split("[ray_ports]", 1)[1].split("Why:", 1)[0], r.out[-6000:]
        assert r.recap()[WORKER]["failed"] == 1, r.recap()
        for host in (LEADER, WORKER):
            assert [c.name for c in hosts.containers(host) if c.name.startswith(NAME + "-ray")] == [], host
        status = foreign.exec_run(["ray", "status"])
        assert status.output.decode().count(" 1 node_") == 1, status.output.decode()[-2000:]
    finally:
        foreign.remove(force=True)
