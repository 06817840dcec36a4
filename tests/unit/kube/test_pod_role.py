"""The operator's pod role label (kube/pod_role.py), readiness with and without it, and its CLI option.

Retries and the attempt bound run on a `FakeClock` the tests move; nothing waits for real time.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import Status
from lightkube.resources.core_v1 import Pod
from lightkube.types import PatchType
from typer.testing import CliRunner

from cerebelum_operator.cli.main import app
from cerebelum_operator.kube import operator as operator_module
from cerebelum_operator.kube.health import HealthServer
from cerebelum_operator.kube.names import InvalidName
from cerebelum_operator.kube.operator import OperatorConfig
from cerebelum_operator.kube.pod_role import LEADER, ROLE_LABEL, STANDBY, PodRoleLabeler
from cerebelum_operator.runtime import FakeClock
from tests.support.waiting import advance_until, eventually


def api_error(code: int) -> ApiError:
    return ApiError(status=Status(code=code, message=f"HTTP {code}", reason="Testing"))


class FakeClient:
    """Stands in for lightkube's AsyncClient: fails the first patches with `failures`, records every call."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.patches: list[tuple[Any, str, Any, dict[str, Any]]] = []

    async def patch(self, resource: Any, name: str, obj: Any, **kwargs: Any) -> None:
        self.patches.append((resource, name, obj, kwargs))
        if self.failures:
            raise self.failures.pop(0)


def labeler(client: FakeClient, writes: list[str] | None = None, *, clock: FakeClock | None = None) -> PodRoleLabeler:
    return PodRoleLabeler(
        client,  # type: ignore[arg-type]
        namespace="cerebelum-system",
        name="cerebelum-7d9c-abcde",
        on_write=(lambda: writes.append("pod_role")) if writes is not None else None,
        retry_every_s=0.01,
        attempt_timeout_s=0.5,
        clock=clock or FakeClock(),
    )


async def test_a_label_is_a_merge_patch_of_the_own_pod_s_role_label_only_and_counts_as_a_write() -> None:
    client, writes = FakeClient(), list[str]()

    assert await labeler(client, writes).ensure(LEADER) is True

    assert client.patches == [
        (
            Pod,
            "cerebelum-7d9c-abcde",
            {"metadata": {"labels": {ROLE_LABEL: "leader"}}},
            {"namespace": "cerebelum-system", "patch_type": PatchType.MERGE},
        )
    ]
    assert writes == ["pod_role"]


