"""Run a playbook the way AWX / Automation Controller runs a job template.

The controller hands a job to ansible-runner as a private data directory:

    env/envvars      environment, including what credential injectors rendered
    env/extravars    extra vars: the job template's, then the survey answers
    env/settings     runner settings (timeouts)
    env/cmdline      extra ansible-playbook arguments (machine credential's user, --check, --diff)
    env/ssh_key      the machine credential's key (runner feeds it to ssh-agent)
    project/         the project checkout
    inventory/       the job's inventory

There is no env/passwords file: nothing may prompt. This module lays that directory out from the
files under awx/ (credential type, job template with its survey) and runs it with
``ansible_runner.run(private_data_dir=...)``. Injector templates are rendered as the controller
renders them: a Jinja2 ImmutableSandboxedEnvironment whose namespace holds the credential inputs
that have a value.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import stat
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import ansible_runner
import yaml
from jinja2.sandbox import ImmutableSandboxedEnvironment

REPO = Path(__file__).resolve().parents[2]
AWX_DIR = REPO / "awx"
HIDDEN = "**********"

# Variables the controller sets for every job itself, which a credential type may not inject; together with
# the ANSIBLE_* prefix it refuses. A subset: the names a credential for this collection could plausibly collide with.
ENV_BLOCKLIST = frozenset({
    "VIRTUAL_ENV", "PATH", "PYTHONPATH", "JOB_ID", "INVENTORY_ID", "INVENTORY_SOURCE_ID",
    "INVENTORY_UPDATE_ID", "AD_HOC_COMMAND_ID", "REST_API_URL", "REST_API_TOKEN", "MAX_EVENT_RES",
    "CALLBACK_QUEUE", "CALLBACK_CONNECTION", "CACHE", "JOB_CALLBACK_DEBUG", "INVENTORY_HOSTVARS",
    "AWX_HOST", "PROJECT_REVISION", "SUPERVISOR_CONFIG_PATH",
})
SURVEY_TYPES = {"text": str, "textarea": str, "password": str, "multiplechoice": str,
                "multiselect": str, "integer": int, "float": float}
# Project content a job needs; the rest of the checkout (tests, caches) is left out of the copy.
_PROJECT_IGNORE = shutil.ignore_patterns(".git", ".venv", "build", "tests", "__pycache__", "*.pyc",
                                         ".pytest_cache", "bench", "docs")


class AwxDefinitionError(ValueError):
    """A credential type, survey or answer the controller would refuse."""


def load_yaml(path):
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def credential_type(name="nim-credentials"):
    return load_yaml(AWX_DIR / "credential_types" / f"{name}.yml")


def job_template(name):
    return load_yaml(AWX_DIR / "job_templates" / f"{name}.yml")


# --- credential injection -------------------------------------------------------------------

def check_credential_type(ctype):
    """The checks the controller applies when a credential type is saved."""
    fields = ctype.get("inputs", {}).get("fields", [])
    ids = [f.get("id") for f in fields]
    if len(ids) != len(set(ids)):
        raise AwxDefinitionError("duplicate input field ids: %s" % ids)
    for fld in fields:
        if fld.get("type", "string") not in ("string", "boolean"):
            raise AwxDefinitionError("field %s: type must be string or boolean" % fld.get("id"))
        if not fld.get("label"):
            raise AwxDefinitionError("field %s has no label" % fld.get("id"))
    for req in ctype.get("inputs", {}).get("required", []):
        if req not in ids:
            raise AwxDefinitionError("required field %s is not an input field" % req)
    env = ctype.get("injectors", {}).get("env", {})
    for name in env:
        if name.startswith("ANSIBLE_") or name in ENV_BLOCKLIST:
            raise AwxDefinitionError("injector env var %s is not allowed by the controller" % name)
    if ctype.get("kind") not in ("cloud", "net"):
        raise AwxDefinitionError("custom credential types must be of kind cloud or net")


def render_injectors(ctype, inputs, private_data_dir):
    """Return (env, safe_env, extra_vars) as the controller injects them for one credential.

    ``safe_env`` is what the controller stores with the job (secret inputs masked).
    """
    check_credential_type(ctype)
    fields = {f["id"]: f for f in ctype.get("inputs", {}).get("fields", [])}
    unknown = set(inputs) - set(fields)
    if unknown:
        raise AwxDefinitionError("inputs not declared by the credential type: %s" % sorted(unknown))
    for req in ctype.get("inputs", {}).get("required", []):
        if inputs.get(req) in (None, ""):
            raise AwxDefinitionError("required input %s has no value" % req)
    namespace, safe_namespace = {}, {}
    for key, value in inputs.items():
        if isinstance(value, bool):
            namespace[key] = safe_namespace[key] = value
            continue
        if value:  # inputs without a value stay out of the namespace (render as "")
            namespace[key] = value
            safe_namespace[key] = HIDDEN if fields[key].get("secret") else value
    for key, fld in fields.items():
        if fld.get("type") == "boolean" and key not in inputs:
            namespace[key] = safe_namespace[key] = False

    sandbox = ImmutableSandboxedEnvironment()
    injectors = ctype.get("injectors", {})
    tower = type("TowerNamespace", (), {})()
    for label, template in injectors.get("file", {}).items():
        handle, path = tempfile.mkstemp(dir=Path(private_data_dir) / "env")
        with os.fdopen(handle, "w") as out:
            out.write(sandbox.from_string(template).render(**namespace))
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
        if "." in label:
            raise AwxDefinitionError("multi-file injectors are not used here")
        tower.filename = path
    namespace["tower"] = safe_namespace["tower"] = tower
    env = {k: sandbox.from_string(t).render(**namespace) for k, t in injectors.get("env", {}).items()}
    safe_env = {k: sandbox.from_string(t).render(**safe_namespace)
                for k, t in injectors.get("env", {}).items()}
    extra_vars = {k: sandbox.from_string(t).render(**namespace)
                  for k, t in injectors.get("extra_vars", {}).items()}
    return env, safe_env, extra_vars


def kubernetes_credential_env(private_data_dir, host, bearer_token, verify_ssl=False, ssl_ca_cert=None):
    """The controller's built-in "OpenShift or Kubernetes API Bearer Token" credential."""
    env = {"K8S_AUTH_HOST": host, "K8S_AUTH_API_KEY": bearer_token}
    if verify_ssl and ssl_ca_cert:
        handle, path = tempfile.mkstemp(dir=private_data_dir)
        with os.fdopen(handle, "w") as out:
            os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
            out.write(ssl_ca_cert)
        env["K8S_AUTH_VERIFY_SSL"] = "True"
        env["K8S_AUTH_SSL_CA_CERT"] = path
    else:
        env["K8S_AUTH_VERIFY_SSL"] = "False"
    return env


