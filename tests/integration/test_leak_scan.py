"""Leak scan: a planted fake NGC API key and HF token (and, on the bare hosts, a Ray token and an inference API key),
unique to this test run, are searched for everywhere they must not be. The test fails on any hit, naming where.

Searched (raw and base64-encoded):
- all Ansible output at -vvvv with --diff (check, real, idempotent re-run, diagnose, teardown), which prints every
  module result, and the same runs through the json stdout callback (module results as data);
- the arguments of every process on this machine while the playbooks run, read as each one execs (the kernel's
  process events) and all of them again 4 times a second (helm, kubectl, ssh, the simulated hosts'
  sshd/podman/containers: their PID namespaces are visible from here);
- files written: new files under the temp dir, ~/.ansible, Helm's and the collection's caches, the sim cluster's
  state and logs (except etcd's data, where a Secret's value belongs), the simulated hosts' private directories
  (except the root-only env files, the one place the secrets belong on a host);
- API objects of the release's namespace other than the three Secrets that hold them (config maps, the
  LeaderWorkerSet, pods, events, Helm's release records decoded);
- container configs of the bare-host deployment (`inspect`).
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import stat
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from k8s_playbooks import REPO, CmdlineScanner, cleanup_namespace, example_vars, run_playbook
from simhosts_fixtures import run_playbook as run_hosts_playbook, tiny_vllm_deployment
from simhosts_fixtures import sim_hosts, tiny_model_cache  # noqa: F401  # pylint: disable=unused-import

TOKEN = uuid.uuid4().hex
NGC = f"nvapi-FAKE-leakscan-{TOKEN}"
HF = f"hf_FAKEleakscan{TOKEN}"
RAY_TOKEN = f"FAKEraytokenleakscan{TOKEN}"
API_KEY = f"FAKE-api-key-leakscan-{TOKEN}"
SECRET_HOLDERS = {"ngc-api", "hf-token", "nvcr-imagepull"}
MAX_FILE = 32 * 1024 * 1024


def needles(*secrets: str) -> dict[str, str]:
    """Each secret raw and base64-encoded at its three byte alignments (as it would appear inside base64 text)."""
    found = {}
    for s in secrets:
        found[s] = s
        for shift in range(3):
            enc = base64.b64encode(b"x" * shift + s.encode()).decode()
            # only the 4-character groups made of the secret's bytes alone (not the neighbours' bytes)
            core = enc[4 * -(-shift // 3):4 * ((shift + len(s)) // 3)]
            if len(core) >= 16:
                found[f"base64({s[:14]}…)/{shift}"] = core
    return found


NEEDLES = needles(NGC, HF, RAY_TOKEN, API_KEY)


def hits(text: str, where: str) -> list[str]:
    return [f"{where}: {name}" for name, needle in NEEDLES.items() if needle in text]


def scan_tree(root: Path, since: float, skip=(), limit: int = 200_000) -> list[str]:
    """Hits in regular files under root modified at or after `since` (bounded walk)."""
    found, seen = [], 0
    if not root.exists():
        return found
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = [d for d in dirnames if not any(str(Path(dirpath, d)).startswith(s) for s in skip)]
        for name in filenames:
            seen += 1
            if seen > limit:
                return found
            path = Path(dirpath, name)
            if any(str(path).startswith(s) for s in skip):
                continue
            try:
                st = path.lstat()
                if not stat.S_ISREG(st.st_mode) or st.st_mtime < since or st.st_size > MAX_FILE:
                    continue
                data = path.read_bytes()
            except OSError:
                continue
            text = data.decode(errors="replace")
            if data[:2] == b"\x1f\x8b":  # gzip (chart archives, Helm release payloads)
                try:
                    text += gzip.decompress(data).decode(errors="replace")
                except (OSError, EOFError):
                    pass
            found += hits(text, str(path))
    return found


def decode_helm_release(item: dict) -> str:
    raw = base64.b64decode(item["data"]["release"])
    return gzip.decompress(base64.b64decode(raw)).decode(errors="replace")


def run_all(sim, monkeypatch, extravars: dict, namespace: str) -> list[tuple[str, str]]:
    outputs = []
    kw = {"ngc_key": NGC, "hf_token": HF, "diff": True}
    for label, check in (("check", True), ("deploy", False), ("re-run", False)):
        r = run_playbook(sim, "deploy-nim.yml", extravars, check=check, verbosity=4, **kw)
        assert r.rc == 0, f"{label} failed:\n{r.out[-4000:]}"
        outputs.append((f"deploy-nim.yml {label} -vvvv", r.out))
    with monkeypatch.context() as m:
        m.setenv("ANSIBLE_STDOUT_CALLBACK", "ansible.posix.json")
        r = run_playbook(sim, "deploy-nim.yml", extravars, **kw)
        assert r.rc == 0, r.out[-4000:]
        assert '"plays"' in r.out and '"stats"' in r.out, r.out[-2000:]  # really the json callback's document
        outputs.append(("deploy-nim.yml module results (json callback)", r.out))
    names = {"nim_namespace": namespace, "nim_release": extravars["nim_release"], "nim_helm_binary": sim.helm}
    r = run_playbook(sim, "diagnose-nim.yml", names, verbosity=4, **kw)
    outputs.append(("diagnose-nim.yml -vvvv", r.out))
    return outputs


def test_the_argv_scanner_sees_processes_that_live_a_moment():
    """The control for the scans below: a planted value in the argv of short processes (and of one that keeps
    running) is found, through the kernel's process events, with the full reads still going on."""
    with CmdlineScanner(NEEDLES) as scan:
        for _attempt in range(20):
            subprocess.run(["/bin/sh", "-c", "sleep 0.05", "sh", NGC], check=True)
        with subprocess.Popen(["/bin/sh", "-c", "sleep 2", "sh", HF]) as steady:
            steady.wait()
    assert scan.exec_events, "the kernel's process events are not available: only the 5 ms reads ran"
    assert scan.samples > 4
    found = "\n".join(scan.hits)
    assert found.count(f": {NGC}") >= 15, found
    assert f": {HF}" in found, found


