"""Kubernetes fleet (playbooks/deploy-nim-fleet.yml) on the shared sim cluster: several releases from one inventory,
each in its own namespace with its own values, rolled one at a time behind the LeaderWorkerSet health gate.
1 GPU per pod (the shared sim's GPUs are contended)."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import yaml

from k8s_playbooks import ANSIBLE_PLAYBOOK, REPO, PlayResult, cleanup_namespace

FAULT = "sim.nimops.test/fault"


def private_collections_root() -> Path:
    """This checkout as nimops.multinode, through a link only these tests use (a shared link can be re-pointed
    at another checkout by a concurrent session)."""
    root = Path(tempfile.gettempdir()) / f"nimops-fleet-ac-{os.getuid()}-{os.getpid()}"
    link = root / "ansible_collections" / "nimops" / "multinode"
    if not link.is_symlink():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(REPO)
    return root


def inventory(sim, releases: dict) -> Path:
    shared = {
        "nim_chart": {"source": "repo", "repo_url": sim.repo_url, "version": "2.0.0-sim",
                      "password": sim.repo_credentials[1], "allow_http_credentials": True},
        "nim_helm_binary": sim.helm,
        "nim_nodes": 2,
        "nim_gpus_per_node": 1,
        "nim_tensor_parallel_size": 1,
        "nim_pipeline_parallel_size": 2,
        "nim_storage": {"kind": "claim", "claim_name": "nim-model-cache", "size": "10Gi"},
        "nim_wait_timeout": 600,
    }
    inv = {"nim_fleet_releases": {"vars": shared, "hosts": releases}}
    fd, path = tempfile.mkstemp(suffix=".yml", prefix="fleet-inv-")
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(inv, fh, sort_keys=False)
    return Path(path)


def run_fleet(sim, inv: Path, timeout: float = 1500) -> PlayResult:
    env = dict(os.environ)
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": str(private_collections_root()),
        "K8S_AUTH_KUBECONFIG": sim.kubeconfig,
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "NGC_API_KEY": sim.repo_credentials[1],
        "PATH": str(Path(ANSIBLE_PLAYBOOK).parent) + os.pathsep + env.get("PATH", ""),
    })
    env.pop("HF_TOKEN", None)
    start = time.monotonic()
    r = subprocess.run([ANSIBLE_PLAYBOOK, "-i", str(inv), str(REPO / "playbooks" / "deploy-nim-fleet.yml")],
                       env=env, capture_output=True, text=True, timeout=timeout, cwd=str(REPO), check=False)
    return PlayResult(r.returncode, r.stdout + r.stderr, time.monotonic() - start)


def recap(out: str) -> dict:
    rows = {}
    for line in out[out.rfind("PLAY RECAP"):].splitlines()[1:]:
        parts = line.split()
        if len(parts) > 4 and parts[1] == ":":
            rows[parts[0]] = {k: int(v) for k, v in (p.split("=") for p in parts[2:])}
    return rows


def lws(sim, namespace: str) -> dict | None:
    r = sim.kubectl("get", "leaderworkersets", "-n", namespace, "-o", "json", check=False)
    items = json.loads(r.stdout)["items"] if r.returncode == 0 else []
    return items[0] if items else None


def available(obj: dict | None) -> bool:
    return bool(obj) and any(c["type"] == "Available" and c["status"] == "True"
                             for c in obj.get("status", {}).get("conditions", []))


@pytest.fixture
def namespaces(sim_cluster):
    tag = uuid.uuid4().hex[:6]
    names = {k: f"fleet-{tag}-{k}" for k in ("a", "b", "c")}
    yield names
    for ns in names.values():
        cleanup_namespace(sim_cluster, ns)


def test_two_releases_rolled_in_order_then_rerun_changes_nothing(sim_cluster, namespaces):
    sim = sim_cluster
    inv = inventory(sim, {
        "team-a-llama": {"nim_namespace": namespaces["a"], "nim_release": "llama-a",
                         "nim_image": {"repository": "nvcr.io/nim/meta/llama-3.1-8b-instruct", "tag": "1.13.1"}},
        "team-b-mixtral": {"nim_namespace": namespaces["b"], "nim_release": "mixtral-b",
                           "nim_image": {"repository": "nvcr.io/nim/mistralai/mixtral-8x7b-instruct", "tag": "1.12.0"},
                           "nim_extra_values": {"podLabels": {"team": "b"}}},
    })
    try:
        r = run_fleet(sim, inv)
        print(f"\nk8s fleet: two releases rolled in {r.seconds:.0f}s")
        assert r.rc == 0, r.out[-6000:]
        # In order (serial 1): the first release's batch, through its health gate, ends before the second's starts.
        roll = r.out[r.out.index("PLAY [Roll the releases"):]
        batches = roll.split("PLAY [Roll the releases")[1:]
        assert len(batches) == 2, len(batches)
        assert "[team-a-llama]" in batches[0] and "[team-b-mixtral]" not in batches[0]
        assert "[team-b-mixtral]" in batches[1] and "[team-a-llama]" not in batches[1]
        assert "lws_wait" in batches[0] or "Available" in batches[0]
        for key, rel, image in (("a", "llama-a", "llama-3.1-8b-instruct"), ("b", "mixtral-b", "mixtral-8x7b-instruct")):
            obj = lws(sim, namespaces[key])
            assert available(obj), obj and obj.get("status")
            assert obj["spec"]["leaderWorkerTemplate"]["size"] == 2
            assert image in json.dumps(obj["spec"]["leaderWorkerTemplate"]), rel
        assert '"team": "b"' in json.dumps(lws(sim, namespaces["b"])["spec"]) and \
            '"team": "b"' not in json.dumps(lws(sim, namespaces["a"])["spec"])
        assert f"{namespaces['a']}/llama-a: ready" in r.out and f"{namespaces['b']}/mixtral-b: ready" in r.out
        versions = {k: lws(sim, namespaces[k])["metadata"]["resourceVersion"] for k in ("a", "b")}
        r = run_fleet(sim, inv)
        assert r.rc == 0, r.out[-6000:]
        assert {h: v["changed"] for h, v in recap(r.out).items()} == {"team-a-llama": 0, "team-b-mixtral": 0}
        assert {k: lws(sim, namespaces[k])["metadata"]["resourceVersion"] for k in ("a", "b")} == versions
    finally:
        inv.unlink()


def test_failing_release_stops_rollout_named_and_leaves_first_intact(sim_cluster, namespaces):
    sim = sim_cluster
    inv = inventory(sim, {
        "team-a-llama": {"nim_namespace": namespaces["a"], "nim_release": "llama-a",
                         "nim_image": {"repository": "nvcr.io/nim/meta/llama-3.1-8b-instruct", "tag": "1.13.1"}},
        "team-b-broken": {"nim_namespace": namespaces["b"], "nim_release": "broken-b",
                          "nim_image": {"repository": "nvcr.io/nim/meta/llama-3.1-8b-instruct", "tag": "1.13.1"},
                          "nim_extra_values": {"podLabels": {FAULT: "crashloop"}, "podAnnotations": {
                              "sim.nimops.test/fault-message": "fatal: CUDA driver version is insufficient"}}},
        "team-c-later": {"nim_namespace": namespaces["c"], "nim_release": "later-c",
                         "nim_image": {"repository": "nvcr.io/nim/meta/llama-3.1-8b-instruct", "tag": "1.13.1"}},
    })
    try:
        r = run_fleet(sim, inv)
        print(f"\nk8s fleet with a failing release: stopped after {r.seconds:.0f}s")
        assert r.rc != 0, r.out[-6000:]
        assert f"Fleet rollout stopped at release team-b-broken ({namespaces['b']}/broken-b)" in r.out, r.out[-6000:]
        assert "fatal: CUDA driver version is insufficient" in r.out
        assert "Releases before it (team-a-llama) were left as they are" in r.out
        assert "releases after it (team-c-later) were not started" in r.out
        a = lws(sim, namespaces["a"])
        assert available(a), a and a.get("status")
        assert lws(sim, namespaces["c"]) is None
        assert sim.kubectl("get", "namespace", namespaces["c"], check=False).returncode != 0
        rows = recap(r.out)
        assert rows["team-a-llama"]["failed"] == 0 and rows["team-b-broken"]["failed"] == 1, rows
        roll = r.out[r.out.index("PLAY [Roll the releases"):]
        assert "[team-c-later]" not in roll  # validated in the first play, never rolled
    finally:
        inv.unlink()
