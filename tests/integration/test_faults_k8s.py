"""Fault matrix, Kubernetes path: each fault hits a deploy of the seed's 2-node example while it runs; the play
either survives it or fails naming it, a re-run converges (Available, changed=0 on the run after), and nothing is
lost: the model cache PVC keeps its UID (the same volume), the Secrets keep theirs, and there is one release.

Faults that would disturb other tests (the API server, the LWS controller) run on a private sim cluster.
"""

from __future__ import annotations

import getpass
import json
import re
import subprocess
import threading
import time
import uuid

import pytest

from conftest import run_simcluster, wait_until
from k8s_playbooks import BackgroundPlay, cleanup_namespace, example_vars, lws_named, run_playbook, sim_overrides

RELEASE = "llama-405b"
LWS = f"{RELEASE}-nim-llm"


def deploy_vars(sim, namespace: str, **extra) -> dict:
    v = dict(example_vars("llama-3.1-405b-2node.yml"), **sim_overrides(sim, namespace))
    v["nim_wait_timeout"] = 300
    # one fake GPU per pod (TP=1, PP=2 over the 2 nodes): several tests' releases fit on the shared sim at once
    v.update(nim_gpus_per_node=1, nim_tensor_parallel_size=1, nim_pipeline_parallel_size=2)
    v.update(extra)
    return v


def uids(sim, namespace: str) -> dict:
    items = sim.kubectl_json("get", "pvc,secrets", "-n", namespace)["items"]
    return {f'{i["kind"]}/{i["metadata"]["name"]}': i["metadata"]["uid"] for i in items
            if i.get("type") != "helm.sh/release.v1"}


def helm_history(sim, namespace: str) -> list[dict]:
    r = subprocess.run([sim.helm, "history", RELEASE, "-n", namespace, "-o", "json",
                        f"--kubeconfig={sim.kubeconfig}"], capture_output=True, text=True, check=False)
    return json.loads(r.stdout) if r.returncode == 0 else []


def available(sim, namespace: str) -> bool:
    lws = lws_named(sim, namespace)
    conds = {c["type"]: c["status"] for c in lws.get("status", {}).get("conditions", [])}
    pods = sim.kubectl_json("get", "pods", "-n", namespace)["items"]
    ready = [p for p in pods if {c["type"]: c["status"] for c in p["status"].get("conditions", [])}.get("Ready")
             == "True" and not p["metadata"].get("deletionTimestamp")]
    return conds.get("Available") == "True" and len(ready) == 2


def assert_converged(sim, namespace: str, extravars: dict, kept: dict, interrupted: tuple = ()) -> None:
    """A re-run succeeds and leaves the release Available; the run after it changes nothing; nothing lost.
    `interrupted`: revisions a killed helm left pending (Helm keeps them in the history as they were)."""
    r = run_playbook(sim, "deploy-nim.yml", extravars)
    assert r.rc == 0, f"re-run after the fault did not converge:\n{r.out[-4000:]}"
    assert "2/2 pods ready" in r.out
    r = run_playbook(sim, "deploy-nim.yml", extravars)
    assert r.rc == 0 and r.changed == 0, (r.recap, r.out[-3000:])
    assert available(sim, namespace)
    now = uids(sim, namespace)
    for name, uid in kept.items():
        assert now.get(name) == uid, f"{name} lost or replaced ({uid} -> {now.get(name)})"
    history = helm_history(sim, namespace)
    assert history and history[-1]["status"] == "deployed", history
    assert [h for h in history if h["status"].startswith("pending-") and h["revision"] not in interrupted] == []


class DuringDeploy(threading.Thread):
    """Runs `action` once `trigger()` is true while the playbook runs (polled every 0.2 s, bounded)."""

    def __init__(self, trigger, action, timeout: float = 240):
        super().__init__(daemon=True)
        self.trigger, self.action, self.timeout = trigger, action, timeout
        self.fired_at = None
        self.error = None

    def run(self):
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            try:
                if self.trigger():
                    self.fired_at = time.monotonic()
                    self.action()
                    return
            except Exception as exc:  # pylint: disable=broad-except
                self.error = exc
            time.sleep(0.2)


def lws_exists(sim, namespace: str) -> bool:
    r = sim.kubectl("get", "leaderworkersets", "-n", namespace, "-o", "name", check=False, timeout=10)
    return r.returncode == 0 and bool(r.stdout.strip())


@pytest.fixture
def namespace(sim_cluster):
    name = f"fault-{uuid.uuid4().hex[:8]}"
    yield name
    cleanup_namespace(sim_cluster, name)


