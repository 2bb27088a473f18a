# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The container settings the bare-Docker roles render from their variables (GPUs cannot be exercised on the
simulated hosts, so the rendered device requests are checked here, through Ansible's own templating)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

REPO = Path(__file__).resolve().parents[2]
ROLES = REPO / "roles"


def trusted(value):
    """Role files are trusted template sources for Ansible; mark them so, as its role loader does."""
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {k: trusted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [trusted(v) for v in value]
    return value


def render(role: str, expr: str, **overrides):
    loader = DataLoader()
    variables = {}
    for part in ("defaults", "vars"):
        variables.update(trusted(loader.load_from_file(str(ROLES / role / part / "main.yml"))))
    variables.update(inventory_hostname="gpu-a-01", groups={"replica_a": ["gpu-a-01", "gpu-a-02", "gpu-a-03"]},
                     docker_ray_cluster_replica_group="replica_a", **overrides)
    return Templar(loader=loader, variables=variables).template(trust_as_template(expr))


@pytest.mark.parametrize("gpus,expected", [
    (0, []),
    (8, [{"driver": "nvidia", "count": 8, "capabilities": [["gpu"]]}]),
    ("4", [{"driver": "nvidia", "count": 4, "capabilities": [["gpu"]]}]),
])
def test_ray_nodes_request_gpus_per_node(gpus, expected):
    assert render("docker_ray_cluster", "{{ _docker_ray_cluster_host_options.device_requests }}",
                  docker_ray_cluster_gpus_per_node=gpus) == expected
    assert render("docker_nim_server", "{{ _docker_nim_server_host_options.device_requests }}",
                  docker_nim_server_gpus_per_node=gpus) == expected


@pytest.mark.parametrize("role", ["docker_ray_cluster", "docker_nim_server"])
def test_both_roles_derive_the_same_host_options_from_their_own_variables(role):
    options = render(role, "{{ _%s_host_options }}" % role, **{
        role + "_rdma": "true", role + "_rdma_devices": ["/dev/infiniband"], role + "_memlock": 1024,
        role + "_ulimits": ["nofile:4096"], role + "_ipc_mode": "host"})
    assert options == {"device_requests": [{"driver": "nvidia", "count": 8, "capabilities": [["gpu"]]}],
                       "devices": ["/dev/infiniband"], "capabilities": ["CAP_IPC_LOCK"],
                       "ulimits": ["nofile:4096", "memlock:1024:1024"], "ipc_mode": "host"}


def test_leader_is_the_first_host_of_the_replica_unless_named():
    assert render("docker_ray_cluster", "{{ _docker_ray_cluster_leader }}") == "gpu-a-01"
    assert render("docker_ray_cluster", "{{ _docker_ray_cluster_is_leader }}") is True
    assert render("docker_ray_cluster", "{{ _docker_ray_cluster_leader }}",
                  docker_ray_cluster_leader="gpu-a-03") == "gpu-a-03"


def test_pinned_ray_ports_and_object_store():
    assert render("docker_ray_cluster", "{{ _docker_ray_cluster_ray_ports + _docker_ray_cluster_object_store_args }}",
                  docker_ray_cluster_object_store_memory=1073741824) == [
        "--node-manager-port=8077", "--object-manager-port=8076", "--min-worker-port=10002",
        "--max-worker-port=10999", "--runtime-env-agent-port=8078", "--metrics-export-port=8079",
        "--dashboard-agent-listen-port=52365", "--dashboard-agent-grpc-port=52366", "--object-store-memory=1073741824"]
    assert render("docker_ray_cluster", "{{ _docker_ray_cluster_all_ports }}") == [
        6379, 8077, 8076, 8078, 8079, 52365, 52366, 44217, 10001]


def test_secrets_reach_processes_only_through_the_sourced_env_file():
    entry = render("docker_ray_cluster", "{{ _docker_ray_cluster_entry }}", docker_ray_cluster_name="nim")
    assert entry == ["/bin/sh", "-c", 'set -a && . /run/nimops/secrets.env && set +a && exec "$@"', "nimops-entry"]
    # The server also sources its own file (the API key), which the Ray nodes never see.
    assert render("docker_nim_server", "{{ _docker_nim_server_entry }}") == [
        "/bin/sh", "-c", 'set -a && . /run/nimops/secrets.env && . /run/nimops/server.env && set +a && exec "$@"',
        "nimops-entry"]


@pytest.mark.parametrize("backend,binds", [
    ("ray", ["/var/lib/nimops/model-cache:/root/.cache/huggingface", "/etc/nimops/nim.env:/run/nimops/secrets.env:ro",
             "/etc/nimops/nim-server.env:/run/nimops/server.env:ro", "/var/lib/nimops/nim/ray:/tmp/ray"]),
    ("mp", ["/var/lib/nimops/model-cache:/root/.cache/huggingface", "/etc/nimops/nim.env:/run/nimops/secrets.env:ro",
            "/etc/nimops/nim-server.env:/run/nimops/server.env:ro"]),
])
def test_server_binds_share_ray_session_files_only_with_the_ray_backend(backend, binds):
    assert render("docker_nim_server", "{{ _docker_nim_server_volumes }}",
                  docker_nim_server_distributed_executor_backend=backend) == binds


def test_firewall_rules_admit_members_and_declared_api_sources_only(tmp_path):
    members = {"gpu-a-01": "10.0.0.11", "gpu-a-02": "10.0.0.12", "gpu-a-03": "fd00::13"}
    template = (ROLES / "docker_ray_cluster" / "templates" / "firewall.nft.j2").read_text()
    rules = render("docker_ray_cluster", template, docker_ray_cluster_name="nim-a",
                   hostvars={h: {"docker_ray_cluster_node_address": ip} for h, ip in members.items()},
                   docker_ray_cluster_firewall_api_sources=["192.0.2.0/24"])
    lines = [line.strip() for line in rules.splitlines()]
    ports = "6379, 8077, 8076, 8078, 8079, 52365, 52366, 44217, 10001, 10002-10999, 8000"
    assert "ip saddr { 10.0.0.11, 10.0.0.12 } tcp dport { %s } accept" % ports in lines
    assert "ip6 saddr { fd00::13 } tcp dport { %s } accept" % ports in lines
    assert "ip saddr { 192.0.2.0/24 } tcp dport 8000 accept" in lines
    # Everything not admitted above is dropped, and the table is replaced as a whole.
    assert lines.index("tcp dport { %s } drop" % ports) > lines.index("ip saddr { 192.0.2.0/24 } tcp dport 8000 accept")
    assert lines[lines.index("table inet nimops_nim_a {}") + 1] == "delete table inet nimops_nim_a"
