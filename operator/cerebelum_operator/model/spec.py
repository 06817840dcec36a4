"""The Workflow spec: the document users write, and the schema of the Workflow CRD.

Field names are camelCase on the wire (YAML, JSON, the CRD) and snake_case in Python.
Only shape is checked here; `compile.compile_workflow` checks meaning (unknown steps,
loops, CEL) and names every problem with its place.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from .durations import DURATION_PATTERN, parse_duration
from .limits import MAX_APPROVAL_KIND, MAX_ERROR_TYPE, MAX_FOR_EACH_CONCURRENCY, MAX_MESSAGE, MAX_NAME

__all__ = [
    "ApprovalSpec",
    "BranchRule",
    "ChildSpec",
    "CodeSpec",
    "ContinueAsNewSpec",
    "DivergeRule",
    "Duration",
    "ErrorMatch",
    "FlowControlSpec",
    "ForEachSpec",
    "OutcomeMatch",
    "RateLimitSpec",
    "RetryPolicy",
    "SignalSpec",
    "StepDefaults",
    "StepSpec",
    "TimerSpec",
    "WorkflowSpec",
]


def _valid_duration(text: str) -> str:
    parse_duration(text)
    return text


def _valid_ttl(text: str) -> str:
    if text != "never":
        try:
            parse_duration(text)
        except ValueError as bad:
            raise ValueError(f"{bad}, or never") from None
    return text


# Every string of a spec is bounded: the spec is copied into the store and its names, kinds and
# error types end up in events, tasks and the CRD's validation cost (model/limits.py says why).
Duration = Annotated[str, AfterValidator(_valid_duration), Field(max_length=64, pattern=DURATION_PATTERN)]
# A time-to-live: a duration, or "never" (kept for ever).
TimeToLive = Annotated[
    str, AfterValidator(_valid_ttl), Field(max_length=64, pattern=f"^(never|{DURATION_PATTERN[1:-1]})$")
]
StepName = Annotated[str, Field(max_length=63, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,62}$")]
QueueName = Annotated[str, Field(min_length=1, max_length=MAX_NAME)]
ErrorType = Annotated[str, Field(min_length=1, max_length=MAX_ERROR_TYPE)]
# The CEL library recurses natively while parsing and evaluating: some 20,000 chained operators
# overflow its stack and kill the process, so expressions are bounded well below that.
MAX_CEL_CHARS = 4096
CelSource = Annotated[str, Field(max_length=MAX_CEL_CHARS)]


class _Spec(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class RetryPolicy(_Spec):
    """Exponential backoff between attempts; maxAttempts counts the first one."""

    max_attempts: int = Field(default=3, ge=1, le=1000)
    initial_interval: Duration = "1s"
    backoff_coefficient: float = Field(default=2.0, ge=1.0, le=100.0)
    max_interval: Duration = "1m"
    jitter: float = Field(default=0.1, ge=0.0, le=1.0, description="Fraction of each delay randomised.")
    non_retryable_errors: list[ErrorType] = Field(default_factory=list)


class ApprovalSpec(_Spec):
    """A built-in step that waits for a human; no worker runs it."""

    timeout: Duration | None = None
    kind: str = Field(default="approval", min_length=1, max_length=MAX_APPROVAL_KIND)


class TimerSpec(_Spec):
    """A built-in step that waits, with no worker: for a duration, or until a CEL timestamp."""

    duration: Duration | None = None
    until: CelSource | None = Field(
        default=None, description="CEL over input and steps giving a timestamp (or RFC 3339 text) to wake at."
    )


class ForEachSpec(_Spec):
    """Run the step once per item of a list computed as the step is reached (a fan-out)."""

    items: CelSource = Field(description="CEL over input, steps and vars giving the list (at most 10,000 items).")
    concurrency: int = Field(default=100, ge=1, le=MAX_FOR_EACH_CONCURRENCY, description="Items in flight at once.")
    on_item_failure: Literal["failFast", "collect"] = Field(
        default="failFast",
        description="failFast: the first item whose retries run out fails the step and stops the others;"
        " collect: every item runs, a failed one's place in the result holds its error.",
    )


SignalName = Annotated[str, Field(max_length=63, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,62}$")]
WorkflowName = Annotated[str, Field(min_length=1, max_length=MAX_NAME, pattern=r"^[^/]+$")]


class SignalSpec(_Spec):
    """A built-in step that waits for a named signal; no worker runs it.

    Its result is ``{"name", "data", "sender", "receivedAt"}`` of the signal it took: the oldest
    one of that name the execution received and no step took yet.
    """

    name: SignalName
    timeout: Duration | None = Field(
        default=None, description="Fail the step (SignalTimedOut, not retried) when no signal came within this."
    )


class ChildSpec(_Spec):
    """A built-in step that starts another workflow of this namespace and waits for its end."""

    workflow: WorkflowName = Field(description="The child's Workflow, looked up in this workflow's namespace.")
    input: CelSource | None = Field(default=None, description="CEL over input, steps and vars: the child's input.")
    on_parent_cancel: Literal["cancel", "abandon"] = Field(
        default="cancel",
        description="cancel: when this execution is cancelled or fails while the child runs, the child is"
        " cancelled; abandon: the child runs on.",
    )


class ContinueAsNewSpec(_Spec):
    """A built-in step that ends this run and starts the next run of the same logical execution."""

    input: CelSource | None = Field(
        default=None, description="CEL over input, steps and vars: the next run's input (by default this run's)."
    )


class StepSpec(_Spec):
    """Per-step settings; anything unset comes from the workflow's defaults."""

    timeout: Duration | None = None
    heartbeat_timeout: Duration | None = None
    schedule_to_start_timeout: Duration | None = Field(
        default=None, description="Fail the attempt when no worker takes its task within this."
    )
    retry: RetryPolicy | None = Field(default=None, description="Replaces defaults.retry whole (not merged).")
    task_queue: QueueName | None = None
    approval: ApprovalSpec | None = None
    timer: TimerSpec | None = None
    when: CelSource | None = Field(
        default=None, description="CEL over input, steps and vars: when false as the step is reached, it is skipped."
    )
    depends_on: list[StepName] = Field(
        default_factory=list,
        max_length=1000,
        description="Steps of the same parallel group this one waits for (a graph inside the group).",
    )
    function: StepName | None = Field(
        default=None,
        description="The worker function that runs this step (by default the one registered under its name).",
    )
    args: dict[str, CelSource] | None = Field(
        default=None, description="Arguments for the function, each CEL over input, steps and vars."
    )
    compensate: StepName | None = Field(
        default=None,
        description="The step that undoes this one, run once if the execution fails or is cancelled after it.",
    )
    set: dict[str, CelSource] | None = Field(
        default=None,
        description="Workflow variables assigned after the step succeeds: CEL over result, input, steps and vars.",
    )
    for_each: ForEachSpec | None = Field(
        default=None, description="Run the step once per item of a run-time list; its result is their list."
    )
    signal: SignalSpec | None = Field(default=None, description="Wait for a named signal; no worker runs it.")
    child: ChildSpec | None = Field(default=None, description="Run another workflow as a child and wait for it.")
    continue_as_new: ContinueAsNewSpec | None = Field(
        default=None, description="End this run and start the next one of the same execution, with a new input."
    )


