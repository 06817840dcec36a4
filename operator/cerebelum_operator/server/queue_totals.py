"""A task queue's counts across engines that split the shards: each holds its own shards' tasks.

`cerebelum queue list` against one engine of a split showed that engine's tasks and polls only, so
a queue with work waiting on the other engines looked empty. The engine called asks each other
engine (`handlers._added_up`) and adds their counts to its own here; the settings (paused, note,
rate limit) are the store's, the same on every engine.
"""

from __future__ import annotations

from collections.abc import Sequence

from cerebelum.v1 import task_queue_pb2 as pb

__all__ = ["added_up"]


def added_up(replies: Sequence[pb.ListTaskQueuesResponse]) -> list[pb.TaskQueueInfo]:
    """Each queue named by any reply, by name: its counts summed over the replies, its latest poll, and
    its setting and why it waits from the first reply that names it (the engine called comes first)."""
    queues: dict[str, pb.TaskQueueInfo] = {}
    for reply in replies:
        for info in reply.task_queues:
            total = queues.get(info.name)
            if total is None:
                queues[info.name] = total = pb.TaskQueueInfo()
                total.CopyFrom(info)
                continue
            total.ready += info.ready
            total.scheduled += info.scheduled
            total.running += info.running
            total.pollers += info.pollers
            if info.HasField("last_poll") and (
                not total.HasField("last_poll") or info.last_poll.ToNanoseconds() > total.last_poll.ToNanoseconds()
            ):
                total.last_poll.CopyFrom(info.last_poll)
            if not total.waiting_reason and info.waiting_reason:
                total.waiting_reason = info.waiting_reason
                if info.HasField("waiting_until"):
                    total.waiting_until.CopyFrom(info.waiting_until)
    return [queues[name] for name in sorted(queues)]
