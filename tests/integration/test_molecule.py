"""The molecule scenarios under extensions/molecule/, run as role authors run them: `molecule test -s <scenario>`
(syntax, create, converge, idempotence, verify, destroy) on the suites' own test beds.

The session's fixtures bring the test beds up first, so each scenario's create finds them up and its destroy
leaves them up (it stops only what its create started).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, TEST_SIM_ENV
from simhosts_fixtures import TEST_SET, collections_root, sim_hosts, tiny_model_cache  # noqa: F401  pylint: disable=unused-import

MOLECULE = str(Path(sys.executable).parent / "molecule")


def molecule_test(scenario: str, timeout: float) -> subprocess.CompletedProcess:
    env = dict(os.environ, **TEST_SIM_ENV)
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": str(collections_root()),
        "NIMOPS_SIMHOSTS_SET": TEST_SET,
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "NO_COLOR": "1",
        "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
    })
    for name in ("NGC_API_KEY", "HF_TOKEN", "DOCKER_HOST", "K8S_AUTH_KUBECONFIG"):
        env.pop(name, None)
    return subprocess.run([MOLECULE, "test", "-s", scenario], cwd=str(REPO), env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


@pytest.mark.parametrize("scenario,bed,timeout", [("k8s", "sim_cluster", 900), ("bare_hosts", "sim_hosts", 1500)])
def test_molecule_scenario(scenario, bed, timeout, request):
    request.getfixturevalue(bed)
    if bed == "sim_hosts":
        request.getfixturevalue("tiny_model_cache")
    r = molecule_test(scenario, timeout)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    # Every step of the sequence ran, idempotence included (a changed task there fails the scenario).
    for step in ("syntax", "create", "converge", "idempotence", "verify", "destroy"):
        assert re.search(r"\b%s\b" % step, out), "step %s did not run:\n%s" % (step, out[-3000:])
    assert "Idempotence test failed" not in out
