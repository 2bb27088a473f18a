"""The example job templates under awx/job_templates, launched as the controller launches them: survey answers
into extra vars, credentials into the environment through their injectors, through ansible-runner from a
private data directory. The Kubernetes jobs authenticate with the controller's built-in bearer-token
credential (a ServiceAccount token), never a kubeconfig."""

from __future__ import annotations

import base64
import copy
import uuid
from pathlib import Path

import pytest
import yaml

from awx_runner import AwxJob, credential_type, job_template
# Fixtures of the simulated hosts, used by name in the Docker test below.
from simhosts_fixtures import tiny_vllm_deployment
from simhosts_fixtures import sim_hosts, tiny_model_cache  # noqa: F401 pylint: disable=unused-import

LOCALHOST = {"all": {"hosts": {"localhost": {"ansible_connection": "local",
                                             "ansible_python_interpreter": "{{ ansible_playbook_python }}"}}}}
FAKE_HF = "hf_FAKEawxjob000000000000000000000000"


def task_result(result, task, outcome="runner_on_ok"):
    for event in result.events:
        data = event.get("event_data", {})
        if event.get("event") == outcome and data.get("task", "").split(" : ")[-1] == task:
            return data["res"]
    raise AssertionError("no %s event for task %r in the job events" % (outcome, task))


# --- plan: no cluster ---------------------------------------------------------------------------

def test_plan_template_from_survey_answers(tmp_path):
    job = AwxJob(private_data_dir=tmp_path / "job", template=job_template("plan-nim"), inventory=LOCALHOST,
                 answers={"nim_model": "llama-3.1-70b", "nim_gpu_type": "h100-80gb", "nim_gpus_per_node": 4,
                          "nim_nodes_available": 2, "nim_plan_nodes": 2})
    result = job.run()
    assert result.status == "successful", result.stdout[-3000:]
    plan = task_result(result, "Plan the topology")
    assert (plan["tensor_parallel_size"], plan["pipeline_parallel_size"], plan["nodes"]) == (4, 2, 2)
    assert result.stats()["failures"] == {}


def test_plan_template_refusal_fails_the_job_with_the_reason(tmp_path):
    job = AwxJob(private_data_dir=tmp_path / "job", template=job_template("plan-nim"), inventory=LOCALHOST,
                 answers={"nim_model": "llama-3.1-405b", "nim_gpu_type": "l40s-48gb", "nim_gpus_per_node": 8,
                          "nim_nodes_available": 1})
    result = job.run()
    assert result.status == "failed"
    res = task_result(result, "Plan the topology", "runner_on_failed")
    assert res["rule"] == "does_not_fit" and res["details"]["needed_nodes"] == 3


# --- deploy / diagnose / teardown on the sim cluster -------------------------------------------

@pytest.fixture
def awx_cluster(sim_cluster):
    """A namespace and a ServiceAccount token, as an admin sets up the controller's Kubernetes credential."""
    sim = sim_cluster
    ns = sim.namespace("awx")
    sa = "awx-job-" + uuid.uuid4().hex[:6]
    sim.kubectl("-n", ns, "create", "serviceaccount", sa)
    token = sim.kubectl("-n", ns, "create", "token", sa, "--duration=2h").stdout.strip()
    kubeconfig = yaml.safe_load(Path(sim.kubeconfig).read_text())
    cluster = kubeconfig["clusters"][0]["cluster"]
    ca = Path(cluster["certificate-authority"]).read_text()
    cred = {"host": cluster["server"], "bearer_token": token, "verify_ssl": True, "ssl_ca_cert": ca}
    binding = "%s-%s" % (ns, sa)
    yield sim, ns, sa, binding, cred
    sim.kubectl("delete", "clusterrolebinding", binding, "--ignore-not-found", check=False)
    sim.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def resource_names(sim, ns):
    out = sim.kubectl("-n", ns, "get", "secrets,pvc,leaderworkersets,services", "-o", "name").stdout
    return sorted(out.split())


