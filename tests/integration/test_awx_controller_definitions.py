"""awx/configure-controller.yml hands the definitions under awx/ to the awx.awx modules unchanged, and the
modules' own argument specs accept them. No controller is running: each module stops at its first API call
(connection refused on 127.0.0.1), after its arguments were validated."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
AWX = REPO / "awx"
BIN = Path(sys.executable).parent
CLOSED = "https://127.0.0.1:9"  # discard port: nothing listens
TEMPLATES = sorted((AWX / "job_templates").glob("*.yml"))


def controller_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONTROLLER_", "TOWER_", "ANSIBLE_"))}
    env.update({"CONTROLLER_HOST": CLOSED, "CONTROLLER_USERNAME": "admin",
                "CONTROLLER_PASSWORD": "FAKE-not-a-password", "CONTROLLER_VERIFY_SSL": "false",
                "ANSIBLE_KEEP_REMOTE_FILES": "1", "ANSIBLE_REMOTE_TMP": str(tmp_path / "remote"),
                "ANSIBLE_LOCAL_TEMP": str(tmp_path / "local"), "PATH": "%s:%s" % (BIN, os.environ["PATH"])})
    return env


def module_args_sent(tmp_path, module):
    """Arguments of every invocation of `module`, read back from the kept AnsiballZ payloads."""
    found = []
    for payload in sorted((tmp_path / "remote").rglob("AnsiballZ_%s.py" % module)):
        literal = re.search(r"^params=('.*'),$", payload.read_text(), re.M).group(1)
        found.append(json.loads(ast.literal_eval(literal))["ANSIBLE_MODULE_ARGS"])
    return found


def run_loader(tmp_path, *extra):
    return subprocess.run([str(BIN / "ansible-playbook"), str(AWX / "configure-controller.yml"), *extra],
                          env=controller_env(tmp_path), capture_output=True, text=True, timeout=300, check=False)


def test_loader_sends_the_credential_type_verbatim(tmp_path):
    proc = run_loader(tmp_path)
    assert proc.returncode == 2 and "Connection refused" in proc.stdout, proc.stdout[-2000:]
    ctype = yaml.safe_load((AWX / "credential_types" / "nim-credentials.yml").read_text())
    [args] = module_args_sent(tmp_path, "credential_type")
    # Injector templates reach the controller unrendered: it renders them per job.
    assert args["injectors"] == ctype["injectors"] == {
        "env": {"NGC_API_KEY": "{{ ngc_api_key }}", "HF_TOKEN": "{{ hf_token }}"}}
    assert args["inputs"] == ctype["inputs"]
    assert (args["name"], args["kind"], args["description"]) == (ctype["name"], ctype["kind"], ctype["description"])


def one_template_dir(tmp_path, path):
    """A definitions folder holding only this template (the loop reuses one payload file per task)."""
    folder = tmp_path / "defs"
    shutil.copytree(AWX / "credential_types", folder / "credential_types")
    (folder / "job_templates").mkdir()
    shutil.copy(path, folder / "job_templates")
    return folder


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.stem)
def test_loader_sends_the_job_template_with_every_field(tmp_path, path):
    proc = run_loader(tmp_path, "--start-at-task", "Job templates", "-e",
                      json.dumps({"nimops_awx_dir": str(one_template_dir(tmp_path, path))}))
    assert proc.returncode == 2 and "Connection refused" in proc.stdout, proc.stdout[-2000:]
    [sent] = module_args_sent(tmp_path, "job_template")
    spec = yaml.safe_load(path.read_text())
    dropped = {k: v for k, v in spec.items() if sent.get(k) != v}
    assert dropped == {}, "fields not passed through as written: %s" % dropped


def test_loader_loops_over_every_template(tmp_path):
    proc = run_loader(tmp_path, "--start-at-task", "Job templates")
    names = sorted(yaml.safe_load(p.read_text())["name"] for p in TEMPLATES)
    failed_items = sorted(re.findall(r"failed: \[localhost\] \(item=(\S+)\)", proc.stdout))
    assert failed_items == sorted(p.name for p in TEMPLATES), proc.stdout[-2000:]
    assert len(names) == len(TEMPLATES)


def test_loader_overrides_site_names(tmp_path):
    overrides = {"organization": "AI Platform", "execution_environment": "site-ee"}
    run_loader(tmp_path, "--start-at-task", "Job templates", "-e", json.dumps({
        "nimops_awx_template_overrides": overrides,
        "nimops_awx_dir": str(one_template_dir(tmp_path, TEMPLATES[0]))}))
    [sent] = module_args_sent(tmp_path, "job_template")
    assert (sent["organization"], sent["execution_environment"]) == ("AI Platform", "site-ee")


def run_module(tmp_path, module, args):
    argfile = tmp_path / ("%s-args.json" % module)
    argfile.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": dict(
        args, controller_host=CLOSED, controller_username="admin", controller_password="FAKE-not-a-password",
        validate_certs=False)}))
    proc = subprocess.run([sys.executable, "-m", "ansible_collections.awx.awx.plugins.modules.%s" % module,
                           str(argfile)], capture_output=True, text=True, timeout=120, check=False,
                          cwd=tmp_path)
    return json.loads(proc.stdout)


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.stem)
def test_awx_job_template_module_accepts_the_file(tmp_path, path):
    result = run_module(tmp_path, "job_template", yaml.safe_load(path.read_text()))
    assert result["failed"] and "Connection refused" in result["msg"], result["msg"]


def test_awx_credential_type_module_accepts_the_file(tmp_path):
    ctype = yaml.safe_load((AWX / "credential_types" / "nim-credentials.yml").read_text())
    result = run_module(tmp_path, "credential_type", ctype)
    assert result["failed"] and "Connection refused" in result["msg"], result["msg"]


def test_argspec_control_rejects_an_unknown_field(tmp_path):
    spec = yaml.safe_load(TEMPLATES[0].read_text())
    result = run_module(tmp_path, "job_template", dict(spec, survey_questions=[]))
    assert result["failed"] and "Unsupported parameters" in result["msg"] and "survey_questions" in result["msg"]