def first_deploy(sim, namespace: str) -> tuple[dict, dict]:
    """A healthy release to break; returns its vars and the UIDs of what must survive."""
    extravars = deploy_vars(sim, namespace)
    r = run_playbook(sim, "deploy-nim.yml", extravars)
    assert r.rc == 0, r.out[-4000:]
    kept = uids(sim, namespace)
    assert "PersistentVolumeClaim/nim-model-cache" in kept and "Secret/ngc-api" in kept, kept
    return extravars, kept


def test_worker_pod_deleted_mid_wait(sim_cluster, namespace):
    """The worker is deleted while the wait runs: LWS recreates the group, the play waits for it and succeeds,
    never reporting ready while a pod is not."""
    sim = sim_cluster
    extravars, kept = first_deploy(sim, namespace)
    # change something so the release is upgraded and waited on again; delete the worker as soon as it exists
    extravars["nim_extra_values"] = {"podAnnotations": {"bench.nimops.test/rev": "2"}}
    worker = f"{LWS}-0-1"

    def worker_running() -> bool:
        r = sim.kubectl("get", "pod", worker, "-n", namespace, "-o", "json", check=False, timeout=10)
        if r.returncode != 0:
            return False
        pod = json.loads(r.stdout)
        return pod["metadata"].get("annotations", {}).get("bench.nimops.test/rev") == "2"

    def delete_worker():
        sim.kubectl("delete", "pod", worker, "-n", namespace, "--wait=false")

    deleted = DuringDeploy(worker_running, delete_worker)
    deleted.start()
    r = run_playbook(sim, "deploy-nim.yml", extravars)
    deleted.join(timeout=5)
    assert deleted.fired_at is not None, f"the worker was never seen to delete ({deleted.error})"
    assert r.rc == 0, r.out[-4000:]
    assert "1/1 groups ready, 2/2 pods ready" in r.out
    assert_converged(sim, namespace, extravars, kept)


def test_helm_failure_leaves_previous_release_intact(sim_cluster, namespace):
    """An upgrade the API server rejects (an invalid label key on the chart's Service) fails the play naming
    Helm's error; the atomic upgrade rolls back: the running pods, the LWS spec, the Service and the values are
    the old ones."""
    sim = sim_cluster
    extravars, kept = first_deploy(sim, namespace)
    lws_before = lws_named(sim, namespace)
    pods_before = {p["metadata"]["name"]: p["metadata"]["uid"]
                   for p in sim.kubectl_json("get", "pods", "-n", namespace)["items"]}
    service_before = sim.kubectl_json("get", "service", LWS + "-openai", "-n", namespace)
    bad = dict(extravars, nim_extra_values={"service": {"labels": {"not a valid/label key!": "x"}}})
    r = run_playbook(sim, "deploy-nim.yml", bad)
    assert r.rc != 0, r.out[-4000:]
    msg = r.failure_message()
    assert "not a valid/label key!" in msg or "Invalid value" in msg or "invalid" in msg.lower(), msg
    lws_after = lws_named(sim, namespace)
    assert lws_after["spec"]["leaderWorkerTemplate"] == lws_before["spec"]["leaderWorkerTemplate"]
    assert {p["metadata"]["name"]: p["metadata"]["uid"]
            for p in sim.kubectl_json("get", "pods", "-n", namespace)["items"]} == pods_before
    history = helm_history(sim, namespace)
    assert history[-1]["status"] == "deployed", history
    values = subprocess.run([sim.helm, "get", "values", RELEASE, "-n", namespace, "-o", "json",
                             f"--kubeconfig={sim.kubeconfig}"], capture_output=True, text=True, check=True).stdout
    assert "not a valid" not in values
    service_after = sim.kubectl_json("get", "service", LWS + "-openai", "-n", namespace)
    assert service_after["metadata"]["labels"] == service_before["metadata"]["labels"]
    assert_converged(sim, namespace, extravars, kept)


def helm_status(sim, namespace: str) -> str:
    history = helm_history(sim, namespace)
    return history[-1]["status"] if history else "not installed"