def test_no_secret_leaks_on_the_kubernetes_path(sim_cluster, monkeypatch):
    sim = sim_cluster
    namespace = f"leak-{uuid.uuid4().hex[:8]}"
    extravars = dict(example_vars("llama-3.1-405b-2node.yml"))
    extravars.update({
        "nim_namespace": namespace,
        "nim_helm_binary": sim.helm,
        # a local chart, so the planted key is not also the sim repository's password (which the sim stores)
        "nim_chart": {"source": "path", "ref": str(REPO / "tests" / "fixtures" / "nim-llm-testchart")},
        "nim_model_path": "hf://meta-llama/Llama-3.1-405B-Instruct",
        # one fake GPU per pod: the shared sim's 4 nodes then hold several tests' releases at once
        "nim_gpus_per_node": 1, "nim_tensor_parallel_size": 1, "nim_pipeline_parallel_size": 2,
    })
    start = time.time() - 1
    sampler = CmdlineScanner(NEEDLES)
    sampler.start()
    try:
        outputs = run_all(sim, monkeypatch, extravars, namespace)
        down = {"nim_namespace": namespace, "nim_release": extravars["nim_release"], "nim_helm_binary": sim.helm}
        # the API objects, before teardown removes the release
        found = []
        items = sim.kubectl_json("get", "configmaps,secrets,leaderworkersets,statefulsets,services,pods,events,"
                                 "persistentvolumeclaims", "-n", namespace)["items"]
        kinds = {}
        for item in items:
            meta = item["metadata"]
            kinds[item["kind"]] = kinds.get(item["kind"], 0) + 1
            if item["kind"] == "Secret" and meta["name"] in SECRET_HOLDERS:
                continue
            text = json.dumps(item)
            if item["kind"] == "Secret" and item.get("type") == "helm.sh/release.v1":
                text += decode_helm_release(item)
            found += hits(text, f"{item['kind']} {meta['name']}")
        assert kinds.get("LeaderWorkerSet") == 1 and kinds.get("Pod", 0) >= 2, kinds
        # the secrets hold exactly the planted values (so the scan looked for what really was deployed)
        ngc = sim.kubectl_json("get", "secret", "ngc-api", "-n", namespace)
        assert base64.b64decode(ngc["data"]["NGC_API_KEY"]).decode() == NGC
        hf = sim.kubectl_json("get", "secret", "hf-token", "-n", namespace)
        assert base64.b64decode(hf["data"]["HF_TOKEN"]).decode() == HF
        r = run_playbook(sim, "teardown-nim.yml", down, verbosity=4, diff=True, ngc_key=NGC, hf_token=HF)
        assert r.rc == 0, r.out[-3000:]
        outputs.append(("teardown-nim.yml -vvvv", r.out))
    finally:
        sampler.stop()
        cleanup_namespace(sim, namespace)
    assert sampler.samples > 10, "the process sampler did not run"
    for label, out in outputs:
        assert len(out) > 1000, label  # -vvvv output really was captured
        found += hits(out, label)
    found += sampler.hits
    home = Path.home()
    skip = [str(sim.state_dir / "etcd-data")]
    for root in (Path(tempfile.gettempdir()), home / ".ansible", home / ".cache" / "helm", home / ".config" / "helm",
                 home / ".local" / "share" / "helm", home / ".cache" / "nimops" / "charts", sim.state_dir, REPO):
        found += scan_tree(root, start, skip=skip + [str(REPO / ".git"), str(REPO / ".venv")])
    assert found == [], "planted secrets found:\n" + "\n".join(found)


