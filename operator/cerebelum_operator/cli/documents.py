"""Reading workflow documents: Workflow resources in YAML or JSON, one or many per file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

__all__ = ["DocumentError", "read_workflows"]


class DocumentError(ValueError):
    pass


def read_workflows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, spec) for every Workflow in the file; other kinds are an error naming them."""
    try:
        text = path.read_text() if str(path) != "-" else __import__("sys").stdin.read()
    except OSError as exc:
        raise DocumentError(f"cannot read {path}: {exc.strerror}") from None
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise DocumentError(f"{path} is not valid YAML: {exc}") from None
    if not documents:
        raise DocumentError(f"{path} has no documents")
    for index, document in enumerate(documents):
        where = f"{path} (document {index + 1})"
        if not isinstance(document, dict):
            raise DocumentError(f"{where}: expected a mapping, got {type(document).__name__}")
        kind = document.get("kind")
        if kind != "Workflow":
            raise DocumentError(f"{where}: kind {kind!r} is not supported here; expected kind: Workflow")
        name = (document.get("metadata") or {}).get("name")
        if not isinstance(name, str) or not name:
            raise DocumentError(f"{where}: metadata.name is required")
        spec = document.get("spec")
        if not isinstance(spec, dict):
            raise DocumentError(f"{where}: spec is required and must be a mapping")
        yield name, spec
