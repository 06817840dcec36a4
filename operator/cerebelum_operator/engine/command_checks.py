"""Strings a command carries, checked against their limits before `decide` records any."""

from __future__ import annotations

from ..model import limits
from . import commands as cmd

__all__ = ["CommandRejected", "CommandTooLarge", "check_strings"]


class CommandRejected(ValueError):
    """The command does not apply to the execution as it is (e.g. no approval pending)."""


class CommandTooLarge(CommandRejected):
    """Applying the command would pass a size limit: what tasks carry, or the signal queue's."""


def check_strings(command: cmd.Command) -> None:
    """Refuse a command carrying a string over its limit (model/limits.py), naming the field.

    The API refuses these first (INVALID_ARGUMENT); this guards every other caller, such as the
    operator applying an Approval, so no history ever holds one.
    """
    texts: list[tuple[str, str | None, int]] = []
    match command:
        case cmd.Start():
            texts.append(("workflow", command.workflow, limits.MAX_WORKFLOW_KEY))
        case cmd.TaskStarted():
            texts.append(("worker_id", command.worker_id, limits.MAX_WORKER_ID))
        case cmd.TaskCompleted():
            texts.append(("worker_id", command.worker_id, limits.MAX_WORKER_ID))
            # Free text (failure messages, reasons) is cut to its limit, not refused.
            match command.outcome:
                case cmd.OutcomeFailure():
                    texts.append(("error type", command.outcome.error_type, limits.MAX_ERROR_TYPE))
                case cmd.OutcomeApproval():
                    texts.append(("approval kind", command.outcome.approval_kind, limits.MAX_APPROVAL_KIND))
        case cmd.Signal():
            texts.append(("signal name", command.name, limits.MAX_SIGNAL_NAME))
            texts.append(("sender", command.sender, limits.MAX_APPROVER))
            texts.append(("request id", command.request_id, limits.MAX_REQUEST_ID))
        case cmd.Pause() | cmd.Resume():
            texts.append(("by", command.by, limits.MAX_APPROVER))
            texts.append(("source", command.source, limits.MAX_NAME))
        case cmd.Approve() | cmd.Reject():
            texts.append(("step", command.step, limits.MAX_NAME))
            texts.append(("approver", command.approver, limits.MAX_APPROVER))
            texts.append(("request id", command.request_id, limits.MAX_REQUEST_ID))
    try:
        for what, value, limit in texts:
            if value is not None:
                limits.check_text(value, what=what, limit=limit)
    except limits.TextTooLong as exc:
        raise CommandRejected(str(exc)) from None
