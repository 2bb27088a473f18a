"""`make demo` as the README presents it: scripts/demo.sh deploys the seed's two-node example into the simulated
cluster, shows the result, and converges on a second run. Run here on the suites' own sim (the script honours
NIMOPS_SIM_DIR / NIMOPS_SIM_PORT_OFFSET), and torn down afterwards so that the GPU nodes it holds are free again."""

from __future__ import annotations

import os
import re
import subprocess

from k8s_playbooks import REPO, cleanup_namespace, run_playbook

NAMESPACE, RELEASE = "nim", "llama-405b"


def run_demo(sim) -> subprocess.CompletedProcess:
    env = dict(os.environ, **sim.env)
    env.pop("NGC_API_KEY", None)
    return subprocess.run(["bash", str(REPO / "scripts" / "demo.sh")], env=env, capture_output=True, text=True,
                          timeout=900, check=False, cwd=str(REPO))


def recap_changed(out: str) -> int:
    m = re.search(r"localhost\s+: ok=\d+\s+changed=(\d+)", out)
    assert m, out[-3000:]
    return int(m.group(1))


def test_demo_deploys_the_example_shows_it_and_converges(sim_cluster):
    password = sim_cluster.repo_credentials[1]
    try:
        first = run_demo(sim_cluster)
        out = first.stdout + first.stderr
        assert first.returncode == 0, out[-4000:]
        assert recap_changed(out) > 0, out[-3000:]
        # the status step shows the group: a leader and one worker, both running, and the model cache claim
        assert re.search(rf"pod/{RELEASE}-nim-llm-0\s+1/1\s+Running", out), out[-3000:]
        assert re.search(rf"pod/{RELEASE}-nim-llm-0-1\s+1/1\s+Running", out), out[-3000:]
        assert "persistentvolumeclaim/nim-model-cache" in out and "Deployed." in out, out[-3000:]
        # the repository password (the demo's stand-in NGC key) reaches the play through the environment only
        assert password not in out

        second = run_demo(sim_cluster)
        out2 = second.stdout + second.stderr
        assert second.returncode == 0, out2[-4000:]
        assert recap_changed(out2) == 0, out2[-3000:]
        assert password not in out2
    finally:
        run_playbook(sim_cluster, "teardown-nim.yml", {"nim_namespace": NAMESPACE, "nim_release": RELEASE,
                                                       "nim_helm_binary": sim_cluster.helm})
        cleanup_namespace(sim_cluster, NAMESPACE)
