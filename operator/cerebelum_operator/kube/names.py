"""Kubernetes object names, checked as the API server checks them, before any reaches a URL path.

A reference such as `spec.execution: ../../team-b/executions/run1` is a path, not a name: the
HTTP client normalises the `../` away and the request lands in another namespace. Every name the
operator puts into a request path or a store key passes `object_name` (or `namespace_name`) first,
and the CRD schemas carry the same pattern (`NAME_PATTERN`), so the API server refuses it at create.
"""

from __future__ import annotations

import hashlib
import re

__all__ = [
    "MAX_NAMESPACE_LENGTH",
    "MAX_NAME_LENGTH",
    "NAMESPACE_PATTERN",
    "NAME_PATTERN",
    "InvalidName",
    "child_object_name",
    "namespace_name",
    "object_name",
]

#: A DNS-1123 subdomain: what Kubernetes accepts as the name of a custom resource.
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
MAX_NAME_LENGTH = 253
#: A DNS-1123 label: what Kubernetes accepts as a namespace's name.
NAMESPACE_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
MAX_NAMESPACE_LENGTH = 63

_NAME = re.compile(NAME_PATTERN)
_NAMESPACE = re.compile(NAMESPACE_PATTERN)
_SHOWN = 80  # characters of a refused value quoted back; the rest is cut


class InvalidName(ValueError):
    """Not a Kubernetes name; the message names the field, the rule and the limit."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN]}... ({len(text)} characters)"


def object_name(value: object, *, field: str) -> str:
    """`value` if it is a valid object name (DNS-1123 subdomain, at most 253 characters)."""
    if not isinstance(value, str) or not value:
        raise InvalidName(f"{field} must name an object, got {_shown(value)}", field=field)
    # Length first: it bounds the regex's work. fullmatch, not match: `$` also matches before a final "\n".
    if len(value) > MAX_NAME_LENGTH or _NAME.fullmatch(value) is None:
        raise InvalidName(
            f"{field} {_shown(value)} is not a Kubernetes object name: lowercase letters, digits, '-' and '.', "
            f"starting and ending with a letter or digit, at most {MAX_NAME_LENGTH} characters "
            "(a name, never a path: it is looked up in this object's own namespace)",
            field=field,
        )
    return value


def namespace_name(value: object, *, field: str = "namespace") -> str:
    """`value` if it is a valid namespace name (DNS-1123 label, at most 63 characters)."""
    if not isinstance(value, str) or len(value) > MAX_NAMESPACE_LENGTH or _NAMESPACE.fullmatch(value) is None:
        raise InvalidName(
            f"{field} {_shown(value)} is not a Kubernetes namespace name: lowercase letters, digits and '-', "
            f"starting and ending with a letter or digit, at most {MAX_NAMESPACE_LENGTH} characters",
            field=field,
        )
    return value


_NOT_IN_LABEL = re.compile(r"[^a-z0-9]+")
_STEP_PART = 63


def child_object_name(parent_name: str, step: str, child_id: str) -> str:
    """The name of the Execution object the operator creates for a child execution:
    ``<parent name>-<step, lowercased, other characters as '-'>-<8 hex of the child's engine id>``.

    Deterministic (a retried create finds its first), unique per child (a retried attempt or a
    loop starts a child with another engine id), within 253 characters (the parent's name is cut
    first) and a valid object name whatever the step's name.
    """
    digest = hashlib.sha256(child_id.encode()).hexdigest()[:8]
    part = _NOT_IN_LABEL.sub("-", step.lower()).strip("-")[:_STEP_PART].strip("-")
    suffix = f"-{part}-{digest}" if part else f"-{digest}"
    head = parent_name[: MAX_NAME_LENGTH - len(suffix)].rstrip("-.")
    return object_name(head + suffix, field="child Execution name")
