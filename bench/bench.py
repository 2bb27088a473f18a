"""Benchmarks of the collection on the simulated test beds; every figure is a ratio against a baseline measured
in the same run on the same machine. `make bench` runs it; results go to bench/results/latest.json.

Sections (--only to pick some):
  deploy   deploy-to-Available of the seed's 2-node example: deploy-nim.yml vs the seed's manual sequence
           scripted (bench/manual-sequence.sh) vs the cluster's floor (the same LWS applied with kubectl until
           Available); then the no-op re-run of deploy-nim.yml (wall time, changed count), and the same deploy
           with nim_release_settle=0 (what the collection costs without the wait's hold on Ready)
  preflight preflight_nim.yml on the same example (the deploy's validation, then the cluster read once) vs
           plan_nim.yml on it (plan and values alone, contacting nothing)
  crash    a worker that crash-loops: time from its first crash to a failed play naming the cause, vs
           `helm install --wait` and vs `kubectl wait --for=condition=Available --timeout=...` on the same failure
  scale    1, 4 and 8 releases of 2-node groups at once on 32 fake GPU nodes (deploy-nim.yml per release, all
           started together) vs the floor for the same number of LWS
  hosts    bare hosts (bench/bench_hosts.py): Ray cluster formation on 2, 4 and 8 simulated hosts, each vs the
           same containers started by a plain parallel SSH script (the floor); controller CPU seconds per host
  resources resident memory and CPU seconds of the test beds' processes

The Kubernetes sections use a sim cluster of their own (32 nodes, ports shifted by 5000, below the ephemeral range, state in
$NIMOPS_CACHE/bench-sim) so nobody else's cluster is touched; it is stopped at the end if this run started it
(BENCH_KEEP=1 keeps it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = Path(os.environ.get("NIMOPS_CACHE") or Path.home() / ".cache" / "nimops")
SIM_ENV = {"NIMOPS_SIM_DIR": str(CACHE / "bench-sim"), "NIMOPS_SIM_PORT_OFFSET": "5000"}
SIMCLUSTER = REPO / "tests" / "simcluster" / "simcluster.py"
EXAMPLE = REPO / "examples" / "kubernetes" / "llama-3.1-405b-2node.yml"
LWS_MANIFESTS = next((REPO / "roles" / "lws_install" / "files").glob("lws-v*-manifests.yaml"))
RESULTS = HERE / "results"
RECAP = re.compile(r"^localhost\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
PROFILE_LINE = re.compile(r"^(.+?) -+ (\d+\.\d+)s$", re.M)
FAULT = "sim.nimops.test/fault"
CRASH_MESSAGE = "RuntimeError: bench worker cannot join the Ray cluster"
BIN = str(Path(sys.executable).parent)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def median(xs):
    return round(statistics.median(xs), 2) if xs else None


def ratio(a, b):
    return round(a / b, 2) if a is not None and b else None


# ---------------------------------------------------------------- the bench sim cluster

class Sim:
    def __init__(self):
        self.started = False
        self.info: dict = {}

    def cli(self, *args, timeout=900):
        return subprocess.run([sys.executable, str(SIMCLUSTER), *args], capture_output=True, text=True,
                              env=dict(os.environ, **SIM_ENV), timeout=timeout, check=False)

    def up(self, nodes: int = 32) -> float:
        st = json.loads(self.cli("status", "--json", timeout=60).stdout)
        self.started = not any(p["alive"] for p in st["processes"].values())
        t0 = time.monotonic()
        r = self.cli("up", "--nodes", str(nodes))
        if r.returncode != 0:
            raise SystemExit(f"bench sim failed to start:\n{r.stdout}\n{r.stderr}")
        seconds = time.monotonic() - t0
        self.info = json.loads(self.cli("status", "--json", timeout=60).stdout)
        return seconds

    def down(self):
        if self.started and os.environ.get("BENCH_KEEP") != "1":
            self.cli("down", timeout=300)

    @property
    def kubeconfig(self):
        return self.info["kubeconfig"]

    @property
    def helm(self):
        return self.info["helm"]

    @property
    def repo_url(self):
        return self.info["helm_repo"]["url"]

    @property
    def ngc_key(self):
        return json.loads(Path(self.info["helm_repo"]["credentials_file"]).read_text())["password"]

    def kubectl(self, *args, input=None, check=True, timeout=300):
        r = subprocess.run(["kubectl", f"--kubeconfig={self.kubeconfig}", *args], input=input, capture_output=True,
                           text=True, timeout=timeout, check=False)
        if check and r.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {r.stderr}")
        return r

    def delete_namespaces(self, names):
        if names:
            self.kubectl("delete", "namespace", *names, "--wait=true", "--timeout=300s", check=False, timeout=400)

    def client(self):
        import kubernetes  # pylint: disable=import-outside-toplevel
        return kubernetes.client.CoreV1Api(kubernetes.config.new_client_from_config(config_file=self.kubeconfig))


# ---------------------------------------------------------------- runners

def collections_root() -> Path:
    root = Path(tempfile.gettempdir()) / f"nimops-bench-ac-{os.getuid()}"
    link = root / "ansible_collections" / "nimops" / "multinode"
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink() or link.resolve() != REPO:
        if link.is_symlink():
            link.unlink()
        link.symlink_to(REPO)
    return root


def playbook_vars(sim: Sim, namespace: str, **extra) -> dict:
    v = yaml.safe_load(EXAMPLE.read_text())
    v.update({"nim_namespace": namespace,
              # the sim's repository is a mirror on plain HTTP on loopback, with its own password
              "nim_chart": {"source": "repo", "repo_url": sim.repo_url, "version": "2.0.0-sim",
                            "password": sim.ngc_key, "allow_http_credentials": True},
              "nim_helm_binary": sim.helm})
    v.update(extra)
    return v


def run_playbook(sim: Sim, extravars: dict, timeout: float = 900, profile: bool = True,
                 playbook: str = "deploy-nim.yml") -> dict:
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections_root()), K8S_AUTH_KUBECONFIG=sim.kubeconfig,
               NGC_API_KEY=sim.ngc_key, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="0", PATH=BIN + os.pathsep + os.environ.get("PATH", ""))
    env.pop("HF_TOKEN", None)
    if profile:
        env.update(ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks", PROFILE_TASKS_TASK_OUTPUT_LIMIT="8")
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(extravars, fh)
    cmd = [os.path.join(BIN, "ansible-playbook"), str(REPO / "playbooks" / playbook), "-e", "@" + fh.name]
    t0 = time.monotonic()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=str(REPO), check=False)
    end = time.time()
    os.unlink(fh.name)
    out = r.stdout + r.stderr
    recap = RECAP.findall(out)
    ok, changed, _unreach, failed = (int(x) for x in recap[-1]) if recap else (0, -1, 0, -1)
    fatal = re.findall(r"^fatal: \[localhost\]: FAILED! => (.*)$", out, re.M)
    profile_lines = PROFILE_LINE.findall(out[out.rfind("PLAY RECAP"):]) if profile else []
    return {"rc": r.returncode, "seconds": round(time.monotonic() - t0, 2), "end": end, "ok": ok,
            "changed": changed, "failed": failed, "message": fatal[-1][:600] if fatal else "",
            "slowest_tasks": [(n.strip(), float(s)) for n, s in profile_lines[:8]], "out": out}


def run_manual(sim: Sim, namespace: str, release: str, values: Path, helm_home: Path, wait_mode: str = "kubectl",
               wait_timeout: int = 600) -> dict:
    env = dict(os.environ, KUBECONFIG=sim.kubeconfig, NS=namespace, RELEASE=release, VALUES=str(values),
               REPO_URL=sim.repo_url, CHART_VERSION="2.0.0-sim", HELM=sim.helm, HELM_HOME_DIR=str(helm_home),
               LWS_MANIFESTS=str(LWS_MANIFESTS), NGC_API_KEY=sim.ngc_key, WAIT_MODE=wait_mode,
               WAIT_TIMEOUT=str(wait_timeout))
    t0 = time.monotonic()
    r = subprocess.run([str(HERE / "manual-sequence.sh")], env=env, capture_output=True, text=True,
                       timeout=wait_timeout + 300, check=False)
    return {"rc": r.returncode, "seconds": round(time.monotonic() - t0, 2), "end": time.time(),
            "output": (r.stdout + r.stderr).strip()[-600:]}


def helm_values(sim: Sim, namespace: str, release: str = "llama-405b") -> str:
    """The values deploy-nim.yml gave helm: the manual sequence installs with exactly these."""
    return subprocess.run([sim.helm, "get", "values", release, "-n", namespace, "-o", "yaml",
                           f"--kubeconfig={sim.kubeconfig}"], capture_output=True, text=True, check=True).stdout


def lws_manifest(sim: Sim, namespace: str) -> dict:
    """The LeaderWorkerSet the chart rendered, stripped to what `kubectl apply` takes (for the floor)."""
    lws = json.loads(sim.kubectl("get", "leaderworkersets", "-n", namespace, "-o", "json").stdout)["items"][0]
    meta = lws["metadata"]
    return {"apiVersion": lws["apiVersion"], "kind": lws["kind"],
            "metadata": {"name": meta["name"], "labels": meta.get("labels", {})}, "spec": lws["spec"]}


def run_floor(sim: Sim, namespace: str, manifest: dict, timeout: int = 600) -> dict:
    """An LWS applied directly with kubectl until Available; the PVC it mounts is created first, untimed."""
    sim.kubectl("create", "namespace", namespace)
    sim.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "nim-model-cache"},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1000Gi"}}}}))
    t0 = time.monotonic()
    sim.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(manifest))
    r = sim.kubectl("-n", namespace, "wait", "--for=condition=Available",
                    f"leaderworkerset/{manifest['metadata']['name']}", f"--timeout={timeout}s", check=False,
                    timeout=timeout + 60)
    return {"rc": r.returncode, "seconds": round(time.monotonic() - t0, 2)}


# ---------------------------------------------------------------- sections

def section_deploy(sim: Sim, reps: int, out: dict) -> None:
    log(f"deploy: {reps} measured rounds (+1 warm-up) of playbook, manual sequence, floor")
    helm_home = Path(tempfile.mkdtemp(prefix="bench-helm-"))
    namespaces, rounds = [], []
    manifest = None
    values = Path(helm_home) / "values.yaml"
    noop = []
    for i in range(reps + 1):
        tag = uuid.uuid4().hex[:6]
        ns_p, ns_m, ns_f, ns_s = f"bp-{tag}", f"bm-{tag}", f"bf-{tag}", f"bs-{tag}"
        namespaces += [ns_p, ns_m, ns_f, ns_s]
        p = run_playbook(sim, playbook_vars(sim, ns_p))
        if p["rc"] != 0:
            raise SystemExit(f"deploy-nim.yml failed:\n{p['out'][-4000:]}")
        if manifest is None:
            values.write_text(helm_values(sim, ns_p))
            manifest = lws_manifest(sim, ns_p)
        m = run_manual(sim, ns_m, "llama-405b", values, helm_home)
        if m["rc"] != 0:
            raise SystemExit(f"manual sequence failed: {m['output']}")
        f = run_floor(sim, ns_f, manifest)
        if f["rc"] != 0:
            raise SystemExit("floor LWS did not become Available")
        n = run_playbook(sim, playbook_vars(sim, ns_p))
        # The same deploy without the settle window: what the collection itself costs above the cluster.
        z = run_playbook(sim, playbook_vars(sim, ns_s, nim_release_settle=0))
        if z["rc"] != 0:
            raise SystemExit(f"deploy-nim.yml with nim_release_settle=0 failed:\n{z['out'][-4000:]}")
        row = {"playbook": p["seconds"], "manual": m["seconds"], "floor": f["seconds"],
               "noop": n["seconds"], "noop_changed": n["changed"], "noop_rc": n["rc"], "no_settle": z["seconds"]}
        log(f"  round {i}{' (warm-up)' if i == 0 else ''}: {row}")
        if i > 0:
            rounds.append(row)
            noop.append(n)
        if i == reps:
            out["deploy_profile_playbook"] = p["slowest_tasks"]
            out["noop_profile"] = n["slowest_tasks"]
        # keep the cluster small: each round's releases hold 6 GPU nodes
        sim.delete_namespaces([ns_p, ns_m, ns_f, ns_s])
    shutil.rmtree(helm_home, ignore_errors=True)
    pb, man, flo, zs = (median([r[k] for r in rounds]) for k in ("playbook", "manual", "floor", "no_settle"))
    out["deploy"] = {
        "rounds": rounds, "playbook_s": pb, "manual_s": man, "floor_s": flo,
        "playbook_vs_manual": ratio(pb, man), "playbook_minus_floor_s": round(pb - flo, 2),
        "manual_minus_floor_s": round(man - flo, 2),
        "no_settle_s": zs, "no_settle_vs_manual": ratio(zs, man), "no_settle_minus_floor_s": round(zs - flo, 2),
        "targets": {"playbook_vs_manual_max": 1.15, "playbook_minus_floor_max_s": 3.0},
    }
    nb = median([r["noop"] for r in rounds])
    out["noop"] = {"seconds": nb, "changed": max(r["noop_changed"] for r in rounds),
                   "all_rc_zero": all(r["noop_rc"] == 0 for r in rounds), "vs_first_deploy": ratio(nb, pb),
                   "targets": {"seconds_max": 4.0, "changed": 0}}


def section_preflight(sim: Sim, reps: int, out: dict) -> None:
    """preflight_nim.yml on the seed example (everything the deploy validates, then the cluster read once), against
    plan_nim.yml on the same vars file (the plan and values alone, contacting nothing): what the checks cost."""
    log(f"preflight: {reps} measured rounds (+1 warm-up) of preflight_nim.yml and plan_nim.yml")
    rounds = []
    for i in range(reps + 1):
        ns = f"bpf-{uuid.uuid4().hex[:6]}"
        f = run_playbook(sim, playbook_vars(sim, ns), playbook="preflight_nim.yml")
        if f["rc"] != 0:
            raise SystemExit(f"preflight_nim.yml failed:\n{f['out'][-4000:]}")
        p = run_playbook(sim, playbook_vars(sim, ns), playbook="plan_nim.yml")
        if p["rc"] != 0:
            raise SystemExit(f"plan_nim.yml failed:\n{p['out'][-4000:]}")
        row = {"preflight": f["seconds"], "plan": p["seconds"]}
        log(f"  round {i}{' (warm-up)' if i == 0 else ''}: {row}")
        if i > 0:
            rounds.append(row)
        if i == reps:
            out["preflight_profile"] = f["slowest_tasks"]
    pf, pl = (median([r[k] for r in rounds]) for k in ("preflight", "plan"))
    out["preflight"] = {"rounds": rounds, "preflight_s": pf, "plan_s": pl, "preflight_vs_plan": ratio(pf, pl),
                        "targets": {"preflight_max_s": 10.0}}


class CrashWatcher(threading.Thread):
    """Labels every LWS worker pod of the namespace `crashloop` as soon as it exists (so each recreated group
    fails again) and records the wall time of the first crash seen (a terminated container)."""

    def __init__(self, sim: Sim, namespace: str, deadline: float):
        super().__init__(daemon=True)
        self.sim, self.ns, self.deadline = sim, namespace, deadline
        self.first_crash = None
        self.labelled = 0

    def run(self):
        import kubernetes  # pylint: disable=import-outside-toplevel
        api = self.sim.client()
        w = kubernetes.watch.Watch()
        while time.monotonic() < self.deadline:
            try:
                for ev in w.stream(api.list_namespaced_pod, self.ns, timeout_seconds=5):
                    pod = ev["object"]
                    labels = pod.metadata.labels or {}
                    if labels.get("leaderworkerset.sigs.k8s.io/worker-index", "0") != "0" \
                            and FAULT not in labels and ev["type"] != "DELETED":
                        api.patch_namespaced_pod(pod.metadata.name, self.ns, {"metadata": {
                            "labels": {FAULT: "crashloop"},
                            "annotations": {"sim.nimops.test/fault-message": CRASH_MESSAGE}}})
                        self.labelled += 1
                    for cs in (pod.status.container_statuses or []) if pod.status else []:
                        crashed = (cs.state and cs.state.terminated) or (cs.last_state and cs.last_state.terminated)
                        if (crashed or cs.restart_count) and self.first_crash is None:
                            self.first_crash = time.time()
                    if time.monotonic() > self.deadline:
                        break
            except Exception:  # pylint: disable=broad-except
                time.sleep(0.2)  # an API hiccup: watch again (bounded by the deadline)


def section_crash(sim: Sim, out: dict, kubectl_timeout: int) -> None:
    log("crash: a crash-looping worker under deploy-nim.yml, helm install --wait, kubectl wait")
    helm_home = Path(tempfile.mkdtemp(prefix="bench-helm-"))
    values = helm_home / "values.yaml"
    res = {}
    namespaces = []
    for mode in ("playbook", "helm_wait", "kubectl_wait"):
        ns = f"bc-{mode.replace('_', '')}-{uuid.uuid4().hex[:5]}"
        namespaces.append(ns)
        watcher = CrashWatcher(sim, ns, time.monotonic() + kubectl_timeout + 240)
        watcher.start()
        if mode == "playbook":
            r = run_playbook(sim, playbook_vars(sim, ns, nim_wait_timeout=kubectl_timeout), profile=False)
            # the wait quotes the worker's termination message (classified crash_loop or ray_join_failed)
            named = CRASH_MESSAGE in r["message"]
            rc, message = r["rc"], r["message"]
            if not values.exists():
                values.write_text(helm_values(sim, ns))
        else:
            r = run_manual(sim, ns, "llama-405b", values, helm_home,
                           wait_mode="helm" if mode == "helm_wait" else "kubectl", wait_timeout=kubectl_timeout)
            rc, message = r["rc"], r["output"]
            named = CRASH_MESSAGE in message or "CrashLoopBackOff" in message
        # a command that returned before the worker crashed: wait for the crash to date the verdict against it
        for _attempt in range(120):
            if watcher.first_crash is not None:
                break
            time.sleep(0.5)
        crash = watcher.first_crash
        after = round(r["end"] - crash, 2) if crash else None
        later = "?" if after is None else abs(after)
        res[mode] = {"rc": rc, "seconds_total": r["seconds"], "seconds_after_first_crash": after,
                     "failed": rc != 0, "names_cause": named, "message": message[-400:],
                     "verdict": ("failure naming the cause" if rc != 0 and named else
                                 "failure without the cause" if rc != 0 else
                                 "reported success (the group crashed %ss later)" % later),
                     "workers_labelled": watcher.labelled}
        log(f"  {mode}: rc={rc} total={r['seconds']}s after-first-crash={after}s {res[mode]['verdict']}")
        if mode == "kubectl_wait" and crash is not None:
            # the same wait started on a group already crash-looping
            t0 = time.monotonic()
            k = sim.kubectl("-n", ns, "wait", "--for=condition=Available", "leaderworkerset/llama-405b-nim-llm",
                            f"--timeout={kubectl_timeout}s", check=False, timeout=kubectl_timeout + 60)
            res["kubectl_wait_on_crashing_group"] = {
                "rc": k.returncode, "seconds": round(time.monotonic() - t0, 2),
                "names_cause": CRASH_MESSAGE in k.stdout + k.stderr, "output": (k.stdout + k.stderr).strip()[-300:]}
            log(f"  kubectl wait on the crash-looping group: {res['kubectl_wait_on_crashing_group']}")
    sim.delete_namespaces(namespaces)
    shutil.rmtree(helm_home, ignore_errors=True)
    pb = res["playbook"]["seconds_after_first_crash"]
    res["kubectl_wait_timeout_s"] = kubectl_timeout
    # a ratio only means something when both commands returned after the crash
    kw = res["kubectl_wait"]["seconds_after_first_crash"]
    res["kubectl_wait_vs_playbook"] = ratio(kw, pb) if kw is not None and kw > 0 and pb and pb > 0 else None
    res["targets"] = {"playbook_after_first_crash_max_s": 15}
    out["crash"] = res


def section_scale(sim: Sim, out: dict, counts=(1, 4, 8)) -> None:
    log(f"scale: {counts} releases of 2-node groups, deploy-nim.yml per release, all started at once")
    manifest = None
    res = {}
    for n in counts:
        tags = [uuid.uuid4().hex[:5] for _i in range(n)]
        nss = [f"bs{n}-{t}" for t in tags]
        t0 = time.monotonic()
        results = [None] * n

        def one(i):
            results[i] = run_playbook(sim, playbook_vars(sim, nss[i], nim_release=f"r{i}"), profile=False)
        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = round(time.monotonic() - t0, 2)
        failed = [r["message"] or r["out"][-500:] for r in results if r["rc"] != 0]
        if manifest is None and not failed:
            manifest = lws_manifest(sim, nss[0])
        sim.delete_namespaces(nss)
        # the floor for n LWS: applied together with kubectl, waited together
        fl = [f"bsf{n}-{t}" for t in tags]
        fres = [None] * n

        def floor(i):
            fres[i] = run_floor(sim, fl[i], manifest)
        t1 = time.monotonic()
        threads = [threading.Thread(target=floor, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        fwall = round(time.monotonic() - t1, 2)
        sim.delete_namespaces(fl)
        res[str(n)] = {"playbook_wall_s": wall, "failed": failed, "floor_wall_s": fwall,
                       "floor_ok": all(f["rc"] == 0 for f in fres),
                       "per_release_s": sorted(r["seconds"] for r in results)}
        log(f"  {n} release(s): playbook {wall}s (failed: {len(failed)}), floor {fwall}s")
    one_s = res[str(counts[0])]["playbook_wall_s"]
    res["ratio_8_vs_1"] = ratio(res["8"]["playbook_wall_s"], one_s) if "8" in res else None
    res["ratio_4_vs_1"] = ratio(res["4"]["playbook_wall_s"], one_s) if "4" in res else None
    res["floor_ratio_8_vs_1"] = ratio(res["8"]["floor_wall_s"], res["1"]["floor_wall_s"]) if "8" in res else None
    res["targets"] = {"ratio_8_vs_1_max": 3.0}
    out["scale"] = res


def proc_usage(pid: int) -> tuple[int, float]:
    """(RSS KiB, CPU seconds incl. reaped children) of one process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rfind(")") + 2:].split()
        ticks = os.sysconf("SC_CLK_TCK")
        cpu = sum(int(fields[i]) for i in (11, 12, 13, 14)) / ticks
        rss = int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1))
        return rss, cpu
    except (OSError, AttributeError):
        return 0, 0.0


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                stat = (p / "stat").read_text()
                ppid = int(stat[stat.rfind(")") + 2:].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(p.name))
    todo, seen = [root], []
    while todo and len(seen) < 10000:
        pid = todo.pop()
        seen.append(pid)
        todo.extend(children.get(pid, []))
    return seen


