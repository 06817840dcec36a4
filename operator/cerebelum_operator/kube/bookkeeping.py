"""kopf's record of what it last handled, kept small enough for an annotation whatever the spec holds.

kopf keeps a copy of each object's spec, labels and annotations (its "essence") in the annotation
`kopf.zalando.org/last-handled-configuration`, to see what changed on the next event. An Execution
with a 300 KiB input then needs a 300 KiB annotation; the API server refuses annotations over
256 KiB in total with a 422, kopf's patch (which also carries our status) fails, and kopf retries
it forever. Keeping a digest instead of each spec stanza and of each long label or annotation value
makes the record a few hundred bytes: a change still changes the digest, so kopf still sees
*that* a field changed (all our update handlers need), only not the old value, which no handler reads.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any, cast

import kopf

__all__ = ["LONG_VALUE", "DigestDiffBaseStorage"]

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


class DigestDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """kopf's annotation storage of the essence, with `condensed` essences (same keys, so upgrades work)."""

    def build(self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None) -> kopf.BodyEssence:
        essence = super().build(body=body, extra_fields=extra_fields)
        return cast(kopf.BodyEssence, condensed(cast(dict[str, Any], essence)))
