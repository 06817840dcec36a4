"""Echoes of our own status writes are dropped from kopf's Execution watch; nothing else is."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from typing import Any

import kopf
import pytest
from kopf._cogs.clients import watching
from kopf._core.reactor import queueing

from cerebelum_operator.kube.echoes import OwnEchoes, install_echo_filter
from cerebelum_operator.kube.resources import GROUP, VERSION

EXECUTIONS = kopf.Resource(GROUP, VERSION, "executions")
WORKFLOWS = kopf.Resource(GROUP, VERSION, "workflows")


def event(type_: str | None, uid: str, version: str) -> dict[str, Any]:
    return {"type": type_, "object": {"metadata": {"uid": uid, "resourceVersion": version}}}


def test_only_a_modification_at_the_version_we_wrote_is_an_echo_and_only_once() -> None:
    echoes = OwnEchoes()
    echoes.wrote("u1", "10")

    assert not echoes.is_echo(event("MODIFIED", "u1", "9"))  # someone's change before ours
    assert not echoes.is_echo(event(None, "u1", "10"))  # a listing: kopf must see it
    assert not echoes.is_echo(event("MODIFIED", "u2", "10"))  # another object
    assert echoes.is_echo(event("MODIFIED", "u1", "10"))
    assert not echoes.is_echo(event("MODIFIED", "u1", "10")), "forgotten once delivered"
    assert (echoes.dropped, len(echoes)) == (1, 0)


def test_a_later_write_replaces_the_awaited_version_and_a_deletion_forgets_it() -> None:
    echoes = OwnEchoes()
    echoes.wrote("u1", "10")
    echoes.wrote("u1", "12")
    assert not echoes.is_echo(event("MODIFIED", "u1", "10"))
    echoes.wrote("u2", "20")
    assert not echoes.is_echo(event("DELETED", "u2", "21"))
    assert len(echoes) == 1


def test_what_is_remembered_is_bounded_oldest_first() -> None:
    echoes = OwnEchoes(limit=2)
    for uid in ("a", "b", "c"):
        echoes.wrote(uid, "1")
    assert len(echoes) == 2
    assert not echoes.is_echo(event("MODIFIED", "a", "1"))
    assert echoes.is_echo(event("MODIFIED", "c", "1"))


def test_kopf_s_watcher_reads_its_stream_where_the_filter_wraps_it() -> None:
    """The filter replaces `watching.infinite_watch`; kopf's watcher must look it up there at each call."""
    assert "watching.infinite_watch(" in inspect.getsource(queueing.watcher)


async def test_the_filter_drops_echoes_from_the_watched_resource_of_its_operator_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = [
        watching.Bookmark.LISTED,
        event(None, "u1", "5"),
        event("MODIFIED", "u1", "6"),  # our write's echo
        event("MODIFIED", "u1", "7"),  # someone else's
    ]

    async def fake_watch(*, settings: object, resource: kopf.Resource, **_: Any) -> AsyncIterator[Any]:
        for item in stream:
            yield item

    monkeypatch.setattr(watching, "infinite_watch", fake_watch)
    ours, other = kopf.OperatorSettings(), kopf.OperatorSettings()
    echoes = OwnEchoes()
    stop = install_echo_filter(ours, echoes, watched=lambda resource: resource == EXECUTIONS)

    async def seen(settings: kopf.OperatorSettings, resource: kopf.Resource) -> list[Any]:
        echoes.wrote("u1", "6")
        got = watching.infinite_watch(settings=settings, resource=resource, namespace=None)
        return [item async for item in got]

    try:
        assert await seen(ours, EXECUTIONS) == [stream[0], stream[1], stream[3]]
        assert (echoes.dropped, echoes.passed) == (1, 2)  # the bookmark is not an event
        assert await seen(ours, WORKFLOWS) == stream
        assert await seen(other, EXECUTIONS) == stream
    finally:
        stop()
    assert await seen(ours, EXECUTIONS) == stream, "stopped: nothing is dropped"
