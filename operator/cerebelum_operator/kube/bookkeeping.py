"""kopf's record of what it last handled, kept small enough for an annotation whatever the spec holds.

kopf keeps a copy of each object's spec, labels and annotations (its "essence") in the annotation
`kopf.zalando.org/last-handled-configuration`, to see what changed on the next event. An Execution
with a 300 KiB input then needs a 300 KiB annotation; the API server refuses annotations over
256 KiB in total with a 422, kopf's patch (which also carries our status) fails, and kopf retries
it forever. Keeping a digest instead of each spec stanza and of each long label or annotation value
makes the record a few hundred bytes: a change still changes the digest, so kopf still sees
*that* a field changed (all our update handlers need), only not the old value, which no handler reads.

An Execution's record is not written to the object at all: writing it cost one API write per
Execution (kopf's patch after the create handler), the hot path's largest fixed cost after the
finalizer. `ExecutionsInMemory` keeps it in the operator's memory instead, keyed by uid, for as long
as the Execution is watched (until it is labelled finished or deleted). What kopf loses is only
the difference between "created" and "resumed" after a restart: with no record, kopf calls the
create handlers for every Execution it lists, and ours are the resume handlers too
(`handlers.execution_seen`), idempotent by uid. A change of the pause annotation while no operator
ran is caught the same way: the create handler reads the annotation (`Reconciler.execution_seen`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable
from typing import Any, cast

import kopf

from .resources import GROUP

__all__ = ["LONG_VALUE", "DigestDiffBaseStorage", "ExecutionsInMemory"]

#: Label and annotation values longer than this are kept as a digest.
LONG_VALUE = 256
_KOPF_PREFIX = "kopf.zalando.org/"  # kopf's own annotations: its progress storage strips these by key


def _digest(value: Any) -> dict[str, str]:
    encoded = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return {"sha256": hashlib.sha256(encoded).hexdigest()}


def condensed(essence: dict[str, Any]) -> dict[str, Any]:
    """The essence with every stanza but metadata, and every long metadata value, as its digest."""
    out: dict[str, Any] = {}
    for key, value in essence.items():
        if key != "metadata":
            out[key] = _digest(value)
            continue
        metadata = dict(value)
        for part in ("labels", "annotations"):
            if isinstance(metadata.get(part), dict):
                metadata[part] = {
                    name: (
                        f"sha256:{_digest(text)['sha256']}"
                        if isinstance(text, str) and len(text) > LONG_VALUE and not name.startswith(_KOPF_PREFIX)
                        else text
                    )
                    for name, text in metadata[part].items()
                }
        out[key] = metadata
    return out


def _without_what_the_essence_drops(body: kopf.Body) -> kopf.Body:
    """The body with only what kopf's essence keeps: no status, and of the metadata only the labels
    and annotations (and the owners, which kopf's key convention reads). kopf deep-copies the whole
    body before it drops the rest: an Execution's status (up to 16 KiB of steps) and its
    managedFields were copied on every watch event, then thrown away."""
    light = {key: value for key, value in body.items() if key not in ("metadata", "status")}
    metadata = body.get("metadata") or {}
    light["metadata"] = {key: metadata[key] for key in ("labels", "annotations", "ownerReferences") if key in metadata}
    return kopf.Body(cast(kopf.RawBody, light))


class DigestDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """kopf's annotation storage of the essence, with `condensed` essences (same keys, so upgrades work)."""

    def build(self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None) -> kopf.BodyEssence:
        extra = list(extra_fields or ())
        # Handlers on fields outside the essence (none of ours) need the whole body to pick them from.
        source = body if extra else _without_what_the_essence_drops(body)
        essence = super().build(body=source, extra_fields=extra)
        return cast(kopf.BodyEssence, condensed(cast(dict[str, Any], essence)))


def _is_execution(body: kopf.Body, kinds: frozenset[str] = frozenset({"Execution"})) -> bool:
    return body.get("kind") in kinds and str(body.get("apiVersion", "")).startswith(f"{GROUP}/")


class ExecutionsInMemory(DigestDiffBaseStorage):
    """`DigestDiffBaseStorage` for every kind but Executions, whose records stay in memory (by uid).

    `forget` drops one (the Execution left the watch); at most one record per watched Execution is
    kept, a few hundred bytes each (the condensed essence).
    """

    def __init__(self, *, kinds: Collection[str] = ("Execution",)) -> None:
        """`kinds`: the kinds of ours kept in memory. Several replicas sharing the shards keep every
        kind they hand between them there (an annotation would tell one replica that another handled
        an object it has never seen)."""
        super().__init__()
        self._kinds = frozenset(kinds)
        self._records: dict[str, kopf.BodyEssence] = {}

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        if _is_execution(body, self._kinds):
            return self._records.get(str(body.metadata.uid))
        return super().fetch(body=body)

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        if _is_execution(body, self._kinds):
            self._records[str(body.metadata.uid)] = essence
            return
        super().store(body=body, patch=patch, essence=essence)

    def forget(self, uid: str) -> None:
        self._records.pop(uid, None)

    def __len__(self) -> int:
        return len(self._records)
