"""diagnose-nim.yml against live releases: a healthy one, and one whose pods cannot pull their image behind a
NetworkPolicy that blocks the Ray port."""

from __future__ import annotations

import sys
import uuid

import pytest

from k8s_playbooks import cleanup_namespace, collections_root, example_vars, run_playbook, sim_overrides

DENY_ALL = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all-ingress, namespace: %s}
spec:
  podSelector: {}
  policyTypes: [Ingress]
"""


@pytest.fixture
def namespace(sim_cluster):
    name = f"diag-{uuid.uuid4().hex[:8]}"
    yield name
    cleanup_namespace(sim_cluster, name)


def test_diagnose_healthy_then_broken(sim_cluster, namespace):
    sim = sim_cluster
    ev = dict(example_vars("llama-3.1-405b-2node.yml"), **sim_overrides(sim, namespace))
    target = {"nim_namespace": namespace, "nim_release": ev["nim_release"], "nim_diagnose_fail_on_error": True}

    r = run_playbook(sim, "deploy-nim.yml", ev)
    assert r.rc == 0, r.out[-3000:]
    d = run_playbook(sim, "diagnose-nim.yml", target)
    assert d.rc == 0 and d.changed == 0, d.out[-3000:]
    assert "healthy: llama-405b-nim-llm: 1/1 groups ready, 2/2 pods ready" in d.out

    sim.kubectl("apply", "-f", "-", input=DENY_ALL % namespace)
    # the broken upgrade stays in place to be diagnosed (by default it would be rolled back)
    ev["nim_rollback_on_failure"] = False
    ev["nim_extra_values"] = {"podLabels": {"sim.nimops.test/fault": "imagepull"},
                              "podAnnotations": {"sim.nimops.test/fault-message": "pull: 403 Forbidden"}}
    r = run_playbook(sim, "deploy-nim.yml", ev)
    assert r.rc != 0, r.out[-3000:]
    d = run_playbook(sim, "diagnose-nim.yml", target)
    assert d.rc != 0, d.out[-3000:]
    assert "error | pod llama-405b-nim-llm-" in d.out and "cannot pull its image" in d.out, d.out[-3000:]
    assert "recreate the image pull secret for nvcr.io with user '$oauthtoken'" in d.out
    assert "warning | NetworkPolicy deny-all-ingress selects" in d.out and "Ray port 6379" in d.out
    assert "image_pull_auth" in d.failure_message()


def test_waits_and_diagnosis_read_secrets_as_metadata_only(sim_cluster, namespace):
    """The API server answers the Secret list of the waits and the diagnosis with metadata only: no data crosses
    the wire, and what is read is the names."""
    if str(collections_root()) not in sys.path:
        sys.path.append(str(collections_root()))
    from ansible_collections.nimops.multinode.plugins.module_utils import _k8s  # pylint: disable=import-outside-toplevel
    sim = sim_cluster
    sim.kubectl("create", "namespace", namespace)
    sim.kubectl("create", "secret", "generic", "canary", "-n", namespace, "--from-literal=NGC_API_KEY=nvapi-FAKEcanary0")
    client = _k8s.connect({"kubeconfig": sim.kubeconfig})
    raw = client.get(client.resource("Secret", "v1"), namespace=namespace,
                     header_params=dict(_k8s.METADATA_ONLY)).to_dict()
    assert raw["kind"] == "PartialObjectMetadataList", raw["kind"]
    assert [i["metadata"]["name"] for i in raw["items"]] == ["canary"]
    assert "nvapi-FAKEcanary0" not in str(raw) and all("data" not in i for i in raw["items"])
    assert _k8s.secret_names(client, namespace) == {"canary": None}