# --- surveys ----------------------------------------------------------------------------------

def check_survey_spec(spec):
    """The checks the controller's survey_spec endpoint applies before saving a survey."""
    for key, kind in (("name", str), ("description", str), ("spec", list)):
        if not isinstance(spec.get(key), kind):
            raise AwxDefinitionError("survey field %r missing or not a %s" % (key, kind.__name__))
    if not spec["spec"]:
        raise AwxDefinitionError("survey has no questions")
    seen = set()
    for idx, question in enumerate(spec["spec"]):
        for key, kind in (("type", str), ("question_name", str), ("variable", str), ("required", bool)):
            if not isinstance(question.get(key), kind):
                raise AwxDefinitionError("question %d: %r missing or not a %s" % (idx, key, kind.__name__))
        if question["variable"] in seen:
            raise AwxDefinitionError("question %d: variable %s duplicated" % (idx, question["variable"]))
        seen.add(question["variable"])
        qtype = question["type"]
        if qtype not in SURVEY_TYPES:
            raise AwxDefinitionError("question %d: type %s not allowed" % (idx, qtype))
        default = question.get("default", "")
        if default != "" and not isinstance(default, SURVEY_TYPES[qtype]):
            raise AwxDefinitionError("question %d: default %r is not a %s" % (idx, default, qtype))
        for key in ("min", "max"):
            if question.get(key) is not None and not isinstance(question[key], int):
                raise AwxDefinitionError("question %d: %s must be an integer" % (idx, key))
        if qtype in ("multiplechoice", "multiselect"):
            choices = question.get("choices")
            if not choices:
                raise AwxDefinitionError("question %d: %s needs choices" % (idx, qtype))
            choices = choices.splitlines() if isinstance(choices, str) else choices
            defaults = [d for d in str(default).splitlines() if d.strip()]
            if qtype == "multiplechoice" and len(defaults) > 1:
                raise AwxDefinitionError("question %d: one default only" % idx)
            if any(d not in choices for d in defaults):
                raise AwxDefinitionError("question %d: default not among the choices" % idx)
        if isinstance(default, str) and default.startswith("$encrypted$"):
            raise AwxDefinitionError("question %d: $encrypted$ is reserved" % idx)


