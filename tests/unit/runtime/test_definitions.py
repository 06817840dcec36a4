"""The engine compiles a workflow spec once, however many executions start or reload it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cerebelum_operator.engine import ExecutionPhase, Reply
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.model import WorkflowInvalid, compile_workflow
from cerebelum_operator.runtime import Database, EngineService, SystemClock
from cerebelum_operator.runtime import engine_service as engine_service_module
from cerebelum_operator.store import open_store

SPEC = {
    "taskQueue": "q",
    "timeline": ["a", "b"],
    "branch": {"a": [{"when": "result.ok == false", "goto": "a", "maxIterations": 3}]},
}


def test_an_equal_spec_is_compiled_once_and_a_changed_one_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled: list[object] = []
    real_compile = compile_workflow  # the function engine_service imports from the model

    def counting_compile(spec: dict[str, Any], **options: bool) -> object:
        compiled.append(spec)
        return real_compile(spec, **options)

    monkeypatch.setattr(engine_service_module, "compile_workflow", counting_compile)
    store = open_store(f"sqlite:///{tmp_path / 'engine.db'}")
    store.migrate()
    db = Database(store)
    try:
        engine = EngineService(db, clock=SystemClock())
        first = engine.definition_for(dict(SPEC))
        again = engine.definition_for({key: SPEC[key] for key in reversed(list(SPEC))})  # same spec, other key order
        changed = engine.definition_for({**SPEC, "timeline": ["a", "b", "c"]})
    finally:
        db.close()

    assert again is first
    assert changed is not first and changed.spec_hash != first.spec_hash
    assert len(compiled) == 2


# Valid under the release before issue 13, refused at apply now: a lookahead pattern RE2 cannot
# run, and an output expression whose static cost is over the limit.
OLDER_RULES_SPEC = {
    "taskQueue": "q",
    "timeline": ["a"],
    "input": {"type": "object", "properties": {"code": {"type": "string", "pattern": "^(?!x)"}}},
    "output": "[1,2,3,4,5,6,7,8].all(a, [1,2,3,4,5,6,7,8].all(b, [1,2,3,4,5,6,7,8].all(c,"
    " [1,2,3,4,5,6,7,8].all(d, [1,2,3,4,5,6,7,8].all(e, [1,2,3,4,5,6,7,8].all(f, true))))))",
}


async def test_an_execution_started_before_stricter_rules_still_finishes_after_the_upgrade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(WorkflowInvalid, match="output: CEL expression's estimated cost"):
        compile_workflow(OLDER_RULES_SPEC)
    store = open_store(f"sqlite:///{tmp_path / 'engine.db'}")
    store.migrate()
    db = Database(store)
    try:
        # The older release: its compile knew neither rule.
        monkeypatch.setattr(
            engine_service_module, "compile_workflow", lambda spec, **_: compile_workflow(spec, started=True)
        )
        older = EngineService(db, clock=SystemClock())
        await db.run(store.put_workflow, "legacy", OLDER_RULES_SPEC, now_ms=0)
        await older.start("legacy", {}, execution_id="e1")
        monkeypatch.undo()

        upgraded = EngineService(db, clock=SystemClock())  # a new process: nothing cached
        (token,) = [step.token for step in (await upgraded.state_of("e1")).steps.values() if step.token]
        assert (await upgraded.handle("e1", cmd.TaskStarted(token, "w1"))).reply == Reply.ACCEPTED
        done = await upgraded.handle("e1", cmd.TaskCompleted(token, cmd.OutcomeSuccess({}), worker_id="w1"))
        state = await upgraded.state_of("e1")
        with pytest.raises(WorkflowInvalid, match=r"input\.properties\.code\.pattern"):
            await upgraded.start("legacy", {}, execution_id="e2")  # new starts obey the new rules
    finally:
        db.close()

    assert done.reply == Reply.ACCEPTED
    # The expression over the limit is still never run: the execution fails naming it.
    assert state.phase == ExecutionPhase.FAILED
    assert "was not run: its estimated cost" in str(state.error)


# Valid before issue 16, refused at apply now: a misspelt name, in a rule its execution never reaches.
UNCHECKED_NAMES_SPEC = {
    "taskQueue": "q",
    "timeline": ["a"],
    "diverge": {"a": [{"match": {"error": {"type": "Never"}}, "when": "inptu.retry", "then": "retry"}]},
}


async def test_an_execution_started_before_the_cel_name_check_still_finishes_and_new_starts_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'engine.db'}")
    store.migrate()
    db = Database(store)
    try:
        monkeypatch.setattr(  # the older release: its compile did not check names
            engine_service_module, "compile_workflow", lambda spec, **_: compile_workflow(spec, started=True)
        )
        older = EngineService(db, clock=SystemClock())
        await db.run(store.put_workflow, "legacy", UNCHECKED_NAMES_SPEC, now_ms=0)
        await older.start("legacy", {}, execution_id="e1")
        monkeypatch.undo()

        upgraded = EngineService(db, clock=SystemClock())  # a new process: nothing cached
        (token,) = [step.token for step in (await upgraded.state_of("e1")).steps.values() if step.token]
        assert (await upgraded.handle("e1", cmd.TaskStarted(token, "w1"))).reply == Reply.ACCEPTED
        done = await upgraded.handle("e1", cmd.TaskCompleted(token, cmd.OutcomeSuccess({}), worker_id="w1"))
        state = await upgraded.state_of("e1")
        with pytest.raises(WorkflowInvalid, match=r"diverge\.a\[0\]\.when: unknown name 'inptu'"):
            await upgraded.start("legacy", {}, execution_id="e2")
    finally:
        db.close()

    assert done.reply == Reply.ACCEPTED
    assert state.phase == ExecutionPhase.SUCCEEDED