# ---------------------------------------------------------------- bare hosts

def test_no_secret_leaks_on_bare_hosts(request, tmp_path):
    hosts = request.getfixturevalue("sim_hosts")
    cache = request.getfixturevalue("tiny_model_cache")
    name = "leak" + uuid.uuid4().hex[:6]
    inv = hosts.inventory(tmp_path / "inventory.yml", {
        **tiny_vllm_deployment(hosts, name, cache),
        # From the environment, like the other secrets: the inventory file itself is among the files scanned.
        "nim_docker_ray_token": "{{ lookup('ansible.builtin.env', 'LEAKSCAN_RAY_TOKEN') }}",
    })
    env = {"NGC_API_KEY": NGC, "HF_TOKEN": HF, "LEAKSCAN_RAY_TOKEN": RAY_TOKEN, "NIM_DOCKER_API_KEY": API_KEY}
    start = time.time() - 1
    outputs, found = [], []
    sampler = CmdlineScanner(NEEDLES)
    with hosts.exclusive():
        sampler.start()
        try:
            r = run_hosts_playbook(inv, "deploy-nim-docker.yml", verbosity=4, diff=True, env=env)
            assert r.rc == 0, r.out[-4000:]
            outputs.append(("deploy-nim-docker.yml -vvvv", r.out))
            r = run_hosts_playbook(inv, "deploy-nim-docker.yml", verbosity=4, diff=True, check=True, env=env)
            outputs.append(("deploy-nim-docker.yml --check -vvvv", r.out))
            inspected = 0
            for host in hosts.names:
                for c in hosts.containers(host):
                    if c.name.startswith(name + "-"):
                        inspected += 1
                        found += hits(json.dumps(c.attrs), f"inspect {host}/{c.name}")
                env_file = hosts.host_path(host, f"/etc/nimops/{name}.env")
                assert env_file.exists(), env_file
                assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
                assert NGC in env_file.read_text() and RAY_TOKEN in env_file.read_text()  # the one place they belong
                holders = [str(env_file)]
                if host == hosts.names[0]:
                    key_file = hosts.host_path(host, f"/etc/nimops/{name}-server.env")
                    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and API_KEY in key_file.read_text()
                    holders.append(str(key_file))
                state = Path(hosts.info["hosts"][host]["state_dir"])
                found += scan_tree(state, start, skip=holders)
            assert inspected >= len(hosts.names), inspected
        finally:
            r = run_hosts_playbook(inv, "teardown-nim-docker.yml", verbosity=4, diff=True, env=env)
            outputs.append(("teardown-nim-docker.yml -vvvv", r.out))
            sampler.stop()
            for host in hosts.names:  # leave nothing of ours on the shared hosts, even after a failed teardown
                for c in hosts.containers(host):
                    if c.name.startswith(name + "-"):
                        c.remove(force=True)
    assert sampler.samples > 10
    for label, out in outputs:
        assert len(out) > 1000, label
        found += hits(out, label)
    found += sampler.hits
    found += scan_tree(Path(tempfile.gettempdir()), start)
    found += scan_tree(Path.home() / ".ansible", start)
    assert found == [], "planted secrets found:\n" + "\n".join(found)
