"""Reading workflow documents: Workflow resources in YAML or JSON, one or many per file."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..api.workflow_service import NAME
from ..model import WorkflowInvalid, compile_workflow

__all__ = ["DocumentError", "WorkflowDocument", "read_workflows"]


class DocumentError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class WorkflowDocument:
    name: str
    spec: dict[str, Any]


def read_workflows(path: Path) -> list[WorkflowDocument]:
    """Every Workflow in the file, each checked as the engine will check it before anything is applied.

    A file is applied whole or not at all: one `DocumentError` names every bad document by its
    position and name, so a fix does not take one round trip per document.
    """
    try:
        text = path.read_text() if str(path) != "-" else sys.stdin.read()
    except OSError as exc:
        raise DocumentError(f"cannot read {path}: {exc.strerror}") from None
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise DocumentError(f"{path} is not valid YAML: {exc}") from None
    if not documents:
        raise DocumentError(f"{path} has no documents")
    workflows: list[WorkflowDocument] = []
    problems: list[str] = []
    for index, document in enumerate(documents):
        try:
            workflows.append(_workflow(document))
        except DocumentError as exc:
            name = (document.get("metadata") or {}).get("name") if isinstance(document, dict) else None
            named = f" ({name})" if isinstance(name, str) and name else ""
            problems.append(f"document {index + 1}{named}: {exc}")
    if problems:
        total = len(documents)
        raise DocumentError(
            f"{path}: nothing applied: {len(problems)} of {total} document{'' if total == 1 else 's'}"
            f" {'is' if len(problems) == 1 else 'are'} invalid:\n  " + "\n  ".join(problems)
        )
    return workflows


def _workflow(document: Any) -> WorkflowDocument:
    if not isinstance(document, dict):
        raise DocumentError(f"expected a mapping, got {type(document).__name__}")
    kind = document.get("kind")
    if kind != "Workflow":
        raise DocumentError(f"kind {kind!r} is not supported here; expected kind: Workflow")
    name = (document.get("metadata") or {}).get("name")
    if not isinstance(name, str) or not name:
        raise DocumentError("metadata.name is required")
    if not NAME.match(name):
        raise DocumentError(f"workflow name {name!r} is not valid: use lowercase letters, digits, '-' and '.'")
    spec = document.get("spec")
    if not isinstance(spec, dict):
        raise DocumentError("spec is required and must be a mapping")
    try:
        compile_workflow(spec)
    except WorkflowInvalid as exc:
        raise DocumentError(f"spec: {exc}") from None
    return WorkflowDocument(name, spec)