def test_upgrade_killed_mid_helm_recovers_on_rerun(sim_cluster, namespace):
    """The controller dies (SIGKILL of the run and helm) in the middle of `helm upgrade`: the release is left
    pending-upgrade and the run's lock stays behind. A re-run at once fails within seconds naming the lock's holder;
    once the lock has gone unrenewed for its TTL and the pending record is older than the helm timeout, a re-run
    takes the lock over, rolls the release back to its last deployed revision and converges, with no manual step."""
    sim = sim_cluster
    extravars, kept = first_deploy(sim, namespace)
    # The lock's TTL leaves the immediate re-run below a wide margin to reach the lock before the dead run's lease
    # would run out (it is renewed every 30 s, so 60-90 s after the kill), on a loaded machine too.
    extravars.update(nim_helm_timeout="20s", nim_lock_ttl=90)
    # A LoadBalancer Service never gets an address here, so helm --atomic waits on it: a wide, certain window.
    hanging = dict(extravars, nim_extra_values={"service": {"type": "LoadBalancer"}})
    play = BackgroundPlay(sim, "deploy-nim.yml", hanging)
    wait_until("helm to start the upgrade", lambda: helm_status(sim, namespace) == "pending-upgrade",
               timeout=180, interval=0.5)
    play.kill()
    killed_at = time.monotonic()
    assert helm_status(sim, namespace) == "pending-upgrade"
    lease = sim.kubectl_json("get", "lease", "nimops-lock-" + RELEASE, "-n", namespace)["spec"]
    holder, renewed_at_kill = lease["holderIdentity"], lease["renewTime"]

    r = run_playbook(sim, "deploy-nim.yml", extravars)
    assert r.rc != 0, r.out[-4000:]
    msg = r.failure_message()
    assert "[release_locked]" in msg and holder in msg, msg
    assert helm_status(sim, namespace) == "pending-upgrade"

    # The dead run renews its lease no more: a renewal interval (TTL/3) after the kill, the lease is as it was left.
    time.sleep(max(0.0, 32 - (time.monotonic() - killed_at)))
    lease = sim.kubectl_json("get", "lease", "nimops-lock-" + RELEASE, "-n", namespace)["spec"]
    assert lease["renewTime"] == renewed_at_kill, lease
    # Rather than sleep out the rest of the TTL, date the last renewal back past it (nothing else reads the lease),
    # and let the helm timeout (20 s) pass since the kill.
    aged = time.time() - lease["leaseDurationSeconds"] - 2
    sim.kubectl("patch", "lease", "nimops-lock-" + RELEASE, "-n", namespace, "--type", "merge", "-p",
                json.dumps({"spec": {"renewTime": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(aged))}}))
    time.sleep(max(0.0, 21 - (time.monotonic() - killed_at)))
    r = run_playbook(sim, "deploy-nim.yml", extravars)
    assert r.rc == 0, r.out[-4000:]
    assert "took over the lock of %s/%s left by %s" % (namespace, RELEASE, holder) in r.out, r.out[-4000:]
    assert re.search(r"revision 2 was left pending-upgrade \d+ s ago \(an interrupted helm run\): rolled back to "
                     r"revision 1, the last deployed", r.out), r.out[-4000:]
    history = helm_history(sim, namespace)
    # the rollback restored exactly the values this run wants, so helm had nothing left to upgrade
    assert [h["status"] for h in history] == ["superseded", "pending-upgrade", "deployed"], history
    assert "Rollback to 1" in history[-1]["description"], history
    assert sim.kubectl_json("get", "service", LWS + "-openai", "-n", namespace)["spec"]["type"] == "ClusterIP"
    assert sim.kubectl("get", "lease", "nimops-lock-" + RELEASE, "-n", namespace, check=False).returncode != 0
    assert_converged(sim, namespace, extravars, kept, interrupted=(2,))


