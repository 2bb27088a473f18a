"""A planted fake NGC API key and HF token never show up in -vvvv output, diffs, results, process arguments,
the release's values or rendered manifests - while the Secrets in the cluster do hold them (so the test
cannot pass by not using them)."""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from pathlib import Path

import pytest

from k8s_playbooks import FAKE_HF_TOKEN, CmdlineScanner, cleanup_namespace, example_vars, run_playbook, sim_overrides

ROTATED_HF_TOKEN = "hf_FAKErotatedtoken11111111111111111"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture
def namespace(sim_cluster):
    name = f"leak-{uuid.uuid4().hex[:8]}"
    yield name
    cleanup_namespace(sim_cluster, name)


def test_planted_credentials_never_leak(sim_cluster, namespace):
    sim = sim_cluster
    ngc_key = sim.repo_credentials[1]  # the sim's repository accepts only this fake NGC key
    assert ngc_key.startswith("nvapi-FAKE")
    needles = [ngc_key, FAKE_HF_TOKEN, ROTATED_HF_TOKEN, b64(ngc_key), b64(FAKE_HF_TOKEN), b64(ROTATED_HF_TOKEN),
               b64("$oauthtoken:" + ngc_key)]
    extravars = dict(example_vars("model-free-hf.yml"), **sim_overrides(sim, namespace))

    outputs = []
    with CmdlineScanner(needles) as scan:
        for check in (True, False):
            r = run_playbook(sim, "deploy-nim.yml", extravars, check=check, diff=True, verbosity=4,
                             ngc_key=ngc_key, hf_token=FAKE_HF_TOKEN)
            assert r.rc == 0, r.out[-4000:]
            outputs.append(r.out)
        # rotating the token changes exactly the HF secret, and the diff says so without the value
        r = run_playbook(sim, "deploy-nim.yml", extravars, diff=True, verbosity=4, ngc_key=ngc_key,
                         hf_token=ROTATED_HF_TOKEN)
        assert r.rc == 0, r.out[-4000:]
        assert r.changed == 1, r.recap
        assert '"HF_TOKEN": "<hidden> (changed)"' in r.out
        outputs.append(r.out)
        diag = run_playbook(sim, "diagnose-nim.yml", {"nim_namespace": namespace,
                                                      "nim_release": extravars["nim_release"]}, verbosity=4)
        assert diag.rc == 0, diag.out[-3000:]
        outputs.append(diag.out)
    assert scan.samples > 10
    assert scan.hits == []

    # the values were really used
    secret = sim.kubectl_json("get", "secret", "hf-token", "-n", namespace)
    assert base64.b64decode(secret["data"]["HF_TOKEN"]).decode() == ROTATED_HF_TOKEN
    secret = sim.kubectl_json("get", "secret", "ngc-api", "-n", namespace)
    assert base64.b64decode(secret["data"]["NGC_API_KEY"]).decode() == ngc_key

    env = sim.helm_env(Path("/tmp") / f"helm-leak-{namespace}")
    rendered = []
    for what in (["get", "values", "--all"], ["get", "manifest"], ["get", "all"]):
        p = subprocess.run([sim.helm, *what, extravars["nim_release"], "-n", namespace], env=env,
                           capture_output=True, text=True, timeout=60, check=False)
        assert p.returncode == 0, p.stderr
        rendered.append(p.stdout)
    rendered.append(json.dumps(sim.kubectl_json("get", "leaderworkersets,statefulsets,pods", "-n", namespace)))
    charts = Path.home() / ".cache" / "nimops" / "charts"
    rendered += [f.read_bytes().decode("latin-1") for f in charts.rglob("*") if f.is_file()]

    # teardown, Secrets included, at -vvvv: the deleted Secrets' data shows nowhere either
    down = {"nim_namespace": namespace, "nim_release": extravars["nim_release"], "nim_helm_binary": sim.helm,
            "nim_delete_secrets": True}
    with CmdlineScanner(needles) as scan:
        r = run_playbook(sim, "teardown-nim.yml", down, diff=True, verbosity=4, ngc_key=ngc_key)
    assert r.rc == 0, r.out[-4000:]
    assert scan.hits == []
    outputs.append(r.out)
    assert sim.kubectl("get", "secret", "ngc-api", "-n", namespace, check=False).returncode != 0

    for text in outputs + rendered:
        for needle in needles:
            assert needle not in text, "credential leaked: %s...%s" % (needle[:8], text[text.find(needle) - 80:][:160])
    assert all("hf-token" in r or "HF_TOKEN" in r for r in rendered[:2])  # referenced by name
