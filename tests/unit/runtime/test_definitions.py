"""The engine compiles a workflow spec once, however many executions start or reload it."""

from __future__ import annotations

from pathlib import Path

import pytest

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
    real_compile = engine_service_module.compile_workflow

    def counting_compile(spec: dict) -> object:
        compiled.append(spec)
        return real_compile(spec)

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
