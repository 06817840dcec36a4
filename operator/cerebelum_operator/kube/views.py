"""What the reconcilers read and return: a plain view of an object, an outcome, a retry."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .client import ObjectRef
from .projection import merge_conditions

__all__ = ["JSON", "ObjectView", "Outcome", "Retry", "json_size", "plain", "too_large", "with_condition"]

JSON = Any


def plain(value: Any) -> JSON:
    """A deep, mutable, plain-JSON copy of a kopf body view."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def json_size(value: JSON) -> int:
    """Bytes of the value's compact JSON, as the gRPC API counts a payload."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


class Retry(Exception):
    """Not possible yet (e.g. the Workflow does not exist): try again after `delay_s`."""

    def __init__(self, message: str, *, delay_s: float) -> None:
        super().__init__(message)
        self.delay_s = delay_s


@dataclass
class Outcome:
    """What a handler wants written back: a status patch and, maybe, an Event."""

    status: dict[str, JSON] = field(default_factory=dict)
    event: tuple[str, str, str] | None = None  # (type, reason, note)


@dataclass(frozen=True)
class ObjectView:
    namespace: str
    name: str
    uid: str
    generation: int | None
    spec: dict[str, JSON]
    status: dict[str, JSON]
    annotations: dict[str, str] = field(default_factory=dict)
    owners: list[dict[str, JSON]] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> ObjectView:
        meta = body.get("metadata") or {}
        return cls(
            namespace=str(meta.get("namespace")),
            name=str(meta.get("name")),
            uid=str(meta.get("uid")),
            generation=meta.get("generation"),
            spec=plain(body.get("spec") or {}),
            status=plain(body.get("status") or {}),
            annotations={str(k): str(v) for k, v in (meta.get("annotations") or {}).items()},
            owners=plain(meta.get("ownerReferences") or []),
            labels={str(k): str(v) for k, v in (meta.get("labels") or {}).items()},
        )

    def ref(self, kind: str) -> ObjectRef:
        return ObjectRef(kind=kind, namespace=self.namespace, name=self.name, uid=self.uid)


def too_large(field: str, value: JSON, limit: int) -> str | None:
    """Why `value` is refused as over the payload limit, or None when it fits."""
    size = json_size(value)
    if size <= limit:
        return None
    return f"{field} is {size} bytes of JSON, over the {limit}-byte payload limit (--max-payload-bytes)"


def with_condition(view: ObjectView, update: dict[str, JSON]) -> dict[str, JSON]:
    """The status fields that record `update` among the view's conditions, and the generation seen."""
    return {
        "conditions": merge_conditions(list(view.status.get("conditions") or []), [update]),
        "observedGeneration": view.generation,
    }
