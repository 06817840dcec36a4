"""Engines that split the shards each count their own tasks; the engine called adds them up."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from cerebelum.v1 import task_queue_pb2 as pb
from cerebelum_operator.server.queue_totals import added_up


def _at(seconds: int) -> Timestamp:
    return Timestamp(seconds=seconds)


def test_each_queue_s_counts_are_summed_over_the_engines_with_the_latest_poll() -> None:
    here = pb.ListTaskQueuesResponse(
        task_queues=[pb.TaskQueueInfo(name="q", ready=1, scheduled=2, running=3, pollers=1, last_poll=_at(100))]
    )
    there = pb.ListTaskQueuesResponse(
        task_queues=[pb.TaskQueueInfo(name="q", ready=10, scheduled=20, running=30, pollers=2, last_poll=_at(200))]
    )
    (total,) = added_up([here, there])
    assert (total.ready, total.scheduled, total.running, total.pollers) == (11, 22, 33, 3)
    assert total.last_poll.seconds == 200


def test_a_queue_only_one_engine_knows_is_listed_and_the_names_come_sorted() -> None:
    here = pb.ListTaskQueuesResponse(task_queues=[pb.TaskQueueInfo(name="b", ready=1)])
    there = pb.ListTaskQueuesResponse(task_queues=[pb.TaskQueueInfo(name="a", running=4)])
    assert [(q.name, q.ready, q.running) for q in added_up([here, there])] == [("a", 0, 4), ("b", 1, 0)]


def test_the_setting_is_the_first_engine_s_and_why_tasks_wait_the_first_that_says() -> None:
    here = pb.ListTaskQueuesResponse(
        task_queues=[
            pb.TaskQueueInfo(name="q", paused=True, note="deploy", rate_limit=pb.RateLimit(count=5, period_ms=1000))
        ]
    )
    there = pb.ListTaskQueuesResponse(
        task_queues=[
            pb.TaskQueueInfo(
                name="q", paused=True, waiting_reason="rate limited", waiting_until=_at(300), last_poll=_at(9)
            )
        ]
    )
    (total,) = added_up([here, there])
    assert (total.paused, total.note, total.rate_limit.count) == (True, "deploy", 5)
    assert (total.waiting_reason, total.waiting_until.seconds, total.last_poll.seconds) == ("rate limited", 300, 9)


def test_the_replies_are_left_as_they_came() -> None:
    here = pb.ListTaskQueuesResponse(task_queues=[pb.TaskQueueInfo(name="q", ready=1)])
    added_up([here, pb.ListTaskQueuesResponse(task_queues=[pb.TaskQueueInfo(name="q", ready=5)])])
    assert here.task_queues[0].ready == 1
