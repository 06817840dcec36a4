"""Signal, child and continueAsNew steps: what they accept, and what they refuse by name."""

from __future__ import annotations

from typing import Any

import pytest

from cerebelum_operator.model import WorkflowInvalid, compile_workflow


def refusal(steps: dict[str, Any], **spec: Any) -> str:
    with pytest.raises(WorkflowInvalid) as caught:
        compile_workflow({"timeline": ["a"], "steps": steps, **spec})
    return str(caught.value)


def test_the_three_steps_compile_with_their_settings() -> None:
    definition = compile_workflow(
        {
            "timeline": ["wait", "kid", "again"],
            "steps": {
                "wait": {"signal": {"name": "go", "timeout": "5m"}},
                "kid": {"child": {"workflow": "other", "input": "input", "onParentCancel": "abandon"}},
                "again": {"continueAsNew": {}},
            },
        }
    )
    wait, kid, again = (definition.steps[n] for n in ("wait", "kid", "again"))
    assert wait.signal is not None and (wait.signal.name, wait.signal.timeout_ms) == ("go", 300_000)
    assert kid.child is not None and (kid.child.workflow, kid.child.on_parent_cancel) == ("other", "abandon")
    assert again.continue_as_new is not None and again.continue_as_new.input is None
    assert not (wait.has_task or kid.has_task or again.has_task)
    assert definition.signal_names == {"go"}


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ({"signal": {"name": "go"}, "taskQueue": "q"}, "steps.a.taskQueue: a signal step has no task for a worker"),
        ({"signal": {"name": "go"}, "retry": {"maxAttempts": 2}}, "steps.a.retry: a signal step"),
        ({"child": {"workflow": "w"}, "args": {"x": "1"}}, "steps.a.args: a child step has no task for a worker"),
        ({"continueAsNew": {}, "set": {"v": "1"}}, "steps.a.set: a continueAsNew step"),
        ({"signal": {"name": "go"}, "approval": {}}, "steps.a: a step is one of approval, timer, signal"),
        ({"child": {"workflow": "w", "input": "nosuch(1)"}}, "steps.a.child.input: unknown function 'nosuch'"),
        ({"continueAsNew": {"input": "result"}}, "steps.a.continueAsNew.input"),
    ],
)
def test_settings_a_built_in_step_cannot_honour_are_refused_by_name(step: dict[str, Any], message: str) -> None:
    assert message in refusal({"a": step}, vars={"v": 0})


def test_a_child_workflow_is_a_name_never_a_path_into_another_namespace() -> None:
    assert "steps.a.child.workflow" in refusal({"a": {"child": {"workflow": "team-b/payments"}}})


def test_a_signal_name_follows_the_step_name_rules() -> None:
    assert "steps.a.signal.name" in refusal({"a": {"signal": {"name": "has space"}}})


def test_a_finally_step_cannot_wait_for_a_signal() -> None:
    message = refusal({"f": {"signal": {"name": "go"}}}, **{"finally": ["f"]})
    assert "steps.f.signal: a compensation or finally step runs a worker's task only" in message
