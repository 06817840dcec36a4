"""Step definitions: how a registered function's parameters are filled from a task's arguments."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import pydantic
from pydantic import TypeAdapter

from cerebelum.context import StepContext
from cerebelum.errors import NonRetryableError

__all__ = ["StepDefinition", "StepFunction"]

StepFunction = Callable[..., Any]


class _Source(Enum):
    CONTEXT = "context"
    INPUT = "input"
    NAMED = "named"  # an argument of the workflow step of that name, else the result of that step


_NO_DEFAULT: Any = inspect.Parameter.empty


@dataclass(frozen=True, slots=True)
class _Parameter:
    name: str
    source: _Source
    adapter: TypeAdapter[Any] | None
    default: Any
    positional: bool


class StepDefinition:
    """A registered step: its name, function and precomputed parameter plan.

    Parameter rules, first match wins: annotated ``StepContext`` (or named ``ctx``) gets the
    context; ``input`` gets the workflow input; a name that is a key of the workflow step's
    ``args`` gets that argument (``ctx.args``), so one function serves many steps, each passing
    its own; any other name gets the output of the earlier step of that name; a parameter with
    a default takes it when neither is there. An argument thus wins over a step's result of the
    same name, and an argument named ``input`` or ``ctx`` is only in ``ctx.args``. Annotated
    parameters are validated and converted with a pydantic ``TypeAdapter``, arguments as results.
    """

    __slots__ = ("fn", "is_async", "name", "parameters")

    def __init__(self, name: str, fn: StepFunction) -> None:
        if not callable(fn):
            raise TypeError(f"step {name!r} must be a function, not {fn!r}")
        self.name = name
        self.fn = fn
        self.is_async = inspect.iscoroutinefunction(fn)
        self.parameters = _plan(name, fn)

    def __repr__(self) -> str:
        return f"StepDefinition(name={self.name!r}, fn={self.fn!r}, is_async={self.is_async})"

    def bind(self, arguments: dict[str, Any], ctx: StepContext) -> tuple[list[Any], dict[str, Any]]:
        """Positional and keyword arguments for one call; raises ``NonRetryableError`` when they cannot be built."""
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        results: dict[str, Any] | None = None
        for param in self.parameters:
            if param.source is _Source.CONTEXT:
                value: Any = ctx
            elif param.source is _Source.INPUT:
                value = arguments.get("input")
                if value is None and param.default is not _NO_DEFAULT:
                    value = param.default
                elif param.adapter is not None:
                    value = self._validate(ctx, param, value, "the workflow input")
            elif param.name in ctx.args:  # the workflow step's own argument outranks a result
                value = ctx.args[param.name]
                if param.adapter is not None:
                    value = self._validate(ctx, param, value, f"the argument {param.name!r}")
            else:
                if results is None:
                    results = arguments.get("results") or {}
                if param.name in results:
                    value = results[param.name]
                    if param.adapter is not None:
                        value = self._validate(ctx, param, value, f"the result of step {param.name!r}")
                elif param.default is not _NO_DEFAULT:
                    value = param.default
                else:
                    raise NonRetryableError(
                        f"{_where(ctx)}: parameter {param.name!r} needs an argument of that name or the result "
                        f"of step {param.name!r}, and has neither (is the step name right, and does this step "
                        "depend on it?)",
                        type="MissingArgument",
                    )
            if param.positional:
                args.append(value)
            else:
                kwargs[param.name] = value
        return args, kwargs

    def _validate(self, ctx: StepContext, param: _Parameter, value: Any, what: str) -> Any:
        assert param.adapter is not None
        try:
            return param.adapter.validate_python(value)
        except pydantic.ValidationError as exc:
            raise NonRetryableError(
                f"{_where(ctx)}: parameter {param.name!r} does not accept {what}: {exc}",
                type="InvalidArgument",
            ) from exc


def _where(ctx: StepContext) -> str:
    """The workflow step, in an error message; and the function it runs, when that has another name."""
    if ctx.function == ctx.step:
        return f"step {ctx.step!r}"
    return f"step {ctx.step!r} (function {ctx.function!r})"


def _plan(step: str, fn: StepFunction) -> tuple[_Parameter, ...]:
    signature = inspect.signature(fn)
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:
        raise TypeError(f"step {step!r}: cannot resolve the annotations of {fn!r}: {exc}") from exc
    plan: list[_Parameter] = []
    for param in signature.parameters.values():
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        hint = hints.get(param.name, inspect.Parameter.empty)
        positional = param.kind is inspect.Parameter.POSITIONAL_ONLY
        if param.name == "ctx" or _is_context(hint):
            plan.append(_Parameter(param.name, _Source.CONTEXT, None, _NO_DEFAULT, positional))
            continue
        source = _Source.INPUT if param.name == "input" else _Source.NAMED
        adapter = None if hint in (inspect.Parameter.empty, Any, object) else TypeAdapter(hint)
        plan.append(_Parameter(param.name, source, adapter, param.default, positional))
    return tuple(plan)


def _is_context(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, StepContext)
