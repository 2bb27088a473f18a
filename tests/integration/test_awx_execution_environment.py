"""The execution environment definition: ansible-builder writes its build context (no image build)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
EE = REPO / "awx" / "execution-environment.yml"
BUNDLED = Path(yaml.__file__).resolve().parents[1] / "ansible_collections"


def versions_env():
    text = (REPO / "tests" / "simcluster" / "versions.env").read_text()
    return dict(re.findall(r"^([A-Z_]+)=(\S+)", text, re.M))


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    ctx = tmp_path_factory.mktemp("ee") / "context"
    proc = subprocess.run([str(REPO / "awx" / "ee-context.sh"), str(ctx)], capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == str(ctx)
    return ctx


def test_containerfile_has_the_expected_steps_in_order(context):
    lines = [line for line in (context / "Containerfile").read_text().splitlines() if line.strip()]
    expected = [
        'ARG EE_BASE_IMAGE="quay.io/centos/centos:stream9"',
        'ARG PYCMD="/usr/bin/python3.11"',
        'ARG ANSIBLE_INSTALL_REFS="ansible-core==2.19.14 ansible-runner==2.4.3"',
        "FROM $EE_BASE_IMAGE AS base",
        "RUN $PKGMGR install $PYPKG -y ; if [ -z $PKGMGR_PRESERVE_CACHE ]; then $PKGMGR clean all; fi",
        "RUN $PYCMD -m pip install --no-cache-dir $ANSIBLE_INSTALL_REFS",
        "FROM base AS galaxy",
        'RUN ANSIBLE_GALAXY_DISABLE_GPG_VERIFY=1 ansible-galaxy collection install $ANSIBLE_GALAXY_CLI_COLLECTION_OPTS'
        ' -r requirements.yml --collections-path "/usr/share/ansible/collections"',
        "FROM base AS builder",
        "RUN $PYCMD /output/scripts/introspect.py introspect --user-pip=requirements.txt --user-bindep=bindep.txt"
        " --write-bindep=/tmp/src/bindep.txt --write-pip=/tmp/src/requirements.txt",
        "RUN /output/scripts/assemble",
        "FROM base AS final",
        "RUN /output/scripts/install-from-bindep && rm -rf /output/wheels",
        "COPY _build/bin/helm /usr/local/bin/helm",
        "RUN chmod 0755 /usr/local/bin/helm && /usr/local/bin/helm version --short",
        "COPY _build/collections/ /tmp/nimops-collection/",
        "RUN ansible-galaxy collection install --offline --no-deps --collections-path /usr/share/ansible/collections"
        " /tmp/nimops-collection/nimops-multinode-*.tar.gz && rm -rf /tmp/nimops-collection",
        "LABEL ansible-execution-environment=true",
    ]
    positions = []
    for step in expected:
        assert step in lines, "missing from Containerfile: %s" % step
        positions.append(lines.index(step))
    assert positions == sorted(positions), "steps out of order"


def test_context_carries_pinned_dependencies(context):
    build = context / "_build"
    assert (build / "requirements.txt").read_text() == (REPO / "meta" / "ee-requirements.txt").read_text()
    assert (build / "bindep.txt").read_text() == (REPO / "meta" / "ee-bindep.txt").read_text()
    galaxy = yaml.safe_load((build / "requirements.yml").read_text())
    assert galaxy == {"collections": [{"name": "kubernetes.core", "version": "6.2.0"},
                                      {"name": "community.docker", "version": "4.8.5"}]}


def test_context_carries_the_pinned_helm_binary(context):
    helm = context / "_build" / "bin" / "helm"
    out = subprocess.run([str(helm), "version", "--short"], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.startswith(versions_env()["HELM_VERSION"] + "+") or \
        out.stdout.strip() == versions_env()["HELM_VERSION"]


def test_context_carries_the_collection_artifact(context):
    galaxy = yaml.safe_load((REPO / "galaxy.yml").read_text())
    artifact = context / "_build" / "collections" / ("nimops-multinode-%s.tar.gz" % galaxy["version"])
    with tarfile.open(artifact) as tar:
        manifest = json.load(tar.extractfile("MANIFEST.json"))
        names = set(tar.getnames())
    assert manifest["collection_info"]["namespace"] == "nimops"
    assert manifest["collection_info"]["name"] == "multinode"
    assert "meta/runtime.yml" in names and "playbooks/deploy-nim.yml" in names


def _introspect(context, folder):
    return subprocess.run(
        [sys.executable, str(context / "_build" / "scripts" / "introspect.py"), "introspect", str(folder),
         "--user-pip=%s" % (context / "_build" / "requirements.txt"),
         "--user-bindep=%s" % (context / "_build" / "bindep.txt")],
        capture_output=True, text=True, timeout=120, check=False)


def test_builder_stage_introspection_resolves_dependencies(context, tmp_path):
    # The builder stage runs introspect.py over what the galaxy stage installed: the two pinned
    # collections (the same releases the controller toolchain bundles).
    root = tmp_path / "ansible_collections"
    for ns, name, version in (("kubernetes", "core", "6.2.0"), ("community", "docker", "4.8.5")):
        src = BUNDLED / ns / name
        assert json.loads((src / "MANIFEST.json").read_text())["collection_info"]["version"] == version
        (root / ns).mkdir(parents=True, exist_ok=True)
        (root / ns / name).symlink_to(src, target_is_directory=True)
    proc = _introspect(context, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = yaml.safe_load(proc.stdout)
    for pin in ("kubernetes==37.0.2", "PyYAML==6.0.4", "docker==7.2.0", "requests==2.34.2"):
        assert "%s  # from collection user" % pin in data["python"]
    assert "openssh-clients [platform:rpm]  # from collection user" in data["system"]


def test_collection_declares_its_dependencies_to_another_environments_introspection(context, tmp_path):
    # Anyone building an execution environment that installs nimops.multinode from Galaxy runs the same
    # introspection over it: it reads meta/execution-environment.yml and takes the collection's requirements.
    galaxy = yaml.safe_load((REPO / "galaxy.yml").read_text())
    artifact = context / "_build" / "collections" / ("nimops-multinode-%s.tar.gz" % galaxy["version"])
    subprocess.run([str(Path(sys.executable).parent / "ansible-galaxy"), "collection", "install", "--offline",
                    "--no-deps", "-p", str(tmp_path), str(artifact)],
                   capture_output=True, text=True, timeout=120, check=True)
    proc = _introspect(context, tmp_path)
    assert proc.returncode == 0, proc.stderr[-1500:]
    data = yaml.safe_load(proc.stdout)
    ours = sorted(line.split("  #")[0] for line in data["python"] + data["system"] if "nimops.multinode" in line)
    declared = [line.strip() for name in ("ee-requirements.txt", "ee-bindep.txt")
                for line in (REPO / "meta" / name).read_text().splitlines() if line.strip() and not line.startswith("#")]
    # ansible-builder leaves out what ansible-core itself brings (PyYAML); the rest is the collection's declaration
    assert ours == sorted(line for line in declared if not line.startswith("PyYAML=="))
    # Nothing of the controller toolchain (test and lint tools) is passed off as run-time requirements.
    assert not [line for line in ours if re.match(r"(pytest|molecule|ansible-lint|ansible-builder)\b", line)]
