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
