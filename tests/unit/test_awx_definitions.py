"""The AWX / Automation Controller definitions under awx/ (execution-environment.yml included), checked as the
controller and ansible-builder check them, with the injection logic the controller applies."""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))

from awx_runner import (AwxDefinitionError, check_credential_type, check_survey_spec,  # noqa: E402
                        credential_type, kubernetes_credential_env, render_injectors, survey_extra_vars)

NGC = "nvapi-FAKE-0000000000000000000000000000000000000000000000000000000000000000"
HF = "hf_FAKE00000000000000000000000000000000"
TEMPLATES = sorted((REPO / "awx" / "job_templates").glob("*.yml"))


@pytest.fixture
def pdd(tmp_path):
    (tmp_path / "env").mkdir()
    return tmp_path


# --- credential type --------------------------------------------------------------------------

def test_every_input_is_secret_and_only_the_ngc_key_is_required():
    ctype = credential_type()
    check_credential_type(ctype)
    fields = {f["id"]: f for f in ctype["inputs"]["fields"]}
    assert sorted(fields) == ["hf_token", "ngc_api_key"]
    assert all(f["secret"] is True and f["type"] == "string" for f in fields.values())
    assert ctype["inputs"]["required"] == ["ngc_api_key"]
    assert set(ctype["injectors"]) == {"env"}  # nothing in extra vars (those are stored with the job)


def test_injectors_render_exactly_the_collection_environment(pdd):
    env, safe_env, extra = render_injectors(credential_type(), {"ngc_api_key": NGC, "hf_token": HF}, pdd)
    assert env == {"NGC_API_KEY": NGC, "HF_TOKEN": HF}
    assert safe_env == {"NGC_API_KEY": "**********", "HF_TOKEN": "**********"}
    assert extra == {}


def test_unset_hf_token_renders_empty(pdd):
    env, safe_env = render_injectors(credential_type(), {"ngc_api_key": NGC}, pdd)[:2]
    assert env == {"NGC_API_KEY": NGC, "HF_TOKEN": ""}
    assert safe_env == {"NGC_API_KEY": "**********", "HF_TOKEN": ""}


@pytest.mark.parametrize("inputs, message", [
    ({}, "required input ngc_api_key has no value"),
    ({"ngc_api_key": ""}, "required input ngc_api_key has no value"),
    ({"ngc_api_key": NGC, "ngc_key": NGC}, r"inputs not declared by the credential type: \['ngc_key'\]"),
])
def test_bad_credential_inputs_refused(pdd, inputs, message):
    with pytest.raises(AwxDefinitionError, match=message):
        render_injectors(credential_type(), inputs, pdd)


def test_injector_templates_are_sandboxed(pdd):
    ctype = copy.deepcopy(credential_type())
    ctype["injectors"]["env"]["NGC_API_KEY"] = "{{ ngc_api_key.__class__.__mro__ }}"
    with pytest.raises(Exception, match="unsafe"):
        render_injectors(ctype, {"ngc_api_key": NGC}, pdd)


@pytest.mark.parametrize("change, message", [
    (lambda c: c["injectors"]["env"].update({"ANSIBLE_NGC": "{{ ngc_api_key }}"}), "ANSIBLE_NGC is not allowed"),
    (lambda c: c["injectors"]["env"].update({"PATH": "{{ ngc_api_key }}"}), "PATH is not allowed"),
    (lambda c: c.update(kind="ssh"), "kind cloud or net"),
    (lambda c: c["inputs"]["required"].append("ngc_key"), "required field ngc_key"),
    (lambda c: c["inputs"]["fields"].append(dict(c["inputs"]["fields"][0])), "duplicate input field ids"),
])
def test_credential_type_checks_can_fail(change, message):
    ctype = copy.deepcopy(credential_type())
    change(ctype)
    with pytest.raises(AwxDefinitionError, match=message):
        check_credential_type(ctype)


def env_names_read_by_the_collection():
    pattern = re.compile(r"""lookup\(\s*['"](?:ansible\.builtin\.)?env['"]\s*,\s*['"]([A-Z0-9_]+)['"]""")
    names = set()
    for base in ("roles", "playbooks"):
        for path in (REPO / base).rglob("*.yml"):
            names.update(pattern.findall(path.read_text()))
    return names


def test_collection_reads_the_injected_names():
    assert set(credential_type()["injectors"]["env"]) <= env_names_read_by_the_collection()


def test_builtin_kubernetes_credential_env(pdd):
    env = kubernetes_credential_env(pdd, host="https://127.0.0.1:6443", bearer_token="FAKE-token")
    assert env == {"K8S_AUTH_HOST": "https://127.0.0.1:6443", "K8S_AUTH_API_KEY": "FAKE-token",
                   "K8S_AUTH_VERIFY_SSL": "False"}
    env = kubernetes_credential_env(pdd, host="https://127.0.0.1:6443", bearer_token="FAKE-token",
                                    verify_ssl=True, ssl_ca_cert="-----BEGIN CERTIFICATE-----\nFAKE\n")
    assert env["K8S_AUTH_VERIFY_SSL"] == "True"
    ca = Path(env["K8S_AUTH_SSL_CA_CERT"])
    assert ca.read_text() == "-----BEGIN CERTIFICATE-----\nFAKE\n" and oct(ca.stat().st_mode & 0o777) == "0o600"