def survey_extra_vars(spec, answers):
    """Extra vars a launch with these answers produces, refusing what the controller refuses."""
    check_survey_spec(spec)
    questions = {q["variable"]: q for q in spec["spec"]}
    unknown = set(answers) - set(questions)
    if unknown:
        raise AwxDefinitionError("answers to questions the survey does not ask: %s" % sorted(unknown))
    result = {}
    for var, question in questions.items():
        if var in answers:
            value = answers[var]
        elif question.get("default", "") != "":
            value = question["default"]
            if question["type"] == "multiselect":
                value = [v for v in str(value).splitlines() if v.strip()]
        elif question["required"]:
            raise AwxDefinitionError("survey question %s is required" % var)
        else:
            continue
        _check_answer(question, value)
        result[var] = value
    return result


def _check_answer(question, value):
    qtype, var = question["type"], question["variable"]
    if qtype in ("text", "textarea", "password"):
        if not isinstance(value, str):
            raise AwxDefinitionError("%s: expected text" % var)
        if question.get("min") is not None and len(value) < question["min"]:
            raise AwxDefinitionError("%s: shorter than %d characters" % (var, question["min"]))
        if question.get("max") is not None and len(value) > question["max"]:
            raise AwxDefinitionError("%s: longer than %d characters" % (var, question["max"]))
    elif qtype in ("integer", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float) if qtype == "float" else int):
            raise AwxDefinitionError("%s: expected %s" % (var, qtype))
        if question.get("min") is not None and value < question["min"]:
            raise AwxDefinitionError("%s: below minimum %s" % (var, question["min"]))
        if question.get("max") is not None and value > question["max"]:
            raise AwxDefinitionError("%s: above maximum %s" % (var, question["max"]))
    else:
        choices = question["choices"]
        choices = choices.splitlines() if isinstance(choices, str) else choices
        picked = value if qtype == "multiselect" else [value]
        if not isinstance(picked, list) or any(v not in choices for v in picked):
            raise AwxDefinitionError("%s: %r is not one of %s" % (var, value, choices))


# --- the job ----------------------------------------------------------------------------------

@dataclass
class JobResult:
    status: str
    rc: int
    stdout: str
    events: list
    private_data_dir: Path
    artifact_dir: Path
    safe_env: dict

    def stats(self):
        for event in self.events:
            if event.get("event") == "playbook_on_stats":
                return event["event_data"]
        return {}

    def changed_tasks(self):
        """Names of the tasks that reported a change (loop items count once per item)."""
        return [e["event_data"]["task"] for e in self.events
                if e.get("event") in ("runner_on_ok", "runner_item_on_ok")
                and (e["event_data"].get("res") or {}).get("changed")
                and not (e["event"] == "runner_on_ok" and (e["event_data"].get("res") or {}).get("results"))]

    def outputs(self):
        """Every text the job produced: stdout, every event, every artifact file."""
        texts = {"stdout": self.stdout, "events": json.dumps(self.events)}
        for path in sorted(self.artifact_dir.rglob("*")):
            if path.is_file() and not path.is_fifo():
                rel = str(path.relative_to(self.private_data_dir))
                text = path.read_text(errors="replace")
                if path.name == "command" and path.parent == self.artifact_dir:
                    # ansible-runner records the process's argv, cwd and environment here. The
                    # environment is the job's input (env/envvars) echoed back; argv and cwd are
                    # what the process was started with and must be clean.
                    recorded = json.loads(text)
                    text = json.dumps({"command": recorded["command"], "cwd": recorded["cwd"]})
                texts[rel] = text
        return texts

    def process(self):
        """The argv, cwd and environment ansible-runner started ansible-playbook with."""
        return json.loads((self.artifact_dir / "command").read_text())

    def leaks(self, *secrets):
        """Names of the outputs where any of the given values appears."""
        return sorted(name for name, text in self.outputs().items()
                      if any(s and s in text for s in secrets))


