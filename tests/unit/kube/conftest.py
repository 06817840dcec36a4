"""The `cerebelum operator` command checks for a kubeconfig before it starts: the tests that run it
with a fake operator get one naming a cluster nobody serves (they never connect)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
import typer

from .world import world

__all__ = ["in_process_exit", "kubeconfig", "world", "write_kubeconfig"]


@pytest.fixture(autouse=True)
def in_process_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command ends its process with os._exit after a clean stop; in a test it raises instead."""

    def exit_in_process(code: int) -> None:
        raise typer.Exit(code)

    cli_main = importlib.import_module("cerebelum_operator.cli.main")  # the package exports a function `main`
    monkeypatch.setattr(cli_main, "_exit_after_clean_stop", exit_in_process)


def write_kubeconfig(path: Path) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path.write_text(json.dumps(config))
    return path


@pytest.fixture(autouse=True)
def kubeconfig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = write_kubeconfig(tmp_path / "kubeconfig")
    monkeypatch.setenv("KUBECONFIG", str(path))
    return path