# --- job templates and surveys ----------------------------------------------------------------

@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.stem)
def test_job_template_is_valid(path):
    spec = yaml.safe_load(path.read_text())
    assert spec["survey_enabled"] is True
    check_survey_spec(spec["survey_spec"])
    # Secrets come from the credential, never from a survey answer (stored with the job as extra vars).
    assert all(q["type"] != "password" for q in spec["survey_spec"]["spec"])
    assert (REPO / spec["playbook"]).is_file(), "%s runs %s, which is not in the project" % (path.name, spec["playbook"])
    assert spec["job_type"] == "run"
    # A launch that accepts every default (answering only required questions without one) is valid.
    questions = spec["survey_spec"]["spec"]
    answers = {q["variable"]: "x" for q in questions if q["required"] and q.get("default", "") == ""}
    extra = survey_extra_vars(spec["survey_spec"], answers)
    assert sorted(extra) == sorted(q["variable"] for q in questions if q["required"] or q.get("default", "") != "")
    # Each survey variable and template extra var is a variable the playbook reads (itself, or through the public
    # interface of the role it runs), or one the template's own extra vars pass on.
    readers = playbook_interface(spec["playbook"]) + yaml.safe_dump(spec.get("extra_vars") or {})
    for var in [q["variable"] for q in questions] + list(spec.get("extra_vars") or {}):
        assert re.search(r"\b%s\b" % re.escape(var), readers), "%s: %s is not used by %s" % (
            path.name, var, spec["playbook"])


def playbook_interface(playbook):
    """The playbook's text and the argument specs of the collection roles it runs (their public variables)."""
    text = (REPO / playbook).read_text()
    for role in re.findall(r"name: nimops\.multinode\.(\w+)", text):
        text += (REPO / "roles" / role / "meta" / "argument_specs.yml").read_text()
    return text


def test_deploy_template_describes_the_seed_example():
    spec = yaml.safe_load((REPO / "awx" / "job_templates" / "deploy-nim.yml").read_text())
    example = yaml.safe_load((REPO / "examples" / "kubernetes" / "llama-3.1-405b-2node.yml").read_text())
    asked = {q["variable"]: q.get("default") for q in spec["survey_spec"]["spec"]}
    assert spec["extra_vars"] == {k: v for k, v in example.items() if k not in asked}
    for var in ("nim_namespace", "nim_release", "nim_wait_timeout"):
        assert asked[var] == example[var]


def test_plan_template_offers_what_the_planner_knows():
    from ansible_collections.nimops.multinode.plugins.module_utils import _plan
    spec = yaml.safe_load((REPO / "awx" / "job_templates" / "plan-nim.yml").read_text())
    choices = {q["variable"]: q.get("choices") for q in spec["survey_spec"]["spec"]}
    assert choices["nim_model"] == list(_plan.MODELS)
    assert choices["nim_gpu_type"] == list(_plan.GPU_TYPES)
    assert choices["nim_interconnect"] == list(_plan.INTERCONNECTS)


# Which playbooks need the NGC key / HF token: everything that writes Secrets or starts containers with them.
NEEDS_NIM_CREDENTIALS = {"deploy-nim": True, "preflight-nim": True, "deploy-nim-docker": True, "teardown-nim": False,
                         "teardown-nim-docker": False, "diagnose-nim": False, "plan-nim": False}


def test_templates_use_the_credentials_their_playbooks_need():
    creds = {p.stem: yaml.safe_load(p.read_text())["credentials"] for p in TEMPLATES}
    assert sorted(creds) == sorted(NEEDS_NIM_CREDENTIALS)
    for name, used in creds.items():
        reads_secrets = NEEDS_NIM_CREDENTIALS[name]
        assert ("NIM credentials" in used) == reads_secrets, name
        # Kubernetes playbooks use the cluster credential, bare-host ones the SSH (machine) credential.
        assert ("NIM cluster" in used) == (name in ("deploy-nim", "preflight-nim", "teardown-nim", "diagnose-nim")), name
        assert ("NIM hosts (SSH)" in used) == name.endswith("-docker"), name


def test_preflight_template_checks_what_the_deploy_template_deploys():
    deploy, preflight = (yaml.safe_load((REPO / "awx" / "job_templates" / name).read_text())
                         for name in ("deploy-nim.yml", "preflight-nim.yml"))
    assert preflight["playbook"] == "playbooks/preflight_nim.yml"
    assert preflight["extra_vars"] == deploy["extra_vars"]
    asked = [q["variable"] for q in preflight["survey_spec"]["spec"]]
    assert asked == [q["variable"] for q in deploy["survey_spec"]["spec"] if q["variable"] in asked]
    assert {"nim_namespace", "nim_release"} <= set(asked)