class StepDefaults(_Spec):
    timeout: Duration = "5m"
    heartbeat_timeout: Duration | None = None
    schedule_to_start_timeout: Duration | None = Field(
        default=None, description="Fail an attempt when no worker takes its task within this (not retried)."
    )
    lease: Duration = Field(default="30s", description="How long a worker that stopped answering keeps its task.")
    retry: RetryPolicy = Field(default_factory=RetryPolicy)


class ErrorMatch(_Spec):
    type: ErrorType | None = None
    message_contains: str | None = Field(default=None, max_length=MAX_MESSAGE)


class OutcomeMatch(_Spec):
    """Matches a failure by error type/message, or a success by a subset of its result."""

    error: ErrorMatch | None = None
    result: dict[str, Any] | None = None


class DivergeRule(_Spec):
    """On a step's outcome: the first matching rule decides what happens next."""

    match: OutcomeMatch | None = None
    when: CelSource | None = Field(default=None, description="CEL over result, error, input and steps.")
    then: Literal["retry", "fail", "continue", "succeed", "continueAsNew"] | None = None
    goto: StepName | None = None
    input: CelSource | None = Field(
        default=None,
        description="With then: continueAsNew, the next run's input (CEL); this run's input when not given.",
    )
    max_iterations: int | None = Field(default=None, ge=1, le=10_000)
    after_retries: bool = Field(
        default=False,
        description="Consulted only once the retry policy gave up on a failure (attempts spent, or not retryable).",
    )
    message: str | None = Field(
        default=None, max_length=MAX_MESSAGE, description="The failure's reason, with then: fail."
    )


