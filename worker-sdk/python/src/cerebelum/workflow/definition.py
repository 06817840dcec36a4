"""A registered workflow function: its name, and how its input is converted (pydantic, as for steps)."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Coroutine
from typing import Any

import pydantic
from pydantic import TypeAdapter

from cerebelum.errors import NonRetryableError

__all__ = ["WorkflowDefinition", "WorkflowFunction", "workflow_name"]

WorkflowFunction = Callable[..., Coroutine[Any, Any, Any]]


def workflow_name(fn: Callable[..., Any] | str) -> str:
    """The name a workflow function was registered under (``@worker.workflow(name=...)``), else its own."""
    if isinstance(fn, str):
        return fn
    registered = getattr(fn, "__cerebelum_workflow__", None)
    return registered if isinstance(registered, str) else str(getattr(fn, "__name__", fn))


class WorkflowDefinition:
    """``async def f(wf)`` or ``async def f(wf, input)``; an annotated ``input`` is validated and converted."""

    __slots__ = ("adapter", "fn", "name", "takes_input")

    def __init__(self, name: str, fn: WorkflowFunction) -> None:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"workflow {name!r} must be an async function (async def {name}(wf, input))")
        params = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        ]
        if not params or len(params) > 2:
            raise TypeError(f"workflow {name!r} must take (wf) or (wf, input), not {inspect.signature(fn)}")
        self.name = name
        self.fn = fn
        self.takes_input = len(params) == 2
        self.adapter: TypeAdapter[Any] | None = None
        if self.takes_input:
            try:
                hints = typing.get_type_hints(fn, include_extras=True)
            except Exception as exc:
                raise TypeError(f"workflow {name!r}: cannot resolve the annotations of {fn!r}: {exc}") from exc
            hint = hints.get(params[1].name, inspect.Parameter.empty)
            if hint not in (inspect.Parameter.empty, Any, object):
                self.adapter = TypeAdapter(hint)

    def __repr__(self) -> str:
        return f"WorkflowDefinition(name={self.name!r}, fn={self.fn!r})"

    def convert_input(self, value: Any) -> Any:
        """The input the function gets; a mismatch fails the workflow (``InvalidInput``, not retried)."""
        if self.adapter is None:
            return value
        try:
            return self.adapter.validate_python(value)
        except pydantic.ValidationError as exc:
            raise NonRetryableError(
                f"workflow {self.name!r} does not accept its input: {exc}", type="InvalidInput"
            ) from exc
