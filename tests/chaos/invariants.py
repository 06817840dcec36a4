"""What must hold after a chaos run, checked against the store's histories and the workers' ledger.

Pure: histories, execution rows and ledger lines in; a list of violations and the run's figures
out. Each violation names the execution and what is wrong, so a failing run says where to look.

The invariants:

* **nothing lost**: every execution the driver started exists;
* **its fate**: each ends in the phase its input dictates, with the expected output, failed step
  and error; the steps its path needs completed, the steps its path skips never scheduled;
* **a gapless history**: sequence numbers 1..N, ``ExecutionStarted`` first, exactly one terminal
  event and nothing after it;
* **every attempt recorded once**: per (step, attempt) at most one ``StepStarted`` and at most
  one outcome (``StepCompleted`` or ``StepFailed``), per task token one ``StepScheduled``; an
  outcome only after its start, a start only after its scheduling;
* **the ledger agrees** (side effects, recorded by the workers outside the engine): every attempt
  a worker ran was leased in the history first (a task reaches a worker only after its lease is
  durable); every ``StepCompleted`` has the worker's ``end`` of that attempt before it (the
  history never claims a side effect that did not happen); each needed step completed at least
  once; no attempt was run twice;
* **nothing runs after its execution finished**: no ledger ``start`` later than the execution's
  terminal event.

Clocks: ledger times are the workers' ``time.time()``, event times the engine's
``time.time_ns() // 1e6`` taken when it decided (just before the commit), on the same machine.
So an event can look up to 1 ms early against a ledger line; ``CLOCK_TOLERANCE_S`` allows 50 ms.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .workload import APPROVER, Expected, expected

__all__ = ["CLOCK_TOLERANCE_S", "Event", "Verdict", "verify"]

CLOCK_TOLERANCE_S = 0.05
TERMINAL_EVENTS = {"ExecutionSucceeded": "Succeeded", "ExecutionFailed": "Failed", "ExecutionCancelled": "Cancelled"}
OUTCOMES = ("StepCompleted", "StepFailed")


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    at_ms: int
    kind: str
    data: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Row:
    """The execution index row: what a client sees."""

    phase: str
    output: Any
    error: str | None


@dataclass
class Verdict:
    violations: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def add(self, execution: str, problem: str) -> None:
        self.violations.append(f"{execution}: {problem}")


def verify(
    inputs: Mapping[str, dict[str, Any]],
    rows: Mapping[str, Row | None],
    histories: Mapping[str, Sequence[Event]],
    ledger: Iterable[Mapping[str, Any]],
    *,
    approver: str = APPROVER,
) -> Verdict:
    """Check every invariant for the executions in ``inputs`` (execution id -> input).

    ``approver`` is who the store records as approving (the operator: the user admission stamped).
    """
    verdict = Verdict()
    runs: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for line in ledger:
        runs[str(line["execution"])].append(line)
    unknown = set(runs) - set(inputs)
    for execution in sorted(unknown):
        verdict.add(execution, f"the ledger has {len(runs[execution])} lines of an execution nobody started")
    figures: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    for execution, input in inputs.items():
        row = rows.get(execution)
        if row is None:
            verdict.add(execution, "lost: started, but the store has no such execution")
            continue
        history = list(histories.get(execution, ()))
        _check_one(
            verdict,
            execution,
            expected(input, approver=approver),
            row,
            history,
            runs.get(execution, []),
            figures,
            failures,
        )
    verdict.figures = {**dict(sorted(figures.items())), "failed_attempts_by_error": dict(failures.most_common())}
    return verdict


def _check_one(
    verdict: Verdict,
    execution: str,
    want: Expected,
    row: Row,
    history: list[Event],
    runs: list[Mapping[str, Any]],
    figures: Counter[str],
    failures: Counter[str],
) -> None:
    def bad(problem: str) -> None:
        verdict.add(execution, problem)

    figures[f"phase_{row.phase}"] += 1
    figures["executions"] += 1
    figures["events"] += len(history)
    # -- the fate its input dictates
    if row.phase != want.phase:
        bad(f"ended {row.phase} ({row.error}), expected {want.phase}")
    if want.output is not None and row.output != want.output:
        bad(f"output {row.output!r}, expected {want.output!r}")
    if want.error_contains is not None and want.error_contains not in (row.error or ""):
        bad(f"error {row.error!r} does not mention {want.error_contains!r}")

    # -- a gapless history with one terminal event, last
    seqs = [e.seq for e in history]
    if seqs != list(range(1, len(history) + 1)):
        missing = sorted(set(range(1, max(seqs, default=0) + 1)) - set(seqs))
        duplicated = sorted(s for s, n in Counter(seqs).items() if n > 1)
        bad(f"sequence numbers are not 1..{len(history)}: missing {missing[:10]}, duplicated {duplicated[:10]}")
    if not history or history[0].kind != "ExecutionStarted":
        bad(f"the history does not begin with ExecutionStarted: {[e.kind for e in history[:1]]}")
    terminal = [e for e in history if e.kind in TERMINAL_EVENTS]
    if len(terminal) != 1:
        bad(f"{len(terminal)} terminal events: {[e.kind for e in terminal]}")
    elif history[-1] is not terminal[0]:
        after = [e.kind for e in history[history.index(terminal[0]) + 1 :]]
        bad(f"events after {terminal[0].kind}: {after}")
    elif TERMINAL_EVENTS[terminal[0].kind] != row.phase:
        bad(f"the history ends {terminal[0].kind} but the index row says {row.phase}")
    if terminal and want.failed_step is not None and terminal[0].data.get("step") != want.failed_step:
        bad(f"{terminal[0].kind} names step {terminal[0].data.get('step')!r}, expected {want.failed_step!r}")
    finished_at_s = terminal[0].at_ms / 1000 if terminal else None

    # -- every attempt recorded exactly once, in order
    scheduled: Counter[str] = Counter()
    started: dict[tuple[str, int], Event] = {}
    outcome: dict[tuple[str, int], Event] = {}
    scheduled_steps: set[str] = set()
    for e in history:
        step, attempt = e.data.get("step"), e.data.get("attempt")
        key = (str(step), int(attempt or 0))
        if e.kind == "StepScheduled":
            scheduled[e.data["token"]] += 1
            scheduled_steps.add(str(step))
        elif e.kind == "StepStarted":
            if key in started:
                bad(f"StepStarted twice for {key} (seq {started[key].seq} and {e.seq})")
            if scheduled[e.data["token"]] == 0:
                bad(f"StepStarted {key} (seq {e.seq}) for a token never scheduled")
            started[key] = e
            figures["attempts"] += 1
        elif e.kind in OUTCOMES:
            if key in outcome:
                bad(f"{e.kind} {key} (seq {e.seq}) after {outcome[key].kind} (seq {outcome[key].seq})")
            if key not in started and not str(e.data.get("token", "")).startswith("approval:"):
                bad(f"{e.kind} {key} (seq {e.seq}) for an attempt never started")
            outcome[key] = e
            if e.kind == "StepCompleted":
                figures["steps_completed"] += 1
            else:
                failures[str(e.data.get("error_type"))] += 1
    for token, count in scheduled.items():
        if count > 1:
            bad(f"StepScheduled {count} times for token {token}")
    completed_steps = {step for (step, _), e in outcome.items() if e.kind == "StepCompleted"}
    for step in sorted(want.completed - completed_steps):
        bad(f"step {step} never completed")
    for step in sorted(want.skipped & scheduled_steps):
        bad(f"step {step} was scheduled but this input's path skips it")

    # -- the ledger: side effects, as the workers saw them
    starts: Counter[tuple[str, int]] = Counter()
    ends: dict[tuple[str, int], Mapping[str, Any]] = {}
    ok_ends: Counter[str] = Counter()
    for line in runs:
        key = (str(line["step"]), int(line["attempt"]))
        if line["event"] == "start":
            starts[key] += 1
            figures["ledger_runs"] += 1
            lease = started.get(key)
            if lease is None:
                bad(f"a worker ran {key} (pid {line['pid']}), which the history never leased")
            elif line["at"] < lease.at_ms / 1000 - CLOCK_TOLERANCE_S:
                bad(f"a worker ran {key} at {line['at']:.3f}, before its lease at {lease.at_ms / 1000:.3f}")
            closed = outcome.get(key)
            if closed is not None and line["at"] > closed.at_ms / 1000 + CLOCK_TOLERANCE_S:
                figures["runs_after_their_attempt_closed"] += 1
            if finished_at_s is not None and line["at"] > finished_at_s + CLOCK_TOLERANCE_S:
                bad(
                    f"{key} started at {line['at']:.3f} (pid {line['pid']}), "
                    f"{line['at'] - finished_at_s:.3f} s after the execution finished"
                )
        elif line["event"] == "end":
            ends[key] = line
            if line.get("outcome") in ("ok", "sleep"):
                ok_ends[key[0]] += 1
    for key, count in starts.items():
        if count > 1:
            bad(f"attempt {key} ran {count} times: one lease, one run")
    for key, e in outcome.items():
        if e.kind != "StepCompleted" or key[0] == "gate":
            continue
        end = ends.get(key)
        if end is None or end.get("outcome") not in ("ok", "sleep"):
            bad(f"the history says {key} completed (seq {e.seq}) but no worker finished it: {end}")
        elif end["at"] > e.at_ms / 1000 + CLOCK_TOLERANCE_S:
            bad(f"{key} completed in the history at {e.at_ms / 1000:.3f}, before its worker finished it")
    for step in want.completed:
        if step != "gate" and ok_ends[step] == 0:
            bad(f"step {step} never completed in the ledger")
    # Side effects that happened more than once: a step whose work finished twice or more
    # (a completion lost with a killed worker or engine, then the step retried).
    figures["steps_with_repeated_side_effects"] += sum(1 for n in ok_ends.values() if n > 1)
    figures["repeated_side_effects"] += sum(n - 1 for n in ok_ends.values() if n > 1)


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50 and max (and the count), rounded for a report."""
    if not values:
        return {"count": 0}
    return {"count": len(values), "p50": round(statistics.median(values), 2), "max": round(max(values), 2)}
