# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE: this module_utils file is internal to nimops.multinode and may change without notice.
"""Credential secrets for NIM: shape checks, the desired Secret, and a comparison that never reveals values.

Values are only ever compared (constant time) and encoded into the Secret body sent to the API; nothing
returned from here (messages, diffs, summaries) contains a value or anything derived from one.
"""

from __future__ import annotations

import base64
import hmac
import json

from ansible_collections.nimops.multinode.plugins.module_utils._errors import InputError

MANAGED_BY = {"app.kubernetes.io/managed-by": "nimops.multinode"}
HIDDEN = "<hidden>"
# The releases that use a Secret (comma-separated): teardown deletes it only when the last one goes.
RELEASES = "nimops.multinode/releases"

# secret kind -> (Secret type, data key, expected prefix, what it is)
KINDS = {
    "ngc_api_key": ("Opaque", "NGC_API_KEY", "nvapi-", "NGC API key"),
    "hf_token": ("Opaque", "HF_TOKEN", "hf_", "Hugging Face token"),
    "image_pull": ("kubernetes.io/dockerconfigjson", ".dockerconfigjson", "nvapi-", "NGC API key for the image pull secret"),
}


def check_shape(kind, value, check_prefix=True, source="the value"):
    """Refuse empty, padded or wrongly prefixed credentials before anything is changed."""
    _type, _key, prefix, what = KINDS[kind]
    if value is None or value == "":
        raise InputError("secret_empty", "%s is empty (%s)" % (what, source),
                         "an empty credential makes every download or pull fail later, far from the cause",
                         "set it from a vault variable or the environment (AWX credentials inject it as an env var)")
    if value.strip() != value or any(ch.isspace() for ch in value):
        raise InputError("secret_whitespace", "%s contains whitespace (%s); length %d" % (what, source, len(value)),
                         "copied keys often carry a trailing newline or space, which the registry rejects",
                         "strip the value (e.g. '| trim' in the variable, or re-copy it)")
    if check_prefix and prefix and not value.startswith(prefix):
        raise InputError("secret_prefix", "%s does not start with '%s' (%s)" % (what, prefix, source),
                         "this is not the kind of credential expected here (a token pasted into the wrong variable?)",
                         "use the right credential, or set check_prefix: false for legacy keys")


def docker_config(registry, username, password):
    auth = base64.b64encode(("%s:%s" % (username, password)).encode()).decode()
    return {"auths": {registry: {"username": username, "password": password, "auth": auth}}}


def desired_data(kind, value, registry="nvcr.io", username="$oauthtoken"):
    """The Secret's plain-text data (key -> str) for one credential."""
    _type, key, _prefix, _what = KINDS[kind]
    if kind == "image_pull":
        return {key: json.dumps(docker_config(registry, username, value), sort_keys=True, separators=(",", ":"))}
    return {key: value}


def decode_data(secret):
    """Existing Secret's data (base64) → key -> str; undecodable entries become None."""
    out = {}
    for key, encoded in ((secret or {}).get("data") or {}).items():
        try:
            out[key] = base64.b64decode(encoded or "").decode()
        except (ValueError, UnicodeDecodeError):
            out[key] = None
    return out


def _same(kind, key, current, wanted):
    if current is None:
        return False
    if kind == "image_pull":
        try:  # compare meaning, not formatting: other tools write the same config with other spacing/order
            return json.loads(current) == json.loads(wanted)
        except ValueError:
            return False
    return hmac.compare_digest(current.encode(), wanted.encode())


def releases_of(secret):
    """The releases recorded as using a Secret."""
    text = (((secret or {}).get("metadata") or {}).get("annotations") or {}).get(RELEASES) or ""
    return sorted(set(r for r in text.split(",") if r))


def managed(secret):
    return (((secret or {}).get("metadata") or {}).get("labels") or {}).get("app.kubernetes.io/managed-by") == \
        MANAGED_BY["app.kubernetes.io/managed-by"]


def plan_removal(secret, release):
    """(delete?, releases still using it, why kept) when `release` (None: any) no longer needs the Secret."""
    if secret is None:
        return False, [], "absent"
    if release is None:
        return True, [], ""
    if not managed(secret):
        return False, [], "not created by nimops.multinode"
    others = [r for r in releases_of(secret) if r != release]
    if others:
        return False, others, "still used by %s" % ", ".join(others)
    return True, [], ""


def compare(kind, existing, data, labels, releases=None):
    """What differs between the existing Secret and the desired one, as value-free facts.

    Returns (changes, before, after): changes is a list of short strings; before/after are diff views
    that show keys, type and labels with every value replaced by a marker.
    """
    secret_type = KINDS[kind][0]
    wanted_labels = dict(MANAGED_BY, **(labels or {}))
    after = {"type": secret_type, "labels": wanted_labels, "data": {k: HIDDEN for k in sorted(data)}}
    if releases:
        after["releases"] = sorted(set(releases) | set(releases_of(existing)))
    if existing is None:
        return ["create"], {}, after
    current = decode_data(existing)
    meta = existing.get("metadata") or {}
    before = {"type": existing.get("type", "Opaque"), "labels": meta.get("labels") or {},
              "data": {k: HIDDEN for k in sorted(current)}}
    changes = []
    if before["type"] != secret_type:
        changes.append("type %s -> %s (recreate)" % (before["type"], secret_type))
    for key in sorted(set(current) | set(data)):
        if key not in data:
            changes.append("remove key %s" % key)
        elif key not in current:
            changes.append("add key %s" % key)
        elif not _same(kind, key, current[key], data[key]):
            changes.append("change value of %s" % key)
            after["data"][key] = HIDDEN + " (changed)"
    for key, value in wanted_labels.items():
        if before["labels"].get(key) != value:
            changes.append("label %s" % key)
    if releases:
        before["releases"] = releases_of(existing)
        if before["releases"] != after["releases"]:
            changes.append("used by %s" % ", ".join(after["releases"]))
    return changes, before, after


def manifest(kind, name, namespace, data, labels, releases=None):
    """The Secret body for the API (stringData would be echoed back in managedFields diffs; data is base64)."""
    meta = {"name": name, "namespace": namespace, "labels": dict(MANAGED_BY, **(labels or {}))}
    if releases:
        meta["annotations"] = {RELEASES: ",".join(sorted(releases))}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": KINDS[kind][0],
        "metadata": meta,
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def key_names(secret):
    """Keys of a Secret, never its values: what diagnosis needs to know."""
    return sorted(((secret or {}).get("data") or {}).keys())
