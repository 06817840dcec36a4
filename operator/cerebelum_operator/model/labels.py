"""An execution's labels: Kubernetes label syntax, so an Execution object's labels are always valid.

Labels are what a list filters executions by (`cerebelum list --label team=payments`, the web UI),
and in Kubernetes they come from the Execution object's ``metadata.labels``. Refusing anything the
API server would accept would strand such an Execution, and accepting more would make labels set
through the API impossible to mirror on an object, so the rules are the API server's own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from .errors import InputInvalid

__all__ = ["MAX_LABELS", "MAX_LABEL_NAME", "MAX_LABEL_PREFIX", "MAX_LABEL_VALUE", "LabelsInvalid", "check_labels"]

MAX_LABELS: Final = 32  # a filter, not a store of data: a handful per execution
MAX_LABEL_PREFIX: Final = 253  # a DNS subdomain
MAX_LABEL_NAME: Final = 63
MAX_LABEL_VALUE: Final = 63

_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


class LabelsInvalid(InputInvalid):
    """A label's key or value is not Kubernetes label syntax, or there are too many labels.

    An `InputInvalid`: refused like a bad input wherever a start is refused (INVALID_ARGUMENT
    over the API, the Execution's status in Kubernetes).
    """


def check_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """The labels as a plain dict, or `LabelsInvalid` naming the first bad one and why."""
    if len(labels) > MAX_LABELS:
        raise LabelsInvalid(f"an execution has at most {MAX_LABELS} labels, not {len(labels)}")
    for key, value in labels.items():
        problem = _key_problem(key) or _value_problem(value)
        if problem is not None:
            raise LabelsInvalid(f"label {_shown(key)}={_shown(value)}: {problem}")
    return dict(labels)


def _key_problem(key: object) -> str | None:
    if not isinstance(key, str):
        return "a label key is a string"
    prefix, slash, name = key.rpartition("/")
    if slash:
        if not prefix:
            return "the key's prefix before '/' is empty"
        if len(prefix) > MAX_LABEL_PREFIX:
            return f"the key's prefix is longer than {MAX_LABEL_PREFIX} characters"
        if not all(_DNS_LABEL.fullmatch(part) for part in prefix.split(".")):
            return "the key's prefix is not a DNS subdomain (lowercase letters, digits, '-' and '.')"
    if not name:
        return "the key's name is empty"
    if len(name) > MAX_LABEL_NAME:
        return f"the key's name is longer than {MAX_LABEL_NAME} characters"
    if not _NAME.fullmatch(name):
        return "the key's name is not letters, digits, '-', '_' and '.', beginning and ending with a letter or digit"
    return None


def _value_problem(value: object) -> str | None:
    if not isinstance(value, str):
        return "a label value is a string"
    if len(value) > MAX_LABEL_VALUE:
        return f"the value is longer than {MAX_LABEL_VALUE} characters"
    if value and not _NAME.fullmatch(value):
        return "the value is not letters, digits, '-', '_' and '.', beginning and ending with a letter or digit"
    return None


def _shown(text: object) -> str:
    """What the message repeats of a bad key or value: enough to find it, never kilobytes of it."""
    shown = repr(text)
    return shown if len(shown) <= 80 else shown[:60] + "…" + shown[-10:]
