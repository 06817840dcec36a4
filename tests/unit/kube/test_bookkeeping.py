"""kopf's last-handled record stays small whatever the object holds, and still shows what changed;
an Execution's is kept in memory and costs no API write."""

from __future__ import annotations

import copy
import json
from typing import Any

import kopf

from cerebelum_operator.kube.bookkeeping import ExecutionsInMemory
from cerebelum_operator.kube.operator import _settings

ANNOTATION_LIMIT = 256 * 1024  # the API server's limit on all of an object's annotations together
KEY = "kopf.zalando.org/last-handled-configuration"


def execution(
    input_: Any,
    *,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    kind: str = "Schedule",
    uid: str = "u-1",
) -> kopf.RawBody:
    """An object with a large spec; of a kind whose record kopf keeps in an annotation (not an Execution)."""
    body: kopf.RawBody = {
        "apiVersion": "cerebelum.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": "big", "namespace": "team-a", "uid": uid},
        "spec": {"workflow": "pipeline", "input": input_},
        "status": {"phase": "Running"},
    }
    if labels is not None:
        body["metadata"]["labels"] = labels
    if annotations is not None:
        body["metadata"]["annotations"] = annotations
    return body


def recorded(raw: kopf.RawBody) -> tuple[Any, str]:
    """The essence the operator's kopf settings build, and the annotation it would write."""
    storage = _settings().persistence.diffbase_storage
    body = kopf.Body(raw)
    essence = storage.build(body=body)
    patch = kopf.Patch()
    storage.store(body=body, patch=patch, essence=essence)
    return essence, patch["metadata"]["annotations"][KEY]


def test_a_long_label_or_annotation_value_is_recorded_as_a_digest_and_kopf_s_own_are_kept() -> None:
    progress = '{"started": "2025-01-01T00:00:00", "retries": 0}'
    raw = execution(
        {},
        labels={"team": "a"},
        annotations={"note": "y" * ANNOTATION_LIMIT, "kopf.zalando.org/execution_seen": progress},
    )

    essence, annotation = recorded(raw)

    assert len(annotation) < 1024, len(annotation)
    assert essence["metadata"]["labels"] == {"team": "a"}
    assert essence["metadata"]["annotations"]["note"].startswith("sha256:")


def test_a_mebibyte_input_is_recorded_in_under_a_kibibyte_and_a_change_of_spec_still_shows() -> None:
    first = execution({"blob": "x" * 1024 * 1024})
    same_spec = copy.deepcopy(first)
    same_spec["status"] = {"phase": "Succeeded"}
    changed = execution({"blob": "y" * 1024 * 1024})

    (essence, annotation), (same, _), (other, _) = (recorded(raw) for raw in (first, same_spec, changed))

    assert len(annotation) < 1024, len(annotation)
    assert json.loads(annotation) == essence  # fetch reads back what store wrote
    assert same == essence
    assert other["spec"] != essence["spec"]  # what an update handler on field "spec" compares


def test_an_execution_s_record_is_kept_in_memory_by_uid_writes_nothing_and_is_forgotten() -> None:
    storage = _settings().persistence.diffbase_storage
    assert isinstance(storage, ExecutionsInMemory)
    first = kopf.Body(execution({"n": 1}, kind="Execution", uid="u-1"))
    other = kopf.Body(execution({"n": 2}, kind="Execution", uid="u-2"))
    assert storage.fetch(body=first) is None  # never seen: kopf calls the create handlers

    essence = storage.build(body=first)
    patch = kopf.Patch()
    storage.store(body=first, patch=patch, essence=essence)

    assert not patch, "no API write for an Execution's record"
    assert storage.fetch(body=first) == essence
    assert storage.fetch(body=other) is None
    assert len(storage) == 1
    storage.forget("u-1")
    assert storage.fetch(body=first) is None and len(storage) == 0


def test_an_execution_s_record_in_an_annotation_from_an_older_operator_is_not_read() -> None:
    """Objects an older operator handled carry its annotation; this one calls the create handlers
    for them (idempotent by uid) instead of trusting a record it did not write."""
    storage = _settings().persistence.diffbase_storage
    _, annotation = recorded(execution({"n": 1}))
    raw = execution({"n": 1}, kind="Execution", annotations={KEY: annotation})
    assert storage.fetch(body=kopf.Body(raw)) is None


class NotCopied:
    """A value that fails the test if anything deep-copies it."""

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        raise AssertionError("the status or the system metadata was copied to build the essence")


def test_the_essence_is_built_without_copying_the_status_or_the_system_metadata() -> None:
    """kopf copied the whole body (a 16 KiB status, managedFields) on every event, then dropped most of it."""
    raw = execution({"n": 1}, labels={"team": "a"}, annotations={"note": "x"}, kind="Execution")
    expected = _settings().persistence.diffbase_storage.build(body=kopf.Body(copy.deepcopy(raw)))
    raw["status"] = {"phase": "Running", "steps": [NotCopied()]}
    raw["metadata"]["managedFields"] = [NotCopied()]  # type: ignore[typeddict-unknown-key]

    essence = _settings().persistence.diffbase_storage.build(body=kopf.Body(raw))

    assert essence == expected
    assert set(essence) == {"spec", "metadata"} and set(essence["metadata"]) == {"labels", "annotations"}
