"""The names ``cerebelum`` exports are a contract: changing them must be deliberate."""

from __future__ import annotations

import importlib
import pkgutil

import cerebelum

EXPECTED = [
    "TERMINAL_PHASES",
    "AbortedError",
    "AlreadyExistsError",
    "ApplicationError",
    "ApprovalRejectedError",
    "ApprovalRequest",
    "ApprovalTimedOutError",
    "AsyncClient",
    "BulkOutcome",
    "BulkResult",
    "CerebelumError",
    "ChildExecution",
    "ChildFailedError",
    "Client",
    "DeadLetter",
    "DeadlineExceededError",
    "Duration",
    "Execution",
    "ExecutionList",
    "ExecutionOutcome",
    "ExecutionPause",
    "FailedPreconditionError",
    "HistoryEvent",
    "InvalidArgumentError",
    "JumpLimit",
    "NonDeterminismError",
    "NonRetryableError",
    "NotFoundError",
    "PendingApproval",
    "PermissionDeniedError",
    "QueuedSignal",
    "ReplayResult",
    "ResourceExhaustedError",
    "RetryAfter",
    "RetryPolicy",
    "ServerError",
    "Signal",
    "SignalTimedOutError",
    "SignalWait",
    "Sleep",
    "StepCancelled",
    "StepContext",
    "StepFailedError",
    "StepOptions",
    "StepStatus",
    "TlsSettings",
    "UnauthenticatedError",
    "UnavailableError",
    "Worker",
    "WorkflowContext",
    "WorkflowInfo",
    "WorkflowStepError",
    "WorkflowTaskError",
    "parse_duration",
    "replay",
]


def test_the_package_exports_exactly_the_public_api() -> None:
    assert cerebelum.__all__ == EXPECTED
    for name in EXPECTED:
        assert getattr(cerebelum, name) is not None


def test_every_sdk_module_declares_what_it_exports() -> None:
    modules = [info.name for info in pkgutil.iter_modules(cerebelum.__path__, "cerebelum.") if not info.ispkg]
    assert modules
    for name in modules:
        module = importlib.import_module(name)
        assert isinstance(getattr(module, "__all__", None), list), name
        for exported in module.__all__:
            assert hasattr(module, exported), f"{name}.{exported}"


def test_server_errors_are_cerebelum_errors_and_step_errors_are_not() -> None:
    step_errors = {cerebelum.ApplicationError, cerebelum.NonRetryableError}
    # Raised in workflow code by its context, or by a replay: never by the server.
    workflow_errors = {
        cerebelum.WorkflowStepError,
        cerebelum.StepFailedError,
        cerebelum.ApprovalRejectedError,
        cerebelum.ApprovalTimedOutError,
        cerebelum.SignalTimedOutError,
        cerebelum.ChildFailedError,
        cerebelum.NonDeterminismError,
        cerebelum.WorkflowTaskError,
    }
    for cls in workflow_errors:
        assert not issubclass(cls, cerebelum.CerebelumError), cls
    server_errors = [
        getattr(cerebelum, name)
        for name in EXPECTED
        if name.endswith("Error") and getattr(cerebelum, name) not in workflow_errors
    ]
    for cls in server_errors:
        assert issubclass(cls, cerebelum.CerebelumError) == (cls not in step_errors), cls
    assert issubclass(cerebelum.NonRetryableError, cerebelum.ApplicationError)


def test_the_testing_kit_exports_exactly_its_public_api() -> None:
    import cerebelum.testing

    assert cerebelum.testing.__all__ == ["Failure", "ResultKind", "StepEnvironment", "StepResult"]
