"""Unit tests of the order steps: no engine, no worker, no protobuf."""

from orders import archive, charge, settle

from cerebelum import RetryAfter, StepCancelled
from cerebelum.testing import StepEnvironment


def test_charge_returns_what_it_charged() -> None:
    result = StepEnvironment(input={"id": "o-1", "amount": 42}).run(charge)

    assert result.kind == "success"
    assert result.output == {"order": "o-1", "charged": 42}


def test_charge_refuses_an_empty_order_for_good() -> None:
    result = StepEnvironment(input={"id": "o-1", "amount": 0}).run(charge)

    assert result.kind == "failure"
    assert result.failure is not None
    assert (result.failure.type, result.failure.non_retryable) == ("EmptyOrder", True)


def test_settle_looks_again_later_until_the_payment_settles() -> None:
    charged = {"charge": {"order": "o-1", "charged": 42}}

    first = StepEnvironment(results=charged, poll=0).run(settle)
    third = StepEnvironment(results=charged, poll=2).run(settle)

    assert first.kind == "retry_after"
    assert first.retry_after == RetryAfter(delay_ms=100)
    assert third.output == {"settled": "o-1"}


def test_archive_reports_its_progress() -> None:
    env = StepEnvironment(results={"settle": {"settled": "o-1"}})

    result = env.run(archive)

    assert result.output == 3
    assert env.heartbeats == [{"archived": 0}, {"archived": 1}, {"archived": 2}]


def test_archive_stops_at_its_next_heartbeat_once_cancelled() -> None:
    env = StepEnvironment(results={"settle": {"settled": "o-1"}}, on_heartbeat=lambda progress: env.cancel())

    result = env.run(archive)

    assert result.kind == "cancelled"
    assert isinstance(result.exception, StepCancelled)
    assert env.heartbeats == [{"archived": 0}]


async def test_from_an_async_test_await_run_async() -> None:
    result = await StepEnvironment(input={"id": "o-2", "amount": 7}).run_async(charge)

    assert result.output == {"order": "o-2", "charged": 7}
