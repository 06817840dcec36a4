"""The ScheduleService over real gRPC, in process: each refusal has its status and names its field."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from cerebelum.v1 import schedule_pb2 as pb
from cerebelum.v1 import schedule_pb2_grpc as pb_grpc
from cerebelum_operator.server import EngineServer, ServerConfig

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def stub(tmp_path: Path) -> AsyncIterator[pb_grpc.ScheduleServiceStub]:
    server = EngineServer(ServerConfig(address="127.0.0.1:0", database_url=f"sqlite:///{tmp_path / 'engine.db'}"))
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            yield pb_grpc.ScheduleServiceStub(channel)  # type: ignore[no-untyped-call]  # generated stub: untyped
    finally:
        await server.stop(0)


async def refusal(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call  # type: ignore[misc]
    return refused.value.code(), refused.value.details() or ""


def create(name: str, **spec: object) -> pb.CreateScheduleRequest:
    return pb.CreateScheduleRequest(name=name, spec_json=json.dumps({"workflow": "w", **spec}))


async def test_a_schedule_is_created_read_listed_paused_and_deleted(stub: pb_grpc.ScheduleServiceStub) -> None:
    created = await stub.CreateSchedule(create("nightly", cron="0 3 * * *", timezone="Europe/Paris"))
    assert created.workflow == "w"
    assert created.next_fire.seconds > 0
    assert json.loads(created.spec_json)["timezone"] == "Europe/Paris"
    paused = await stub.PauseSchedule(pb.PauseScheduleRequest(name="nightly", note="migration <b>tonight</b>"))
    assert paused.paused
    assert paused.note == "migration <b>tonight</b>"
    assert not paused.HasField("next_fire")
    listed = await stub.ListSchedules(pb.ListSchedulesRequest())
    assert [s.name for s in listed.schedules] == ["nightly"]
    deleted = await stub.DeleteSchedule(pb.DeleteScheduleRequest(name="nightly"))
    assert deleted.deleted


async def test_a_bad_cron_is_invalid_argument_naming_the_field(stub: pb_grpc.ScheduleServiceStub) -> None:
    code, details = await refusal(stub.CreateSchedule(create("nightly", cron="0 25 * * *")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "cron: cron '0 25 * * *' is not valid: Bad hour" in details


async def test_a_taken_name_is_already_exists_and_a_missing_one_not_found(stub: pb_grpc.ScheduleServiceStub) -> None:
    await stub.CreateSchedule(create("nightly", interval="1h"))
    code, _ = await refusal(stub.CreateSchedule(create("nightly", interval="1h")))
    assert code == grpc.StatusCode.ALREADY_EXISTS
    code, details = await refusal(stub.TriggerSchedule(pb.TriggerScheduleRequest(name="weekly")))
    assert code == grpc.StatusCode.NOT_FOUND
    assert "'weekly'" in details


async def test_a_note_over_its_limit_is_refused_naming_the_field(stub: pb_grpc.ScheduleServiceStub) -> None:
    await stub.CreateSchedule(create("nightly", interval="1h"))
    code, details = await refusal(stub.PauseSchedule(pb.PauseScheduleRequest(name="nightly", note="x" * 9000)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "PauseSchedule: note" in details
