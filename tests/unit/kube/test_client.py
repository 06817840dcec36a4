"""The operator's own API calls never build a request path from a string that is not a Kubernetes name."""

from __future__ import annotations

from typing import Any

import pytest
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import Status

from cerebelum_operator.kube.client import KubeApi, ObjectRef, Workflow, event_name
from cerebelum_operator.kube.names import InvalidName
from cerebelum_operator.runtime import FakeClock


class RecordingClient:
    """Stands in for lightkube's AsyncClient: records each call; any call at all is a failure here."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(("get", args, kwargs))
        raise AssertionError("the request was sent")

    async def patch(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(("patch", args, kwargs))
        raise AssertionError("the request was sent")


@pytest.mark.parametrize(
    ("namespace", "name"),
    [
        ("team-a", "../../team-b/executions/run1"),
        ("team-a", "run1/status"),
        ("team-a", "run1?dryRun=All"),
        ("team-a/../team-b", "run1"),
        ("Team-A", "run1"),
    ],
)
async def test_a_get_or_status_patch_of_something_that_is_not_a_name_is_refused_before_any_request(
    namespace: str, name: str
) -> None:
    client = RecordingClient()
    api = KubeApi(client, instance="test")  # type: ignore[arg-type]

    with pytest.raises(InvalidName, match=r"is not a Kubernetes (object|namespace) name"):
        await api.get(Workflow, namespace, name)
    with pytest.raises(InvalidName, match=r"is not a Kubernetes (object|namespace) name"):
        await api.patch_status(ObjectRef(kind="Execution", namespace=namespace, name=name, uid="u"), {"phase": "X"})

    assert client.calls == []


class EventSink:
    """Stands in for lightkube's AsyncClient: keeps each object created."""

    def __init__(self) -> None:
        self.created: list[Any] = []

    async def create(self, obj: Any) -> Any:
        self.created.append(obj)
        return obj


async def test_events_carry_what_kubectl_describe_sorts_on_and_names_that_sort_in_the_order_they_were_posted() -> None:
    sink = EventSink()
    clock = FakeClock(start_ms=1_780_000_000_000)
    api = KubeApi(sink, instance="op-0", clock=clock)  # type: ignore[arg-type]
    ref = ObjectRef(kind="Execution", namespace="team-a", name="run1", uid="u-1")

    for reason in ("Started", "WaitingForApproval", "Approved"):  # the clock does not move between them
        await api.post_event(ref, type_="Normal", reason=reason, note=reason, action="Project")
    await clock.advance(2.5)
    await api.post_event(ref, type_="Normal", reason="Succeeded", note="done", action="Project")

    events = [e.to_dict() for e in sink.created]
    assert [e["apiVersion"] for e in events] == ["v1"] * 4
    names = [e["metadata"]["name"] for e in events]
    assert names == sorted(names) and len(set(names)) == 4
    assert all(name.startswith("run1.") for name in names)
    first = events[0]
    assert first["lastTimestamp"] == first["firstTimestamp"] == first["eventTime"]
    assert first["lastTimestamp"].startswith("2026-05-28T")  # the injected clock's time, not the machine's
    assert first["count"] == 1
    assert first["involvedObject"] == {
        "apiVersion": "cerebelum.io/v1alpha1",
        "kind": "Execution",
        "name": "run1",
        "namespace": "team-a",
        "uid": "u-1",
    }
    assert (first["reportingComponent"], first["reportingInstance"], first["action"]) == (
        "cerebelum.io/operator",
        "op-0",
        "Project",
    )
    assert [e["message"] for e in events] == ["Started", "WaitingForApproval", "Approved", "done"]


def test_an_event_name_is_a_kubernetes_name_however_long_the_object_s_name_is() -> None:
    stamp = 1_780_000_000_000_000
    assert event_name("run1", stamp) == f"run1.{stamp:x}"
    long = "a" * 238 + "-" + "b" * 14  # 253 characters: cut to 239 for ".<13 hex digits>", ending in "-"
    name = event_name(long, stamp)
    assert len(name) <= 253 and name.endswith(f"a.{stamp:x}")
    assert event_name("x", stamp) < event_name("x", stamp + 1) < event_name("x", stamp + 16)


EXEC = ObjectRef(kind="Execution", namespace="team-a", name="run1", uid="u-1")


class TakenNames(EventSink):
    """The first `taken` names are in use already (409), as another instance's Event would be."""

    def __init__(self, taken: int) -> None:
        super().__init__()
        self.taken = taken
        self.tried: list[str] = []

    async def create(self, obj: Any) -> Any:
        self.tried.append(obj.metadata.name)
        if len(self.tried) <= self.taken:
            raise ApiError(status=Status(code=409, reason="AlreadyExists", message="exists"))
        return await super().create(obj)


async def test_an_event_whose_name_is_taken_is_posted_under_the_next_one() -> None:
    sink = TakenNames(taken=1)
    api = KubeApi(sink, instance="op-0", clock=FakeClock())  # type: ignore[arg-type]
    await api.post_event(EXEC, type_="Normal", reason="Started", note="n", action="Reconcile")
    assert len(sink.tried) == 2 and sink.tried[0] < sink.tried[1]
    assert [e.metadata.name for e in sink.created] == [sink.tried[1]]


async def test_a_long_note_is_cut_to_the_api_server_s_limit_in_bytes_not_characters() -> None:
    sink = EventSink()
    api = KubeApi(sink, instance="op-0", clock=FakeClock())  # type: ignore[arg-type]
    await api.post_event(EXEC, type_="Warning", reason="Failed", note="é" * 2000, action="Project")
    (event,) = sink.created
    assert len(event.message.encode()) <= 1024 and event.message.endswith("é…")
