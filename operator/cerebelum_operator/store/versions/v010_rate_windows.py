"""Migration 10, frozen: indexes of ``task_starts`` by queue and by flow key, each with the start time.

Engines that split the shards count a rate limit's window in the store, in the transaction of each
lease of a limited task and under that window's lock (`SqlEventStore._check_shared_windows`): the
starts of one queue or one flow key after a time. Without these indexes that count read every live
start of every window, and a store with many flow keys (one per customer, say) would hold each lock
for as long as that scan.

Indexes only: an engine of schema 9 still runs on a store at version 10.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

__all__ = ["DESCRIPTION", "apply"]

DESCRIPTION = "task_starts indexed by (task_queue, started_at_ms) and (flow_key, started_at_ms)"


def apply(conn: Connection) -> None:
    conn.execute(
        text("CREATE INDEX ix_task_starts_task_queue_started_at_ms ON task_starts (task_queue, started_at_ms)")
    )
    conn.execute(text("CREATE INDEX ix_task_starts_flow_key_started_at_ms ON task_starts (flow_key, started_at_ms)"))
