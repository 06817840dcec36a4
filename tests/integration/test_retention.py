"""The store's retention period on a real `cerebelum dev` (issue 19): an execution that ended is
exported as JSON lines and removed once the period has passed; `cerebelum history` then says when
it went and where its history is; its id is not started again; one still running stays."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cerebelum import CerebelumError, Client
from tests.support.processes import EngineProcess, run_cli
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

NAP = {"taskQueue": "nobody", "timeline": ["nap"], "steps": {"nap": {"timer": {"duration": "10ms"}}}}
WAITS = {"taskQueue": "nobody", "timeline": ["work"]}  # no worker serves it: it runs for ever


@pytest.fixture
def retaining(tmp_path: Path) -> Iterator[EngineProcess]:
    exports = tmp_path / "exports"
    process = EngineProcess(
        database_url=f"sqlite:///{tmp_path / 'engine.db'}",
        log_path=tmp_path / "engine.log",
        extra_args=("--retention", "2s", "--retention-export", str(exports)),
    )
    process.start()
    yield process
    process.stop()


def test_an_ended_execution_is_exported_and_removed_after_the_period_and_history_says_where(
    retaining: EngineProcess, tmp_path: Path
) -> None:
    with Client(address=retaining.address) as client:
        client.apply_workflow("nap", NAP)
        client.apply_workflow("waits", WAITS)
        client.start("waits", {}, execution_id="runs-on")
        client.start("nap", {"who": "ada"}, execution_id="napped")
        assert client.wait("napped", timeout=60).phase == "Succeeded"
        saved = [e.type for e in client.history("napped")]

        def removed() -> bool:
            try:
                client.get("napped")
            except CerebelumError:
                return True
            return False

        wait_until(removed, within=60, what="the ended execution removed by the retention period")

        history = run_cli(retaining, "history", "napped")
        assert history.returncode != 0
        said = " ".join(history.stderr.split())
        exported = tmp_path / "exports" / "napped.jsonl"
        assert "was removed from the store on" in said and f"exported to {exported}" in said, said
        lines = [json.loads(line) for line in exported.read_text().splitlines()]
        assert [line["type"] for line in lines] == saved
        assert lines[0]["data"]["input"] == {"who": "ada"}
        again = run_cli(retaining, "start", "nap", "--id", "napped", "--input", '{"who": "ada"}')
        assert again.returncode != 0 and "its id is not used again" in " ".join(again.stderr.split())
        assert client.get("runs-on").phase == "Running", "a running execution is never removed"


def test_an_export_directory_without_a_retention_period_is_refused_naming_both(tmp_path: Path) -> None:
    engine = EngineProcess(
        database_url=f"sqlite:///{tmp_path / 'engine.db'}",
        log_path=tmp_path / "engine.log",
        extra_args=("--retention-export", str(tmp_path / "x")),
    )
    engine.launch()
    assert engine.process is not None
    assert engine.process.wait(timeout=60) != 0
    said = " ".join(engine.log_path.read_text().split())
    assert "--retention-export writes what --retention removes: give --retention too" in said
