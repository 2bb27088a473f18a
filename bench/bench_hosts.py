"""Bare-host section of the benchmarks: rollout on 2, 4 and 8 simulated hosts.

Uses a set of simulated hosts of its own (tests/simhosts with NIMOPS_SIMHOSTS_SET=7: bridge nimopsbr7, subnet
10.77.7.0/24), so the test suites' hosts are not touched. What is measured, per host count N:
  - `ray`: bench/ray-cluster.yml, i.e. the docker_ray_cluster role exactly as deploy-nim-docker.yml runs it:
    Ray head on the leader, N-1 Ray workers, until `ray status` on the head lists N nodes (wall time of the
    ansible-playbook run over SSH, from a clean state: the previous cluster is torn down first), and the CPU
    seconds the whole machine spent busy meanwhile (the simulated hosts share its cores with the controller);
  - `full` (2 hosts only, unless BENCH_HOSTS_FULL lists more): deploy-nim-docker.yml end to end, the Ray
    cluster plus vLLM (CPU) serving the generated tiny model, until /v1/models answers.
Resident memory and CPU seconds of each host (every process in the host's network namespace: sshd, podman,
conmon, the containers' processes) are read after the largest rollout.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SIMHOSTS = REPO / "tests" / "simhosts" / "simhosts.py"
SET = os.environ.get("BENCH_SIMHOSTS_SET", "7")
ENV = dict(os.environ, NIMOPS_SIMHOSTS_SET=SET)
BIN = str(Path(sys.executable).parent)
FAKE_NGC = "nvapi-FAKE-bench-0000000000000000"


def simhosts(*args, timeout=3600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SIMHOSTS), *args], capture_output=True, text=True, env=ENV,
                          timeout=timeout, check=False)


def collections_root() -> Path:
    root = Path(tempfile.gettempdir()) / f"nimops-bench-ac-{os.getuid()}"
    link = root / "ansible_collections" / "nimops" / "multinode"
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink() or link.resolve() != REPO:
        if link.is_symlink():
            link.unlink()
        link.symlink_to(REPO)
    return root


def inventory(info: dict, names: list[str], path: Path, extra: dict) -> Path:
    inv = {"nim_docker": {
        "vars": {"ansible_user": "root", "ansible_ssh_private_key_file": info["ssh_key"],
                 "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
                 "ansible_python_interpreter": "/usr/bin/python3", "nim_docker_replica_group": "bench",
                 **extra},
        "children": {"bench": {"hosts": {h: {"ansible_host": info["hosts"][h]["ansible_host"]} for h in names}}}}}
    path.write_text(yaml.safe_dump(inv, sort_keys=False))
    return path


def busy_cpu_s() -> float:
    """CPU seconds the whole machine has spent busy (all cores; idle and iowait excluded), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def play(inv: Path, playbook: Path, timeout=1800) -> dict:
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections_root()), ANSIBLE_NOCOLOR="1",
               ANSIBLE_HOST_KEY_CHECKING="False", NGC_API_KEY=FAKE_NGC,
               ANSIBLE_FORKS="16", PATH=BIN + os.pathsep + os.environ.get("PATH", ""))
    env.pop("DOCKER_HOST", None)
    t0, cpu0 = time.monotonic(), busy_cpu_s()
    r = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", str(inv), str(playbook)], env=env,
                       capture_output=True, text=True, timeout=timeout, cwd=str(REPO), check=False)
    out = r.stdout + r.stderr
    joined = re.findall(r"(\d+)/(\d+) Ray nodes alive", out)
    return {"rc": r.returncode, "seconds": round(time.monotonic() - t0, 2), "tail": out[-1500:] if r.returncode else "",
            "last_progress": "/".join(joined[-1]) if joined else None,
            # the controller, the simulated hosts and Ray all run on this machine's cores
            "machine_cpu_s": round(busy_cpu_s() - cpu0, 1)}


def model_cache() -> str:
    r = subprocess.run([str(REPO / "tests" / "simhosts" / "make-model.sh")], capture_output=True, text=True,
                       timeout=3600, check=False)
    if r.returncode != 0:
        raise RuntimeError(r.stdout + r.stderr)
    return r.stdout.strip().splitlines()[-1]


def netns_usage(name: str) -> dict:
    """RSS and CPU seconds of every process in the simulated host's network namespace."""
    try:
        target = os.stat(f"/run/netns/{name}").st_ino
    except OSError:
        return {}
    ticks = os.sysconf("SC_CLK_TCK")
    rss_kib, cpu, count = 0, 0.0, 0
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            if os.stat(p / "ns" / "net").st_ino != target:
                continue
            stat = (p / "stat").read_text()
            f = stat[stat.rfind(")") + 2:].split()
            cpu += sum(int(f[i]) for i in (11, 12)) / ticks
            m = re.search(r"VmRSS:\s+(\d+)", (p / "status").read_text())
            rss_kib += int(m.group(1)) if m else 0
            count += 1
        except OSError:
            continue
    return {"processes": count, "rss_mib": round(rss_kib / 1024, 1), "cpu_s": round(cpu, 1)}


