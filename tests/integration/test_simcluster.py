"""The simulated GPU cluster itself: control plane, fake GPU nodes, LWS with its webhooks, failure stages,
volumes, the authenticated Helm repository with the test chart, and the up/down lifecycle."""

from __future__ import annotations

import re
import socket
import subprocess
import time
from pathlib import Path

import yaml

from conftest import REPO, SimCluster, sim_status, wait_until

VERSIONS = dict(
    line.split("=", 1)
    for line in (REPO / "tests/simcluster/versions.env").read_text().splitlines()
    if line and not line.startswith("#") and "=" in line
)


def lws_manifest(name: str, size: int = 2, worker_labels: dict | None = None, worker_env: list | None = None,
                 restart_policy: str = "RecreateGroupOnPodRestart", gpus: int = 1) -> str:
    def template(labels: dict | None, env: list | None) -> dict:
        return {
            "metadata": {"labels": labels or {}},
            "spec": {"containers": [{
                "name": "main", "image": "registry.invalid/sim/serve:1",
                "env": env or [],
                "resources": {"limits": {"nvidia.com/gpu": str(gpus)}, "requests": {"nvidia.com/gpu": str(gpus)}},
            }]},
        }
    return yaml.safe_dump({
        "apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
        "metadata": {"name": name},
        "spec": {"replicas": 1, "startupPolicy": "LeaderCreated", "leaderWorkerTemplate": {
            "size": size, "restartPolicy": restart_policy,
            "leaderTemplate": template(None, None),
            "workerTemplate": template(worker_labels, worker_env),
        }},
    })


def env_of(pod: dict) -> dict:
    return {e["name"]: e.get("value") for e in pod["spec"]["containers"][0].get("env", [])}


def test_version_is_the_pinned_kubernetes(sim_cluster: SimCluster):
    out = sim_cluster.kubectl("get", "--raw", "/version").stdout
    assert yaml.safe_load(out)["gitVersion"] == VERSIONS["KUBERNETES_VERSION"] == "v1.34.4"


def test_gpu_nodes_ready(sim_cluster: SimCluster):
    nodes = sim_cluster.kubectl_json("get", "nodes", "-l", "sim.nimops.test/node=true")["items"]
    n = sim_cluster.info["settings"]["nodes"]
    assert sorted(x["metadata"]["name"] for x in nodes) == sorted(f"sim-gpu-{i}" for i in range(n))
    for node in nodes:
        assert node["status"]["allocatable"]["nvidia.com/gpu"] == "8"
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready and ready[0]["status"] == "True"


def test_lws_size_two_becomes_available(sim_cluster: SimCluster, sim_namespace: str):
    ns = sim_namespace
    sim_cluster.kubectl("-n", ns, "apply", "-f", "-", input=lws_manifest("demo", gpus=8))
    sim_cluster.kubectl("-n", ns, "wait", "lws/demo", "--for=condition=Available", "--timeout=120s", timeout=150)

    pods = {p["metadata"]["name"]: p for p in sim_cluster.kubectl_json("-n", ns, "get", "pods")["items"]}
    assert sorted(pods) == ["demo-0", "demo-0-1"]
    gpu_nodes = {f"sim-gpu-{i}" for i in range(sim_cluster.info["settings"]["nodes"])}
    for pod in pods.values():
        assert pod["spec"]["nodeName"] in gpu_nodes
        assert pod["status"]["phase"] == "Running"
        env = env_of(pod)
        # injected by LWS's pod webhook, reached through the apiserver's cluster egress
        assert env["LWS_LEADER_ADDRESS"] == f"demo-0.demo.{ns}"
        assert env["LWS_GROUP_SIZE"] == "2"
    assert env_of(pods["demo-0-1"])["LWS_WORKER_INDEX"] == "1"
    # 8 GPUs each: one group fills two whole nodes
    assert pods["demo-0"]["spec"]["nodeName"] != pods["demo-0-1"]["spec"]["nodeName"]
    sts = sim_cluster.kubectl_json("-n", ns, "get", "statefulset", "demo-0")
    assert sts["spec"]["replicas"] == 1
    log = (sim_cluster.state_dir / "logs" / "egress-proxy.log").read_text()
    assert re.search(r"forwarded 'CONNECT 10\.96\.\d+\.\d+:443 ", log), log[-2000:]
    # the release's webhook configurations are not rewritten: they still name the Service, and carry the CA the
    # manager injected itself
    for kind in ("mutatingwebhookconfiguration", "validatingwebhookconfiguration"):
        prefix = "mutating" if kind.startswith("m") else "validating"
        conf = sim_cluster.kubectl_json("get", kind, f"lws-{prefix}-webhook-configuration")
        for hook in conf["webhooks"]:
            cc = hook["clientConfig"]
            assert "url" not in cc and cc["service"]["name"] == "lws-webhook-service" and cc["caBundle"]


