"""What a Work stream keeps of its polls' steps for its reports (`api/stream_steps.py`)."""

from __future__ import annotations

from types import SimpleNamespace

from cerebelum_operator.api.stream_steps import MAX_STREAM_QUEUES, remember_stream_steps, stream_steps_of


def test_a_unary_call_keeps_nothing_and_has_no_stream_steps() -> None:
    unary = SimpleNamespace()
    remember_stream_steps(unary, "q", ["a"])
    assert stream_steps_of(unary) is None


def test_a_stream_keeps_each_queue_s_last_polled_steps_and_at_most_its_limit_of_queues() -> None:
    stream = SimpleNamespace(stream_steps={})
    remember_stream_steps(stream, "q", ["a", "b"])
    remember_stream_steps(stream, "q", ["c"])
    assert stream_steps_of(stream) == {"q": frozenset({"c"})}, "the last poll of the queue counts"

    for index in range(MAX_STREAM_QUEUES):
        remember_stream_steps(stream, f"other-{index}", ["x"])
    kept = stream_steps_of(stream)
    assert kept is not None and len(kept) == MAX_STREAM_QUEUES
    assert "q" not in kept and "other-0" in kept, "the queue polled longest ago went first"

    remember_stream_steps(stream, "other-0", ["y"])  # polled again: the newest now
    remember_stream_steps(stream, "another", ["z"])
    assert "other-0" in kept and "other-1" not in kept
