"""Sleep and approval requested from TypeScript behave as when requested from Python.

The same workflow runs twice side by side, once on a Python worker and once on a TypeScript
one (two task queues), and the two executions must go through the same phases and events.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cerebelum import Client

from .conftest import Workers, event_types, read_ledger, wait_for_phase

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

LANGUAGES = ("python", "typescript")


def start_both(workers: Workers, client: Client, timeline: list[str], input: dict[str, object]) -> dict[str, str]:
    """Apply the timeline once per language (its own queue and worker), start both; id by language."""
    workers.python("py")
    workers.typescript("ts")
    ids = {}
    for language, queue in zip(LANGUAGES, ("py", "ts"), strict=True):
        client.apply_workflow(f"{language}-flow", {"taskQueue": queue, "timeline": timeline})
        ids[language] = client.start(f"{language}-flow", input).id
    return ids


def test_a_sleep_requested_from_typescript_behaves_as_from_python(
    workers: Workers, client: Client, ledger: Path
) -> None:
    ids = start_both(workers, client, ["nap", "after"], {"sleep_ms": 1500})
    sleeping = {language: wait_for_phase(client, execution_id, "Sleeping") for language, execution_id in ids.items()}
    for execution in sleeping.values():
        assert execution.wake_at is not None
        assert execution.step("nap") is not None
    finals = {language: client.wait(execution_id, timeout=60) for language, execution_id in ids.items()}
    for language, final in finals.items():
        assert final.phase == "Succeeded", (language, final.error)
        assert final.output == {"after": {"nap": {"napped": True}}}, language
        wake_at = sleeping[language].wake_at
        assert wake_at is not None
        after = next(r for r in read_ledger(ledger) if r["execution"] == final.id and r["step"] == "after")
        assert after["language"] == language
        assert after["at"] >= wake_at.timestamp()
    assert event_types(client, ids["typescript"]) == event_types(client, ids["python"])
    sleeps = {
        language: next(e.data for e in client.history(execution_id) if e.type == "SleepStarted")
        for language, execution_id in ids.items()
    }
    assert sleeps["typescript"].keys() == sleeps["python"].keys()


def test_an_approval_requested_from_typescript_behaves_as_from_python(
    workers: Workers, client: Client, ledger: Path
) -> None:
    ids = start_both(workers, client, ["ask", "after"], {"amount": 120})
    for language, execution_id in ids.items():
        waiting = wait_for_phase(client, execution_id, "WaitingForApproval")
        [pending] = waiting.pending_approvals
        assert (pending.step, pending.kind, pending.data) == ("ask", "refund", {"amount": 120}), language
        assert pending.timeout_at is not None
        client.approve(execution_id, "ask", approver="alice", payload={"ticket": f"CHG-{language}"})
    finals = {language: client.wait(execution_id, timeout=60) for language, execution_id in ids.items()}
    for language, final in finals.items():
        assert final.phase == "Succeeded", (language, final.error)
        ask = final.output["after"]["ask"]
        assert ask["approved"] is True
        assert ask["approver"] == "alice"
        assert ask["payload"] == {"ticket": f"CHG-{language}"}
        assert ask["data"] == {"amount": 120}
    assert event_types(client, ids["typescript"]) == event_types(client, ids["python"])
    languages = {r["execution"]: r["language"] for r in read_ledger(ledger) if r["step"] == "after"}
    assert languages == {ids["python"]: "python", ids["typescript"]: "typescript"}


def test_a_rejection_of_an_approval_requested_from_typescript_fails_the_step_as_from_python(
    workers: Workers, client: Client
) -> None:
    ids = start_both(workers, client, ["ask", "after"], {"amount": 5})
    for execution_id in ids.values():
        wait_for_phase(client, execution_id, "WaitingForApproval")
        client.reject(execution_id, "ask", approver="bob", reason="too much")
    finals = {language: client.wait(execution_id, timeout=60) for language, execution_id in ids.items()}
    assert {final.phase for final in finals.values()} == {"Failed"}
    assert event_types(client, ids["typescript"]) == event_types(client, ids["python"])