def test_egress_proxy_refuses_other_targets(sim_cluster: SimCluster):
    svc = sim_cluster.kubectl_json("-n", "lws-system", "get", "service", "lws-webhook-service")
    cluster_ip = svc["spec"]["clusterIP"]
    api_port = sim_cluster.info["ports"]["kube-apiserver"]
    for target, expected in ((f"127.0.0.1:{api_port}", b" 403 "), (f"{cluster_ip}:8443", b" 403 "),
                             ("10.244.0.1:6379", b" 403 "), (f"{cluster_ip}:443", b" 200 ")):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(str(sim_cluster.state_dir / "egress.sock"))
            s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            status_line = s.recv(200).split(b"\r\n", 1)[0]
        assert expected in status_line, (target, status_line)


def _worker_status(sim: SimCluster, ns: str, pod: str) -> dict:
    """Status of the pod's first container ({} until the pod exists and has one)."""
    r = sim.kubectl("-n", ns, "get", "pod", pod, "-o", "json", check=False)
    if r.returncode != 0:
        return {}
    statuses = yaml.safe_load(r.stdout)["status"].get("containerStatuses") or [{}]
    return statuses[0]


def test_crashloop_fault_makes_restart_count_rise(sim_cluster: SimCluster, sim_namespace: str):
    ns = sim_namespace
    manifest = lws_manifest("crashy", worker_labels={"sim.nimops.test/fault": "crashloop"}, restart_policy="None")
    sim_cluster.kubectl("-n", ns, "apply", "-f", "-", input=manifest)
    seen_backoff = wait_until(
        "worker in CrashLoopBackOff",
        lambda: _worker_status(sim_cluster, ns, "crashy-0-1").get("state", {}).get("waiting", {}).get("reason")
        == "CrashLoopBackOff" and _worker_status(sim_cluster, ns, "crashy-0-1"),
        timeout=90)
    first = seen_backoff["restartCount"]
    assert first >= 1
    term = seen_backoff["lastState"]["terminated"]
    assert term["exitCode"] == 1 and term["reason"] == "Error" and term["message"]
    wait_until("restartCount to rise twice more",
               lambda: _worker_status(sim_cluster, ns, "crashy-0-1").get("restartCount", 0) >= first + 2, timeout=60)
    leader = _worker_status(sim_cluster, ns, "crashy-0")
    assert leader["restartCount"] == 0 and leader["ready"] is True
    # the kubelet keeps the last crash in lastState while the container runs again
    wait_until("worker running again with lastState kept", lambda: (s := _worker_status(sim_cluster, ns, "crashy-0-1"))
               .get("state", {}).get("running") and s["lastState"]["terminated"]["exitCode"] == 1, timeout=60,
               interval=0.2)
    # container logs through the API server -> egress -> KWOK's kubelet server
    prev = wait_until("previous logs", lambda: sim_cluster.kubectl("-n", ns, "logs", "crashy-0-1", "--previous",
                                                                   check=False).stdout, timeout=30)
    assert term["message"] in prev, prev
    events = sim_cluster.kubectl("-n", ns, "get", "events", "--field-selector",
                                 "involvedObject.name=crashy-0-1,reason=BackOff", "-o", "name").stdout
    assert events.strip()


