#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: nim_secret
short_description: NGC API key, HF token and nvcr.io image pull secrets, idempotent without revealing values
version_added: 0.1.0
description:
  - Creates, updates or removes one credential Secret for NIM - C(NGC_API_KEY) (Opaque), C(HF_TOKEN) (Opaque),
    or a C(kubernetes.io/dockerconfigjson) pull secret for nvcr.io with user C($oauthtoken).
  - Checks the value's shape first (empty, whitespace, wrong prefix) and refuses with a clear message.
  - Compares the stored value with the desired one without returning either; the diff shows keys, type and labels
    with values replaced by C(<hidden>).
author:
  - nimops maintainers (@nimops)
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
attributes:
  check_mode:
    support: full
    description: Reports what would change and changes nothing.
  diff_mode:
    support: full
    description: Keys, type and labels; never values.
options:
  name:
    description: Secret name.
    type: str
    required: true
  namespace:
    description: Namespace of the Secret.
    type: str
    required: true
  kind:
    description:
      - C(ngc_api_key) stores key C(NGC_API_KEY); C(hf_token) stores C(HF_TOKEN);
        C(image_pull) stores a dockerconfigjson for O(registry) with user O(username) and the value as password.
    type: str
    choices: [ngc_api_key, hf_token, image_pull]
    required: true
  value:
    description:
      - The credential. Never logged or returned. Take it from a vault variable or the environment
        (AWX credential types inject it as an environment variable).
      - Required when O(state=present).
    type: str
  check_prefix:
    description: Refuse values without the expected prefix (C(nvapi-) for NGC keys, C(hf_) for HF tokens).
    type: bool
    default: true
  registry:
    description: Registry host of an image pull secret.
    type: str
    default: nvcr.io
  username:
    description: Registry user of an image pull secret (NGC uses the literal C($oauthtoken)).
    type: str
    default: $oauthtoken
  labels:
    description: Extra labels; C(app.kubernetes.io/managed-by=nimops.multinode) is always set.
    type: dict
    default: {}
  release:
    description:
      - The release that uses the Secret. With O(state=present) it is added to the Secret's
        C(nimops.multinode/releases) annotation; with O(state=absent) it is removed from it, and the Secret is
        deleted only when no other release uses it and this collection created it (label
        C(app.kubernetes.io/managed-by=nimops.multinode)). Secrets shared by several releases, or created by
        someone else, are kept.
      - Without it, O(state=absent) deletes the Secret whatever uses it.
    type: str
  state:
    description: C(absent) deletes the Secret (see O(release)).
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: NGC API key from the environment (AWX injects NGC_API_KEY)
  nimops.multinode.nim_secret:
    name: ngc-api
    namespace: nim
    kind: ngc_api_key
    value: "{{ lookup('ansible.builtin.env', 'NGC_API_KEY') }}"

- name: Pull secret for nvcr.io from a vaulted variable
  nimops.multinode.nim_secret:
    name: nvcr-imagepull
    namespace: nim
    kind: image_pull
    value: "{{ vault_ngc_api_key }}"
"""

RETURN = r"""
secret:
  description: Name, namespace, type and key names of the Secret (never values).
  returned: always
  type: dict
  sample: {name: ngc-api, namespace: nim, type: Opaque, keys: [NGC_API_KEY]}
kept:
  description: Why an O(state=absent) Secret was kept (still used by other releases, or not created here).
  returned: when state is absent
  type: str
changes:
  description: What changed or would change, without values.
  returned: always
  type: list
  elements: str
  sample: ["change value of NGC_API_KEY"]
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.nimops.multinode.plugins.module_utils import _k8s, _secrets
from ansible_collections.nimops.multinode.plugins.module_utils._errors import NimOpsError


def run(module):
    p = module.params
    client = _k8s.connect(p)
    existing = _k8s.get(client, "v1", "Secret", p["name"], p["namespace"])
    summary = {"name": p["name"], "namespace": p["namespace"], "type": _secrets.KINDS[p["kind"]][0]}
    if p["state"] == "absent":
        delete, others, kept = _secrets.plan_removal(existing, p["release"])
        before = {"data": dict((k, _secrets.HIDDEN) for k in _secrets.key_names(existing)),
                  "releases": _secrets.releases_of(existing)} if existing else {}
        if delete:
            changes, after = ["delete"], {}
        elif p["release"] in before.get("releases", []):
            changes, after = ["kept (%s); no longer used by %s" % (kept, p["release"])], dict(before, releases=others)
        else:
            changes, after = [], before
        if changes and not module.check_mode:
            if delete:
                _k8s.delete_secret(client, p["name"], p["namespace"])
            else:
                _k8s.set_secret_annotation(client, p["name"], p["namespace"], _secrets.RELEASES, ",".join(others))
        return dict(changed=bool(changes), changes=changes, kept=kept if existing and not delete else "",
                    secret=dict(summary, keys=[]), diff={"before": before, "after": after})
    _secrets.check_shape(p["kind"], p["value"], p["check_prefix"], source="option value of nim_secret %s" % p["name"])
    data = _secrets.desired_data(p["kind"], p["value"], p["registry"], p["username"])
    releases = [p["release"]] if p["release"] else None
    changes, before, after = _secrets.compare(p["kind"], existing, data, p["labels"], releases)
    if changes and not module.check_mode:
        body = _secrets.manifest(p["kind"], p["name"], p["namespace"], data, p["labels"], after.get("releases"))
        _k8s.apply_secret(client, body, replace_type=any(c.startswith("type ") for c in changes))
    return dict(changed=bool(changes), changes=changes, secret=dict(summary, keys=sorted(data)),
                diff={"before": before, "after": after})


def main():
    argument_spec = _k8s.auth_argspec()
    argument_spec.update(
        name=dict(type="str", required=True),
        namespace=dict(type="str", required=True),
        kind=dict(type="str", required=True, choices=["ngc_api_key", "hf_token", "image_pull"]),
        value=dict(type="str", no_log=True),
        check_prefix=dict(type="bool", default=True),
        registry=dict(type="str", default="nvcr.io"),
        username=dict(type="str", default="$oauthtoken"),
        labels=dict(type="dict", default={}),
        release=dict(type="str"),
        state=dict(type="str", default="present", choices=["present", "absent"]),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    if not _k8s.HAS_K8S:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=str(_k8s.K8S_IMPORT_ERROR))
    try:
        module.exit_json(**run(module))
    except NimOpsError as exc:
        module.fail_json(**exc.to_result())


if __name__ == "__main__":
    main()