@pytest.mark.parametrize(
    "failure", [api_error(503), api_error(500), api_error(429), ConnectionRefusedError("refused"), TimeoutError()]
)
async def test_on_the_way_up_a_label_that_fails_for_now_is_retried_until_written_and_said_loudly(
    failure: BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    client, clock = FakeClient(failure, failure, failure), FakeClock()

    with caplog.at_level(logging.INFO, logger="cerebelum_operator.kube.pod_role"):
        ensuring = asyncio.create_task(labeler(client, clock=clock).ensure(LEADER))
        await advance_until(clock, ensuring.done, step=0.01, what="the label written")
        assert ensuring.result() is True

    assert len(client.patches) == 4
    levels = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert levels[0][0] == logging.ERROR
    assert "no worker reaches this leader" in levels[0][1] and "retrying" in levels[0][1]
    assert [level for level, _ in levels[1:3]] == [logging.WARNING, logging.WARNING]
    assert levels[-1] == (
        logging.INFO,
        f"labelled pod cerebelum-system/cerebelum-7d9c-abcde {ROLE_LABEL}=leader after 4 attempts",
    )


@pytest.mark.parametrize("code", [403, 404, 422])
async def test_a_refusal_is_not_retried_but_raised_naming_what_the_operator_needs(
    code: int, caplog: pytest.LogCaptureFixture
) -> None:
    client = FakeClient(api_error(code))

    with pytest.raises(ApiError):
        await labeler(client).ensure(STANDBY)

    assert len(client.patches) == 1
    (record,) = caplog.records
    assert record.levelno == logging.ERROR and "get and patch on pods" in record.getMessage()


async def test_retrying_stops_when_the_operator_is_told_to_stop() -> None:
    client, clock = FakeClient(*[api_error(503)] * 1000), FakeClock()
    stop = asyncio.Event()
    ensuring = asyncio.create_task(labeler(client, clock=clock).ensure(LEADER, until=stop))
    await advance_until(clock, lambda: len(client.patches) >= 3, step=0.01, what="three attempts")
    await clock.wait_for_sleepers(1)  # between two attempts

    stop.set()

    await eventually(ensuring.done, what="ensure returning")
    assert ensuring.result() is False
    assert 3 <= len(client.patches) < 1000


async def test_a_request_that_hangs_is_an_attempt_that_failed() -> None:
    class HangingOnce(FakeClient):
        async def patch(self, resource: Any, name: str, obj: Any, **kwargs: Any) -> None:
            self.patches.append((resource, name, obj, kwargs))
            if len(self.patches) == 1:
                await asyncio.Event().wait()  # hangs until the labeller gives up on it

    client, clock = HangingOnce(), FakeClock()
    ensuring = asyncio.create_task(labeler(client, clock=clock).ensure(STANDBY))
    await eventually(lambda: client.patches, what="the first attempt")
    await clock.wait_for_sleepers(1)  # the attempt's bound
    await clock.advance(0.49)
    assert not ensuring.done() and len(client.patches) == 1, "gave up on the attempt before its bound"
    await advance_until(clock, ensuring.done, step=0.01, what="the label written")
    assert ensuring.result() is True
    assert len(client.patches) == 2


async def test_on_the_way_down_the_label_is_one_attempt_whose_failure_is_only_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = FakeClient(api_error(503))

    assert await labeler(client).try_label(STANDBY) is False
    assert await labeler(client).try_label(STANDBY) is True

    assert len(client.patches) == 2
    assert [r.levelno for r in caplog.records if r.levelno >= logging.WARNING] == [logging.WARNING]


def test_a_pod_name_that_is_not_a_kubernetes_name_is_refused_before_any_request() -> None:
    with pytest.raises(InvalidName, match="POD_NAME"):
        PodRoleLabeler(FakeClient(), namespace="cerebelum-system", name="../nodes/x")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("standby_ready", "role", "ready", "expected"),
    [
        (False, "standby", False, False),
        (False, "standby", True, False),  # without the label readiness routes: a standby is never Ready
        (True, "standby", False, False),  # not before its standby label is written
        (True, "standby", True, True),
        (False, "leader", True, True),
        (True, "leader", True, True),
        (True, "leader", False, False),
    ],
)
def test_a_standby_is_ready_only_when_the_pod_role_label_routes_the_workers(
    standby_ready: bool, role: str, ready: bool, expected: bool
) -> None:
    health = HealthServer("127.0.0.1:0", standby_ready=standby_ready)
    health.role, health.ready = role, ready
    assert health.is_ready() is expected


def run_operator_command(monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[Any, list[OperatorConfig]]:
    seen: list[OperatorConfig] = []

    async def fake_run(config: OperatorConfig) -> int:
        seen.append(config)
        return 0

    monkeypatch.setattr(operator_module, "run_operator", fake_run)
    return CliRunner().invoke(app, ["operator", *args]), seen


def test_pod_role_labels_are_off_unless_asked_for_and_label_the_pod_named_by_pod_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    result, seen = run_operator_command(monkeypatch)
    assert result.exit_code == 0, result.output
    assert seen[0].pod_role_label is False

    monkeypatch.setenv("POD_NAME", "cerebelum-7d9c-abcde")
    monkeypatch.setenv("POD_NAMESPACE", "cerebelum-system")
    result, seen = run_operator_command(monkeypatch, "--pod-role-label")
    assert result.exit_code == 0, result.output
    (config,) = seen
    assert config.pod_role_label is True
    assert (config.identity, config.lease_namespace) == ("cerebelum-7d9c-abcde", "cerebelum-system")


def test_pod_role_labels_with_an_identity_that_cannot_be_a_pod_name_are_refused_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    result, seen = run_operator_command(monkeypatch, "--pod-role-label", "--identity", "My_Laptop")
    assert result.exit_code != 0 and seen == []
    assert "--pod-role-label" in result.output and "POD_NAME" in result.output
