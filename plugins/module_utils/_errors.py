# -*- coding: utf-8 -*-
# Copyright: nimops.multinode contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE: this module_utils file is internal to nimops.multinode and may change without notice.
"""Typed errors shared by the collection's pure logic, and the one place they become fail_json.

Every refusal carries a short rule id (stable, for callers and tests to match on) and says
what is wrong, why it matters, and how to fix it. Messages never contain secret values.
"""

from __future__ import annotations

import re

# Shapes of credentials that must never be echoed: NGC API keys (nvapi-...), Hugging Face tokens (hf_...).
CREDENTIAL_RE = re.compile(r"^(nvapi-|hf_)[A-Za-z0-9_-]{4,}")
CREDENTIAL_ENV_NAMES = ("NGC_API_KEY", "NGC_CLI_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
REDACTED = "<redacted>"


class NimOpsError(Exception):
    """A refusal: what is wrong, why it matters, how to fix it."""

    def __init__(self, rule, what, why, fix, **details):
        self.rule = rule
        self.what = what
        self.why = why
        self.fix = fix
        self.details = details
        super().__init__(self.message)

    @property
    def message(self):
        return "[{0}] {1}. Why: {2}. Fix: {3}.".format(
            self.rule, self.what.rstrip("."), self.why.rstrip("."), self.fix.rstrip(".")
        )

    def to_result(self):
        """Keyword arguments for fail_json: the message plus its parts, so callers can match on `rule`."""
        result = {"msg": self.message, "rule": self.rule, "what": self.what, "why": self.why, "fix": self.fix}
        if self.details:
            result["details"] = self.details
        return result


class InputError(NimOpsError):
    """Options that are missing, malformed or contradict each other."""


class ValuesRuleError(NimOpsError):
    """Helm values that break a multi-node rule of the nim-llm chart."""


class PlanError(NimOpsError):
    """A topology that cannot fit or cannot work."""


def redact_credentials(value):
    """Copy of value with credential-shaped strings (and values of credential env entries) replaced."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if isinstance(item, str) and (key in CREDENTIAL_ENV_NAMES
                                          or (key == "value" and value.get("name") in CREDENTIAL_ENV_NAMES)):
                out[key] = REDACTED
            else:
                out[key] = redact_credentials(item)
        return out
    if isinstance(value, (list, tuple)):
        return [redact_credentials(item) for item in value]
    if isinstance(value, str) and CREDENTIAL_RE.match(value):
        return REDACTED
    return value


def pure_result(params, compute):
    """Result of ``compute(params)`` for work that changes nothing; a typed refusal becomes ``failed``.

    The echoed arguments (shown at -vvv) are redacted: a key pasted where a Secret name belongs, or one
    in deployed values given for comparison, must not reach the output.
    """
    invocation = {"module_args": redact_credentials(params)}
    try:
        result = compute(params)
    except NimOpsError as exc:
        return dict(failed=True, changed=False, invocation=invocation, **exc.to_result())
    return dict(changed=False, invocation=invocation, **result)


def run_pure(module, compute):
    """Exit a module that changes nothing with ``pure_result``: the one place its refusals become fail_json."""
    result = pure_result(module.params, compute)
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)