def test_fault_set_on_running_pod_with_message_and_exit_code(sim_cluster: SimCluster, sim_namespace: str):
    ns = sim_namespace
    sim_cluster.kubectl("-n", ns, "apply", "-f", "-", input=_pod("p", None))
    wait_until("pod Ready", lambda: _worker_status(sim_cluster, ns, "p").get("ready"), timeout=60)
    sim_cluster.set_fault(ns, "p", "crashloop", message="CUDA error: out of memory", exit_code=137)
    st = wait_until("crash with the given message", lambda: (s := _worker_status(sim_cluster, ns, "p"))
                    .get("restartCount", 0) >= 1 and s, timeout=60)
    assert st["lastState"]["terminated"]["exitCode"] == 137
    assert st["lastState"]["terminated"]["message"] == "CUDA error: out of memory"
    sim_cluster.clear_fault(ns, "p")
    count = _worker_status(sim_cluster, ns, "p")["restartCount"]
    time.sleep(15)  # longer than one crash cycle: no further crash once the label is gone
    assert _worker_status(sim_cluster, ns, "p")["restartCount"] <= count + 1


def test_json_logging_crashes_workers_only(sim_cluster: SimCluster, sim_namespace: str):
    ns = sim_namespace
    env = [{"name": "NIM_JSONL_LOGGING", "value": "1"}]
    sim_cluster.kubectl("-n", ns, "apply", "-f", "-", input=lws_manifest("jl", worker_env=env, restart_policy="None"))
    st = wait_until("JSONL worker crash",
                    lambda: (s := _worker_status(sim_cluster, ns, "jl-0-1")).get("restartCount", 0) >= 1 and s, timeout=90)
    assert "NIM_JSONL_LOGGING" in st["lastState"]["terminated"]["message"]
    prev = wait_until("previous logs", lambda: sim_cluster.kubectl("-n", ns, "logs", "jl-0-1", "--previous",
                                                                   check=False).stdout, timeout=30)
    assert prev.startswith('{"level": "INFO"') and "NIM_JSONL_LOGGING" in prev, prev
    assert _worker_status(sim_cluster, ns, "jl-0")["restartCount"] == 0


def _pod(name: str, fault: str | None, annotations: dict | None = None) -> str:
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"sim.nimops.test/fault": fault} if fault else {},
                     "annotations": annotations or {}},
        "spec": {"containers": [{"name": "c", "image": "nvcr.io/nim/meta/llama:2.0.0",
                                 "resources": {"limits": {"nvidia.com/gpu": "1"}}}]},
    })


def test_imagepull_and_neverready_faults(sim_cluster: SimCluster, sim_namespace: str):
    ns = sim_namespace
    sim_cluster.kubectl("-n", ns, "apply", "-f", "-", input=_pod("pull", "imagepull"))
    sim_cluster.kubectl("-n", ns, "apply", "-f", "-", input=_pod("nr", "neverready"))
    sim_cluster.kubectl("-n", ns, "apply", "-f", "-", input=_pod("ok", None))

    def reasons():
        st = sim_cluster.kubectl_json("-n", ns, "get", "pod", "pull")["status"]
        return {cs["state"].get("waiting", {}).get("reason") for cs in st.get("containerStatuses", [])}

    wait_until("ErrImagePull", lambda: "ErrImagePull" in reasons(), timeout=60)
    wait_until("ImagePullBackOff", lambda: "ImagePullBackOff" in reasons(), timeout=60)
    pull = sim_cluster.kubectl_json("-n", ns, "get", "pod", "pull")
    assert pull["status"]["phase"] == "Pending"

    def nr_status():
        s = sim_cluster.kubectl_json("-n", ns, "get", "pod", "nr")["status"]
        return s if s.get("phase") == "Running" else None

    st = wait_until("never-ready pod Running", nr_status, timeout=60)
    time.sleep(3)  # give pod-ready a chance to (wrongly) fire
    st = nr_status()
    logs = wait_until("never-ready logs", lambda: sim_cluster.kubectl("-n", ns, "logs", "nr", check=False).stdout,
                      timeout=30)
    assert "/v1/health/ready -> 503" in logs, logs
    ready = [c for c in st["conditions"] if c["type"] == "Ready"][0]
    assert ready["status"] == "False" and st["containerStatuses"][0]["ready"] is False
    assert "running" in st["containerStatuses"][0]["state"]

    ok = wait_until("healthy pod Ready", lambda: (s := sim_cluster.kubectl_json("-n", ns, "get", "pod", "ok")["status"])
                    .get("phase") == "Running" and s, timeout=60)
    assert [c for c in ok["conditions"] if c["type"] == "Ready"][0]["status"] == "True"
    # neverready can also be triggered on a pod that is already Ready
    sim_cluster.set_fault(ns, "ok", "neverready")
    wait_until("label-triggered unready", lambda: [c for c in sim_cluster.kubectl_json(
        "-n", ns, "get", "pod", "ok")["status"]["conditions"] if c["type"] == "Ready"][0]["status"] == "False",
        timeout=60)


