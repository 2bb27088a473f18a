"""The collection as users install it: `ansible-galaxy collection build` + `install` into an empty path, then the
playbooks run by their fully qualified names with one vars file - plan_nim (contacts nothing), deploy_nim, a
`--tags release` re-run that runs the release phase alone, and teardown_nim - on the suites' sim cluster."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import REPO
from k8s_playbooks import PlayResult, cleanup_namespace, example_vars, sim_overrides

BIN = Path(sys.executable).parent


def run(argv, env, timeout=900) -> PlayResult:
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, cwd="/", check=False)
    return PlayResult(r.returncode, r.stdout + r.stderr, 0.0)


def test_installed_collection_runs_by_fqcn(sim_cluster, tmp_path):
    built = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", "--force", "--output-path",
                            str(tmp_path), str(REPO)], capture_output=True, text=True, timeout=300, check=True)
    artifact = re.search(r"(\S+nimops-multinode-\S+\.tar\.gz)", built.stdout).group(1)
    path = tmp_path / "collections"
    subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", "--offline", "--no-deps", "-p", str(path),
                    artifact], capture_output=True, text=True, timeout=300, check=True)
    namespace = "fqcn-" + os.urandom(3).hex()
    vars_file = tmp_path / "vars.yml"
    vars_file.write_text(yaml.safe_dump({**example_vars("llama-3.1-405b-2node.yml"),
                                         **sim_overrides(sim_cluster, namespace)}))
    base = {k: v for k, v in os.environ.items() if k not in ("NGC_API_KEY", "HF_TOKEN", "K8S_AUTH_KUBECONFIG")}
    # Only the installed copy: the bundled dependencies stay where the venv's ansible finds them.
    offline = dict(base, ANSIBLE_COLLECTIONS_PATH=str(path), ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0",
                   ANSIBLE_INVENTORY_UNPARSED_WARNING="0", PATH=str(BIN) + os.pathsep + base.get("PATH", ""))
    online = dict(offline, K8S_AUTH_KUBECONFIG=sim_cluster.kubeconfig, NGC_API_KEY=sim_cluster.repo_credentials[1])
    play = [str(BIN / "ansible-playbook"), "-e", "@%s" % vars_file]
    try:
        plan = run(play + ["nimops.multinode.plan_nim"], offline)
        assert plan.rc == 0 and plan.changed == 0, plan.out[-3000:]
        assert re.search(r"tensorParallelSize[\"']?: 8", plan.out), plan.out[-3000:]
        assert sim_cluster.kubectl("get", "namespace", namespace, check=False).returncode != 0, "plan changed the cluster"

        deploy = run(play + ["nimops.multinode.deploy_nim"], online)
        assert deploy.rc == 0 and deploy.changed > 0, deploy.out[-3000:]
        lws = sim_cluster.kubectl_json("get", "leaderworkersets", "-n", namespace)["items"]
        assert [item["status"].get("readyReplicas") for item in lws] == [1]

        release = run(play + ["--tags", "release", "nimops.multinode.deploy_nim"], online)
        assert release.rc == 0 and release.changed == 0, release.out[-3000:]
        roles = set(re.findall(r"^TASK \[nimops\.multinode\.(\w+) :", release.out, re.M))
        assert roles == {"nim_deploy", "nim_secrets", "nim_storage", "nim_release", "lws_install"}, roles
        # the secrets and storage roles ran their read-only validation only: of LWS only the pinned version the
        # preflight compares with (no install or wait), no namespace task, no Secrets or PVC writers
        lws_tasks = re.findall(r"^TASK \[nimops\.multinode\.lws_install : (.*?)\]", release.out, re.M)
        assert [t for t in lws_tasks if not t.startswith("Validating arguments")] == [
            "Publish the pinned LeaderWorkerSet version"], lws_tasks
        assert "TASK [nimops.multinode.nim_deploy : Namespace for the release]" not in release.out
        assert "TASK [nimops.multinode.nim_secrets : NGC API key secret]" not in release.out
        assert "Create the model cache PVC" not in release.out
        assert "TASK [nimops.multinode.nim_release : Wait for every LeaderWorkerSet group" in release.out

        down = run(play + ["-e", "nim_delete_secrets=true", "-e", "nim_delete_model_cache=true",
                           "nimops.multinode.teardown_nim"], online)
        assert down.rc == 0 and down.changed > 0, down.out[-3000:]
        left = sim_cluster.kubectl_json("get", "leaderworkersets,persistentvolumeclaims,secrets", "-n", namespace)
        assert [i["metadata"]["name"] for i in left["items"]] == []
    finally:
        cleanup_namespace(sim_cluster, namespace)
