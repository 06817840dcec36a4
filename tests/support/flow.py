"""What flow-control tests read from a history: when an execution held a slot of its key."""

from __future__ import annotations

from cerebelum import Client

__all__ = ["ENDS", "running_span"]

ENDS = frozenset({"ExecutionSucceeded", "ExecutionFailed", "ExecutionCancelled", "ExecutionContinuedAsNew"})


def running_span(client: Client, execution_id: str) -> tuple[float, float]:
    """From its admission (the resume of its "concurrency" hold) to its end, in epoch seconds."""
    history = client.history(execution_id)
    admitted = [e.at for e in history if e.type == "ExecutionResumed" and e.data["source"] == "concurrency"]
    ended = [e.at for e in history if e.type in ENDS]
    assert len(admitted) == 1 and len(ended) == 1, [e.type for e in history]
    assert admitted[0] is not None and ended[0] is not None
    return admitted[0].timestamp(), ended[0].timestamp()