@dataclass
class AwxJob:
    """One job launch: a job template, its credentials, a survey answer, an inventory."""

    private_data_dir: Path
    template: dict
    inventory: dict
    credentials: list = field(default_factory=list)   # [(credential type dict, inputs dict)]
    kubernetes: dict | None = None                     # inputs of the built-in Kubernetes credential
    machine: dict | None = None                        # {"username": ..., "ssh_key_data": ...}
    answers: dict = field(default_factory=dict)
    extra_project_files: dict = field(default_factory=dict)  # {relative path: source path}
    tools: dict = field(default_factory=dict)                # {name on PATH: binary}
    verbosity: int = 0
    job_type: str | None = None                        # "run" or "check", when asked at launch
    diff_mode: bool | None = None                      # when asked at launch
    timeout: int = 900
    safe_env: dict = field(default_factory=dict)

    def prepare(self):
        # ansible-runner starts the job with the caller's environment underneath env/envvars; anything
        # that could stand in for a credential must not be there.
        inherited = sorted(n for n in os.environ if n in ("NGC_API_KEY", "HF_TOKEN", "KUBECONFIG")
                           or n.startswith("K8S_AUTH_"))
        if inherited:
            raise AwxDefinitionError(
                "%s set in the test process; unset so the job's values can only come from the "
                "credential injectors" % ", ".join(inherited))
        pdd = Path(self.private_data_dir)
        (pdd / "env").mkdir(parents=True, exist_ok=True)
        (pdd / "inventory").mkdir(exist_ok=True)
        # Binaries the execution environment image carries (helm), on PATH as in the image.
        (pdd / "bin").mkdir(exist_ok=True)
        for name, src in self.tools.items():
            (pdd / "bin" / name).symlink_to(src)
        project = pdd / "project"
        shutil.copytree(REPO, project, ignore=_PROJECT_IGNORE, symlinks=True)
        for rel, src in self.extra_project_files.items():
            (project / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, project / rel)
        # The project's collection, where the controller installs project collections.
        coll = pdd / "requirements_collections" / "ansible_collections" / "nimops"
        coll.mkdir(parents=True)
        (coll / "multinode").symlink_to(project, target_is_directory=True)

        env = {
            # The execution environment's own tools (ansible-playbook) come first, as in an EE image.
            "PATH": os.pathsep.join([str(pdd / "bin"), str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
            # As in an execution environment, HOME is the private data dir: no ~/.kube/config, no
            # helm repositories or caches from the machine running the test.
            "HOME": str(pdd),
            "JOB_ID": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
            "ANSIBLE_COLLECTIONS_PATH": str(pdd / "requirements_collections"),
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(pdd / "cp"),
        }
        self.safe_env = dict(env)
        extra_vars = dict(self.template.get("extra_vars") or {})
        for ctype, inputs in self.credentials:
            cenv, csafe, cextra = render_injectors(ctype, inputs, pdd)
            env.update(cenv)
            self.safe_env.update(csafe)
            extra_vars.update(cextra)
        if self.kubernetes is not None:
            kenv = kubernetes_credential_env(pdd, **self.kubernetes)
            env.update(kenv)
            self.safe_env.update({k: (HIDDEN if k == "K8S_AUTH_API_KEY" else v) for k, v in kenv.items()})
        if self.template.get("survey_enabled"):
            extra_vars.update(survey_extra_vars(self.template["survey_spec"], self.answers))
        elif self.answers:
            raise AwxDefinitionError("answers given but the job template has no survey enabled")

        _write(pdd / "env" / "envvars", yaml.safe_dump(env), 0o600)
        _write(pdd / "env" / "extravars", yaml.safe_dump(extra_vars), 0o600)
        _write(pdd / "env" / "settings", yaml.safe_dump({
            "job_timeout": self.timeout, "idle_timeout": self.timeout, "pexpect_timeout": 5}), 0o600)
        args = []
        if self.machine:
            args += ["-u", self.machine["username"]]
            _write(pdd / "env" / "ssh_key", self.machine["ssh_key_data"], 0o600)
        # Launch-time choices the template allows: a "check" job runs with --check, diff mode adds --diff.
        job_type = self.job_type or self.template.get("job_type", "run")
        if self.job_type and not self.template.get("ask_job_type_on_launch"):
            raise AwxDefinitionError("the job template does not ask for the job type at launch")
        if job_type == "check":
            args.append("--check")
        if self.diff_mode if self.diff_mode is not None else self.template.get("diff_mode"):
            if self.diff_mode is not None and not self.template.get("ask_diff_mode_on_launch"):
                raise AwxDefinitionError("the job template does not ask for diff mode at launch")
            args.append("--diff")
        if args:
            _write(pdd / "env" / "cmdline", " ".join(args), 0o600)
        _write(pdd / "inventory" / "hosts.yml", yaml.safe_dump(self.inventory), 0o644)
        if (pdd / "env" / "passwords").exists():
            raise AwxDefinitionError("env/passwords must not exist: jobs run without prompts")
        return pdd

    def run(self):
        pdd = self.prepare()
        playbook = self.template["playbook"]
        if not (pdd / "project" / playbook).is_file():
            raise AwxDefinitionError("job template playbook %s is not in the project" % playbook)
        runner = ansible_runner.run(
            private_data_dir=str(pdd), playbook=playbook, ident="job",
            verbosity=self.verbosity or self.template.get("verbosity", 0), quiet=True)
        return JobResult(status=runner.status, rc=runner.rc, stdout=runner.stdout.read(),
                         events=list(runner.events), private_data_dir=pdd,
                         artifact_dir=Path(runner.config.artifact_dir), safe_env=copy.deepcopy(self.safe_env))


def _write(path, text, mode):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as out:
        out.write(text)