def deploy_job(tmp_path, sim, ns, cred, name, *, verbosity=0, ngc=None, template_name="deploy-nim", **launch):
    template = copy.deepcopy(job_template(template_name))
    # The site's edit of the template's deployment description: the chart from the sim's
    # authenticated repository (a mirror, in the collection's terms) instead of NGC.
    # Its password is the NGC credential's key here (the sim's repository password stands in for it), sent over
    # the sim's plain-HTTP loopback.
    template["extra_vars"]["nim_chart"] = {"source": "repo", "repo_url": sim.repo_url, "version": "2.0.0-sim",
                                           "password": "{{ lookup('ansible.builtin.env', 'NGC_API_KEY') }}",
                                           "allow_http_credentials": True}
    # One GPU per node instead of eight (TP follows): the same two-node layout, on a slice of the
    # sim's GPUs so the job does not depend on whole nodes being free.
    template["extra_vars"].update(nim_gpus_per_node=1, nim_tensor_parallel_size=1)
    ngc = ngc if ngc is not None else sim.repo_credentials[1]
    answers = {"nim_namespace": ns, "nim_release": "llama-405b"}
    if template_name == "deploy-nim":
        answers["nim_wait_timeout"] = 600
    return AwxJob(private_data_dir=tmp_path / name, template=template, inventory=LOCALHOST,
                  credentials=[(credential_type(), {"ngc_api_key": ngc, "hf_token": FAKE_HF})],
                  kubernetes=cred, answers=answers,
                  tools={"helm": sim.helm}, verbosity=verbosity, timeout=900, **launch)


def test_deploy_diagnose_teardown_templates_on_the_sim_cluster(tmp_path, awx_cluster):
    sim, ns, sa, binding, cred = awx_cluster
    ngc = sim.repo_credentials[1]

    # Without RBAC the token is refused: the job authenticates as the ServiceAccount, nothing else.
    denied = deploy_job(tmp_path, sim, ns, cred, "denied").run()
    assert denied.status == "failed"
    assert "system:serviceaccount:%s:%s" % (ns, sa) in denied.stdout
    assert denied.leaks(ngc, FAKE_HF, cred["bearer_token"]) == []

    sim.kubectl("create", "clusterrolebinding", binding, "--clusterrole=cluster-admin",
                "--serviceaccount=%s:%s" % (ns, sa))
    # A check launch with diff (both asked at launch by the template) creates nothing.
    before = resource_names(sim, ns)
    check = deploy_job(tmp_path, sim, ns, cred, "check", job_type="check", diff_mode=True).run()
    assert check.status == "successful", check.stdout[-4000:]
    assert "--check" in check.process()["command"] and "--diff" in check.process()["command"]
    assert resource_names(sim, ns) == before
    assert check.leaks(ngc, FAKE_HF, cred["bearer_token"]) == []

    # The preflight template on the same deployment, as a workflow's first node: it reads, and its job status
    # (successful: no check FAILs) is what lets the deploy node run.
    pre = deploy_job(tmp_path, sim, ns, cred, "preflight", template_name="preflight-nim").run()
    assert pre.status == "successful", pre.stdout[-4000:]
    assert task_result(pre, "Check the cluster for this release (reads only)")["verdict"] in ("PASS", "WARN")
    assert "PASS  permissions" in pre.stdout and "PASS  gpu_capacity" in pre.stdout, pre.stdout[-4000:]
    assert resource_names(sim, ns) == before
    assert pre.leaks(ngc, FAKE_HF, cred["bearer_token"]) == []

    result = deploy_job(tmp_path, sim, ns, cred, "deploy", verbosity=4).run()
    assert result.status == "successful", result.stdout[-4000:]
    assert result.leaks(ngc, FAKE_HF, cred["bearer_token"]) == []
    # The injected values are what the cluster now holds.
    secret = sim.kubectl_json("-n", ns, "get", "secret", "ngc-api")
    assert base64.b64decode(secret["data"]["NGC_API_KEY"]).decode() == ngc
    secret = sim.kubectl_json("-n", ns, "get", "secret", "hf-token")
    assert base64.b64decode(secret["data"]["HF_TOKEN"]).decode() == FAKE_HF
    lws = sim.kubectl_json("-n", ns, "get", "leaderworkersets")["items"]
    assert [i["metadata"]["name"] for i in lws] == ["llama-405b-nim-llm"]
    assert lws[0]["status"].get("readyReplicas") == lws[0]["spec"]["replicas"]

    # The same launch again, from a fresh private data dir (as every controller job is).
    again = deploy_job(tmp_path, sim, ns, cred, "again").run()
    assert again.status == "successful", again.stdout[-4000:]

    diag = AwxJob(private_data_dir=tmp_path / "diagnose", template=job_template("diagnose-nim"),
                  inventory=LOCALHOST, kubernetes=cred,
                  answers={"nim_namespace": ns, "nim_release": "llama-405b", "nim_diagnose_fail_on_error": "true"},
                  tools={"helm": sim.helm}).run()
    assert diag.status == "successful", diag.stdout[-4000:]
    assert task_result(diag, "Run the checks")["healthy"] is True

    down = AwxJob(private_data_dir=tmp_path / "teardown", template=job_template("teardown-nim"),
                  inventory=LOCALHOST, kubernetes=cred,
                  answers={"nim_namespace": ns, "nim_release": "llama-405b"}, tools={"helm": sim.helm}).run()
    assert down.status == "successful", down.stdout[-4000:]
    assert sim.kubectl_json("-n", ns, "get", "leaderworkersets")["items"] == []
    # Kept by default: the model cache claim and the secrets.
    assert sim.kubectl("-n", ns, "get", "pvc", "nim-model-cache", check=False).returncode == 0
    assert sim.kubectl("-n", ns, "get", "secret", "ngc-api", check=False).returncode == 0

    # Checked last so the steps above are proven either way: the relaunch changed nothing.
    assert again.changed_tasks() == [], again.stats()["changed"]