def test_rwx_pvc_binds(sim_cluster: SimCluster, sim_namespace: str):
    ns = sim_namespace
    pvc = yaml.safe_dump({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "cache"},
                          "spec": {"accessModes": ["ReadWriteMany"],
                                   "resources": {"requests": {"storage": "500Gi"}}}})
    sim_cluster.kubectl("-n", ns, "apply", "-f", "-", input=pvc)
    obj = wait_until("PVC Bound", lambda: (o := sim_cluster.kubectl_json("-n", ns, "get", "pvc", "cache"))
                     ["status"].get("phase") == "Bound" and o, timeout=60)
    assert obj["spec"]["storageClassName"] == "kwok-volume"
    assert obj["status"]["accessModes"] == ["ReadWriteMany"]


def test_helm_repo_auth_and_chart_install(sim_cluster: SimCluster, sim_namespace: str, tmp_path: Path):
    ns = sim_namespace
    helm_env = sim_cluster.helm_env(tmp_path)
    user, password = sim_cluster.repo_credentials
    assert password.startswith("nvapi-FAKE")

    def helm(*args, stdin=None):
        return subprocess.run([sim_cluster.helm, *args], input=stdin, capture_output=True, text=True,
                              env=helm_env, timeout=120, check=False)

    bad = helm("repo", "add", "simbad", sim_cluster.repo_url, "--username", user, "--password-stdin",
               stdin="nvapi-FAKE-wrong-000000000000000000")
    assert bad.returncode != 0 and "401" in bad.stderr, bad.stderr
    anon = helm("repo", "add", "simanon", sim_cluster.repo_url)
    assert anon.returncode != 0 and "401" in anon.stderr, anon.stderr

    good = helm("repo", "add", "sim", sim_cluster.repo_url, "--username", user, "--password-stdin", stdin=password)
    assert good.returncode == 0, good.stderr
    search = helm("search", "repo", "sim/nim-llm", "--devel", "-o", "yaml")
    assert yaml.safe_load(search.stdout)[0]["version"] == "2.0.0-sim"

    sim_cluster.kubectl("-n", ns, "create", "secret", "generic", "ngc-api",
                        "--from-literal=NGC_API_KEY=nvapi-FAKE-0000000000000000000000")
    inst = helm("install", "llm", "sim/nim-llm", "--version", "2.0.0-sim", "-n", ns, "--wait", "--timeout", "120s",
                "--set", "multiNode.enabled=true,multiNode.workers=1,multiNode.tensorParallelSize=8",
                "--set", "multiNode.pipelineParallelSize=2,model.ngcAPISecret=ngc-api,model.jsonLogging=false",
                "--set", "persistence.enabled=true,persistence.accessMode=ReadWriteMany",
                "--set", "resources.limits.nvidia\\.com/gpu=4,resources.requests.nvidia\\.com/gpu=4")
    assert inst.returncode == 0, inst.stderr
    sim_cluster.kubectl("-n", ns, "wait", "lws/llm-nim-llm", "--for=condition=Available", "--timeout=120s",
                        timeout=150)
    worker = sim_cluster.kubectl_json("-n", ns, "get", "pod", "llm-nim-llm-0-1")
    c = worker["spec"]["containers"][0]
    assert c["command"] == ["nim-serve-ray"] and c["args"] == ["--head-address", "$(LWS_LEADER_ADDRESS):6379"]
    env = {e["name"]: e for e in c["env"]}
    assert env["LWS_LEADER_ADDRESS"]["value"] == f"llm-nim-llm-0.llm-nim-llm.{ns}"
    assert env["NGC_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "ngc-api", "key": "NGC_API_KEY"}
    assert env["NIM_JSONL_LOGGING"]["value"] == "0" and env["NIM_LEADER_ROLE"]["value"] == "0"
    pvc = sim_cluster.kubectl_json("-n", ns, "get", "pvc", "llm-nim-llm-model-store")
    assert pvc["status"]["phase"] == "Bound"

    # the chart refuses to render without TP/PP or a profile
    refused = helm("template", "x", "sim/nim-llm", "--version", "2.0.0-sim")
    assert refused.returncode != 0 and "tensorParallelSize" in refused.stderr


def test_lws_manager_stop_and_start(sim_cluster: SimCluster, sim_namespace: str):
    ns = sim_namespace
    sim_cluster.stop_lws_manager()
    try:
        assert sim_cluster.lws_manager_pid() is None
        r = sim_cluster.kubectl("-n", ns, "apply", "-f", "-", input=lws_manifest("down"), check=False)
        # the LWS webhooks fail closed while the manager is away, as in a real cluster
        assert r.returncode != 0 and "failed calling webhook" in r.stderr, r.stderr
    finally:
        sim_cluster.start_lws_manager()
    assert sim_cluster.lws_manager_pid()
    sim_cluster.kubectl("-n", ns, "apply", "-f", "-", input=lws_manifest("back"))
    sim_cluster.kubectl("-n", ns, "wait", "lws/back", "--for=condition=Available", "--timeout=120s", timeout=150)


def _listening_ports() -> set[int]:
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def test_second_instance_up_is_noop_and_down_leaves_nothing(sim_cluster: SimCluster, sim_cluster_factory):
    """A second, small sim beside the session's one (other state dir, shifted ports): `up` twice, then `down`."""
    sim2 = sim_cluster_factory(nodes=2, lws_install=False)
    info = sim2.info
    assert info["running"] and info["ports"]["kube-apiserver"] != sim_cluster.info["ports"]["kube-apiserver"]
    pids = {n: p["pid"] for n, p in info["processes"].items() if p["alive"]}
    assert "kube-apiserver" in pids and "lws-manager" not in pids  # no LWS CRDs there

    second = sim2.simcluster("up", "--nodes", "2", "--no-lws-install")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "already up, nothing changed" in second.stdout, second.stdout
    assert {n: p["pid"] for n, p in sim2.refresh()["processes"].items() if p["alive"]} == pids

    # LWS installed afterwards by someone else (as the collection's lws_install does): the sim's supervisor
    # starts the local manager once the CRDs exist, and LWS works end to end
    manifests = sorted(REPO.glob("roles/lws_install/files/lws-*-manifests.yaml"))[-1]
    sim2.kubectl("apply", "--server-side", "--field-manager=test-lws-install", "-f", str(manifests))
    wait_until("local LWS manager started", lambda: sim2.refresh()["processes"]["lws-manager"]["alive"], timeout=60)
    lws = lws_manifest("late")

    def accepted() -> bool:
        return sim2.kubectl("-n", "default", "apply", "-f", "-", input=lws, check=False).returncode == 0

    wait_until("LWS accepted by the webhooks", accepted, timeout=90, interval=2)
    sim2.kubectl("-n", "default", "wait", "lws/late", "--for=condition=Available", "--timeout=120s", timeout=150)
    pids = {n: p["pid"] for n, p in sim2.refresh()["processes"].items() if p["alive"]}
    ports = info["ports"]

    down = sim2.simcluster("down", timeout=300)
    assert down.returncode == 0, down.stdout + down.stderr
    for name, pid in pids.items():
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid), f"{name} (pid {pid}) still running"
    listening = _listening_ports()
    leftover = {n: p for n, p in ports.items() if p in listening}
    assert not leftover, leftover
    assert not (Path(info["state_dir"]) / "egress.sock").exists()
    assert sim2.refresh()["running"] is False
    # the session's sim is untouched
    assert sim_status(sim_cluster.env)["running"]


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
