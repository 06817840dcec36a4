"""Turn a WorkflowSpec into a checked, ready-to-run WorkflowDefinition.

Every problem is collected (not just the first) so that `kubectl apply` or
`cerebelum apply` shows the whole list at once.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import cel
import jsonschema
from pydantic import ValidationError
from referencing.exceptions import Unresolvable

from . import limits
from .cel_check import Suggestions, check_names
from .cel_cost import MAX_CEL_COST, CelCost, CelSyntaxError, CelTooDeep, parse_cost_model
from .code import CodeConfig, check_code_spec
from .composition import ChildStart, ContinueAsNew, SignalWait, compile_composition
from .durations import parse_duration
from .errors import InputInvalid, SpecProblem, WorkflowInvalid, format_path
from .input_defaults import defaults_filler
from .input_schema import compile_input_schema
from .spec import MAX_CEL_CHARS, DivergeRule, RetryPolicy, StepSpec, WorkflowSpec

__all__ = [
    "MAX_CEL_CHARS",
    "MAX_DEPTH",
    "MAX_PARALLEL_STEPS",
    "RESERVED_STEP_NAMES",
    "CelExpression",
    "CompiledBranch",
    "CompiledDiverge",
    "ForEach",
    "Retry",
    "StepConfig",
    "WorkflowDefinition",
    "compile_workflow",
    "parse_workflow",
]

RESERVED_STEP_NAMES = frozenset({"input", "ctx", "context", "steps", "result", "error"})
# Nesting of the document: pydantic refuses to serialise past 255 levels, and no spec needs 64.
MAX_DEPTH = 64
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# Steps of one parallel group: each is a task and several events in one decision, and the whole
# group is joined in memory; past a thousand, a step that fans out itself is the better shape.
MAX_PARALLEL_STEPS = 1000


@dataclass(frozen=True, slots=True)
class Retry:
    max_attempts: int
    initial_interval_ms: int
    backoff_coefficient: float
    max_interval_ms: int
    jitter: float
    non_retryable_errors: frozenset[str]


@dataclass(frozen=True, slots=True)
class StepConfig:
    name: str
    position: int
    task_queue: str
    timeout_ms: int
    lease_ms: int
    heartbeat_required: bool
    retry: Retry
    approval_kind: str | None = None
    approval_timeout_ms: int | None = None
    schedule_to_start_ms: int | None = None  # None: a task waits for a worker as long as it takes
    timer_duration_ms: int | None = None  # a timer step that waits this long
    timer_until: CelExpression | None = None  # a timer step that waits until this CEL timestamp
    when: CelExpression | None = None  # the step runs only when this is true as it is reached
    compensate: str | None = None  # the handler step that undoes this one
    function: str | None = None  # the worker function that runs it, when not the one named like it
    depends_on: tuple[str, ...] = ()  # members of its parallel group it waits for
    args: tuple[tuple[str, CelExpression], ...] = ()  # its arguments, evaluated as it is scheduled
    handler: bool = False  # a compensation or finally step: not in the timeline (position -1)
    assign: tuple[tuple[str, CelExpression], ...] = ()  # `set`: variables assigned after it succeeds
    for_each: ForEach | None = None  # a fan-out: one task per item of a run-time list
    signal: SignalWait | None = None  # waits for a named signal
    child: ChildStart | None = None  # runs another workflow as a child
    continue_as_new: ContinueAsNew | None = None  # ends the run, starting the next one

    @property
    def is_approval(self) -> bool:
        return self.approval_kind is not None

    @property
    def is_timer(self) -> bool:
        return self.timer_duration_ms is not None or self.timer_until is not None

    @property
    def has_task(self) -> bool:
        """Whether a worker runs the step (approval, timer, signal, child and continueAsNew steps
        are the engine's own)."""
        return not (
            self.is_approval
            or self.is_timer
            or self.signal is not None
            or self.child is not None
            or self.continue_as_new is not None
        )


@dataclass(frozen=True, slots=True)
class ForEach:
    """A step run once per item: the list's expression, items in flight at once, and what a failed
    item does (``collect``: its error takes its place in the result; else it fails the step)."""

    items: CelExpression
    concurrency: int
    collect: bool


@dataclass(frozen=True, slots=True)
class CelExpression:
    """A compiled CEL program with its cost model, so evaluation can refuse what would run long."""

    program: cel.Program
    cost: CelCost
    variables: frozenset[str]

    @property
    def source(self) -> str:
        return self.program.source

    # Equal when the source is: the library's Program has no equality of its own, so two
    # compilations of one spec would otherwise differ.
    def __eq__(self, other: object) -> bool:
        return isinstance(other, CelExpression) and other.source == self.source

    def __hash__(self) -> int:
        return hash(self.source)


@dataclass(frozen=True, slots=True)
class CompiledDiverge:
    key: str
    step: str
    match_error_type: str | None
    match_message_contains: str | None
    match_result: Mapping[str, Any] | None
    when: CelExpression | None
    then: Literal["retry", "fail", "continue", "succeed", "goto", "continueAsNew"]
    goto: str | None
    max_iterations: int | None
    message: str | None = None  # the failure's reason, with then: fail
    after_retries: bool = False  # consulted only once the retry policy gave up on a failure
    input: CelExpression | None = None  # the next run's input, with then: continueAsNew

    @property
    def matches_failures(self) -> bool:
        return self.match_result is None

    @property
    def matches_successes(self) -> bool:
        return self.match_error_type is None and self.match_message_contains is None and not self.after_retries


@dataclass(frozen=True, slots=True)
class CompiledBranch:
    key: str
    step: str
    when: CelExpression
    goto: str | None  # None: the rule ends the execution (or the run), as ``then`` says
    max_iterations: int | None
    then: Literal["goto", "succeed", "fail", "continueAsNew"] = "goto"
    message: str | None = None
    input: CelExpression | None = None  # the next run's input, with then: continueAsNew


@dataclass(frozen=True, slots=True)
class FlowControl:
    """A workflow's flow control, compiled: its key and priority are CEL over the input only."""

    key: CelExpression | None
    concurrency: int | None
    priority: CelExpression | None
    rate_limit: tuple[int, int] | None  # (tasks, period in ms) per key


@dataclass(frozen=True)
class WorkflowDefinition:
    """A validated workflow: positions of the timeline and every step's resolved settings."""

    spec: WorkflowSpec
    spec_hash: str
    positions: tuple[tuple[str, ...], ...]
    steps: Mapping[str, StepConfig]
    diverge: Mapping[str, tuple[CompiledDiverge, ...]]
    branch: Mapping[str, tuple[CompiledBranch, ...]]
    output: CelExpression | None
    input_schema: Mapping[str, Any] | None
    timeout_ms: int | None = None  # the whole execution's deadline, counted from its start

    @property
    def variables(self) -> Mapping[str, Any]:
        """The declared workflow variables with their initial values."""
        return self.spec.vars

    _input_validator: Any = field(default=None, repr=False, compare=False)
    _input_defaults: Any = field(default=None, repr=False, compare=False)

    finally_steps: tuple[str, ...] = ()
    uses_phases: bool = False  # some expression reads `phases`, which costs O(steps) to build
    code: CodeConfig | None = None  # a code workflow: its function runs the orchestration on workers
    flow_control: FlowControl | None = None

    @property
    def is_code(self) -> bool:
        return self.code is not None

    @property
    def signal_names(self) -> frozenset[str]:
        """The names of the signals its signal steps wait for: a signal of another name is refused."""
        return frozenset(config.signal.name for config in self.steps.values() if config.signal is not None)

    def position_of(self, step: str) -> int:
        """The step's position in the timeline; -1 for a compensation or finally step."""
        return self.steps[step].position

    def with_input_defaults(self, value: Any) -> Any:
        """``value`` with the input schema's ``default``s filled in where properties are missing.

        A new execution's input is filled before it is validated, and the filled input is what
        its ``ExecutionStarted`` records, so a replay never fills again.
        """
        return value if self._input_defaults is None else self._input_defaults.fill(value)

    def validate_input(self, value: Any) -> None:
        """Raise InputInvalid naming the first violation of the input schema."""
        if self._input_validator is None:
            return
        try:
            error = jsonschema.exceptions.best_match(self._input_validator.iter_errors(value))
        except Unresolvable as exc:  # compile refuses the $refs it can see; a last line of defence
            raise InputInvalid(f"the workflow's input schema cannot be checked: unresolvable $ref: {exc}") from None
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            raise InputInvalid(f"input does not match the workflow's input schema at {where}: {error.message}")


def parse_workflow(document: Mapping[str, Any]) -> WorkflowSpec:
    """Parse a spec mapping, turning pydantic's errors into a WorkflowInvalid with paths."""
    problems: list[SpecProblem] = []
    _check_json(document, (), problems)
    if problems:
        raise WorkflowInvalid(problems)
    try:
        return WorkflowSpec.model_validate(document)
    except ValidationError as exc:
        seen: set[tuple[str, str]] = set()
        for err in exc.errors(include_url=False):
            located = _locate(document, err["loc"])
            if located is None or (located, err["msg"]) in seen:
                continue
            seen.add((located, err["msg"]))
            problems.append(SpecProblem(located, err["msg"]))
        raise WorkflowInvalid(problems or [SpecProblem("", str(exc))]) from None


def _check_json(value: Any, path: tuple[str | int, ...], problems: list[SpecProblem]) -> None:
    """Refuse what JSON (and so the stored spec and the CRD) cannot carry, and absurd nesting."""
    if len(path) > MAX_DEPTH:
        problems.append(SpecProblem(format_path(path), f"nested too deep: more than {MAX_DEPTH} levels"))
        return
    if isinstance(value, Mapping):
        for key, child in value.items():
            # A key that is not a string is pydantic's to report, with its place.
            _check_json(child, (*path, key if isinstance(key, str) else repr(key)), problems)
    elif isinstance(value, list | tuple):
        for index, child in enumerate(value):
            _check_json(child, (*path, index), problems)
    elif isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            problems.append(SpecProblem(format_path(path), "not valid Unicode text (a lone surrogate)"))
    elif isinstance(value, float):
        if not math.isfinite(value):
            problems.append(SpecProblem(format_path(path), f"{value} is not a JSON number"))
    elif value is not None and not isinstance(value, bool | int):
        problems.append(SpecProblem(format_path(path), f"a {type(value).__name__} is not a JSON value"))


def _locate(document: Any, loc: tuple[str | int, ...]) -> str | None:
    """The place of a pydantic error in the document, or None for the other side of a union.

    pydantic puts the union member it tried in the location (`timeline.0.constrained-str`);
    those tags index nothing in the document, so they are dropped, and an error from the
    member that does not fit the value (a list tried as a string) is dropped whole.
    """
    node: Any = document
    path: list[str | int] = []
    for part in loc:
        if part == "[key]":  # the error is about the key itself, not its value
            path.append("(key)")
            node = None
        elif isinstance(node, Mapping):
            path.append(part if isinstance(part, str) else repr(part))
            node = node.get(part)
        elif isinstance(node, list | tuple) and isinstance(part, int):
            path.append(part)
            node = node[part] if 0 <= part < len(node) else None
        elif isinstance(part, str) and ("[" in part or "-" in part):
            if part.startswith("list[") != isinstance(node, list | tuple):
                return None
        else:
            path.append(part)
            node = None
    return format_path(path)


def compile_workflow(spec: WorkflowSpec | Mapping[str, Any], *, started: bool = False) -> WorkflowDefinition:
    """Check a spec's meaning and resolve defaults; raise WorkflowInvalid listing every problem.

    ``started``: the spec is the snapshot of an execution that started under an older release.
    The checks that only guard what a new start would run are relaxed, so an upgrade never
    strands it: its input was validated when it started (schema patterns never run again),
    every CEL evaluation is still refused past its cost limit at run time, and the names its CEL
    uses are not checked (an unknown one fails the evaluation that reaches it, as before).
    """
    if not isinstance(spec, WorkflowSpec):
        spec = parse_workflow(spec)
    return _Compiler(spec, started=started).run()


def _compile_cel(
    source: str,
    path: str,
    problems: list[SpecProblem],
    *,
    construct: str,
    steps: Collection[str],
    suggest: Suggestions | None = None,
    started: bool = False,
) -> CelExpression | None:
    """Compile one expression; `construct` (a key of cel_check.EXPRESSION_VARIABLES) says what it sees."""
    if not source.strip():
        problems.append(SpecProblem(path, "CEL expression is empty"))
        return None
    if len(source) > MAX_CEL_CHARS:
        problems.append(
            SpecProblem(path, f"CEL expression is {len(source)} characters, over the limit of {MAX_CEL_CHARS}")
        )
        return None
    try:
        cost: CelCost | None = parse_cost_model(source)
        unreadable = ""
    except CelTooDeep as exc:  # before the CEL library, whose parser recurses natively
        problems.append(SpecProblem(path, f"CEL expression is {exc}"))
        return None
    except CelSyntaxError as exc:
        cost, unreadable = None, str(exc)
    try:
        program = cel.compile(source)
    except (ValueError, RuntimeError) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        problems.append(SpecProblem(path, f"CEL expression does not compile: {first_line}"))
        return None
    if cost is None:  # CEL accepts it but its cost cannot be bounded: refused, not run unbounded
        problems.append(SpecProblem(path, f"CEL expression cannot be read by the cost estimate: {unreadable}"))
        return None
    if cost.static_cost > MAX_CEL_COST and not started:
        problems.append(
            SpecProblem(
                path,
                f"CEL expression's estimated cost is {cost.static_cost:,}, over the limit of {MAX_CEL_COST:,}"
                " (a comprehension such as all() or map() costs the size of its range times the cost of its"
                " body, so nested comprehensions multiply)",
            )
        )
        return None
    # Not for a started execution's snapshot: applied before this check, it runs as it did.
    names = [] if started else check_names(cost.tree, construct=construct, steps=steps, suggest=suggest)
    if names:
        problems.extend(SpecProblem(path, message) for message in names)
        return None
    return CelExpression(program, cost, frozenset(program.variables()))


def _expressions(
    steps: Mapping[str, StepConfig],
    diverge: Mapping[str, tuple[CompiledDiverge, ...]],
    branch: Mapping[str, tuple[CompiledBranch, ...]],
    output: CelExpression | None,
) -> list[CelExpression]:
    """Every CEL expression of a workflow."""
    found = [rule.when for rules in diverge.values() for rule in rules if rule.when is not None]
    found += [rule.when for rules in branch.values() for rule in rules]
    found += [rule.input for rules in diverge.values() for rule in rules if rule.input is not None]
    found += [rule.input for rules in branch.values() for rule in rules if rule.input is not None]
    for config in steps.values():
        found += [e for e in (config.when, config.timer_until) if e is not None]
        found += [config.for_each.items] if config.for_each is not None else []
        found += [config.child.input] if config.child is not None and config.child.input is not None else []
        found += (
            [config.continue_as_new.input]
            if config.continue_as_new is not None and config.continue_as_new.input is not None
            else []
        )
        found += [program for _, program in (*config.assign, *config.args)]
    return found + ([output] if output is not None else [])


def retry_config(policy: RetryPolicy) -> Retry:
    """The compiled form of a retry policy."""
    return Retry(
        max_attempts=policy.max_attempts,
        initial_interval_ms=parse_duration(policy.initial_interval),
        backoff_coefficient=policy.backoff_coefficient,
        max_interval_ms=parse_duration(policy.max_interval),
        jitter=policy.jitter,
        non_retryable_errors=frozenset(policy.non_retryable_errors),
    )


class _Compiler:
    def __init__(self, spec: WorkflowSpec, *, started: bool) -> None:
        self.spec = spec
        self.started = started
        self.problems: list[SpecProblem] = []
        self.where: dict[str, str] = {}
        self.positions: list[tuple[str, ...]] = []
        self.suggestions = Suggestions()  # "did you mean" hints, shared by all the expressions

    def problem(self, path: str, message: str) -> None:
        self.problems.append(SpecProblem(path, message))

    def cel(self, source: str, path: str, *, construct: str) -> CelExpression | None:
        return _compile_cel(
            source,
            path,
            self.problems,
            construct=construct,
            steps=self.where.keys(),
            suggest=self.suggestions,
            started=self.started,
        )

    def run(self) -> WorkflowDefinition:
        code = check_code_spec(self.spec, self.problem)
        self._timeline()
        self._handlers()
        self._references()
        steps = self._step_configs()
        diverge = self._diverge()
        branch = self._branch()
        self._loops(diverge, branch)
        output = self.cel(self.spec.output, "output", construct="output") if self.spec.output is not None else None
        validator = compile_input_schema(self.spec.input, started=self.started, problems=self.problems)
        timeout_ms = self._workflow_timeout()
        flow_control = self._flow_control()
        self._variables()
        self._dependencies()
        if not self.problems and code is None:
            self._reachability(diverge, branch)
        if self.problems:
            raise WorkflowInvalid(self.problems)
        canonical = json.dumps(self.spec.model_dump(mode="json", by_alias=True), sort_keys=True)
        return WorkflowDefinition(
            spec=self.spec,
            spec_hash=hashlib.sha256(canonical.encode()).hexdigest()[:16],
            positions=tuple(self.positions),
            steps=steps,
            diverge=diverge,
            branch=branch,
            output=output,
            input_schema=self.spec.input,
            timeout_ms=timeout_ms,
            finally_steps=tuple(self.spec.finally_),
            flow_control=flow_control,
            uses_phases=any("phases" in program.variables for program in _expressions(steps, diverge, branch, output)),
            _input_validator=validator,
            _input_defaults=None if validator is None else defaults_filler(validator),
            code=code,
        )

    def _dependencies(self) -> None:
        """dependsOn names members of the step's own parallel group, with no cycle among them."""
        graph: dict[str, tuple[str, ...]] = {}
        for name, own in self.spec.steps.items():
            if not own.depends_on or name not in self.where:
                if own.depends_on and name in self.handlers:
                    self.problem(f"steps.{name}.dependsOn", "a compensation or finally step runs in its own order")
                continue
            group = next(members for members in self.positions if name in members)
            for index, dependency in enumerate(own.depends_on):
                path = f"steps.{name}.dependsOn[{index}]"
                if dependency == name:
                    self.problem(path, f"step {name!r} cannot wait for itself")
                elif dependency not in group:
                    where = self.where.get(dependency)
                    self.problem(
                        path,
                        f"step {dependency!r} is not in the parallel group of {name!r}"
                        + (f" (it is at {where}; the timeline already orders the two)" if where else ": no such step"),
                    )
            graph[name] = tuple(d for d in own.depends_on if d in group and d != name)
        # A cycle: depth-first search, each step visited once.
        state: dict[str, int] = {}  # 1: on the path, 2: done
        for start in graph:
            stack = [(start, iter(graph.get(start, ())))]
            state[start] = state.get(start) or 1
            if state[start] == 2:
                continue
            while stack:
                node, children = stack[-1]
                child = next(children, None)
                if child is None:
                    state[node] = 2
                    stack.pop()
                elif state.get(child) == 1:
                    self.problem(f"steps.{node}.dependsOn", f"a cycle: {node!r} waits for {child!r}, which waits back")
                    return
                elif child not in state:
                    state[child] = 1
                    stack.append((child, iter(graph.get(child, ()))))

    def _flow_control(self) -> FlowControl | None:
        flow = self.spec.flow_control
        if flow is None:
            return None
        key = self.cel(flow.key, "flowControl.key", construct="flowControl") if flow.key is not None else None
        priority = (
            self.cel(flow.priority, "flowControl.priority", construct="flowControl")
            if flow.priority is not None
            else None
        )
        rate = None
        if flow.rate_limit is not None:
            period = parse_duration(flow.rate_limit.per)
            if period <= 0:
                self.problem("flowControl.rateLimit.per", "must be longer than 0s")
            rate = (flow.rate_limit.tasks, period)
        if flow.concurrency is None and flow.priority is None and flow.rate_limit is None:
            self.problem("flowControl", "says nothing to do: give concurrency, priority or rateLimit")
        return FlowControl(key, flow.concurrency, priority, rate)

    def _workflow_timeout(self) -> int | None:
        if self.spec.timeout is None:
            return None
        milliseconds = parse_duration(self.spec.timeout)
        if milliseconds <= 0:
            self.problem("timeout", "must be longer than 0s: every execution would fail at its start")
        return milliseconds

    def _timeline(self) -> None:
        for index, entry in enumerate(self.spec.timeline):
            members = [entry] if isinstance(entry, str) else list(entry)
            path = f"timeline[{index}]"
            if not members:
                self.problem(path, "a parallel group needs at least one step")
                continue
            if len(members) > MAX_PARALLEL_STEPS:
                self.problem(
                    path,
                    f"a parallel group of {len(members)} steps is over the limit of {MAX_PARALLEL_STEPS} parallel"
                    " steps; split the work into batches, or fan out inside a step",
                )
                continue
            for offset, name in enumerate(members):
                here = path if isinstance(entry, str) else f"{path}[{offset}]"
                if name in RESERVED_STEP_NAMES:
                    self.problem(here, f"step name {name!r} is reserved (it names a step argument)")
                if name in self.where:
                    self.problem(here, f"duplicate step name {name!r}: already at {self.where[name]}")
                    continue
                self.where[name] = here
            self.positions.append(tuple(members))

    def _handlers(self) -> None:
        """Compensation and finally steps: named, run on workers, never in the timeline."""
        self.handlers: dict[str, str] = {}  # name -> the place that names it
        for index, name in enumerate(self.spec.finally_):
            self._handler(name, f"finally[{index}]")
        for step, own in self.spec.steps.items():
            if own.compensate is not None:
                if step not in self.where:
                    continue  # an unknown step: said by _references
                self._handler(own.compensate, f"steps.{step}.compensate")

    def _handler(self, name: str, path: str) -> None:
        if name in self.where:
            self.problem(
                path, f"{name!r} is a step of the timeline: a compensation or finally step runs only at the end"
            )
        elif name in self.handlers:
            self.problem(path, f"{name!r} is already a compensation or finally step, at {self.handlers[name]}")
        elif name in RESERVED_STEP_NAMES:
            self.problem(path, f"step name {name!r} is reserved (it names a step argument)")
        else:
            self.handlers[name] = path
            own = self.spec.steps.get(name)
            if own is None:
                return
            for field_name, camel in (
                ("approval", "approval"),
                ("timer", "timer"),
                ("when", "when"),
                ("set", "set"),
                ("compensate", "compensate"),
            ):
                if getattr(own, field_name) is not None:
                    self.problem(f"steps.{name}.{camel}", "a compensation or finally step runs a worker's task only")

    def _references(self) -> None:
        for section in ("steps", "diverge", "branch"):
            for name in getattr(self.spec, section):
                if name in self.handlers:
                    if section != "steps":
                        self.problem(
                            f"{section}.{name}",
                            f"{name!r} is a compensation or finally step: it has no {section} rules",
                        )
                elif name not in self.where:
                    self.problem(f"{section}.{name}", f"unknown step {name!r}: it is not in the timeline")

    def _step_configs(self) -> dict[str, StepConfig]:
        defaults = self.spec.defaults
        configs: dict[str, StepConfig] = {}
        placed = [*enumerate(self.positions), (-1, tuple(self.handlers))]
        for position, members in placed:
            for name in members:
                own = self.spec.steps.get(name)
                timeout = (own.timeout if own else None) or defaults.timeout
                heartbeat = (own.heartbeat_timeout if own else None) or defaults.heartbeat_timeout
                retry = (own.retry if own else None) or defaults.retry
                approval = own.approval if own else None
                timer = own.timer if own else None
                signal, child, continue_as_new = (
                    compile_composition(
                        name,
                        own,
                        problem=self.problem,
                        cel=lambda source, path: self.cel(source, path, construct="startInput"),
                        handler=position < 0,
                    )
                    if own is not None
                    else (None, None, None)
                )
                builtin = approval or timer or signal or child or continue_as_new
                to_start = self._schedule_to_start(name, own.schedule_to_start_timeout if own else None, builtin)
                duration_ms, until = self._timer(name, own) if own is not None and timer is not None else (None, None)
                configs[name] = StepConfig(
                    name=name,
                    position=position,
                    task_queue=(own.task_queue if own else None) or self.spec.task_queue,
                    timeout_ms=parse_duration(timeout),
                    lease_ms=parse_duration(heartbeat) if heartbeat else parse_duration(defaults.lease),
                    heartbeat_required=heartbeat is not None,
                    retry=retry_config(retry),
                    approval_kind=approval.kind if approval else None,
                    approval_timeout_ms=(parse_duration(approval.timeout) if approval and approval.timeout else None),
                    schedule_to_start_ms=to_start,
                    timer_duration_ms=duration_ms,
                    timer_until=until,
                    when=self.cel(own.when, f"steps.{name}.when", construct="when") if own and own.when else None,
                    assign=self._assignments(name, own.set) if own and own.set else (),
                    compensate=own.compensate if own else None,
                    handler=position < 0,
                    function=own.function if own else None,
                    depends_on=tuple(own.depends_on) if own else (),
                    args=self._args(name, own) if own is not None else (),
                    for_each=self._for_each(name, own, position) if own is not None and own.for_each else None,
                    signal=signal,
                    child=child,
                    continue_as_new=continue_as_new,
                )
        return configs

    def _assignments(self, name: str, assign: Mapping[str, str]) -> tuple[tuple[str, CelExpression], ...]:
        compiled = []
        for variable, source in assign.items():
            path = f"steps.{name}.set.{variable}"
            if variable not in self.spec.vars:
                declared = ", ".join(sorted(self.spec.vars)) or "none"
                self.problem(path, f"unknown variable {variable!r}: declare it in vars (declared: {declared})")
                continue
            program = self.cel(source, path, construct="set")
            if program is not None:
                compiled.append((variable, program))
        return tuple(compiled)

    def _for_each(self, name: str, own: StepSpec, position: int) -> ForEach | None:
        """A fan-out step: only a worker's task fans out, and only settings that apply per item."""
        spec, path = own.for_each, f"steps.{name}.forEach"
        assert spec is not None
        if own.approval or own.timer:
            self.problem(path, "an approval or timer step runs no worker: only a task can fan out")
        if position < 0:
            self.problem(path, "a compensation or finally step runs once: it cannot fan out")
        if own.schedule_to_start_timeout is not None or (
            self.spec.defaults.schedule_to_start_timeout is not None and own.approval is None and own.timer is None
        ):
            self.problem(
                path, "scheduleToStartTimeout does not apply to the items of a forEach step yet: remove one of them"
            )
        items = self.cel(spec.items, f"{path}.items", construct="items")
        if items is None:
            return None
        return ForEach(items=items, concurrency=spec.concurrency, collect=spec.on_item_failure == "collect")

    def _args(self, name: str, own: StepSpec) -> tuple[tuple[str, CelExpression], ...]:
        if (own.function is not None or own.args is not None) and (own.approval or own.timer):
            field_name = "function" if own.function is not None else "args"
            self.problem(f"steps.{name}.{field_name}", "an approval or timer step runs no worker function")
            return ()
        compiled = []
        for key, source in (own.args or {}).items():
            path = f"steps.{name}.args.{key}"
            if not _VARIABLE_NAME.fullmatch(key):
                self.problem(path, "an argument is a parameter's name: a letter or '_', then letters, digits or '_'")
                continue
            program = self.cel(source, path, construct="itemArgs" if own.for_each else "args")
            if program is not None:
                compiled.append((key, program))
        return tuple(compiled)

    def _variables(self) -> None:
        # Names are checked here, not by the spec's types: the CRD schema has no pattern for map keys.
        for name in self.spec.vars:
            if not _VARIABLE_NAME.fullmatch(name):
                self.problem(
                    f"vars.{name}",
                    "a variable name is read in CEL as vars.<name>: a letter or '_', then letters, digits"
                    " or '_', at most 63 characters",
                )
        if len(self.spec.vars) > limits.MAX_VARIABLES:
            self.problem("vars", f"{len(self.spec.vars)} variables, over the limit of {limits.MAX_VARIABLES}")
        size = limits.json_size(self.spec.vars)
        if size > limits.MAX_VARIABLES_BYTES:
            self.problem(
                "vars",
                f"the initial values are {limits.describe_size(size)}, over the"
                f" {limits.describe_size(limits.MAX_VARIABLES_BYTES)} limit of all variables",
            )

    def _timer(self, name: str, own: StepSpec) -> tuple[int | None, CelExpression | None]:
        """(duration in ms, until expression) of a timer step; problems for what it cannot honour."""
        timer, path = own.timer, f"steps.{name}.timer"
        assert timer is not None
        if own.approval is not None:
            self.problem(path, "a step is a timer or an approval, not both")
        # What only a worker's task would use: refused rather than silently ignored.
        for field_name in ("timeout", "heartbeat_timeout", "retry", "task_queue"):
            if getattr(own, field_name) is not None:
                camel = "".join(part.title() if i else part for i, part in enumerate(field_name.split("_")))
                self.problem(f"steps.{name}.{camel}", "a timer step has no task for a worker: it takes no " + camel)
        if (timer.duration is None) == (timer.until is None):
            self.problem(path, "a timer needs exactly one of 'duration' or 'until'")
            return None, None
        if timer.duration is not None:
            return parse_duration(timer.duration), None
        assert timer.until is not None
        return None, self.cel(timer.until, f"{path}.until", construct="timer")

    def _schedule_to_start(self, name: str, own: str | None, builtin: object | None) -> int | None:
        """The step's scheduleToStartTimeout in ms; an approval or timer step has no task, so none."""
        if builtin is not None:
            if own is not None:
                self.problem(
                    f"steps.{name}.scheduleToStartTimeout",
                    "an approval or timer step has no task for a worker to start",
                )
            return None
        text, path = (
            (own, f"steps.{name}") if own is not None else (self.spec.defaults.schedule_to_start_timeout, "defaults")
        )
        if text is None:
            return None
        milliseconds = parse_duration(text)
        if milliseconds <= 0:
            self.problem(f"{path}.scheduleToStartTimeout", "must be longer than 0s: no worker could take the task")
            return None
        return milliseconds

    def _goto_target(self, path: str, target: str) -> None:
        if target not in self.where:
            self.problem(path, f"unknown step {target!r}: goto target is not in the timeline")

    def _diverge(self) -> dict[str, tuple[CompiledDiverge, ...]]:
        compiled: dict[str, tuple[CompiledDiverge, ...]] = {}
        for step, rules in self.spec.diverge.items():
            out = []
            for index, rule in enumerate(rules):
                path = f"diverge.{step}[{index}]"
                compiled_rule = self._diverge_rule(step, index, path, rule)
                if compiled_rule is not None:
                    out.append(compiled_rule)
            compiled[step] = tuple(out)
        return compiled

    def _diverge_rule(self, step: str, index: int, path: str, rule: DivergeRule) -> CompiledDiverge | None:
        if (rule.then is None) == (rule.goto is None):
            self.problem(
                path,
                "a diverge rule needs exactly one of 'then' (retry, fail, continue, succeed, continueAsNew) or 'goto'",
            )
            return None
        if rule.message is not None and rule.then != "fail":
            self.problem(f"{path}.message", "a message is the reason of a failure: it goes with then: fail")
        next_input = self._next_input(rule.then, rule.input, path, construct="diverge")
        if rule.after_retries and rule.then == "retry":
            self.problem(f"{path}.afterRetries", "a rule consulted once the retries are spent cannot retry")
        if rule.after_retries and rule.match is not None and rule.match.result is not None:
            self.problem(
                f"{path}.afterRetries", "retries follow failures: a rule matching a result has none to wait for"
            )
        match = rule.match
        if rule.when is None and (match is None or (match.error is None and match.result is None)):
            self.problem(path, "a diverge rule needs 'match' (error or result) or a 'when' condition")
            return None
        if match is not None and match.error is not None and match.result is not None:
            self.problem(path, "match either an error or a result, not both")
            return None
        when = self.cel(rule.when, f"{path}.when", construct="diverge") if rule.when is not None else None
        if rule.goto is not None:
            self._goto_target(f"{path}.goto", rule.goto)
        return CompiledDiverge(
            key=f"diverge.{step}[{index}]",
            step=step,
            match_error_type=match.error.type if match and match.error else None,
            match_message_contains=match.error.message_contains if match and match.error else None,
            match_result=match.result if match else None,
            when=when,
            then="goto" if rule.goto is not None else rule.then or "continue",
            goto=rule.goto,
            max_iterations=rule.max_iterations,
            message=rule.message,
            after_retries=rule.after_retries,
            input=next_input,
        )

    def _next_input(self, then: str | None, source: str | None, path: str, *, construct: str) -> CelExpression | None:
        """A rule's next-run input: CEL, allowed only with ``then: continueAsNew``."""
        if source is None:
            return None
        if then != "continueAsNew":
            self.problem(f"{path}.input", "an input is the next run's: it goes with then: continueAsNew")
            return None
        return self.cel(source, f"{path}.input", construct=construct)

    def _branch(self) -> dict[str, tuple[CompiledBranch, ...]]:
        compiled: dict[str, tuple[CompiledBranch, ...]] = {}
        for step, rules in self.spec.branch.items():
            out = []
            for index, rule in enumerate(rules):
                path = f"branch.{step}[{index}]"
                program = self.cel(rule.when, f"{path}.when", construct="branch")
                if (rule.then is None) == (rule.goto is None):
                    self.problem(
                        path, "a branch rule needs exactly one of 'goto' or 'then' (succeed, fail, continueAsNew)"
                    )
                    continue
                if rule.message is not None and rule.then != "fail":
                    self.problem(f"{path}.message", "a message is the reason of a failure: it goes with then: fail")
                next_input = self._next_input(rule.then, rule.input, path, construct="branch")
                if rule.goto is not None:
                    self._goto_target(f"{path}.goto", rule.goto)
                if program is not None:
                    then = rule.then or "goto"
                    out.append(
                        CompiledBranch(
                            path, step, program, rule.goto, rule.max_iterations, then, rule.message, next_input
                        )
                    )
            compiled[step] = tuple(out)
        return compiled

    def _jumps(
        self,
        diverge: Mapping[str, tuple[CompiledDiverge, ...]],
        branch: Mapping[str, tuple[CompiledBranch, ...]],
    ) -> list[tuple[str, str, str, int | None, bool]]:
        """(rule key, from step, to step, bound, unconditional) for every goto."""
        jumps: list[tuple[str, str, str, int | None, bool]] = []
        for rules in diverge.values():
            for d in rules:
                if d.goto is not None and d.goto in self.where:
                    jumps.append((d.key, d.step, d.goto, d.max_iterations, False))
        for branch_rules in branch.values():
            for b in branch_rules:
                if b.goto is not None and b.goto in self.where:
                    jumps.append((b.key, b.step, b.goto, b.max_iterations, b.when.source.strip() == "true"))
        return jumps

    def _endings(
        self,
        diverge: Mapping[str, tuple[CompiledDiverge, ...]],
        branch: Mapping[str, tuple[CompiledBranch, ...]],
    ) -> set[str]:
        """Steps after which the execution always ends: an unconditional branch rule that ends it."""
        del diverge  # a diverge rule matches some outcomes only
        return {
            b.step for rules in branch.values() for b in rules if b.goto is None and b.when.source.strip() == "true"
        }

    def _position(self, step: str) -> int:
        return next(i for i, members in enumerate(self.positions) if step in members)

    def _loops(
        self,
        diverge: Mapping[str, tuple[CompiledDiverge, ...]],
        branch: Mapping[str, tuple[CompiledBranch, ...]],
    ) -> None:
        for key, source, target, bound, _ in self._jumps(diverge, branch):
            if source not in self.where:
                continue
            if self._position(target) <= self._position(source) and bound is None:
                self.problem(
                    f"{key}.goto",
                    f"goto from {source!r} back to {target!r} forms a loop with no bound: set maxIterations",
                )

    def _reachability(
        self,
        diverge: Mapping[str, tuple[CompiledDiverge, ...]],
        branch: Mapping[str, tuple[CompiledBranch, ...]],
    ) -> None:
        edges: dict[int, set[int]] = {i: set() for i in range(len(self.positions))}
        falls_through = dict.fromkeys(range(len(self.positions)), True)
        for _, source, target, _, unconditional in self._jumps(diverge, branch):
            origin = self._position(source)
            edges[origin].add(self._position(target))
            if unconditional:
                falls_through[origin] = False
        for step in self._endings(diverge, branch):
            falls_through[self._position(step)] = False
        for i in range(len(self.positions) - 1):
            if falls_through[i]:
                edges[i].add(i + 1)
        seen = {0}
        frontier = [0]
        while frontier:
            for nxt in edges[frontier.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
        for i, members in enumerate(self.positions):
            if i not in seen:
                for name in members:
                    self.problem(self.where[name], f"step {name!r} is unreachable: every path jumps over it")
