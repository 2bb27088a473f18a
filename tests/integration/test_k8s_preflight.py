"""preflight_nim.yml on the sim cluster: the deploy's own vars file, read-only, one check per question. Each case
makes one check FAIL with the object and the fix named, and changes nothing; the same vars file that passes then
deploys, and the deploy itself stops on a FAIL before its first change.

The node changes (cordon, taint, GPU product label) are made on the suites' sim and undone in `finally`; the cases
use the 4-node example, which needs every node of the sim, so one node taken out is enough to fail."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest
import yaml

from conftest import wait_until
from k8s_playbooks import (BackgroundPlay, cleanup_namespace, example_vars, resource_versions, run_playbook,
                           sim_overrides)

CHART_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "nim-llm-testchart"
TWO_NODES = "llama-3.1-405b-2node.yml"
FOUR_NODES = "llama-3.1-405b-4node-tp8-pp4.yml"
A100 = "NVIDIA-A100-SXM4-80GB"


@pytest.fixture
def namespace(sim_cluster):
    name = f"pf-{uuid.uuid4().hex[:8]}"
    yield name
    cleanup_namespace(sim_cluster, name)


def preflight(sim, namespace, tmp_path, example=TWO_NODES, **extra):
    """(play result, report) of preflight_nim.yml; the report is the JSON file it wrote."""
    report = tmp_path / f"preflight-{uuid.uuid4().hex[:6]}.json"
    v = dict(example_vars(example), **sim_overrides(sim, namespace), nim_preflight_report=str(report))
    v.update(extra)
    r = run_playbook(sim, "preflight_nim.yml", v)
    assert report.exists(), r.out[-4000:]
    return r, json.loads(report.read_text())


def checks_of(report):
    return dict((c["check"], c) for c in report["checks"])


def gpu_nodes(sim):
    return sorted(n["metadata"]["name"] for n in sim.kubectl_json("get", "nodes")["items"])


def test_the_same_vars_file_passes_preflight_then_deploys(sim_cluster, namespace, tmp_path):
    sim = sim_cluster
    r, report = preflight(sim, namespace, tmp_path)
    assert r.rc == 0, r.out[-4000:]
    assert r.changed == 0
    assert resource_versions(sim, namespace) == {}  # not even the namespace
    assert report["target"] == "kubernetes" and report["namespace"] == namespace
    assert report["verdict"] in ("PASS", "WARN")
    found = checks_of(report)
    assert set(found) == {"api", "permissions", "kinds", "lws", "lws_fields", "gpu_capacity", "gpu_product", "quota",
                          "limit_range", "storage_class", "helm_state"}
    assert found["kinds"]["status"] == "PASS" and found["lws_fields"]["status"] == "PASS"
    assert all(set(c) == {"check", "status", "subject", "message", "fix"} for c in report["checks"])
    assert found["gpu_capacity"]["status"] == "PASS"
    assert found["permissions"]["message"].startswith("all ")
    # the sim's class is KWOK's: whether it shares volumes is not known, and the preflight says so rather than guess
    assert found["storage_class"]["status"] == "WARN" and "kwok.x-k8s.io/volume" in found["storage_class"]["message"]
    assert found["helm_state"]["message"] == "not installed yet: the deploy installs it"
    assert "PASS  gpu_capacity" in r.out

    v = dict(example_vars(TWO_NODES), **sim_overrides(sim, namespace))
    d = run_playbook(sim, "deploy-nim.yml", v)
    assert d.rc == 0, d.out[-4000:]
    assert f"preflight of {namespace}/llama-405b: WARN" in d.out

    # deployed: the release's own pods hold its GPUs, which an upgrade would reuse, so it still fits
    r, report = preflight(sim, namespace, tmp_path)
    assert r.rc == 0, r.out[-4000:]
    assert checks_of(report)["helm_state"]["message"] == "revision 1 deployed"
    assert checks_of(report)["gpu_capacity"]["status"] == "PASS"


def test_cordoned_and_tainted_nodes_fail_and_the_deploy_stops_before_any_change(sim_cluster, namespace, tmp_path):
    sim = sim_cluster
    first, second = gpu_nodes(sim)[:2]
    taint = "nimops.test/maintenance=yes:NoSchedule"
    try:
        sim.kubectl("cordon", first)
        sim.kubectl("taint", "nodes", second, taint)
        r, report = preflight(sim, namespace, tmp_path, example=FOUR_NODES)
        assert r.rc == 2, r.out[-4000:]
        assert report["verdict"] == "FAIL"
        capacity = checks_of(report)["gpu_capacity"]
        assert capacity["status"] == "FAIL"
        assert f"{first} (cordoned)" in capacity["message"], capacity
        assert f"{second} (taint {taint} not tolerated)" in capacity["message"], capacity
        assert capacity["fix"].startswith("free room for 2 more pod(s): uncordon nodes, tolerate or remove"), capacity
        msg = r.failure_message()
        assert "[gpu_capacity] nodes: the group needs 4 pod(s) of 8 nvidia.com/gpu" in msg, msg
        assert resource_versions(sim, namespace) == {}

        # the deploy runs the same checks first and stops before its first change
        v = dict(example_vars(FOUR_NODES), **sim_overrides(sim, namespace))
        d = run_playbook(sim, "deploy-nim.yml", v)
        assert d.rc != 0 and "[gpu_capacity]" in d.failure_message(), d.out[-4000:]
        assert resource_versions(sim, namespace) == {}

        # tolerating the taint gives its node back; the cordoned one stays out
        r, report = preflight(sim, namespace, tmp_path, example=FOUR_NODES, nim_extra_values={
            "tolerations": [{"key": "nimops.test/maintenance", "operator": "Exists", "effect": "NoSchedule"}]})
        capacity = checks_of(report)["gpu_capacity"]
        assert capacity["status"] == "FAIL" and second not in capacity["message"], capacity
        assert capacity["fix"].startswith("free room for 1 more pod(s)"), capacity
    finally:
        sim.kubectl("uncordon", first, check=False)
        sim.kubectl("taint", "nodes", second, taint + "-", check=False)


def test_gpus_held_by_another_pod_are_named(sim_cluster, namespace, tmp_path):
    sim = sim_cluster
    busy = gpu_nodes(sim)[2]
    sim.kubectl("create", "namespace", namespace)
    sim.kubectl("apply", "-f", "-", input=yaml.safe_dump({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "holds-two-gpus", "namespace": namespace},
        "spec": {"nodeName": busy, "containers": [{"name": "c", "image": "example.invalid/busy:1",
                                                   "resources": {"limits": {"nvidia.com/gpu": 2}}}]}}))
    r, report = preflight(sim, namespace, tmp_path, example=FOUR_NODES)
    assert r.rc == 2, r.out[-4000:]
    capacity = checks_of(report)["gpu_capacity"]
    assert f"{busy} (nvidia.com/gpu free 6 of 8 asked)" in capacity["message"], capacity
    assert "the cluster has 3 place(s) free" in capacity["message"], capacity


def test_mixed_gpu_products_fail_naming_the_label_to_pin(sim_cluster, namespace, tmp_path):
    sim = sim_cluster
    other = gpu_nodes(sim)[3]
    label = "nvidia.com/gpu.product"
    before = sim.kubectl_json("get", "node", other)["metadata"]["labels"][label]
    try:
        sim.kubectl("label", "node", other, f"{label}={A100}", "--overwrite")
        r, report = preflight(sim, namespace, tmp_path)
        assert r.rc == 2, r.out[-4000:]
        product = checks_of(report)["gpu_product"]
        assert product["status"] == "FAIL"
        assert f"{A100} on 1 place(s)" in product["message"], product
        assert product["fix"] == f"pin one product with nodeSelector {label}: {before} (nim_extra_values)"
        r, report = preflight(sim, namespace, tmp_path, nim_extra_values={"nodeSelector": {label: before}})
        assert r.rc == 0, r.out[-4000:]
        assert checks_of(report)["gpu_product"]["status"] == "PASS"
    finally:
        sim.kubectl("label", "node", other, f"{label}={before}", "--overwrite", check=False)


def test_a_storage_class_that_cannot_share_a_volume_fails(sim_cluster, namespace, tmp_path):
    sim = sim_cluster
    name = f"{namespace}-block"
    sim.kubectl("apply", "-f", "-", input=yaml.safe_dump({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": name},
        "provisioner": "ebs.csi.aws.com"}))
    try:
        v = example_vars(TWO_NODES)
        r, report = preflight(sim, namespace, tmp_path, nim_storage=dict(v["nim_storage"], storage_class=name))
        assert r.rc == 2, r.out[-4000:]
        storage = checks_of(report)["storage_class"]
        assert storage["status"] == "FAIL" and storage["subject"] == "StorageClass/" + name
        assert "attaches a volume to one node at a time: the 2 pods of a group cannot share it" in storage["message"]
        assert "nim_storage.kind: nfs" in storage["fix"]
    finally:
        sim.kubectl("delete", "storageclass", name, check=False)


def test_a_quota_too_small_fails_naming_what_is_left(sim_cluster, namespace, tmp_path):
    sim = sim_cluster
    sim.kubectl("create", "namespace", namespace)
    sim.kubectl("create", "quota", "gpus", "-n", namespace, "--hard=requests.nvidia.com/gpu=8,pods=10")
    wait_until("the quota's status", lambda: sim.kubectl_json("get", "quota", "gpus", "-n", namespace).get(
        "status", {}).get("used"), timeout=60)
    r, report = preflight(sim, namespace, tmp_path)
    assert r.rc == 2, r.out[-4000:]
    quota = checks_of(report)["quota"]
    assert quota["message"] == "ResourceQuota too small: gpus: requests.nvidia.com/gpu needs 16, 8 left of 8", quota
    assert f"kubectl edit resourcequota -n {namespace}" in quota["fix"]


def test_a_limit_range_below_the_pods_requests_fails(sim_cluster, namespace, tmp_path):
    sim = sim_cluster
    sim.kubectl("create", "namespace", namespace)
    sim.kubectl("apply", "-f", "-", input=yaml.safe_dump({
        "apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "small-pods", "namespace": namespace},
        "spec": {"limits": [{"type": "Container", "max": {"nvidia.com/gpu": "4"}}]}}))
    r, report = preflight(sim, namespace, tmp_path)
    assert r.rc == 2, r.out[-4000:]
    limits = checks_of(report)["limit_range"]
    assert limits["message"] == ("LimitRange below the pods' requests: small-pods: nvidia.com/gpu max 4 per container, "
                                 "a pod asks 8"), limits
    assert f"kubectl edit limitrange -n {namespace}" in limits["fix"]


def chart_variant(folder: Path, configmap=False, service_monitor=False, lws_field=False) -> Path:
    """The test chart with more rendered: a ConfigMap; a ServiceMonitor (monitoring.coreos.com/v1), as NVIDIA's NIM
    charts render with metrics.serviceMonitor.enabled, whose API the sim does not serve; a LeaderWorkerSet field
    (futureGroupPolicy) that stands for one a newer LeaderWorkerSet than the installed one has."""
    chart = folder / "nim-llm"
    shutil.copytree(CHART_DIR, chart)
    templates = chart / "templates"
    meta = 'metadata:\n  name: {{ include "nim-llm.fullname" . }}-extra\n'
    if configmap:
        (templates / "configmap.yaml").write_text("apiVersion: v1\nkind: ConfigMap\n" + meta + "data:\n  a: b\n")
    if service_monitor:
        (templates / "servicemonitor.yaml").write_text(
            "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\n" + meta +
            "spec:\n  selector:\n    matchLabels:\n      app: nim-llm\n  endpoints:\n    - port: http-openai\n")
    if lws_field:
        lws = templates / "leaderworkerset.yaml"
        text = lws.read_text()
        assert "    restartPolicy: RecreateGroupOnPodRestart\n" in text
        lws.write_text(text.replace("    restartPolicy: RecreateGroupOnPodRestart\n",
                                    "    restartPolicy: RecreateGroupOnPodRestart\n    futureGroupPolicy:\n"
                                    "      mode: Strict\n"))
    return chart


def test_a_chart_needing_what_the_cluster_lacks_fails_naming_it(sim_cluster, namespace, tmp_path):
    """A kind the API does not serve (Helm would stop half-way through 'no matches for kind') and a LeaderWorkerSet
    field the installed LWS does not know (the API server drops it without an error: shown below with a server-side
    dry run) are both named before anything changes."""
    sim = sim_cluster
    chart = chart_variant(tmp_path, service_monitor=True, lws_field=True)
    r, report = preflight(sim, namespace, tmp_path, nim_chart={"source": "path", "ref": str(chart)})
    assert r.rc == 2, r.out[-4000:]
    found = checks_of(report)
    assert found["kinds"]["status"] == "FAIL", found["kinds"]
    assert "ServiceMonitor (monitoring.coreos.com/v1)" in found["kinds"]["message"]
    assert found["lws_fields"]["status"] == "FAIL", found["lws_fields"]
    assert "does not know spec.leaderWorkerTemplate.futureGroupPolicy:" in found["lws_fields"]["message"]
    assert "[lws_fields] LeaderWorkerSet: the installed LeaderWorkerSet v0.9.0 does not know" in r.failure_message()
    assert resource_versions(sim, namespace) == {}

    # what the check stands for: the real API server keeps no trace of such a field
    sim.kubectl("create", "namespace", namespace)
    lws = {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
           "metadata": {"name": "probe", "namespace": namespace},
           "spec": {"leaderWorkerTemplate": {"size": 2, "futureGroupPolicy": {"mode": "Strict"}, "workerTemplate": {
               "spec": {"containers": [{"name": "c", "image": "stand-in"}]}}}}}
    manifest = tmp_path / "probe.json"
    manifest.write_text(json.dumps(lws))
    stored = json.loads(sim.kubectl("create", "--dry-run=server", "--validate=false", "-o", "json",
                                    "-f", str(manifest)).stdout)
    assert stored["spec"]["leaderWorkerTemplate"]["size"] == 2
    assert "futureGroupPolicy" not in stored["spec"]["leaderWorkerTemplate"]


def test_a_restricted_service_account_learns_every_missing_right(sim_cluster, namespace, tmp_path):
    """An AWX-like identity that may read its namespace but not deploy: one run names every verb it lacks, on the
    kinds the chart renders too (here a ConfigMap); what it may not read (nodes, the LWS CRD) is a warning, not a
    guess."""
    sim = sim_cluster
    sim.kubectl("create", "namespace", namespace)
    sim.kubectl("create", "serviceaccount", "deployer", "-n", namespace)
    sim.kubectl("create", "role", "reader", "-n", namespace, "--verb=get,list,watch",
                "--resource=secrets,persistentvolumeclaims,pods,services,events,resourcequotas")
    sim.kubectl("create", "rolebinding", "reader", "-n", namespace, "--role=reader",
                f"--serviceaccount={namespace}:deployer")
    token = sim.kubectl("create", "token", "deployer", "-n", namespace, "--duration=10m").stdout.strip()
    admin = yaml.safe_load(open(sim.kubeconfig).read())
    cluster = admin["clusters"][0]
    kubeconfig = tmp_path / "restricted.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "clusters": [cluster],
        "users": [{"name": "deployer", "user": {"token": token}}],
        "contexts": [{"name": "deployer", "context": {"cluster": cluster["name"], "user": "deployer"}}],
        "current-context": "deployer"}))
    kubeconfig.chmod(0o600)
    chart = chart_variant(tmp_path, configmap=True)
    r, report = preflight(sim, namespace, tmp_path, nim_kubeconfig=str(kubeconfig),
                          nim_chart={"source": "path", "ref": str(chart)})
    assert r.rc == 2, r.out[-4000:]
    assert token not in r.out and token not in json.dumps(report)
    permissions = checks_of(report)["permissions"]
    assert permissions["status"] == "FAIL"
    for missing in (f"create leaderworkersets.leaderworkerset.x-k8s.io in {namespace}",
                    f"create secrets in {namespace}", f"patch services in {namespace}",
                    f"create leases.coordination.k8s.io in {namespace}", f"get pods/log in {namespace}",
                    "get namespaces (cluster-wide)", f"create configmaps in {namespace}",
                    f"delete configmaps in {namespace}"):
        assert missing in permissions["message"], permissions
    assert f"get pods in {namespace}" not in permissions["message"]
    capacity = [c for c in report["checks"] if c["check"] == "gpu_capacity"]
    assert capacity and all(c["status"] == "WARN" and "could not be read" in c["message"] for c in capacity)


def test_a_release_a_helm_run_is_changing_fails(sim_cluster, namespace, tmp_path):
    """While a deploy's helm waits (a LoadBalancer Service never gets an address here), the release is
    pending-install: a preflight names it and says to wait for that run."""
    sim = sim_cluster
    v = dict(example_vars(TWO_NODES), **sim_overrides(sim, namespace))
    play = BackgroundPlay(sim, "deploy-nim.yml", dict(v, nim_extra_values={"service": {"type": "LoadBalancer"}}))
    try:
        wait_until("helm to start the install", lambda: "pending-install" in sim.kubectl(
            "get", "secrets", "-n", namespace, "-l", "owner=helm", "-o", "jsonpath={.items[*].metadata.labels.status}",
            check=False).stdout, timeout=180)
        r, report = preflight(sim, namespace, tmp_path)
        assert r.rc == 2, r.out[-4000:]
        helm = checks_of(report)["helm_state"]
        assert helm["status"] == "FAIL", helm
        assert helm["message"].startswith("revision 1 is pending-install since "), helm
        assert helm["fix"].startswith("wait for that run to end"), helm
    finally:
        play.kill()