def test_crash_looping_upgrade_is_rolled_back(sim_cluster, namespace):
    """An upgrade whose pods crash passes Helm (it cannot see the LWS's pods); the wait names the crash, the
    release is rolled back to the revision deployed before and waited on, and the play fails saying both."""
    sim = sim_cluster
    extravars, kept = first_deploy(sim, namespace)
    crashing = dict(extravars, nim_extra_values={
        "podLabels": {"sim.nimops.test/fault": "crashloop"},
        "podAnnotations": {"sim.nimops.test/fault-message": "fatal: CUDA driver version is insufficient"}})
    r = run_playbook(sim, "deploy-nim.yml", crashing)
    assert r.rc != 0, r.out[-4000:]
    msg = r.failure_message()
    assert "[crash_loop]" in msg and "CUDA driver version is insufficient" in msg, msg
    assert "Rolled back to revision 1 (nim-llm-2.0.0-sim, the one deployed before this run): its groups are Ready " \
           "again." in msg, msg
    history = helm_history(sim, namespace)
    assert [h["status"] for h in history] == ["superseded", "superseded", "deployed"], history
    assert "Rollback to 1" in history[-1]["description"], history
    assert available(sim, namespace)
    labels = lws_named(sim, namespace)["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["metadata"]["labels"]
    assert "sim.nimops.test/fault" not in labels, labels
    assert_converged(sim, namespace, extravars, kept)


def test_concurrent_runs_on_one_release_one_proceeds(sim_cluster, namespace):
    """Two deploys of one release at once (a scheduled job and a manual run): exactly one goes on, the other fails
    within seconds of reaching the lock, naming the holder; the winner gives the lock back at the end."""
    sim = sim_cluster
    extravars = deploy_vars(sim, namespace)
    sim.kubectl("create", "namespace", namespace)
    plays = [BackgroundPlay(sim, "deploy-nim.yml", extravars), BackgroundPlay(sim, "deploy-nim.yml", extravars)]
    results = [p.finish(timeout=600) for p in plays]
    winners = [r for r in results if r.rc == 0]
    losers = [r for r in results if r.rc != 0]
    assert len(winners) == 1 and len(losers) == 1, [(r.rc, r.out[-2000:]) for r in results]
    msg = losers[0].failure_message()
    assert "[release_locked]" in msg and "is being changed by another run: %s@" % getpass.getuser() in msg, msg
    assert "1/1 groups ready, 2/2 pods ready" in winners[0].out
    # the loser stopped at the lock: it never ran helm, and it finished long before the winner
    assert "Install or upgrade the Helm release" not in losers[0].out.split("Take the release's lock")[-1]
    assert losers[0].seconds < winners[0].seconds
    assert sim.kubectl("get", "lease", "nimops-lock-" + RELEASE, "-n", namespace, check=False).returncode != 0


# ---------------------------------------------------------------- faults on a private cluster

@pytest.fixture
def private_sim(sim_cluster_factory):
    return sim_cluster_factory(nodes=4, lws_install=True)


def test_api_server_restarted_during_deploy(private_sim):
    """The API server is killed while the play waits on the release and restarted 3 s later."""
    sim = private_sim
    namespace = sim.namespace("fault")
    extravars = deploy_vars(sim, namespace)

    def restart_api_server():
        pid = sim.refresh()["processes"]["kube-apiserver"]["pid"]
        subprocess.run(["kill", "-9", str(pid)], check=True)
        time.sleep(3)
        r = run_simcluster("up", "--nodes", "4", env=sim.env, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr

    restart = DuringDeploy(lambda: lws_exists(sim, namespace), restart_api_server)
    restart.start()
    r = run_playbook(sim, "deploy-nim.yml", extravars)
    restart.join(timeout=320)
    assert restart.fired_at is not None, f"the API server was never restarted ({restart.error})"
    assert restart.error is None, restart.error
    if r.rc != 0:
        # allowed only with a message about the API connection, not a traceback or a wrong cause
        msg = r.failure_message()
        assert "Traceback" not in msg and any(
            s in msg.lower() for s in ("connection refused", "connect", "api server", "unavailable")), msg
    wait_until("API server back", lambda: sim.kubectl("get", "--raw", "/readyz", check=False).returncode == 0,
               timeout=120)
    kept = uids(sim, namespace)
    assert "PersistentVolumeClaim/nim-model-cache" in kept
    assert_converged(sim, namespace, extravars, kept)


def test_lws_controller_down(private_sim):
    """With the LWS controller down the deploy fails naming it (its webhook refuses the LeaderWorkerSet) and
    leaves no half-applied release; once the controller is back, a re-run converges."""
    sim = private_sim
    namespace = sim.namespace("fault")
    extravars = deploy_vars(sim, namespace)
    r = run_playbook(sim, "deploy-nim.yml", extravars)
    assert r.rc == 0, r.out[-4000:]
    kept = uids(sim, namespace)

    sim.stop_lws_manager()
    try:
        upgrade = dict(extravars, nim_extra_values={"podAnnotations": {"fault.nimops.test/rev": "2"}})
        r = run_playbook(sim, "deploy-nim.yml", upgrade, timeout=600)
        assert r.rc != 0, r.out[-4000:]
        msg = r.failure_message()
        assert any(s in msg for s in ("lws-webhook-service", "LeaderWorkerSet controller", "lws_controller",
                                      "webhook")), msg
        # the webhook refused the change, so the running LWS and its pods are the old ones (Helm records the
        # attempt, and its rollback, as failed: the rollback needs the same webhook)
        assert "fault.nimops.test/rev" not in json.dumps(lws_named(sim, namespace)["spec"])
        assert available(sim, namespace)
        assert [h["status"] for h in helm_history(sim, namespace)][0] in ("deployed", "superseded")
    finally:
        sim.start_lws_manager()
    assert_converged(sim, namespace, upgrade, kept)
