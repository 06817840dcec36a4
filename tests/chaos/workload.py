"""The chaos suite's workflow, its inputs, and what each input must end in.

One workflow exercises every kind of step the engine has: a parallel group, injected failures
that succeed after some retries, a durable sleep, an approval, a branch, a diverge rule and a
non-retryable error. Each execution's input names its *fate*, and the fate alone decides its
terminal phase, its output and which steps must have completed:

============  =====================================================================  ==========
fate          path                                                                   ends
============  =====================================================================  ==========
standard      prepare, fan_a/b/c, flaky, nap, gate (approved), route, standard,      Succeeded
              express, finish
express       the same, but route's branch jumps over ``standard``                    Succeeded
fatal         flaky raises a non-retryable error (``Fatal``)                         Failed
diverted      route returns ``verdict: refuse``; a diverge rule sends it to fail     Failed
rejected      the approver rejects ``gate``                                          Failed
cancelled     the approver cancels the execution while ``gate`` waits                Cancelled
============  =====================================================================  ==========

Injected failures are deterministic from the input and the attempt number: ``flaky`` fails its
first ``flaky_failures`` attempts (0 to 2) and ``fan_b`` its first attempt when ``fan_fail``.
Attempts lost to the chaos itself (a killed worker's lease expiring) only add attempts, so
``maxAttempts`` is high enough that they never exhaust a step.

Nothing here starts a process; the worker is ``tests/chaos/worker.py``, the driver ``driver.py``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

__all__ = [
    "APPROVER",
    "FATES",
    "SPEC",
    "STEPS",
    "TASK_QUEUE",
    "WORKFLOW",
    "Expected",
    "approval_decision",
    "expected",
    "make_inputs",
]

WORKFLOW = "chaos"
TASK_QUEUE = "chaos"
APPROVER = "chaos-approver"

PARALLEL = ["fan_a", "fan_b", "fan_c"]
STEPS = ["prepare", *PARALLEL, "flaky", "nap", "gate", "route", "standard", "express", "finish"]
WORKER_STEPS = [step for step in STEPS if step != "gate"]

SPEC: dict[str, Any] = {
    "taskQueue": TASK_QUEUE,
    "defaults": {
        # A killed worker is noticed after the lease; the SDK heartbeats every lease/3 meanwhile.
        "lease": "4s",
        "timeout": "2m",
        "retry": {
            "maxAttempts": 12,
            "initialInterval": "200ms",
            "backoffCoefficient": 2,
            "maxInterval": "2s",
            "nonRetryableErrors": ["Fatal"],
        },
    },
    "timeline": ["prepare", PARALLEL, "flaky", "nap", "gate", "route", "standard", "express", "finish"],
    "steps": {"gate": {"approval": {"timeout": "1h"}}},
    "diverge": {"route": [{"match": {"result": {"verdict": "refuse"}}, "then": "fail"}]},
    "branch": {"route": [{"when": "result.express", "goto": "express"}]},
}

# How often each fate is drawn.
FATES: dict[str, int] = {
    "standard": 45,
    "express": 20,
    "fatal": 10,
    "diverted": 10,
    "rejected": 10,
    "cancelled": 5,
}


@dataclass(frozen=True, slots=True)
class Expected:
    """What an execution with a given input must end as."""

    phase: str
    completed: frozenset[str]  # worker steps that must have a StepCompleted (and a ledger end) in the history
    skipped: frozenset[str]  # worker steps that must never run at all
    output: Any = None  # the execution's output when it succeeds
    failed_step: str | None = None  # the step named by ExecutionFailed
    error_contains: str | None = None


def make_inputs(count: int, rng: random.Random) -> list[dict[str, Any]]:
    """``count`` inputs with fates drawn by weight, each with its own injected failures and sleep."""
    fates = rng.choices(list(FATES), weights=list(FATES.values()), k=count)
    return [
        {
            "n": n,
            "fate": fate,
            "flaky_failures": rng.randint(0, 2),
            "fan_fail": rng.random() < 0.3,
            "sleep_ms": rng.randint(1000, 3000),
            # Most steps are quick; some take long enough that kills often land in the middle of them.
            "work_ms": rng.randint(0, 50) if rng.random() < 0.7 else rng.randint(100, 600),
        }
        for n, fate in enumerate(fates)
    ]


def expected(input: dict[str, Any], *, approver: str = APPROVER) -> Expected:
    fate = input["fate"]
    before_gate = frozenset(["prepare", *PARALLEL, "flaky", "nap"])
    if fate == "fatal":
        return Expected(
            "Failed",
            frozenset(["prepare", *PARALLEL]),
            frozenset(["nap", "route", "standard", "express", "finish"]),
            failed_step="flaky",
            error_contains="Fatal",
        )
    if fate in ("rejected", "cancelled"):
        return Expected(
            "Failed" if fate == "rejected" else "Cancelled",
            before_gate,
            frozenset(["route", "standard", "express", "finish"]),
            failed_step="gate" if fate == "rejected" else None,
            error_contains="ApprovalRejected" if fate == "rejected" else None,
        )
    if fate == "diverted":
        return Expected(
            "Failed",
            before_gate | {"route"},  # route completed; the rule on its result fails the execution
            frozenset(["standard", "express", "finish"]),
            failed_step="route",
            error_contains="diverge",
        )
    express = fate == "express"
    via = "express" if express else "standard"
    completed = before_gate | {"route", "express", "finish"} | (set() if express else {"standard"})
    output = {"n": input["n"], "via": via, "approver": approver, "ticket": f"T-{input['n']}", "napped": True}
    return Expected(
        "Succeeded", frozenset(completed), frozenset(["standard"]) if express else frozenset(), output=output
    )


def approval_decision(input: dict[str, Any]) -> str:
    """What the test's approver does with an execution waiting at ``gate``: approve, reject or cancel."""
    return {"rejected": "reject", "cancelled": "cancel"}.get(input["fate"], "approve")
