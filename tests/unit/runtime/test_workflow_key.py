"""The workflow key: one type builds ``namespace/name`` and reads the namespace back."""

from __future__ import annotations

import pytest

from cerebelum_operator.runtime import WorkflowKey, namespace_of


def test_a_key_with_a_namespace_round_trips_through_its_string() -> None:
    key = WorkflowKey("team-a", "payroll.v2")
    assert str(key) == "team-a/payroll.v2"
    assert WorkflowKey.parse(str(key)) == key
    assert namespace_of("team-a/payroll.v2") == "team-a"


def test_a_dev_mode_key_is_the_bare_name_in_no_namespace() -> None:
    assert str(WorkflowKey("", "payroll")) == "payroll"
    assert WorkflowKey.parse("payroll") == WorkflowKey("", "payroll")
    assert namespace_of("payroll") == ""


@pytest.mark.parametrize(("namespace", "name"), [("team-a", "x/y"), ("a/b", "payroll"), ("team-a", "")])
def test_a_part_that_would_shift_the_namespace_is_refused(namespace: str, name: str) -> None:
    with pytest.raises(ValueError, match="neither holding '/'"):
        WorkflowKey(namespace, name)


def test_a_key_no_entry_point_stores_is_refused_when_read() -> None:
    with pytest.raises(ValueError, match="neither holding '/'"):
        WorkflowKey.parse("team-a/x/y")


def test_reading_the_namespace_of_an_unknown_workflow_never_raises() -> None:
    assert namespace_of("") == ""
