"""The dev-mode workflow registry."""

from __future__ import annotations

from cerebelum_operator.store import EventStore, WorkflowRow


def test_put_workflow_creates_version_one(store: EventStore) -> None:
    row = store.put_workflow("orders", {"steps": [{"name": "a"}]}, now_ms=10)
    assert row == WorkflowRow("orders", {"steps": [{"name": "a"}]}, 1, 10, 10)
    assert store.get_workflow("orders") == row


def test_put_workflow_bumps_the_version_only_when_the_spec_changes(store: EventStore) -> None:
    store.put_workflow("orders", {"steps": [{"name": "a"}], "retries": 1}, now_ms=10)
    same = store.put_workflow("orders", {"retries": 1, "steps": [{"name": "a"}]}, now_ms=20)
    assert (same.version, same.updated_at_ms) == (1, 10)

    changed = store.put_workflow("orders", {"steps": [{"name": "b"}]}, now_ms=30)
    assert changed == WorkflowRow("orders", {"steps": [{"name": "b"}]}, 2, 10, 30)
    assert store.get_workflow("orders") == changed

    again = store.put_workflow("orders", {"steps": [{"name": "a"}], "retries": 1}, now_ms=40)
    assert (again.version, again.created_at_ms, again.updated_at_ms) == (3, 10, 40)


def test_get_workflow_returns_none_for_an_unknown_name(store: EventStore) -> None:
    assert store.get_workflow("nope") is None


def test_list_workflows_returns_every_workflow_by_name(store: EventStore) -> None:
    store.put_workflow("b", {"n": 2}, now_ms=1)
    store.put_workflow("a", {"n": 1}, now_ms=2)
    assert [(w.name, w.spec) for w in store.list_workflows()] == [("a", {"n": 1}), ("b", {"n": 2})]
