"""`make demo` as the README presents it: scripts/demo.sh deploys the seed's two-node example into the simulated
cluster, shows the result, and converges on a second run. Run here on the suites' own sim (the script honours
NIMOPS_SIM_DIR / NIMOPS_SIM_PORT_OFFSET), and torn down afterwards so that the GPU nodes it holds are free again."""

from __future__ import annotations

import os
import re
import subprocess
import time

from k8s_playbooks import REPO, PlayResult, cleanup_namespace, run_playbook

NAMESPACE, RELEASE = "nim", "llama-405b"


def run_demo(sim) -> PlayResult:
    env = dict(os.environ, **sim.env)
    env.pop("NGC_API_KEY", None)
    start = time.monotonic()
    proc = subprocess.run(["bash", str(REPO / "scripts" / "demo.sh")], env=env, capture_output=True, text=True,
                          timeout=900, check=False, cwd=str(REPO))
    return PlayResult(proc.returncode, proc.stdout + proc.stderr, time.monotonic() - start)


def test_demo_deploys_the_example_shows_it_and_converges(sim_cluster):
    password = sim_cluster.repo_credentials[1]
    try:
        first = run_demo(sim_cluster)
        out = first.out
        assert first.rc == 0, out[-4000:]
        assert first.changed > 0, out[-3000:]
        # the status step shows the group: a leader and one worker, both running, and the model cache claim
        assert re.search(rf"pod/{RELEASE}-nim-llm-0\s+1/1\s+Running", out), out[-3000:]
        assert re.search(rf"pod/{RELEASE}-nim-llm-0-1\s+1/1\s+Running", out), out[-3000:]
        assert "persistentvolumeclaim/nim-model-cache" in out and "Deployed." in out, out[-3000:]
        # the repository password (the demo's stand-in NGC key) reaches the play through the environment only
        assert password not in out

        second = run_demo(sim_cluster)
        assert second.rc == 0, second.out[-4000:]
        assert second.changed == 0, second.out[-3000:]
        assert password not in second.out
    finally:
        run_playbook(sim_cluster, "teardown-nim.yml", {"nim_namespace": NAMESPACE, "nim_release": RELEASE,
                                                       "nim_helm_binary": sim_cluster.helm})
        cleanup_namespace(sim_cluster, NAMESPACE)
