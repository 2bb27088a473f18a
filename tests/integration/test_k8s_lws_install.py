"""The lws_install role through deploy-nim.yml (--tags lws), four passes: server-side apply of the pinned
manifests, CRD Established, controller Available, idempotent (an installed, Available pinned version is not
re-applied unless forced); a downgrade is refused before any change."""

from __future__ import annotations

import base64
import json

from k8s_playbooks import REPO, run_playbook

CRD = "leaderworkersets.leaderworkerset.x-k8s.io"


def lws_versions(sim) -> dict:
    out = {}
    for args in (["crd", CRD], ["crd", "disaggregatedsets.disaggregatedset.x-k8s.io"],
                 ["deployment", "lws-controller-manager", "-n", "lws-system"],
                 ["mutatingwebhookconfiguration", "lws-mutating-webhook-configuration"],
                 ["validatingwebhookconfiguration", "lws-validating-webhook-configuration"],
                 ["clusterrole", "lws-manager-role"], ["namespace", "lws-system"]):
        r = sim.kubectl("get", *args, "-o", "json", check=False)
        if r.returncode == 0:
            out["/".join(args[:2])] = json.loads(r.stdout)["metadata"]["resourceVersion"]
    return out


def test_lws_install_four_passes(sim_cluster):
    sim = sim_cluster
    ev = {"nim_helm_binary": sim.helm}
    before = lws_versions(sim)
    fresh = before == {}  # a sim started with --no-lws-install, before anything installed LWS

    r = run_playbook(sim, "deploy-nim.yml", ev, check=True, diff=True, ngc_key="", tags="lws")
    assert r.rc == 0, r.out[-4000:]
    assert lws_versions(sim) == before
    if fresh:
        assert r.changed >= 1

    r = run_playbook(sim, "deploy-nim.yml", ev, ngc_key="", tags="lws")
    assert r.rc == 0, r.out[-4000:]
    crd = sim.kubectl_json("get", "crd", CRD)
    assert {c["type"]: c["status"] for c in crd["status"]["conditions"]}["Established"] == "True"
    dep = sim.kubectl_json("get", "deployment", "lws-controller-manager", "-n", "lws-system")
    assert {c["type"]: c["status"] for c in dep["status"]["conditions"]}["Available"] == "True"
    assert "registry.k8s.io/lws/lws:v0.9.0" in [c["image"] for c in dep["spec"]["template"]["spec"]["containers"]]
    installed = lws_versions(sim)

    # the pinned version installed and Available: nothing applied, in check mode or not
    for check in (True, False):
        r = run_playbook(sim, "deploy-nim.yml", ev, check=check, ngc_key="", tags="lws")
        assert r.rc == 0 and r.changed == 0, (check, r.recap, r.out[-4000:])
        assert lws_versions(sim) == installed
        assert "manifests not re-applied" in r.out, r.out[-4000:]

    # a forced apply (drift repair) applies; it may take over fields another installer set, and a second one
    # changes nothing
    force = dict(ev, lws_install_force_apply=True)
    r = run_playbook(sim, "deploy-nim.yml", force, ngc_key="", tags="lws", verbosity=3)
    assert r.rc == 0 and "manifests not re-applied" not in r.out, r.out[-4000:]
    # the re-applied webhook Secret holds the controller's TLS key; it never shows in the output
    cert = sim.kubectl_json("get", "secret", "lws-webhook-server-cert", "-n", "lws-system")
    assert cert.get("data", {}).get("tls.key"), "the LWS controller has not written its webhook key"
    for value in cert["data"].values():
        assert value not in r.out
        assert base64.b64decode(value).decode(errors="replace")[40:120] not in r.out
    assert "the objects are not printed, the webhook Secret holds a TLS key" in r.out
    repaired = lws_versions(sim)
    r = run_playbook(sim, "deploy-nim.yml", force, ngc_key="", tags="lws")
    assert r.rc == 0 and r.changed == 0, (r.recap, r.out[-4000:])
    assert lws_versions(sim) == repaired


def test_downgrade_refused_before_any_change(sim_cluster):
    sim = sim_cluster
    before = lws_versions(sim)
    r = run_playbook(sim, "deploy-nim.yml", {"nim_helm_binary": sim.helm, "lws_install_version": "v0.8.0",
                                             "lws_install_manifest": str(REPO / "roles/lws_install/files/"
                                                                         "lws-v0.9.0-manifests.yaml")},
                     ngc_key="", tags="lws")
    assert r.rc != 0
    assert "LeaderWorkerSet v0.9.0 is installed, newer than v0.8.0" in r.out, r.out[-3000:]
    assert lws_versions(sim) == before