# --- deploy / teardown on the simulated Docker hosts --------------------------------------------

def test_docker_templates_on_the_sim_hosts(tmp_path, sim_hosts, tiny_model_cache):  # noqa: F811
    import requests

    name = "awx" + uuid.uuid4().hex[:6]
    ngc = "nvapi-FAKE-" + "0" * 50 + uuid.uuid4().hex[:8]
    leader = sim_hosts.names[0]
    # The controller's inventory for the hosts: the deployment in group vars, one group per replica.
    # No user and no key here: the Machine credential supplies both (-u, and the key through ssh-agent).
    inventory = {"nim_docker": {
        "vars": {
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
            "ansible_python_interpreter": "/usr/bin/python3",
            "nim_docker_replica_group": "replica1",
            **tiny_vllm_deployment(sim_hosts, name, tiny_model_cache),
        },
        "children": {"replica1": {"hosts": {h: {"ansible_host": sim_hosts.ip(h)} for h in sim_hosts.names}}},
    }}
    machine = {"username": "root", "ssh_key_data": Path(sim_hosts.info["ssh_key"]).read_text()}

    def launch(template, pdd, creds):
        return AwxJob(private_data_dir=tmp_path / pdd, template=job_template(template), inventory=inventory,
                      credentials=creds, machine=machine, answers={"nim_docker_hosts": "nim_docker"},
                      timeout=1800).run()

    try:
        result = launch("deploy-nim-docker", "deploy", [(credential_type(), {"ngc_api_key": ngc})])
        assert result.status == "successful", result.stdout[-4000:]
        key_line = machine["ssh_key_data"].splitlines()[1]  # a line of the private key's body
        assert result.leaks(ngc, key_line) == []
        # As the controller runs it: the key through ssh-agent, the user from the credential.
        command = " ".join(result.process()["command"])
        assert command.startswith("ssh-agent sh -c") and "ssh-add" in command and "-u root" in command
        # The injected key reached the hosts only as the root-only env file.
        env_file = sim_hosts.host_path(leader, "/etc/nimops/%s.env" % name)
        assert "NGC_API_KEY=%s" % ngc in env_file.read_text()
        assert oct(env_file.stat().st_mode & 0o777) == "0o600"
        r = requests.post("http://%s:8000/v1/completions" % sim_hosts.ip(leader),
                          json={"model": "tiny", "prompt": "ray", "max_tokens": 3, "temperature": 0}, timeout=60)
        assert r.status_code == 200 and r.json()["choices"], r.text
    finally:
        down = launch("teardown-nim-docker", "teardown", [])
    assert down.status == "successful", down.stdout[-4000:]
    for host in sim_hosts.names:
        assert [c.name for c in sim_hosts.containers(host) if c.name.startswith(name + "-")] == []
        assert not sim_hosts.host_path(host, "/etc/nimops/%s.env" % name).exists()