def section_resources(sim: Sim, out: dict, before: dict | None) -> dict:
    procs = {}
    for name, p in sim.info.get("processes", {}).items():
        if p.get("alive"):
            rss, cpu = proc_usage(p["pid"])
            procs[name] = {"rss_mib": round(rss / 1024, 1), "cpu_s": round(cpu, 1)}
    total = {"rss_mib": round(sum(p["rss_mib"] for p in procs.values()), 1),
             "cpu_s": round(sum(p["cpu_s"] for p in procs.values()), 1)}
    res = {"sim_cluster": {"processes": procs, "total": total, "nodes": 32}}
    if before:
        res["sim_cluster"]["cpu_s_during_bench"] = round(total["cpu_s"] - before["cpu_s"], 1)
    out.setdefault("resources", {}).update(res)
    return total


def machine() -> dict:
    load = os.getloadavg()
    mem = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1)
    return {"cpus": os.cpu_count(), "mem_gib": round(int(mem) / 1024 / 1024, 1), "kernel": platform.release(),
            "python": platform.python_version(), "loadavg_at_start": [round(x, 2) for x in load],
            "note": "cores shared with other work; figures are noisy, ratios are within one run"}


def summary(out: dict) -> str:
    lines = []
    d = out.get("deploy")
    if d:
        lines.append(f"deploy-to-Available (2-node 405B example, median of {len(d['rounds'])}): "
                     f"deploy-nim.yml {d['playbook_s']}s, manual sequence {d['manual_s']}s, floor {d['floor_s']}s")
        lines.append(f"  playbook / manual = {d['playbook_vs_manual']}x (target <= 1.15x); "
                     f"playbook - floor = {d['playbook_minus_floor_s']}s (target <= 3s); "
                     f"manual - floor = {d['manual_minus_floor_s']}s")
        lines.append(f"  with nim_release_settle=0 (no 10 s hold on Ready): {d['no_settle_s']}s = "
                     f"{d['no_settle_vs_manual']}x manual, floor + {d['no_settle_minus_floor_s']}s")
    f = out.get("preflight")
    if f:
        lines.append(f"preflight of the 2-node 405B example on 32 GPU nodes (median of {len(f['rounds'])}): "
                     f"preflight_nim.yml {f['preflight_s']}s (target <= 10s), plan_nim.yml {f['plan_s']}s, "
                     f"{f['preflight_vs_plan']}x")
    n = out.get("noop")
    if n:
        lines.append(f"no-op re-run: {n['seconds']}s, changed={n['changed']} (target <= 4s, changed=0); "
                     f"{n['vs_first_deploy']}x the first deploy")
    c = out.get("crash")
    if c:
        for k in ("playbook", "helm_wait", "kubectl_wait"):
            x = c[k]
            lines.append(f"worker crash -> {k}: rc={x['rc']}, {x['seconds_after_first_crash']}s after the first crash, "
                         f"names the cause: {x['names_cause']}")
        lines.append(f"  kubectl wait (timeout {c['kubectl_wait_timeout_s']}s) / playbook = "
                     f"{c['kubectl_wait_vs_playbook'] or 'n/a (kubectl wait reported success)'}x "
                     f"(playbook target <= 15s)")
        if "kubectl_wait_on_crashing_group" in c:
            k = c["kubectl_wait_on_crashing_group"]
            lines.append(f"  kubectl wait started on the crash-looping group: rc={k['rc']} after {k['seconds']}s "
                         f"({k['output'][-80:]})")
    s = out.get("scale")
    if s:
        lines.append("scale (releases at once on 32 GPU nodes): " + ", ".join(
            f"{k}: {v['playbook_wall_s']}s (floor {v['floor_wall_s']}s)" for k, v in s.items() if k.isdigit()))
        lines.append(f"  8 vs 1 = {s['ratio_8_vs_1']}x (target <= 3x); floor 8 vs 1 = {s['floor_ratio_8_vs_1']}x")
    h = out.get("hosts")
    if h:
        lines.append("bare hosts, " + h.get("measured", "") + ": " + ", ".join(
            f"{k} hosts {v['seconds']}s" for k, v in h.get("by_hosts", {}).items()))
        lines.append("  preflight alone: " + ", ".join(
            f"{k} hosts {v['preflight']['seconds']}s (one ping {v['preflight']['ping_s']}s)"
            for k, v in h.get("by_hosts", {}).items() if "preflight" in v) + " (target <= 20s at 4 hosts)")
        lines.append(f"  8 vs 2 = {h.get('ratio_8_vs_2')}x (target <= 2x); machine CPU-seconds 8 vs 2 = "
                     f"{h.get('cpu_ratio_8_vs_2')}x (" + ", ".join(
                         f"{k} hosts {v.get('machine_cpu_s')} CPU-s" for k, v in h.get("by_hosts", {}).items()) + ")")
    r = out.get("resources")
    if r:
        for bed, v in r.items():
            lines.append(f"resources {bed}: RSS {v['total']['rss_mib']} MiB, CPU {v['total']['cpu_s']} s "
                         f"since start" + (f", {v['cpu_s_during_bench']} s during the bench"
                                           if "cpu_s_during_bench" in v else ""))
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="deploy,preflight,crash,scale,hosts,resources")
    ap.add_argument("--reps", type=int, default=int(os.environ.get("BENCH_REPS", "3")))
    ap.add_argument("--kubectl-timeout", type=int, default=120,
                    help="timeout given to kubectl wait / helm --wait / the play in the crash section")
    ap.add_argument("--hosts", default="2,4,8")
    ap.add_argument("--output", default=str(RESULTS / "latest.json"))
    args = ap.parse_args()
    only = set(args.only.split(","))
    out: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine()}
    sim = Sim()
    try:
        if only & {"deploy", "preflight", "crash", "scale", "resources"}:
            out["sim_up_s"] = round(sim.up(), 2)
            before = section_resources(sim, {}, None)
            log(f"bench sim up ({out['sim_up_s']}s): {sim.info['server']}, 32 nodes")
            if "deploy" in only:
                section_deploy(sim, args.reps, out)
            if "preflight" in only:
                section_preflight(sim, args.reps, out)
            if "crash" in only:
                section_crash(sim, out, args.kubectl_timeout)
            if "scale" in only:
                section_scale(sim, out)
            if "resources" in only:
                section_resources(sim, out, before)
        if "hosts" in only:
            sys.path.insert(0, str(HERE))
            import bench_hosts  # pylint: disable=import-outside-toplevel
            out["hosts"] = bench_hosts.run([int(x) for x in args.hosts.split(",")], log)
            if "resources" in only and out["hosts"].get("resources"):
                out.setdefault("resources", {})["sim_hosts"] = out["hosts"].pop("resources")
    finally:
        out["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        out["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(out, indent=2) + "\n")
        sim.down()
    print("\n" + summary(out))
    print(f"\nresults: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