class BranchRule(_Spec):
    """After a step succeeds: the first rule whose CEL condition is true jumps to its target,
    ends the execution (``then: succeed`` or ``fail``), or ends the run and starts the next
    (``then: continueAsNew``)."""

    when: CelSource
    goto: StepName | None = None
    then: Literal["succeed", "fail", "continueAsNew"] | None = None
    input: CelSource | None = Field(
        default=None,
        description="With then: continueAsNew, the next run's input (CEL); this run's input when not given.",
    )
    max_iterations: int | None = Field(default=None, ge=1, le=10_000)
    message: str | None = Field(
        default=None, max_length=MAX_MESSAGE, description="The failure's reason, with then: fail."
    )


TimelineEntry = StepName | list[StepName]


class CodeSpec(_Spec):
    """A code workflow: a function that workers registered runs the orchestration, with replay."""

    function: StepName = Field(description="The workflow function workers registered (@worker.workflow()).")
    task_queue: QueueName | None = Field(
        default=None, description="Where its workflow tasks go; by default the workflow's taskQueue."
    )


class RateLimitSpec(_Spec):
    """At most ``tasks`` tasks handed out per ``per`` (for each flow key)."""

    tasks: int = Field(ge=1, le=1_000_000)
    per: Duration = "1s"


class FlowControlSpec(_Spec):
    """Who waits for whom: executions grouped by a key, a limit per key, priorities and rates."""

    key: CelSource | None = Field(
        default=None,
        description="CEL over `input`: the execution's flow key (a customer id); absent: one key for the workflow.",
    )
    concurrency: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="At most this many executions of a key run at once; the others wait, Queued, oldest first.",
    )
    priority: CelSource | None = Field(
        default=None,
        description="CEL over `input`, an integer from -1000 to 1000 (default 0): higher runs first, per key.",
    )
    rate_limit: RateLimitSpec | None = Field(
        default=None, description="At most this many of a key's tasks handed out per period."
    )


class WorkflowSpec(_Spec):
    task_queue: QueueName = "default"
    input: dict[str, Any] | None = Field(default=None, description="JSON Schema for the input.")
    defaults: StepDefaults = Field(default_factory=StepDefaults)
    timeline: list[TimelineEntry] = Field(
        default_factory=list, description="The steps in order (a list is a parallel group); or `code`."
    )
    code: CodeSpec | None = Field(
        default=None,
        description="A code workflow: the function that orchestrates it, run by workers, instead of a timeline.",
    )
    steps: dict[str, StepSpec] = Field(default_factory=dict)
    diverge: dict[str, list[DivergeRule]] = Field(default_factory=dict)
    branch: dict[str, list[BranchRule]] = Field(default_factory=dict)
    output: CelSource | None = Field(default=None, description="CEL over input and steps.")
    timeout: Duration | None = Field(
        default=None, description="The whole execution fails when it has not finished within this of its start."
    )
    finally_: list[StepName] = Field(
        default_factory=list,
        alias="finally",
        max_length=100,
        description="Steps run in order when the execution ends: succeeded, failed, cancelled or timed out.",
    )
    vars: dict[str, Any] = Field(
        default_factory=dict,
        description="Workflow variables and their initial values; steps' `set` assigns them, CEL reads `vars`.",
    )
    flow_control: FlowControlSpec | None = Field(
        default=None,
        description="Concurrency limits per key, priorities and rate limits, exact across the engine's restarts.",
    )
    ttl_after_finished: TimeToLive | None = Field(
        default=None,
        description="Kubernetes: how long an Execution object is kept once it finished, then deleted with its"
        " Approvals and Signals (the history stays in the store); `never` keeps it; unset: the operator's"
        " --execution-ttl. The execution keeps the value it started with.",
    )
