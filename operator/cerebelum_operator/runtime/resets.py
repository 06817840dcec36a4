"""Reset an execution to a step: a new run on the workflow's current spec that starts at that step.

The pure part (where the run starts, what it carries) is `engine.reset`; this is the glue: read
the old run, stop it if it still runs (as Temporal's reset does: two runs of one order would both
act), and start the new one. The new run is an execution of its own, with its own id; the old
one's history is left as it was, and the new one's `ExecutionReset` event names it.
"""

from __future__ import annotations

from ..engine import commands as cmd
from ..engine.reset import reset_point
from ..store import ExecutionRow
from .engine_service import EngineService

__all__ = ["reset_execution"]


async def reset_execution(
    engine: EngineService, execution_id: str, step: str, *, new_id: str, reason: str = ""
) -> ExecutionRow:
    """Start ``new_id`` as a reset of ``execution_id`` to ``step``; the old run is cancelled if it still runs."""
    row = await engine.get_execution(execution_id)
    if row is None:
        raise await engine.missing(execution_id)
    state = await engine.state_of(execution_id)
    history = await engine.load_history(execution_id)
    ran_on = engine.definition_for(row.spec, started=True)
    workflow = await engine.get_workflow(row.workflow)
    current = ran_on if workflow is None else engine.definition_for(workflow.spec)
    point = reset_point(execution_id=execution_id, ran_on=ran_on, history=history, current=current, step=step)
    if not state.phase.terminal:
        stop = reason or f"reset to step {step!r} as execution {new_id!r}"
        await engine.handle(execution_id, cmd.Cancel(stop, force=True))
    return await engine.start(
        row.workflow,
        state.input,
        execution_id=new_id,
        spec=None if workflow is not None else row.spec,
        reset=point,
    )
