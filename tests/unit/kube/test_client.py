"""The operator's own API calls never build a request path from a string that is not a Kubernetes name."""

from __future__ import annotations

from typing import Any

import pytest

from cerebelum_operator.kube.client import KubeApi, ObjectRef, Workflow
from cerebelum_operator.kube.names import InvalidName


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
