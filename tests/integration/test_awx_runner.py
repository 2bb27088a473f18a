"""Jobs run through ansible-runner from a private data directory laid out as the controller lays it out."""

from __future__ import annotations

import hashlib
import secrets
import stat

import pytest

from awx_runner import REPO, AwxDefinitionError, AwxJob, credential_type

PROBE = REPO / "tests" / "integration" / "awx" / "env-probe.yml"
LEAKY = REPO / "tests" / "integration" / "awx" / "leaky-probe.yml"
LOCAL_INVENTORY = {"all": {"hosts": {"localhost": {
    "ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}}}}
PROBE_TEMPLATE = {
    "name": "probe", "playbook": "probe/env-probe.yml", "survey_enabled": True,
    "survey_spec": {"name": "probe", "description": "", "spec": [
        {"type": "text", "question_name": "Release", "variable": "probe_release", "required": True,
         "min": 1, "max": 53},
    ]},
}


def fake_secrets():
    # Fresh per test so a value found anywhere can only have come from this job.
    return "nvapi-FAKE-" + secrets.token_hex(16), "hf_FAKE" + secrets.token_hex(12)


def probe_job(tmp_path, ngc, hf, **kw):
    inputs = {"ngc_api_key": ngc}
    if hf is not None:
        inputs["hf_token"] = hf
    return AwxJob(private_data_dir=tmp_path / "job", template=PROBE_TEMPLATE, inventory=LOCAL_INVENTORY,
                  credentials=[(credential_type(), inputs)], answers={"probe_release": "llama-405b"},
                  extra_project_files={"probe/env-probe.yml": PROBE}, **kw)


def probe_message(result):
    for event in result.events:
        data = event.get("event_data", {})
        if event.get("event") == "runner_on_ok" and data.get("task") == "Report digests of the injected values and the survey answer":
            return data["res"]["msg"]
    raise AssertionError("probe task result not found in the job events")


@pytest.mark.parametrize("verbosity", [0, 4])
def test_secrets_reach_the_job_only_through_the_injector_and_never_its_output(tmp_path, verbosity):
    ngc, hf = fake_secrets()
    result = probe_job(tmp_path, ngc, hf, verbosity=verbosity).run()
    assert (result.status, result.rc) == ("successful", 0), result.stdout[-3000:]
    msg = probe_message(result)
    assert msg == {"ngc_sha256": hashlib.sha256(ngc.encode()).hexdigest(),
                   "hf_sha256": hashlib.sha256(hf.encode()).hexdigest(),
                   "release": "llama-405b"}
    assert result.leaks(ngc, hf) == []
    # The values travelled in the process environment, not in its arguments.
    process = result.process()
    assert (process["env"]["NGC_API_KEY"], process["env"]["HF_TOKEN"]) == (ngc, hf)
    assert not any(ngc in arg or hf in arg for arg in process["command"])
    if verbosity == 4:
        assert "verbosity: 4" in result.stdout  # -vvvv really was in effect


def test_leak_check_finds_a_printed_secret(tmp_path):
    ngc, hf = fake_secrets()
    job = probe_job(tmp_path, ngc, hf)
    job.extra_project_files = {"probe/env-probe.yml": LEAKY}
    result = job.run()
    assert result.status == "successful", result.stdout[-3000:]
    leaks = result.leaks(ngc)
    assert "stdout" in leaks and "events" in leaks
    # What the controller would store with the job: names present, values masked.
    assert result.safe_env["NGC_API_KEY"] == result.safe_env["HF_TOKEN"] == "**********"


def test_private_data_dir_has_awx_layout_and_no_prompt_inputs(tmp_path):
    ngc, hf = fake_secrets()
    job = probe_job(tmp_path, ngc, hf)
    pdd = job.prepare()
    env_files = sorted(p.name for p in (pdd / "env").iterdir())
    assert env_files == ["envvars", "extravars", "settings"]
    for name in env_files:
        assert stat.S_IMODE((pdd / "env" / name).stat().st_mode) == 0o600
    assert ngc not in (pdd / "env" / "extravars").read_text()
    assert (pdd / "project" / "probe" / "env-probe.yml").is_file()
    assert (pdd / "requirements_collections" / "ansible_collections" / "nimops" / "multinode" / "galaxy.yml").is_file()


def test_empty_hf_token_is_injected_as_empty_string(tmp_path):
    ngc = fake_secrets()[0]
    result = probe_job(tmp_path, ngc, None).run()
    assert result.status == "successful", result.stdout[-3000:]
    assert probe_message(result)["hf_sha256"] == hashlib.sha256(b"").hexdigest()


def test_job_fails_without_the_credential_and_names_the_variable(tmp_path):
    job = AwxJob(private_data_dir=tmp_path / "job", template=PROBE_TEMPLATE, inventory=LOCAL_INVENTORY,
                 answers={"probe_release": "x"}, extra_project_files={"probe/env-probe.yml": PROBE})
    result = job.run()
    assert result.status == "failed"
    assert "NGC_API_KEY is missing from the job environment" in result.stdout


def test_survey_refuses_bad_answers_before_anything_runs(tmp_path):
    ngc, hf = fake_secrets()
    job = probe_job(tmp_path, ngc, hf)
    job.answers = {"probe_release": ""}
    with pytest.raises(AwxDefinitionError, match="probe_release: shorter than 1"):
        job.prepare()
    assert not (tmp_path / "job" / "artifacts").exists()


def test_launch_choices_the_template_does_not_ask_for_are_refused(tmp_path):
    ngc, hf = fake_secrets()
    job = probe_job(tmp_path, ngc, hf, job_type="check")
    with pytest.raises(AwxDefinitionError, match="does not ask for the job type"):
        job.prepare()


def test_machine_credential_layout(tmp_path):
    ngc, hf = fake_secrets()
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nFAKE\n-----END OPENSSH PRIVATE KEY-----\n"
    template = dict(PROBE_TEMPLATE, ask_job_type_on_launch=True, ask_diff_mode_on_launch=True)
    job = probe_job(tmp_path, ngc, hf, machine={"username": "root", "ssh_key_data": key},
                    job_type="check", diff_mode=True)
    job.template = template
    pdd = job.prepare()
    assert (pdd / "env" / "cmdline").read_text() == "-u root --check --diff"
    assert (pdd / "env" / "ssh_key").read_text() == key
    assert stat.S_IMODE((pdd / "env" / "ssh_key").stat().st_mode) == 0o600
    assert key not in (pdd / "inventory" / "hosts.yml").read_text()
