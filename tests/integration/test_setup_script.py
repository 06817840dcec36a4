"""`source scripts/setup.sh`, as the README's tour says, from a user's own shell."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _bash(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_sourcing_setup_leaves_the_shell_options_as_they_were_and_puts_the_cli_on_path() -> None:
    out = _bash(
        "source scripts/setup.sh >/dev/null; set -o | grep -E '^(errexit|nounset|pipefail)'; command -v cerebelum"
    )
    assert out.returncode == 0, out.stderr
    options = dict(line.split() for line in out.stdout.splitlines()[:3])
    assert options == {"errexit": "off", "nounset": "off", "pipefail": "off"}
    assert out.stdout.splitlines()[3].endswith("/bin/cerebelum")


def test_a_failed_setup_returns_an_error_to_the_sourcing_shell_without_closing_it() -> None:
    out = _bash('CEREBELUM_VENV=$(mktemp -d)/venv PYTHON=false; source scripts/setup.sh; echo "still here: $?"')
    assert "still here: 1" in out.stdout
    assert "setup: failed" in out.stderr
