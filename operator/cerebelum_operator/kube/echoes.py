"""Watch events that only echo our own status writes never reach kopf's processing.

Every status patch the status writer makes comes back on the Execution watch as a MODIFIED event
with the resourceVersion the patch produced. kopf processes each event it receives: it spawns or
feeds the object's worker, recalls its memory, builds the essence (a digest of the spec) and diffs
it against the last handled one, evaluates every handler's filter, decides about its finalizer, and
finds nothing to do, since a status write changes nothing any handler reacts to. At a few status
writes per Execution that was most of kopf's share of the operator's CPU.

`OwnEchoes` remembers, per object uid, the resourceVersion our last status write produced; a
MODIFIED event with exactly that version is the object as our patch left it, so the only change it
can carry is that status: it is dropped before kopf sees it (`install_echo_filter`). Not dropped:
the echo of a write that ends the Execution (kopf must see the finished status, to label the object
and drop its finalizer, `handlers.execution_finished`), any event with another version (someone
else's change, kopf's own patches, or ours combined with someone's since), and listings (a restart
or a watch that resumed after a gap lists objects with type None: kopf must see them).

kopf has no public hook for this: the filter wraps `kopf._cogs.clients.watching.infinite_watch`,
the one stream kopf's watcher reads (kopf 1.45). If that module or function is not there (another
kopf), nothing is wrapped and every echo is processed as before, with a warning.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

__all__ = ["OwnEchoes", "install_echo_filter"]

log = logging.getLogger(__name__)

JSON = Any
MAX_REMEMBERED = 100_000  # objects whose echo is awaited; past it the oldest is forgotten (then processed)


class OwnEchoes:
    """The resourceVersion each object's last status write produced, until the watch delivers it."""

    def __init__(self, *, limit: int = MAX_REMEMBERED) -> None:
        self._versions: dict[str, str] = {}
        self._limit = limit
        self.dropped = 0  # echoes kopf never saw
        self.passed = 0  # events of the filtered resource kopf did see

    def wrote(self, uid: str, resource_version: str) -> None:
        """Our status write left object `uid` at `resource_version` (a write that ends it: not told)."""
        self._versions.pop(uid, None)
        self._versions[uid] = resource_version
        if len(self._versions) > self._limit:
            del self._versions[next(iter(self._versions))]

    def is_echo(self, raw_event: dict[str, JSON]) -> bool:
        """Whether the watch event is the echo of our last write to its object (then forgotten)."""
        metadata = (raw_event.get("object") or {}).get("metadata") or {}
        uid = metadata.get("uid")
        if not isinstance(uid, str) or uid not in self._versions:
            return False
        kind = raw_event.get("type")
        if kind == "DELETED":
            del self._versions[uid]
            return False
        if kind != "MODIFIED" or metadata.get("resourceVersion") != self._versions[uid]:
            return False
        del self._versions[uid]
        self.dropped += 1
        return True

    def __len__(self) -> int:
        return len(self._versions)


_WATCHING = "kopf._cogs.clients.watching"
Admit = Callable[[Any, dict[str, JSON]], bool]  # (kopf's Resource, a raw event) -> whether kopf sees it
_filters: dict[int, tuple[OwnEchoes, Callable[[Any], bool], Admit | None]] = {}
_original: Callable[..., AsyncIterator[Any]] | None = None


def install_echo_filter(
    settings: object, echoes: OwnEchoes, *, watched: Callable[[Any], bool], admit: Admit | None = None
) -> Callable[[], None]:
    """Drop `echoes` from the watch streams of the kopf operator run with `settings`, for the
    resources `watched` accepts (kopf's `Resource`), and every event `admit` refuses (of any
    resource: another replica's objects, `shard_watch`); returns the function that stops it."""
    global _original
    try:
        watching = importlib.import_module(_WATCHING)
        original = watching.infinite_watch
    except (ImportError, AttributeError):
        log.warning("this kopf has no %s.infinite_watch: echoes of status writes are processed", _WATCHING)
        return lambda: None
    if original is not _filtered:
        _original = original
        setattr(watching, "infinite_watch", _filtered)  # noqa: B010 (a module kopf reads it from)
    _filters[id(settings)] = (echoes, watched, admit)
    return lambda: _filters.pop(id(settings), None) and None


async def _filtered(*, settings: object, resource: Any, **options: Any) -> AsyncIterator[Any]:
    assert _original is not None
    stream = _original(settings=settings, resource=resource, **options)
    chosen = _filters.get(id(settings))
    echoes = chosen[0] if chosen is not None and chosen[1](resource) else None
    admit = chosen[2] if chosen is not None else None
    try:
        async for raw_event in stream:
            if admit is not None and isinstance(raw_event, dict) and not admit(resource, raw_event):
                continue
            if echoes is not None and isinstance(raw_event, dict):
                if echoes.is_echo(raw_event):
                    continue
                echoes.passed += 1
            yield raw_event
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