def test_every_job_template_has_a_distinct_name():
    names = [yaml.safe_load(p.read_text())["name"] for p in TEMPLATES]
    assert len(names) == len(set(names)) >= 3


SURVEY = {"name": "s", "description": "", "spec": [
    {"type": "text", "question_name": "Release", "variable": "rel", "required": True, "min": 1, "max": 5},
    {"type": "integer", "question_name": "Nodes", "variable": "nodes", "required": False, "default": 2,
     "min": 1, "max": 8},
    {"type": "multiplechoice", "question_name": "Keep", "variable": "keep", "required": True,
     "choices": ["true", "false"], "default": "true"},
    {"type": "multiselect", "question_name": "Checks", "variable": "checks", "required": False,
     "choices": "pods\npvc\nsecrets", "default": "pods\npvc"},
]}


def test_survey_answers_and_defaults_become_extra_vars():
    assert survey_extra_vars(SURVEY, {"rel": "a"}) == {"rel": "a", "nodes": 2, "keep": "true",
                                                       "checks": ["pods", "pvc"]}
    assert survey_extra_vars(SURVEY, {"rel": "a", "nodes": 4, "keep": "false", "checks": ["secrets"]}) == \
        {"rel": "a", "nodes": 4, "keep": "false", "checks": ["secrets"]}


@pytest.mark.parametrize("answers, message", [
    ({}, "survey question rel is required"),
    ({"rel": ""}, "rel: shorter than 1"),
    ({"rel": "toolong"}, "rel: longer than 5"),
    ({"rel": "a", "nodes": 9}, "nodes: above maximum 8"),
    ({"rel": "a", "nodes": "2"}, "nodes: expected integer"),
    ({"rel": "a", "keep": "maybe"}, "keep: 'maybe' is not one of"),
    ({"rel": "a", "checks": ["gpu"]}, "checks: .* is not one of"),
    ({"rel": "a", "other": 1}, r"answers to questions the survey does not ask: \['other'\]"),
])
def test_survey_refuses_what_the_controller_refuses(answers, message):
    with pytest.raises(AwxDefinitionError, match=message):
        survey_extra_vars(SURVEY, answers)


@pytest.mark.parametrize("change, message", [
    (lambda s: s.pop("description"), "'description' missing"),
    (lambda s: s.update(spec=[]), "no questions"),
    (lambda s: s["spec"].append(dict(s["spec"][0])), "variable rel duplicated"),
    (lambda s: s["spec"][0].update(type="boolean"), "type boolean not allowed"),
    (lambda s: s["spec"][1].update(default="2"), "default '2' is not a integer"),
    (lambda s: s["spec"][2].update(default="yes"), "default not among the choices"),
    (lambda s: s["spec"][2].pop("choices"), "needs choices"),
    (lambda s: s["spec"][0].update(required="yes"), "'required' missing or not a bool"),
    (lambda s: s["spec"][0].update(default="$encrypted$"), r"\$encrypted\$ is reserved"),
])
def test_survey_spec_checks_can_fail(change, message):
    spec = copy.deepcopy(SURVEY)
    change(spec)
    with pytest.raises(AwxDefinitionError, match=message):
        check_survey_spec(spec)


# --- execution environment --------------------------------------------------------------------

def pins(path):
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            found[name.lower()] = version
    return found


def test_collection_declares_its_execution_environment_dependencies():
    declaration = yaml.safe_load((REPO / "meta" / "execution-environment.yml").read_text())
    assert declaration == {"version": 1, "dependencies": {"python": "meta/ee-requirements.txt",
                                                          "system": "meta/ee-bindep.txt"}}
    for path in declaration["dependencies"].values():
        assert (REPO / path).is_file()


def test_ee_python_pins_match_the_controller_toolchain():
    toolchain = pins(REPO / "requirements.txt")
    ee = pins(REPO / "meta" / "ee-requirements.txt")
    assert ee and all(toolchain[name] == version for name, version in ee.items())
    definition = yaml.safe_load((REPO / "awx" / "execution-environment.yml").read_text())
    deps = definition["dependencies"]
    assert deps["ansible_core"]["package_pip"] == "ansible-core==" + toolchain["ansible-core"]
    assert deps["ansible_runner"]["package_pip"] == "ansible-runner==" + toolchain["ansible-runner"]


def test_ee_collections_are_the_bundled_releases_and_satisfy_galaxy_yml():
    definition = yaml.safe_load((REPO / "awx" / "execution-environment.yml").read_text())
    wanted = {c["name"]: c["version"] for c in definition["dependencies"]["galaxy"]["collections"]}
    bundled_root = Path(yaml.__file__).resolve().parents[1] / "ansible_collections"
    ranges = yaml.safe_load((REPO / "galaxy.yml").read_text())["dependencies"]
    assert sorted(wanted) == sorted(ranges)
    for name, version in wanted.items():
        manifest = json.loads((bundled_root.joinpath(*name.split(".")) / "MANIFEST.json").read_text())
        assert manifest["collection_info"]["version"] == version
        assert version in SpecifierSet(ranges[name])
