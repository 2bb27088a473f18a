"""Bare-host section of the benchmarks: rollout on 2, 4 and 8 simulated hosts.

Uses a set of simulated hosts of its own (tests/simhosts with NIMOPS_SIMHOSTS_SET=7: bridge nimopsbr7, subnet
10.77.7.0/24), so the test suites' hosts are not touched. What is measured, per host count N:
  - `ray`: bench/ray-cluster.yml, i.e. the docker_ray_cluster role exactly as deploy-nim-docker.yml runs it:
    Ray head on the leader, N-1 Ray workers, until `ray status` on the head lists N nodes (wall time of the
    ansible-playbook run over SSH, from a clean state: the previous cluster is torn down first), and the CPU
    seconds the whole machine spent busy meanwhile (the simulated hosts share its cores with the controller);
  - `full` (2 hosts only, unless BENCH_HOSTS_FULL lists more): deploy-nim-docker.yml end to end, the Ray
    cluster plus vLLM (CPU) serving the generated tiny model, until /v1/models answers.
  - `preflight`: the role's preflight alone (bench/ray-cluster.yml with bench_tasks_from=preflight: every check,
    the Ray ports proven between every pair of hosts), against one `ping` module run on every host (the SSH floor);
    target: 20 s at 4 hosts;
  - `floor`: the same Ray containers (same image, flags, pinned ports and token) started by a plain script over
    SSH, the way a hand-written run_cluster.sh does it: the secrets file on every host in parallel, the head, the
    workers in parallel, then `ray status` polled until it lists N nodes. The collection is compared with it at
    each N (target: within 1.3x at 8 hosts), and its controller CPU seconds per host at 8 hosts with those at 2
    (target: at most 1.1x).
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
from concurrent.futures import ThreadPoolExecutor
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


def children_cpu_s() -> float:
    """CPU seconds used by the finished child processes of this one (ansible-playbook, its forks, ssh)."""
    t = os.times()
    return t.children_user + t.children_system


def play(inv: Path, playbook: Path, timeout=1800) -> dict:
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections_root()), ANSIBLE_NOCOLOR="1",
               ANSIBLE_HOST_KEY_CHECKING="False", NGC_API_KEY=FAKE_NGC,
               ANSIBLE_FORKS="16", PATH=BIN + os.pathsep + os.environ.get("PATH", ""))
    env.pop("DOCKER_HOST", None)
    t0, cpu0, ctl0 = time.monotonic(), busy_cpu_s(), children_cpu_s()
    r = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", str(inv), str(playbook)], env=env,
                       capture_output=True, text=True, timeout=timeout, cwd=str(REPO), check=False)
    controller_cpu = children_cpu_s() - ctl0
    out = r.stdout + r.stderr
    joined = re.findall(r"(\d+)/(\d+) Ray nodes alive", out)
    return {"rc": r.returncode, "seconds": round(time.monotonic() - t0, 2), "tail": out[-1500:] if r.returncode else "",
            "last_progress": "/".join(joined[-1]) if joined else None,
            # the controller, the simulated hosts and Ray all run on this machine's cores
            "machine_cpu_s": round(busy_cpu_s() - cpu0, 1),
            # ansible-playbook, its forks and their ssh clients only
            "controller_cpu_s": round(controller_cpu, 2)}


# The flags docker_ray_cluster gives `ray start` (its defaults), for the floor.
RAY_FLAGS = ["--disable-usage-stats", "--node-manager-port=8077", "--object-manager-port=8076",
             "--min-worker-port=10002", "--max-worker-port=10999", "--runtime-env-agent-port=8078",
             "--metrics-export-port=8079", "--dashboard-agent-listen-port=52365", "--dashboard-agent-grpc-port=52366",
             "--object-store-memory=%d" % (128 * 1024 * 1024)]
ENTRY = "/bin/sh -c 'set -a && . /run/nimops/secrets.env && set +a && exec \"$@\"' entry"


def ssh(info: dict, host: str, command: str, stdin: str | None = None, timeout=300) -> subprocess.CompletedProcess:
    ip = info["hosts"][host]["ansible_host"]
    return subprocess.run(["ssh", "-i", info["ssh_key"], "-o", "StrictHostKeyChecking=no", "-o",
                           "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", f"root@{ip}", command],
                          input=stdin, capture_output=True, text=True, timeout=timeout, check=False)


def floor(info: dict, names: list[str], name: str, timeout=600) -> dict:
    """The Ray cluster started by a plain parallel SSH script (see the module docstring)."""
    if str(collections_root()) not in sys.path:
        sys.path.append(str(collections_root()))
    from ansible_collections.nimops.multinode.plugins.module_utils._ray_status import (  # pylint: disable=import-outside-toplevel
        parse_ray_status)
    leader, workers = names[0], names[1:]
    head_ip = info["hosts"][leader]["ansible_host"]
    env_file = f"/etc/nimops/{name}.env"
    secrets = f"RAY_AUTH_MODE=token\nRAY_AUTH_TOKEN={uuid.uuid4().hex}{uuid.uuid4().hex}\n"

    def run(host, role):
        ip = info["hosts"][host]["ansible_host"]
        args = (["--head", "--port=6379", "--include-dashboard=false", "--ray-client-server-port=10001"] if role == "head"
                else [f"--address={head_ip}:6379"])
        return ssh(info, host, f"docker run -d --name {name}-{role} --network host --shm-size 1g "
                               f"-v {env_file}:/run/nimops/secrets.env:ro {info['image']} {ENTRY} "
                               f"ray start --block --node-ip-address={ip} " + " ".join(args + RAY_FLAGS))

    t0, cpu0 = time.monotonic(), busy_cpu_s()
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        wrote = list(pool.map(lambda h: ssh(info, h, f"umask 077 && mkdir -p /etc/nimops && cat > {env_file}",
                                            stdin=secrets), names))
        started = [run(leader, "head")] + list(pool.map(lambda h: run(h, "worker"), workers))
    failed = [r.stderr for r in wrote + started if r.returncode != 0]
    alive = 0
    while not failed and time.monotonic() - t0 < timeout:
        r = ssh(info, leader, f"docker exec {name}-head sh -c '. /run/nimops/secrets.env && export RAY_AUTH_MODE "
                              f"RAY_AUTH_TOKEN && ray status'")
        try:
            alive = parse_ray_status(r.stdout)["alive"]
        except ValueError:
            alive = 0
        if alive == len(names):
            break
        time.sleep(1)
    row = {"seconds": round(time.monotonic() - t0, 2), "ray_nodes": f"{alive}/{len(names)}",
           "machine_cpu_s": round(busy_cpu_s() - cpu0, 1), **({"error": failed[:2]} if failed else {})}
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        list(pool.map(lambda h: ssh(info, h, f"docker rm -f {name}-head {name}-worker >/dev/null 2>&1; "
                                             f"rm -f {env_file}"), names))
    return row


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
            # The role's preflight alone on the same hosts (every check, the Ray ports proven between every pair),
            # against one module run on every host over SSH.
            pre_vars = dict(common, nim_docker_name=name, bench_tasks_from="preflight")
            pre_inv = inventory(info, names[:n], work / f"pre-{n}.yml", pre_vars)
            pre, ping = play(pre_inv, HERE / "ray-cluster.yml"), play(pre_inv, HERE / "ping-hosts.yml")
            preflight = {"seconds": pre["seconds"], "rc": pre["rc"], "ping_s": ping["seconds"],
                         "vs_ping": round(pre["seconds"] / ping["seconds"], 2) if ping["seconds"] else None,
                         **({"error": pre["tail"]} if pre["rc"] else {})}
            log(f"  {n} hosts: preflight {pre['seconds']}s (rc={pre['rc']}), one ping {ping['seconds']}s")
            r = play(inv, HERE / "ray-cluster.yml")
            row = {"preflight": preflight, "seconds": r["seconds"], "rc": r["rc"], "ray_nodes": r["last_progress"],
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
            row["controller_cpu_s"] = r["controller_cpu_s"]
            row["controller_cpu_per_host_s"] = round(r["controller_cpu_s"] / n, 2)
            row["floor"] = floor(info, names[:n], "floor" + uuid.uuid4().hex[:5])
            row["vs_floor"] = round(r["seconds"] / row["floor"]["seconds"], 2) if row["floor"]["seconds"] else None
            res["by_hosts"][str(n)] = row
            log(f"  {n} hosts: Ray formed in {r['seconds']}s (rc={r['rc']}, nodes {r['last_progress']}), "
                f"{r['machine_cpu_s']} CPU-s on {os.cpu_count()} cores, controller {r['controller_cpu_s']} CPU-s; "
                f"floor {row['floor']['seconds']}s (nodes {row['floor']['ray_nodes']}) -> {row['vs_floor']}x; "
                f"teardown {d['seconds']}s")
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
    per2, per8 = (res["by_hosts"].get(k, {}).get("controller_cpu_per_host_s") for k in ("2", "8"))
    res["controller_cpu_per_host_8_vs_2"] = round(per8 / per2, 2) if per2 and per8 else None
    res["vs_floor_8"] = res["by_hosts"].get("8", {}).get("vs_floor")
    res["targets"] = {"preflight_4_hosts_max_s": 20.0, "ratio_8_vs_2_max": 2.0, "vs_floor_8_max": 1.3, "controller_cpu_per_host_8_vs_2_max": 1.1}
    return res
