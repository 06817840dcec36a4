"""Chart tests share the kube tests' API server (and its CRDs) for the apply test."""

from __future__ import annotations

from tests.kube.conftest import audit_dir, audit_log, control_plane, crds

__all__ = ["audit_dir", "audit_log", "control_plane", "crds"]
