"""The new requests' strings are bounded at the edge, naming the field (issue 19)."""

from __future__ import annotations

import pytest

from cerebelum.v1 import workflow_pb2 as pb
from cerebelum_operator.api.limits import check_request
from cerebelum_operator.model.limits import MAX_REASON, TextTooLong


@pytest.mark.parametrize(
    ("request_", "field", "limit"),
    [
        (pb.BulkExecutionsRequest(action="pause", ids=["ok", "x" * 129]), "ids", 128),
        (pb.ResetExecutionRequest(id="a", step="s", new_id="n" * 129), "new_id", 128),
        (pb.ResetExecutionRequest(id="a", step="s" * 254), "step", 253),
        (pb.PauseExecutionRequest(id="a", reason="r" * (MAX_REASON + 1)), "reason", MAX_REASON),
        (pb.PauseWorkflowRequest(name="w" * 254), "name", 253),
        (pb.ListExecutionsRequest(id_contains="i" * 129), "id_contains", 128),
        (pb.ListExecutionsRequest(page_token="t" * 513), "page_token", 512),
        (pb.ListExecutionsRequest(phases=["Running", "p" * 65]), "phases", 64),
        (pb.StartExecutionRequest(workflow="w", labels={"k" * 318: "v"}), "labels key", 317),
        (pb.SignalWithStartRequest(labels={"team": "v" * 64}), r"labels\['team'\]", 63),
        (pb.ListExecutionsRequest(labels={"team": "v" * 64}), r"labels\['team'\]", 63),
    ],
)
def test_an_oversized_string_in_a_day_two_request_is_refused_naming_its_field(
    request_: object, field: str, limit: int
) -> None:
    with pytest.raises(TextTooLong, match=rf"Rpc: {field} is \d+ characters long") as refused:
        check_request(request_, "Rpc")  # type: ignore[arg-type]
    assert f"over the limit of {limit}" in str(refused.value)


def test_labels_within_their_limits_pass_to_the_engine_which_checks_their_syntax() -> None:
    check_request(pb.StartExecutionRequest(workflow="w", labels={"k" * 63: "v" * 63, "p/n": ""}), "Rpc")


def test_a_report_too_small_to_hold_a_string_over_its_limit_is_not_walked(monkeypatch: pytest.MonkeyPatch) -> None:
    from cerebelum.v1 import worker_pb2 as wpb
    from cerebelum_operator.api import limits

    def walked(*args: object) -> None:
        raise AssertionError("walked")

    report = wpb.CompleteTaskRequest(task_token="e/a/1/0/1", worker_id="w1")
    report.success.output_json = '{"n": 1}'
    report.poll_next.task_queue = "bench"
    monkeypatch.setattr(limits, "_check", walked)
    check_request(report, "CompleteTasks")

    report.poll_next.task_queue = "q" * 254  # over its limit of 253: the request is larger than that
    with pytest.raises(AssertionError, match="walked"):
        check_request(report, "CompleteTasks")


def test_a_string_over_its_limit_in_a_nested_message_is_still_refused() -> None:
    from cerebelum.v1 import worker_pb2 as wpb

    report = wpb.CompleteTaskRequest(task_token="e/a/1/0/1", worker_id="w1")
    report.failure.type = "T" * 257
    with pytest.raises(TextTooLong, match=r"CompleteTasks: failure.type is 257 characters long"):
        check_request(report, "CompleteTasks")