def run(counts: list[int], log) -> dict:
    res: dict = {"measured": "Ray cluster formation (docker_ray_cluster role, as in deploy-nim-docker.yml)",
                 "simhosts_set": SET, "by_hosts": {}}
    t0 = time.monotonic()
    r = simhosts("up", "--hosts", str(max(counts)))
    if r.returncode != 0:
        raise SystemExit(f"simulated hosts failed to start:\n{r.stdout}\n{r.stderr}")
    res["hosts_up_s"] = round(time.monotonic() - t0, 2)
    info = json.loads(simhosts("inventory", timeout=120).stdout)
    names = sorted(info["hosts"], key=lambda h: int(h.rsplit("x", 1)[-1]))
    cache = model_cache()
    work = Path(tempfile.mkdtemp(prefix="bench-hosts-"))
    common = {"nim_docker_image": info["image"], "nim_docker_gpus_per_node": 0, "nim_docker_shm_size": "1g",
              "nim_docker_object_store_memory": 128 * 1024 * 1024, "nim_docker_model_cache_dir": cache,
              "nim_docker_model_cache_mount": "/models"}
    log(f"hosts: {len(names)} simulated hosts up ({res['hosts_up_s']}s); Ray formation on {counts}")
    try:
        for n in counts:
            name = "bench" + uuid.uuid4().hex[:5]
            inv = inventory(info, names[:n], work / f"inv-{n}.yml", dict(common, nim_docker_name=name))
            r = play(inv, HERE / "ray-cluster.yml")
            row = {"seconds": r["seconds"], "rc": r["rc"], "ray_nodes": r["last_progress"],
                   "machine_cpu_s": r["machine_cpu_s"],
                   "cpu_bound_floor_s": round(r["machine_cpu_s"] / (os.cpu_count() or 1), 1)}
            if r["rc"] != 0:
                row["error"] = r["tail"]
            if n == max(counts):
                res["resources"] = {"hosts": {h: netns_usage(h) for h in names[:n]}}
                tot_rss = sum(v.get("rss_mib", 0) for v in res["resources"]["hosts"].values())
                tot_cpu = sum(v.get("cpu_s", 0) for v in res["resources"]["hosts"].values())
                res["resources"]["total"] = {"rss_mib": round(tot_rss, 1), "cpu_s": round(tot_cpu, 1)}
                res["resources"]["what"] = f"{n} hosts with a formed Ray cluster (processes in each host's netns)"
            d = play(inv, REPO / "playbooks" / "teardown-nim-docker.yml")
            row["teardown_s"] = d["seconds"]
            res["by_hosts"][str(n)] = row
            log(f"  {n} hosts: Ray formed in {r['seconds']}s (rc={r['rc']}, nodes {r['last_progress']}), "
                f"{r['machine_cpu_s']} CPU-s on {os.cpu_count()} cores; teardown {d['seconds']}s")
        full = [int(x) for x in os.environ.get("BENCH_HOSTS_FULL", "2").split(",") if x]
        for n in full:
            name = "benchf" + uuid.uuid4().hex[:5]
            inv = inventory(info, names[:n], work / f"full-{n}.yml", dict(
                common, nim_docker_name=name, nim_docker_engine="vllm", nim_docker_model="/models/tiny-llama",
                nim_docker_served_model_name="tiny", nim_docker_distributed_executor_backend="uni",
                nim_docker_server_extra_args=["--dtype", "float32", "--max-model-len", "128", "--enforce-eager"],
                nim_docker_server_env={"VLLM_CPU_KVCACHE_SPACE": "1"}))
            r = play(inv, REPO / "playbooks" / "deploy-nim-docker.yml")
            res.setdefault("full_rollout", {})[str(n)] = {
                "seconds": r["seconds"], "rc": r["rc"],
                "what": "deploy-nim-docker.yml: Ray cluster + vLLM CPU serving the tiny model until /v1/models answers",
                **({"error": r["tail"]} if r["rc"] else {})}
            log(f"  full rollout on {n} hosts (Ray + vLLM): {r['seconds']}s rc={r['rc']}")
            play(inv, REPO / "playbooks" / "teardown-nim-docker.yml")
    finally:
        if os.environ.get("BENCH_KEEP") != "1":
            simhosts("down", timeout=900)
    two = res["by_hosts"].get("2", {}).get("seconds")
    eight = res["by_hosts"].get("8", {}).get("seconds")
    res["ratio_8_vs_2"] = round(eight / two, 2) if two and eight else None
    cpu2, cpu8 = (res["by_hosts"].get(k, {}).get("machine_cpu_s") for k in ("2", "8"))
    res["cpu_ratio_8_vs_2"] = round(cpu8 / cpu2, 2) if cpu2 and cpu8 else None
    res["ratio_4_vs_2"] = round(res["by_hosts"]["4"]["seconds"] / two, 2) if two and "4" in res["by_hosts"] else None
    res["targets"] = {"ratio_8_vs_2_max": 2.0}
    return res
