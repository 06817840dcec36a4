"""The workflow model: the spec users write and its compiled, validated form."""

from .code import CodeCommandInvalid, CodeConfig, code_step_config
from .compile import (
    CelExpression,
    CompiledBranch,
    CompiledDiverge,
    ForEach,
    Retry,
    StepConfig,
    WorkflowDefinition,
    compile_workflow,
    parse_workflow,
)
from .durations import DurationError, format_duration, parse_duration
from .errors import InputInvalid, SpecProblem, WorkflowInvalid
from .labels import MAX_LABELS, LabelsInvalid, check_labels
from .spec import (
    ApprovalSpec,
    BranchRule,
    DivergeRule,
    ErrorMatch,
    ForEachSpec,
    OutcomeMatch,
    RetryPolicy,
    StepDefaults,
    StepSpec,
    WorkflowSpec,
)

__all__ = [
    "MAX_LABELS",
    "ApprovalSpec",
    "BranchRule",
    "CelExpression",
    "CodeCommandInvalid",
    "CodeConfig",
    "CompiledBranch",
    "CompiledDiverge",
    "DivergeRule",
    "DurationError",
    "ErrorMatch",
    "ForEach",
    "ForEachSpec",
    "InputInvalid",
    "LabelsInvalid",
    "OutcomeMatch",
    "Retry",
    "RetryPolicy",
    "SpecProblem",
    "StepConfig",
    "StepDefaults",
    "StepSpec",
    "WorkflowDefinition",
    "WorkflowInvalid",
    "WorkflowSpec",
    "check_labels",
    "code_step_config",
    "compile_workflow",
    "format_duration",
    "parse_duration",
    "parse_workflow",
]
