"""The helm CLI for chart tests: built from the Go module proxy once, then cached."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "cerebelum"
KUBE_VERSION = "1.37.2"  # the control plane the tests run


@functools.cache
def helm_binary() -> Path:
    """The cached helm (hack/control-plane/build-helm.sh builds it when missing)."""
    out = subprocess.run(
        ["bash", str(ROOT / "hack" / "control-plane" / "build-helm.sh")], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"could not build helm: {out.stderr[-2000:]}")
    return Path(out.stdout.strip().splitlines()[-1]) / "helm"


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm_binary()), *args], capture_output=True, text=True, check=check)


def render(*args: str, release: str = "cerebelum", namespace: str = "cerebelum-system") -> str:
    """`helm template` of the operator chart, for the Kubernetes version the tests run."""
    result = helm("template", release, str(CHART), "-n", namespace, "--kube-version", KUBE_VERSION, *args)
    return result.stdout
