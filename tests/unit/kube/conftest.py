"""The `cerebelum operator` command checks for a kubeconfig before it starts: the tests that run it
with a fake operator get one naming a cluster nobody serves (they never connect)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .world import world

__all__ = ["kubeconfig", "world", "write_kubeconfig"]


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
